"""`mflow-task FLOW.py STEP`: run exactly one attempt of one task against the store.

Plumbing: one JSON line on stdout (schema 1) and an exit code the driver acts on; what
the step prints goes to the store's logs and, live, to stderr.

Every task a compute engine runs starts this command in a new interpreter, so its start-up
is kept small: a well-formed command line is read by `parse_fast` from the table below,
and click (mflow.cli.task_command: help, usage errors, unusual spellings) is loaded only
for the rest. Tests check that both readings agree on every option.
"""

import os

from mflow.folders import make_private_folder, remove_tree

from .boundary import run_guarded
from .console import Console
from .output import open_store

# How each option takes its value: one, repeatable, a flag, counted, or two.
ONE, MANY, FLAG, COUNT, PAIR = "one", "many", "flag", "count", "pair"


def _index(text):
    if not text.isdigit() or not text.isascii():
        raise ValueError(text)
    return int(text)


def _attempt(text):
    return "auto" if text == "auto" else _index(text)


def _seconds(text):
    value = float(text)
    if not value >= 0.1 or text.strip() != text:  # NaN is not >= 0.1 either
        raise ValueError(text)
    return value


def _file(text):
    if os.path.isdir(text):
        raise ValueError(text)
    return text


def _environment(text):
    if text not in ("pypi", "local"):
        raise ValueError(text)
    return text


#: option -> (parameter, how it takes its value, converter); a converter's ValueError hands
#: the command line to click, which says what is wrong.
TASK_OPTIONS = {
    "--run-id": ("run_id", ONE, str),
    "--task-id": ("task_id", ONE, str),
    "--input": ("inputs", MANY, str),
    "--split-index": ("split_index", ONE, _index),
    "--attempt": ("attempt", ONE, _attempt),
    "--tag": ("tags", MANY, str),
    "--with": ("with_specs", MANY, str),
    "--fallback": ("fallback", FLAG, None),
    "--origin-run-id": ("origin_run_id", ONE, str),
    "--init-run": ("init_run", ONE, str),
    "--params": ("params", ONE, str),
    "--end-run": ("end_run", FLAG, None),
    "--splits-file": ("splits_file", ONE, _file),
    "--package": ("package", FLAG, None),
    "--live-logs": ("live_logs", ONE, _seconds),
    "--log-files": ("log_files", PAIR, _file),
    "--environment": ("environment", ONE, _environment),
    "--flow": ("flow_name", ONE, str),
    "--store": ("store_url", ONE, str),
    "--traceback": ("traceback", FLAG, None),
    "-q": ("quiet", COUNT, None),
    "--quiet": ("quiet", COUNT, None),
    "-v": ("verbose", COUNT, None),
    "--verbose": ("verbose", COUNT, None),
}
REQUIRED = ("run_id", "task_id")
POSITIONAL = ("flow_file", "step")


def parse_fast(argv, environ):
    """mflow-task's parameters from a well-formed command line, as click would read them
    (plus `quiet`, `verbose`, `traceback`); None for anything else, which click then reads."""
    params = {"inputs": (), "tags": (), "with_specs": (), "split_index": None, "attempt": 0, "fallback": False, "origin_run_id": None,
              "init_run": None, "params": None, "end_run": False, "splits_file": None,
              "package": False, "live_logs": None, "log_files": None, "flow_name": None, "store_url": None,
              "quiet": 0, "verbose": 0, "traceback": False}
    positional = []
    args = list(argv)
    try:
        if "MFLOW_ENVIRONMENT" in environ and environ["MFLOW_ENVIRONMENT"] != "":
            params["environment"] = _environment(environ["MFLOW_ENVIRONMENT"])
        else:
            params["environment"] = "pypi"
        index = 0
        while index < len(args):
            arg = args[index]
            index += 1
            if arg == "-" or arg == "--":
                return None
            if not arg.startswith("-"):
                positional.append(arg)
                continue
            name, equals, attached = arg.partition("=")
            if name not in TASK_OPTIONS or (equals and not name.startswith("--")):
                return None
            dest, kind, convert = TASK_OPTIONS[name]
            if kind in (FLAG, COUNT):
                if equals:
                    return None
                params[dest] = params[dest] + 1 if kind == COUNT else True
                continue
            width = 2 if kind == PAIR else 1
            if equals:
                if width != 1:
                    return None
                values = [attached]
            else:
                values = args[index:index + width]
                index += width
            if len(values) < width or (not equals and any(v.startswith("-") for v in values)):
                return None
            values = [convert(v) for v in values]
            if kind == MANY:
                params[dest] = params[dest] + (values[0],)
            else:
                params[dest] = tuple(values) if kind == PAIR else values[0]
    except ValueError:
        return None
    if len(positional) != len(POSITIONAL) or any(p not in params for p in REQUIRED):
        return None
    if os.path.isdir(positional[0]):
        return None
    params.update(zip(POSITIONAL, positional))
    return params


def run_task(console, argv, flow_file, step, run_id, task_id, inputs, split_index, attempt, tags, with_specs,
             fallback, package, live_logs, log_files, flow_name, store_url, environment, origin_run_id=None,
             init_run=None, params=None, end_run=False, splits_file=None):
    """Run the task: mflow-task's work once its command line is read (by either reader).

    --init-run, --params, --end-run and --splits-file are a production scheduler's
    (mflow.deploy.runs): the start task creates the run, the end task ends it."""
    from mflow import jsonio  # not orjson or json: their imports cost a task more than its one line
    from mflow.errors import ExitCode, FlowFileError, PathspecError
    from mflow.graph import check_graph, load_graph
    from mflow.meta import MetaStore
    from mflow.naming import PARAMETERS_STEP, PARAMETERS_TASK_ID
    from mflow.task.capture import LogCapture
    from mflow.task.decorators import parse_with, task_decorators
    from mflow.task.loader import load_flow_class
    from mflow.task.runner import TaskAttempt

    workdir = make_private_folder("mflow-task-")  # its unpacked code and output files
    try:
        store = graph = compiled = deployment = None
        if init_run is not None or params is not None:
            _check_init(step, init_run, flow_name)
        if init_run is not None:
            from mflow.deploy.runs import claim_code

            store = open_store(console, store_url)
            deployment = claim_code(store, flow_name, run_id, init_run)
        if package:
            store = store or open_store(console, store_url)
            flow_file, graph, compiled = _unpack_code(store, flow_name, run_id, flow_file, os.path.join(workdir, "code"))
        if graph is None:
            graph = load_graph(flow_file, flow_name=flow_name)
        check_graph(graph)
        if step not in graph.steps:
            raise FlowFileError(
                "flow %s has no step %s" % (graph.name, step), "Steps: %s" % ", ".join(graph.steps), path=flow_file
            )
        meta = None
        if any(text.endswith("-*") for text in inputs):
            store = store or open_store(console, store_url)
            meta = MetaStore(store)
            inputs = _expanded_inputs(meta, graph, run_id, step, inputs)
        refs = [_input_ref(graph.name, run_id, text) for text in inputs]
        if step == "start" and not refs:
            refs = ["%s/%s" % (PARAMETERS_STEP, PARAMETERS_TASK_ID)]
        if not refs:
            raise PathspecError("step %s needs --input: the task(s) it reads" % step, "Give --input step/task_id")
        store = store or open_store(console, store_url)
        switched = _switch_environment(console, argv, store, graph, step, run_id, environment, with_specs, workdir)
        if switched is not None:
            return switched
        flow_class = load_flow_class(flow_file, graph.name, compiled)
        # The step's own readers (the client API, S3(run=self)) find the run's store here.
        os.environ["MFLOW_STORE"] = store.url
        meta = meta or MetaStore(store)
        if deployment is not None:
            from mflow.deploy.runs import start_run

            start_run(store, meta, deployment, flow_class, graph, run_id, params,
                      on_wait=lambda holder: console.err("Waiting for run %s to end (the flow's lock)." % holder))
        decorators = task_decorators(flow_class, graph, step, parse_with(with_specs))
        if attempt == "auto":
            from mflow.store.pathspec import Pathspec

            attempt = _next_attempt(meta, store, Pathspec.task(graph.name, run_id, step, task_id))
        failure = _previous_failure(meta, graph.name, run_id, step, task_id, attempt) if fallback else None
        paths = tuple(log_files) if log_files else (os.path.join(workdir, "stdout"), os.path.join(workdir, "stderr"))
        capture = LogCapture(paths[0], paths[1], echo=not log_files)
        with capture:
            task = TaskAttempt(
                store, meta, graph, flow_class, run_id, step, task_id, refs,
                split_index=split_index, attempt=attempt, log_paths=paths, tags=tags,
                decorators=decorators, fallback=failure, live_logs=live_logs, origin_run_id=origin_run_id,
            )
            result = task.run()
        if result.status == "successful":
            if splits_file is not None and result.foreach_splits is not None:
                _write_text(splits_file, jsonio.dumps(list(range(result.foreach_splits))))
            if end_run:
                from mflow.deploy.runs import end_run as record_end

                record_end(meta, graph.name, run_id, "successful")
        console.out(jsonio.dumps(result.to_json(), separators=(",", ":"), ensure_ascii=False))
    finally:
        remove_tree(workdir)
    return ExitCode(result.exit_code)


def _check_init(step, init_run, flow_name):
    from mflow.errors import ParameterError

    if step != "start":
        raise ParameterError("--init-run and --params belong to the start task, not to step %s" % step,
                             "Give them to `mflow-task ... start` only")
    if init_run is None:
        raise ParameterError("--params needs --init-run DEPLOYMENT", "Give the deployment the run belongs to")
    if not flow_name:
        raise ParameterError("--init-run needs --flow: the flow's name finds its deployment", "Add --flow NAME")


def _expanded_inputs(meta, graph, run_id, step, inputs):
    """--input STEP/ID-* (a foreach join's): every split task of STEP, in order, checked
    against the split count its foreach task recorded."""
    from mflow.deploy.runs import expand_inputs

    expanded = []
    for text in inputs:
        if not text.endswith("-*"):
            expanded.append(text)
            continue
        parent, _, pattern = text.rstrip("/").rpartition("/")
        parent = parent.split("/")[-1]
        ids = expand_inputs(meta, graph.name, run_id, parent, pattern)
        expected = _split_count(meta, graph, run_id, step, pattern[:-2])
        if expected is not None and len(ids) != expected:
            from mflow.errors import PathspecError

            raise PathspecError(
                "--input %s: %d of the foreach's %d splits have finished" % (text, len(ids), expected),
                "Run every task of the foreach before its join",
            )
        expanded.extend("%s/%s" % (parent, task_id) for task_id in ids)
    return expanded


def _split_count(meta, graph, run_id, join, task_id):
    """How many splits the foreach that `join` closes made in its task `task_id`; None when
    its end record does not say."""
    from mflow.errors import NotFoundError
    from mflow.store.pathspec import Pathspec

    split = graph[join].split
    if split is None or split not in graph:
        return None
    try:
        spec = Pathspec.task(graph.name, run_id, split, task_id)
        ends = [a.end for a in meta.attempts(spec) if a.end is not None and a.end.status == "successful"]
    except NotFoundError:
        return None
    result = ends[-1].result if ends else None
    return (result or {}).get("foreach_splits")


def _next_attempt(meta, store, task):
    """--attempt auto: one more than any attempt of the task that started or stored anything."""
    from mflow.errors import NotFoundError

    try:
        started = [a.attempt for a in meta.attempts(task)]
    except NotFoundError:
        started = []
    return max(started + store.attempts(task), default=-1) + 1


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def _switch_environment(console, argv, store, graph, step, run_id, environment, with_specs, workdir):
    """Run this same mflow-task in the step's environment (mflow.env.task_python): exec its
    interpreter when this process is mflow-task's own, else run it as a child. None when the
    step runs here."""
    from mflow.env.spec import may_enter_environment

    if not may_enter_environment(graph, step, environment, with_specs):
        return None  # the common case, decided without loading the environment machinery
    import subprocess
    import sys

    from mflow.env import task_python
    from mflow.env.cache import ACTIVE_VARIABLE

    found = task_python(store, graph, step, run_id, environment, with_specs, console.environ)
    if found is None:
        return None
    python, env_id = found
    command = [python, "-m", "mflow.cli.task"] + list(argv)
    environ = dict(console.environ)
    environ[ACTIVE_VARIABLE] = env_id
    if _PROCESS.get("own"):
        remove_tree(workdir)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.execve(python, command, environ)
    child = subprocess.run(command, env=environ, capture_output=True, text=True)
    console.write(child.stdout)
    console.stderr.write(child.stderr)
    return child.returncode


def _unpack_code(store, flow_name, run_id, flow_file, destination):
    """Unpack run `run_id`'s code package into `destination`: the path of FLOW.py in it, and
    the flow's graph and compiled code as the driver kept them in the package's record (None
    where there are none this task can use: parse or compile the file)."""
    from mflow.errors import FlowFileError, ParameterError

    if not flow_name:
        raise ParameterError("--package needs --flow: the flow's name finds its code package", "Add --flow NAME")
    from mflow.graph import from_record
    from mflow.store.code import extract_code_package

    package = store.code_package(flow_name, run_id)
    names = extract_code_package(store.blobs.get(package.key), destination)
    if os.path.normpath(flow_file) not in names:
        raise FlowFileError(
            "the code package of run %s/%s holds no %s" % (flow_name, run_id, flow_file),
            "Give FLOW.py as a path inside the package (the flow file's name)",
            path=flow_file,
        )
    os.chdir(destination)  # the step finds the files packaged beside the flow, as locally
    path = os.path.join(destination, flow_file)
    return (path,) + from_record(package.graph, os.path.normpath(flow_file), path, flow_name)


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


def main(argv=None, console=None):
    """bin/mflow-task and `python -m mflow.cli.task`: the process is the task's own, so a
    step's environment is entered by exec."""
    import sys

    _PROCESS["own"] = True
    console = console or Console()
    args = list(sys.argv[1:] if argv is None else argv)
    params = parse_fast(args, console.environ)
    if params is None:
        from .boundary import run_cli
        from .task_command import cli

        sys.exit(run_cli(cli, args, console))
    console.verbosity += params.pop("verbose") - params.pop("quiet")
    params.pop("traceback")
    sys.exit(run_guarded(console, args, lambda: run_task(console, args, **params)))


if __name__ == "__main__":
    main()
