"""`mflow-task FLOW.py STEP`: run exactly one attempt of one task against the store.

Plumbing: one JSON line on stdout (schema 1) and an exit code the driver acts on; what
the step prints goes to the store's logs and, live, to stderr.
"""

import click

from .boundary import entry_point
from .options import common_options, environment_option, flow_name_option, store_option
from .output import open_store


class TaskCommand(click.Command):
    """mflow-task keeps its own arguments: switching to a step's environment re-runs them."""

    def parse_args(self, ctx, args):
        ctx.meta["mflow.task.argv"] = list(args)
        return super().parse_args(ctx, args)


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
@click.option("--attempt", type=click.IntRange(min=0), default=0, show_default=True, help="The attempt number.")
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
def cli(console, flow_file, step, run_id, task_id, inputs, split_index, attempt, tags, with_specs, fallback, package,
        live_logs, log_files, flow_name, store_url, environment):
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
    import os
    import tempfile

    import orjson

    from mflow.errors import ExitCode, FlowFileError, PathspecError
    from mflow.graph import check_graph, load_graph
    from mflow.meta import MetaStore
    from mflow.runtime.planner import PARAMETERS_STEP, PARAMETERS_TASK_ID
    from mflow.task.capture import LogCapture
    from mflow.task.decorators import parse_with, task_decorators
    from mflow.task.loader import load_flow_class
    from mflow.task.runner import TaskAttempt

    workdir = tempfile.mkdtemp(prefix="mflow-task-")
    try:
        store = None
        if package:
            store = open_store(console, store_url)
            flow_file = _unpack_code(store, flow_name, run_id, flow_file, os.path.join(workdir, "code"))
        graph = load_graph(flow_file, flow_name=flow_name)
        check_graph(graph)
        if step not in graph.steps:
            raise FlowFileError(
                "flow %s has no step %s" % (graph.name, step), "Steps: %s" % ", ".join(graph.steps), path=flow_file
            )
        refs = [_input_ref(graph.name, run_id, text) for text in inputs]
        if step == "start" and not refs:
            refs = ["%s/%s" % (PARAMETERS_STEP, PARAMETERS_TASK_ID)]
        if not refs:
            raise PathspecError("step %s needs --input: the task(s) it reads" % step, "Give --input step/task_id")
        store = store or open_store(console, store_url)
        switched = _switch_environment(console, store, graph, step, run_id, environment, with_specs, workdir)
        if switched is not None:
            return switched
        flow_class = load_flow_class(flow_file, graph.name)
        # The step's own readers (the client API, S3(run=self)) find the run's store here.
        os.environ["MFLOW_STORE"] = store.url
        meta = MetaStore(store)
        decorators = task_decorators(flow_class, graph, step, parse_with(with_specs))
        failure = _previous_failure(meta, graph.name, run_id, step, task_id, attempt) if fallback else None
        paths = tuple(log_files) if log_files else (os.path.join(workdir, "stdout"), os.path.join(workdir, "stderr"))
        capture = LogCapture(paths[0], paths[1], echo=not log_files)
        with capture:
            task = TaskAttempt(
                store, meta, graph, flow_class, run_id, step, task_id, refs,
                split_index=split_index, attempt=attempt, log_paths=paths, tags=tags,
                decorators=decorators, fallback=failure, live_logs=live_logs,
            )
            result = task.run()
        console.out(orjson.dumps(result.to_json()).decode("utf-8"))
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return ExitCode(result.exit_code)


def _switch_environment(console, store, graph, step, run_id, environment, with_specs, workdir):
    """Run this same mflow-task in the step's environment (mflow.env.task_python): exec its
    interpreter when this process is mflow-task's own, else run it as a child. None when the
    step runs here."""
    import os
    import shutil
    import subprocess
    import sys

    from mflow.env import task_python
    from mflow.env.cache import ACTIVE_VARIABLE

    found = task_python(store, graph, step, run_id, environment, with_specs, console.environ)
    if found is None:
        return None
    python, env_id = found
    command = [python, "-m", "mflow.cli.task"] + click.get_current_context().meta["mflow.task.argv"]
    environ = dict(console.environ)
    environ[ACTIVE_VARIABLE] = env_id
    if _PROCESS.get("own"):
        shutil.rmtree(workdir, ignore_errors=True)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.execve(python, command, environ)
    child = subprocess.run(command, env=environ, capture_output=True, text=True)
    console.write(child.stdout)
    console.stderr.write(child.stderr)
    return child.returncode


def _unpack_code(store, flow_name, run_id, flow_file, destination):
    """Unpack run `run_id`'s code package into `destination`; the path of FLOW.py in it."""
    import os

    from mflow.errors import FlowFileError, ParameterError

    if not flow_name:
        raise ParameterError("--package needs --flow: the flow's name finds its code package", "Add --flow NAME")
    from mflow.store.code import extract_code_package

    names = extract_code_package(store.load_code_package(flow_name, run_id), destination)
    if os.path.normpath(flow_file) not in names:
        raise FlowFileError(
            "the code package of run %s/%s holds no %s" % (flow_name, run_id, flow_file),
            "Give FLOW.py as a path inside the package (the flow file's name)",
            path=flow_file,
        )
    os.chdir(destination)  # the step finds the files packaged beside the flow, as locally
    return os.path.join(destination, flow_file)


def _previous_failure(meta, flow, run_id, step, task_id, attempt):
    """The failure (type, message, traceback) of the attempt before `attempt`."""
    from mflow.errors import NotFoundError
    from mflow.store.pathspec import Pathspec

    task = Pathspec.task(flow, run_id, step, task_id)
    ended = [a for a in meta.attempts(task) if a.attempt == attempt - 1 and a.end is not None]
    if attempt < 1 or not ended or ended[0].end.status != "failed":
        raise NotFoundError(
            "task %s has no failed attempt %d for --fallback to stand in for" % (task, attempt - 1),
            "Give --attempt one more than the failed attempt",
        )
    end = ended[0].end
    return end.exception or {"type": "Exception", "message": end.reason or "", "traceback": ""}


def _input_ref(flow, run_id, text):
    """`step/task_id` of an --input given as Flow/run/step/task or step/task."""
    from mflow.errors import PathspecError
    from mflow.store.pathspec import Pathspec

    parts = text.strip().split("/")
    if len(parts) == 2:
        parts = [flow, run_id] + parts
    pathspec = Pathspec.parse("/".join(parts), 4, 4)
    if pathspec.flow != flow or pathspec.run_id != str(run_id):
        raise PathspecError(
            "--input %s is not a task of run %s/%s" % (text, flow, run_id), "Give a task of the same run"
        )
    return "%s/%s" % (pathspec.step, pathspec.task_id)


_PROCESS = {}
_entry_point = entry_point(cli)


def main(argv=None, console=None):
    """bin/mflow-task and `python -m mflow.cli.task`: the process is the task's own, so a
    step's environment is entered by exec."""
    _PROCESS["own"] = True
    _entry_point(argv, console)


if __name__ == "__main__":
    main()
