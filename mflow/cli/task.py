"""`mflow-task FLOW.py STEP`: run exactly one attempt of one task against the store.

Plumbing: one JSON line on stdout (schema 1) and an exit code the driver acts on; what
the step prints goes to the store's logs and, live, to stderr.
"""

import click

from .boundary import entry_point
from .options import common_options, flow_name_option, store_option
from .output import open_store


@click.command(name="mflow-task", context_settings={"help_option_names": ["-h", "--help"]})
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
@flow_name_option
@store_option
@common_options
@click.pass_obj
def cli(console, flow_file, step, run_id, task_id, inputs, split_index, attempt, tags, with_specs, fallback, flow_name,
        store_url):
    """Run one attempt of task STEP of run --run-id, as `mflow run` does for every task.

    The step's inputs load lazily from the store; what it sets on self is saved as the
    attempt's artifacts, its output as the attempt's logs. stdout gets one JSON line:
    pathspec, attempt, status, next steps, transition, foreach_splits, exit_code, error.
    Exit status: 0 success, 10 failed (a retry may succeed), 11 failed for good.

    Examples:

      mflow-task flow.py start --run-id 1700000000000 --task-id 1

      mflow-task flow.py train --run-id 1700000000000 --task-id 7 --input start/1 --split-index 3

      mflow-task flow.py join --run-id R --task-id 9 --input a/2 --input b/3 | jq .status
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
    flow_class = load_flow_class(flow_file, graph.name)
    store = open_store(console, store_url)
    # The step's own readers (the client API, S3(run=self)) find the run's store here.
    os.environ["MFLOW_STORE"] = store.url
    meta = MetaStore(store)
    decorators = task_decorators(flow_class, graph, step, parse_with(with_specs))
    failure = _previous_failure(meta, graph.name, run_id, step, task_id, attempt) if fallback else None
    workdir = tempfile.mkdtemp(prefix="mflow-task-")
    paths = (os.path.join(workdir, "stdout"), os.path.join(workdir, "stderr"))
    try:
        capture = LogCapture(paths[0], paths[1], echo=True)
        with capture:
            task = TaskAttempt(
                store, meta, graph, flow_class, run_id, step, task_id, refs,
                split_index=split_index, attempt=attempt, log_paths=paths, tags=tags,
                decorators=decorators, fallback=failure,
            )
            result = task.run()
        console.out(orjson.dumps(result.to_json()).decode("utf-8"))
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return ExitCode(result.exit_code)


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


main = entry_point(cli)
