"""mflow-task's click command: its help, and the reading of any command line that
`mflow.cli.task.parse_fast` leaves to click (help, usage errors, unusual spellings).

The task itself is `mflow.cli.task.run_task`; tests check that both readings of a command
line agree.
"""

import click

from .options import common_options, environment_option, flow_name_option, store_option
from .task import run_task


class TaskCommand(click.Command):
    """mflow-task keeps its own arguments: switching to a step's environment re-runs them."""

    def parse_args(self, ctx, args):
        ctx.meta["mflow.task.argv"] = list(args)
        return super().parse_args(ctx, args)


class AttemptNumber(click.ParamType):
    """A whole number of 0 or more, or `auto`: the attempt after the task's last one."""

    name = "attempt"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value == "auto":
            return value
        if isinstance(value, str) and value.isdigit() and value.isascii():
            return int(value)
        self.fail("%r is not a whole number of 0 or more, nor auto" % (value,), param, ctx)


@click.command(name="mflow-task", cls=TaskCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False))
@click.argument("step")
@click.option("--run-id", required=True, help="The run the task belongs to.")
@click.option("--task-id", required=True, help="The task's id within the run.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="PATHSPEC",
    help="A task this one reads (Flow/run/step/task or step/task); a join takes several, in order.",
)
@click.option("--split-index", type=click.IntRange(min=0), help="Which item of the parent's foreach this task handles.")
@click.option(
    "--attempt",
    type=AttemptNumber(),
    default=0,
    show_default=True,
    metavar="N|auto",
    help="The attempt number; auto: the one after the task's last attempt (for a scheduler that retries the same command).",
)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag of the run, for current.tags (repeatable).")
@click.option(
    "--with",
    "with_specs",
    multiple=True,
    metavar="DECORATOR[:K=V,...]",
    help="Apply a step decorator the step lacks, as `mflow run --with` does (repeatable).",
)
@click.option(
    "--fallback",
    is_flag=True,
    help="Run the step's @catch stand-in: store the previous attempt's failure and go on.",
)
@click.option(
    "--origin-run-id",
    metavar="RUN",
    help="The run a resumed run resumes, for current.origin_run_id (the driver passes it).",
)
@click.option(
    "--init-run",
    metavar="DEPLOYMENT",
    help="Start task of a scheduler's run: create the run from this deployment record first (once).",
)
@click.option("--params", metavar="JSON", help="With --init-run: the run's parameter values, a JSON object.")
@click.option("--end-run", is_flag=True, help="End task of a scheduler's run: record the run's success after it.")
@click.option(
    "--splits-file",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="A foreach task writes the JSON list of its split indices here on success.",
)
@click.option(
    "--package",
    is_flag=True,
    help="Take FLOW.py from the run's code package in the store (needs --flow), as a remote worker does.",
)
@click.option(
    "--live-logs",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Copy the step's output to the store every SECONDS while it runs (for `mflow logs -f`).",
)
@click.option(
    "--log-files",
    nargs=2,
    type=click.Path(dir_okay=False),
    metavar="STDOUT STDERR",
    help="Write the step's output to these two files instead of echoing it to stderr.",
)
@environment_option
@flow_name_option
@store_option
@common_options
@click.pass_obj
def cli(console, flow_file, step, run_id, task_id, inputs, split_index, attempt, tags, with_specs, fallback,
        origin_run_id, init_run, params, end_run, splits_file, package, live_logs, log_files, flow_name, store_url,
        environment):
    """Run one attempt of task STEP of run --run-id, as `mflow run` does for every task.

    The step's inputs load lazily from the store; what it sets on self is saved as the
    attempt's artifacts, its output as the attempt's logs. stdout gets one JSON line:
    pathspec, attempt, status, next steps, transition, foreach_splits, exit_code, error.
    Exit status: 0 success, 10 failed (a retry may succeed), 11 failed for good.

    Examples:

      mflow-task flow.py start --run-id 1700000000000 --task-id 1

      mflow-task flow.py train --run-id 1700000000000 --task-id 7 --input start/1 --split-index 3

      mflow-task flow.py join --run-id R --task-id 9 --input a/2 --input b/3 | jq .status

      mflow-task --package --flow HelloFlow --store s3://bkt/mflow flow.py hello --run-id R --task-id 2 --input start/1
    """
    return run_task(console, click.get_current_context().meta["mflow.task.argv"], flow_file, step, run_id,
                    task_id, inputs, split_index, attempt, tags, with_specs, fallback, package, live_logs,
                    log_files, flow_name, store_url, environment, origin_run_id, init_run, params, end_run,
                    splits_file)
