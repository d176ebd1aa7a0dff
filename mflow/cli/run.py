"""`mflow run FLOW.py`: check the graph, then run every task of the flow as its own process.

The flow's Parameters become options of this command (`--alpha 0.1`), so
`mflow run flow.py --help` lists them with their types and help.
"""

import os
import time

import click

from .options import common_options, environment_option, flow_name_option, store_option
from .output import open_store

def parameter_env_name(name):
    """MFLOW_PARAM_<NAME>: the environment variable that sets parameter `name`."""
    return "MFLOW_PARAM_" + name.upper().replace("-", "_")


class FlowCommand(click.Command):
    """A command whose options grow, at parse time, by the Parameters of the flow named
    by its first argument.

    Metaflow reserves only a few parameter names, so a flow may name a parameter like an
    option of this command (`verbose`, `store`, `flow`...). After FLOW.py the parameter wins;
    before FLOW.py the option is the driver's, and it is also `--mflow-NAME` anywhere:
    `mflow run --store s3://b/p flow.py --store ./data` gives the flow's `store` parameter
    the value ./data. Short options (-v, -q, -h) are always the driver's."""

    def parse_args(self, ctx, args):
        if not hasattr(self, "_driver_params"):
            self._driver_params = list(self.params)
        self.params = list(self._driver_params)
        self._help_option = None  # click caches it; which names it takes depends on the flow
        ctx.meta["mflow.flow"] = None
        position = _flow_file_position(self._driver_params, args)
        if position is None:
            return super().parse_args(ctx, args)
        flow_file, before, after = args[position], args[:position], args[position + 1:]
        if os.path.isfile(flow_file) and flow_file.endswith(".py"):
            loaded = _load_named_flow(flow_file, _option_value(before, "--flow"), _option_value(after, "--flow"))
            ctx.meta["mflow.flow"] = loaded
            options = parameter_options(loaded[1])
            taken = {name for option in options for name in option.opts + option.secondary_opts}
            self.params = [_driver_spelling(param, taken) for param in self._driver_params] + options
            before = [_DRIVER_PREFIX + arg[2:] if arg.split("=", 1)[0] in taken else arg for arg in before]
            if "--help" in taken:
                before = ["-h" if arg == _DRIVER_PREFIX + "help" else arg for arg in before]
        return super().parse_args(ctx, before + [flow_file] + after)


_DRIVER_PREFIX = "--mflow-"


def _flow_file_position(params, args):
    """The index of FLOW.py in `args` (the first argument that is no option nor an option's
    value), or None."""
    valued = set()
    for param in params:
        if isinstance(param, click.Option) and not param.is_flag and not param.count:
            valued.update(param.opts + param.secondary_opts)
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return index + 1 if index + 1 < len(args) else None
        if arg == "-" or not arg.startswith("-"):
            return index
        name = "--" + arg[len(_DRIVER_PREFIX):] if arg.startswith(_DRIVER_PREFIX) else arg
        index += 2 if name in valued else 1
    return None


def _driver_spelling(param, taken):
    """`param` itself, or, when a flow parameter takes one of its long names, a copy that
    answers to --mflow-NAME in place of those names."""
    names = param.opts + param.secondary_opts
    if not isinstance(param, click.Option) or not taken.intersection(names):
        return param
    import copy

    param = copy.copy(param)
    param.opts = [_DRIVER_PREFIX + n[2:] if n in taken else n for n in param.opts]
    param.secondary_opts = [_DRIVER_PREFIX + n[2:] if n in taken else n for n in param.secondary_opts]
    return param


def _option_value(args, name):
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _load_named_flow(flow_file, before, after):
    """load_flow() of the flow --flow names: before FLOW.py, or after it unless that
    --flow is the parameter of the file's one flow."""
    from mflow.errors import FlowFileError
    from mflow.naming import parameter_key

    try:
        return load_flow(flow_file, before or after)
    except FlowFileError:
        if before or not after:
            raise
        loaded = load_flow(flow_file, None)
        if not any(parameter_key(p.name) == "flow" for _, p in loaded[1]._get_parameters()):
            raise
        return loaded


def load_flow(flow_file, flow_name):
    """(graph, flow class): the flow's static graph, checked, and its class, imported."""
    from mflow.graph import check_graph, load_graph
    from mflow.task.loader import load_flow_class

    graph = load_graph(flow_file, flow_name=flow_name)
    check_graph(graph)
    return graph, load_flow_class(flow_file, graph.name)


class ParameterOption(click.Option):
    is_flow_parameter = True


def parameter_options(flow_class):
    options = []
    for attribute, parameter in flow_class._get_parameters():
        help_text = parameter.help or ("flow parameter" if parameter.kind == "Parameter" else "IncludeFile: a path")
        if parameter.required and parameter.default is None:
            help_text += " (required)"
        shown = parameter.show_default and not parameter.is_deferred and parameter.default is not None
        # Defaults are applied later (option > MFLOW_PARAM_<NAME> > default), so click
        # only shows them.
        common = dict(
            help="%s [env %s]" % (help_text, parameter_env_name(parameter.name)),
            default=None,
            show_default=str(parameter.default) if shown else False,
        )
        if parameter.type is bool and parameter.kind == "Parameter":
            declaration = "--%s/--no-%s" % (parameter.name, parameter.name)
            option = ParameterOption([declaration, "param_" + attribute], **common)
        else:
            metavar = "PATH" if parameter.kind == "IncludeFile" else _type_metavar(parameter)
            option = ParameterOption(["--" + parameter.name, "param_" + attribute], metavar=metavar, **common)
        options.append(option)
    return options


def _type_metavar(parameter):
    from mflow.flow.parameters import _TYPE_NAMES

    return _TYPE_NAMES.get(parameter.type, "TEXT").upper()


def parameter_values(flow_class, given, environ, flow_dir=None):
    """The value of every parameter: the option, else MFLOW_PARAM_<NAME>, else the default.

    Every value is converted and checked here, so a bad one fails before any task runs.
    An IncludeFile's relative default path is looked for here, then beside the flow file."""
    from mflow.errors import ParameterError
    from mflow.flow.current import resolve_username
    from mflow.flow.parameters import ParameterContext

    values = {}
    for attribute, parameter in flow_class._get_parameters():
        raw = given.get("param_" + attribute)
        env = environ.get(parameter_env_name(parameter.name))
        if raw is not None:
            value = raw if isinstance(raw, bool) else parameter.convert(raw)
        elif env is not None:
            value = parameter.convert(env)
        else:
            if parameter.needs_value:
                raise ParameterError(
                    "parameter %r is required and has no value" % parameter.name,
                    "Give --%s VALUE or set %s" % (parameter.name, parameter_env_name(parameter.name)),
                )
            context = ParameterContext(flow_class.__name__, resolve_username(environ), parameter.name, None, "local")
            default = parameter.default
            if (
                parameter.kind == "IncludeFile"
                and flow_dir
                and isinstance(default, str)
                and not os.path.isabs(os.path.expanduser(default))
                and not os.path.exists(default)
            ):
                value = parameter.convert(os.path.join(flow_dir, default))
            else:
                value = parameter.resolve_default(context)
        values[attribute] = value
    return values


def run_options(func):
    """The options `run` and `resume` share."""
    for option in reversed(
        [
            flow_name_option,
            click.option(
                "--max-workers",
                type=click.IntRange(min=1),
                default=16,
                show_default=True,
                envvar="MFLOW_MAX_WORKERS",
                help="How many tasks run at once on this machine (also MFLOW_MAX_WORKERS).",
            ),
            click.option(
                "--max-jobs",
                type=click.IntRange(min=1),
                default=256,
                show_default=True,
                envvar="MFLOW_MAX_JOBS",
                help="How many tasks run at once as AWS Batch or Slurm jobs (also MFLOW_MAX_JOBS).",
            ),
            click.option(
                "--max-num-splits",
                type=click.IntRange(min=1),
                default=100,
                show_default=True,
                envvar="MFLOW_MAX_NUM_SPLITS",
                help="The most items a foreach may split into; more fails the run (also MFLOW_MAX_NUM_SPLITS).",
            ),
            click.option("--tag", "tags", multiple=True, metavar="TAG", help="Tag the run (repeatable)."),
            click.option(
                "--with",
                "with_specs",
                multiple=True,
                metavar="DECORATOR[:K=V,...]",
                help="Apply a step decorator to every step that lacks it, e.g. --with retry:times=2 (repeatable).",
            ),
            click.option(
                "--run-id-file",
                type=click.Path(dir_okay=False, writable=True),
                help="Write the run id to this file before the first task starts.",
            ),
            environment_option,
            click.option(
                "--log-format",
                type=click.Choice(["text", "json"]),
                default="text",
                show_default=True,
                help="Task output as prefixed text lines, or one JSON object per line, on stderr.",
            ),
            click.option(
                "--branch",
                metavar="NAME",
                help="A @project flow's branch: runs are test.NAME (default: user.<you>).",
            ),
            click.option(
                "--production",
                is_flag=True,
                help="A @project flow's production branch: prod (prod.NAME with --branch).",
            ),
            click.option(
                "--lock",
                type=click.Choice(["wait", "refuse"]),
                envvar="MFLOW_LOCK",
                help="One run at a time of the flow (on its @project branch): wait for a running one to end, "
                "or refuse to start (exit 7). For cron (also MFLOW_LOCK).",
            ),
            click.option(
                "--debug",
                is_flag=True,
                help="Show mflow's own frames too in the tracebacks of failed steps (also MFLOW_DEBUG=1).",
            ),
            store_option,
            common_options,
        ]
    ):
        func = option(func)
    return func


@click.command(cls=FlowCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False))
@run_options
@click.pass_context
def run(ctx, flow_file, flow_name, max_workers, max_jobs, max_num_splits, tags, with_specs, run_id_file, log_format,
        branch, production, lock, debug, store_url, environment, **params):
    """Run FLOW.py: check its graph, then run every task as its own process.

    Each Parameter of the flow is an option (`--NAME VALUE`, booleans as `--NAME/--no-NAME`),
    also settable as MFLOW_PARAM_<NAME>; `mflow run FLOW.py --help` lists them. Task output
    streams to stderr, each line prefixed [run/step/task]; on success the run's pathspec is
    printed on stdout.

    A parameter named like an option here (--verbose, --store, --flow...) takes that
    option after FLOW.py; the driver's option then goes before FLOW.py, or is
    --mflow-NAME anywhere (`mflow run --store s3://b/p flow.py --store ./data`).

    Examples:

      mflow run flow.py --alpha 0.5

      python flow.py run --tag nightly -q

      run=$(mflow run flow.py -q) && mflow logs "$run"
    """
    console = ctx.obj
    _debug_tasks(console, debug)
    graph, flow_class = ctx.meta.get("mflow.flow") or load_flow(flow_file, flow_name)
    values = parameter_values(flow_class, params, console.environ, os.path.dirname(os.path.abspath(flow_file)))
    return execute(console, graph, flow_class, flow_file, values, locals())


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False))
@click.argument("step", required=False)
@click.option(
    "--origin-run-id",
    metavar="RUN",
    help="The run to resume: its id, latest or latest_successful (default: your latest run of the flow).",
)
@click.option("--run-id", "new_run_id", metavar="RUN", help="The new run's id (refused if it exists; default: a new one).")
@click.option("--dry-run", is_flag=True, help="Print the plan (steps cloned, steps run again) as JSON and run nothing.")
@run_options
@click.pass_obj
def resume(console, flow_file, step, origin_run_id, new_run_id, dry_run, flow_name, max_workers, max_jobs, max_num_splits,
           tags,
           with_specs, run_id_file, log_format, branch, production, lock, debug, store_url, environment):
    """Resume a run: a new run that clones what the origin run finished and runs the rest.

    Successful tasks are cloned by reference (no data is copied): by default every task
    but those of the steps that failed or never ran and the steps after them; with STEP,
    every task before STEP. Parameters come from the origin run. The new run moves the
    flow's latest-run pointers. A flow file whose graph differs from the origin run's is
    refused.

    Examples:

      mflow resume flow.py

      mflow resume flow.py train --origin-run-id 1700000000000

      mflow resume flow.py end --origin-run-id latest_successful

      mflow resume flow.py --dry-run | jq .rerun_steps
    """
    import orjson

    from mflow.meta import MetaStore
    from mflow.runtime.resume import plan_resume

    _debug_tasks(console, debug)
    graph, flow_class = load_flow(flow_file, flow_name)
    store = open_store(console, store_url)
    if origin_run_id is not None:
        from .meta import pathspec_resolver

        origin_run_id = pathspec_resolver(console, store).run_id(graph.name, origin_run_id)
    plan = plan_resume(MetaStore(store), graph, origin_run_id, step)
    if dry_run:
        console.out(orjson.dumps(plan.to_json()).decode("utf-8"))
        return None
    console.info(plan.describe())
    return execute(console, graph, flow_class, flow_file, {}, locals(), store=store, plan=plan, run_id=new_run_id)


def _debug_tasks(console, debug):
    """--debug: the run's tasks (forked, spawned, remote) see MFLOW_DEBUG=1."""
    if debug:
        os.environ["MFLOW_DEBUG"] = "1"
        console.environ["MFLOW_DEBUG"] = "1"


def execute(console, graph, flow_class, flow_file, values, given, store=None, plan=None, run_id=None):
    """Run the driver with the options in `given` (a command's arguments); the exit code."""
    from mflow.errors import ExitCode
    from mflow.meta import MetaStore
    from mflow.runtime.driver import TIMEOUT_GRACE_SECONDS, RunDriver, RunOptions
    from mflow.deploy.project import project_info
    from mflow.task.decorators import parse_with

    from mflow.flow.current import resolve_username

    project = project_info(flow_class, given["branch"], given["production"], resolve_username(console.environ))
    lock_name = project.flow_name if project is not None else graph.name
    options = RunOptions(
        max_workers=given["max_workers"],
        max_jobs=given["max_jobs"],
        max_num_splits=given["max_num_splits"],
        user_tags=tuple(given["tags"]),
        run_id=run_id,
        run_id_file=given["run_id_file"],
        stream_logs=console.verbosity >= 0,
        with_decorators=parse_with(given["with_specs"]),
        timeout_grace=float(console.environ.get("MFLOW_TIMEOUT_GRACE") or TIMEOUT_GRACE_SECONDS),
        resume=plan,
        environment=given["environment"],
        system_tags=project.tags() if project is not None else (),
        lock=(lock_name, given["lock"]) if given["lock"] else None,
    )
    store = store or open_store(console, given["store_url"])
    events = ConsoleEvents(console, given["log_format"])
    driver = RunDriver(store, MetaStore(store), graph, flow_class, flow_file, values, options, events)
    try:
        summary = driver.run()
    finally:
        events.clear_progress()
    if summary.status == "successful":
        console.info("Run %s succeeded: %d tasks in %.1f s." % (summary.pathspec, summary.tasks_done, summary.seconds))
        console.out(summary.pathspec)
        return ExitCode.OK
    failure = summary.first_failure
    console.err(
        "Error: run %s failed: task %s (attempt %d) failed: %s."
        % (summary.pathspec, failure.pathspec, failure.attempt, failure.reason.rstrip("."))
    )
    console.err("See its output with: mflow logs %s" % failure.pathspec)
    console.err("Resume it with: mflow resume %s --origin-run-id %s" % (flow_file, summary.run_id))
    return ExitCode.FAILED


class ConsoleEvents:
    """Renders the driver's events on stderr: prefixed task output, a progress line on a TTY."""

    def __init__(self, console, log_format):
        from mflow.runtime.driver import RunEvents

        self.console = console
        self.log_format = log_format
        self.quiet = console.verbosity < 0
        self.show_progress = console.stderr_isatty and not self.quiet and log_format == "text"
        self._progress_shown = False
        self._last_progress = 0.0
        self._base = RunEvents()

    def __getattr__(self, name):
        return getattr(self._base, name)

    def run_started(self, flow, run_id):
        self.prefix_root = "%s/%s" % (flow, run_id)
        if not self.quiet:
            self.console.err("Run %s/%s started." % (flow, run_id))

    def log_line(self, pathspec, stream, line):
        if self.quiet:
            return
        self.clear_progress()
        text = line.decode("utf-8", "replace")
        _, run_id, step, task_id = pathspec.split("/")
        if self.log_format == "json":
            import orjson

            record = {"run": run_id, "step": step, "task": task_id, "stream": stream, "line": text, "time": time.time()}
            self.console.err(orjson.dumps(record).decode("utf-8"))
        else:
            self.console.err("[%s/%s/%s] %s" % (run_id, step, task_id, text))

    def warning(self, message):
        if not self.quiet:
            self.clear_progress()
            self.console.err(message)

    def progress(self, counts):
        if not self.show_progress:
            return
        now = time.monotonic()
        if now - self._last_progress < 0.1:
            return
        self._last_progress = now
        text = "%(done)d done, %(running)d running, %(queued)d queued, %(failed)d failed" % counts
        self.console.stderr.write("\r\x1b[2K" + text)
        self.console.stderr.flush()
        self._progress_shown = True

    def clear_progress(self):
        if self._progress_shown:
            self.console.stderr.write("\r\x1b[2K")
            self.console.stderr.flush()
            self._progress_shown = False


@click.command()
@click.argument("pathspecs", nargs=-1, required=True, metavar="PATHSPEC...")
@click.option("--stdout", "streams", flag_value="stdout", help="Only the standard output.")
@click.option("--stderr", "streams", flag_value="stderr", help="Only the standard error.")
@click.option("--attempt", type=click.IntRange(min=0), help="This attempt instead of the latest.")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing output as tasks (remote ones too) write it, until the run ends."
)
@store_option
@common_options
@click.pass_obj
def logs(console, pathspecs, streams, attempt, follow, store_url):
    """Print the output of tasks: of a task, every task of a step, or of a run.

    PATHSPEC is Flow/run, Flow/run/step or Flow/run/step/task; latest (or
    latest_successful) in place of run is your latest (successful) run; `-` reads pathspecs
    from stdin. Output is kept verbatim: indentation and blank lines as printed.

    Examples:

      mflow logs HelloFlow/1700000000000/hello/2

      mflow logs HelloFlow/latest/start

      mflow logs HelloFlow/1700000000000 --stderr

      mflow-meta tasks HelloFlow/1700000000000 --failed --json | jq -r .pathspec | mflow logs -
    """
    from mflow.store.pathspec import Pathspec

    from .meta import pathspec_resolver

    store = open_store(console, store_url)
    resolver = pathspec_resolver(console, store)
    meta = resolver.meta
    wanted = [streams] if streams else ["stdout", "stderr"]
    items = list(console.stdin_lines()) if list(pathspecs) == ["-"] else list(pathspecs)
    for text in items:
        pathspec = resolver.parse(text, 2, 4)
        if not follow:
            for task in _tasks_of(meta, pathspec):
                _print_task_logs(console, store, Pathspec.parse(task, 4, 4), wanted, attempt, multiple=pathspec.depth < 4)
            continue
        _follow(console, store, meta, pathspec, wanted, attempt)


def _follow(console, store, meta, pathspec, wanted, attempt):
    """Print the output of the pathspec's tasks as it reaches the store (remote tasks copy
    theirs while they run), each byte once, until the run ends and every task is printed."""
    from mflow.errors import NotFoundError
    from mflow.store.logs import unseen_output
    from mflow.store.pathspec import Pathspec

    printed = {}  # (task, attempt, stream) -> bytes printed
    finished = set()  # tasks whose chosen attempt ended and was printed to the end
    last_header = None
    while True:
        running = meta.run(pathspec.flow, pathspec.run_id).status == "running"
        for task in _tasks_of(meta, pathspec):
            if task in finished:
                continue
            spec = Pathspec.parse(task, 4, 4)
            attempts = store.attempts(spec)
            if not attempts and attempt is None:
                continue
            chosen = attempt if attempt is not None else attempts[-1]
            ended = meta.attempt_end(spec, chosen) is not None
            for stream in wanted:
                try:
                    data = store.load_log(spec, chosen, stream)
                except NotFoundError:
                    continue
                key = (task, chosen, stream)
                fresh = unseen_output(data, printed.get(key, 0), ended)
                if not fresh:
                    continue
                printed[key] = printed.get(key, 0) + len(fresh)
                if pathspec.depth < 4 and last_header != key:
                    console.err("--- %s (attempt %d) %s ---" % (task, chosen, stream))
                    last_header = key
                console.out_bytes(fresh if fresh.endswith(b"\n") or not ended else fresh + b"\n")
            if ended:
                finished.add(task)
        if not running:
            break
        time.sleep(0.5)


def _tasks_of(meta, pathspec):
    if pathspec.depth == 4:
        return [str(pathspec)]
    records = meta.tasks(pathspec.flow, pathspec.run_id, pathspec.step)
    return [record.pathspec for record in records if record.attempts]


def _print_task_logs(console, store, task, wanted, attempt, multiple):
    from mflow.errors import NotFoundError

    attempts = store.attempts(task)
    if attempt is not None:
        chosen = attempt
    elif attempts:
        chosen = attempts[-1]
    else:
        raise NotFoundError("task %s has no logs in store %s" % (task, store.url), "Check the pathspec")
    for stream in wanted:
        data = store.load_log(task, chosen, stream)
        if not data:
            continue
        if multiple:
            console.err("--- %s (attempt %d) %s ---" % (task, chosen, stream))
        console.out_bytes(data if data.endswith(b"\n") else data + b"\n")
