"""`mflow-meta`: runs, steps, tasks, attempts, tags and latest pointers of an mflow store.

Plumbing: the JSON Lines rows are a contract (schema 1, fields in man/mflow-meta.1).
"""

import click

from .boundary import entry_point
from .options import common_options, json_option, store_option
from .output import arguments, emit_rows, open_store

RUN_STATUSES = ["running", "successful", "failed", "interrupted", "stale"]


def stale_after_option(func):
    return click.option(
        "--stale-after",
        metavar="DURATION",
        help="Call a run or attempt stale after this long without a heartbeat, e.g. 90s or 5m "
        "(default: MFLOW_STALE_AFTER, else 60s).",
    )(func)


def namespace_options(func):
    func = click.option(
        "--all-namespaces",
        "-A",
        "all_namespaces",
        is_flag=True,
        help="Look at every user's runs: lift the namespace filter.",
    )(func)
    return click.option(
        "--namespace",
        "namespace",
        metavar="TAG",
        help="Look only at runs carrying this tag (default: user:<you>, from MFLOW_USER, USER...).",
    )(func)


def meta_store(console, store_url, stale_after=None):
    from mflow.meta import MetaStore

    return MetaStore(open_store(console, store_url), stale_after=stale_after)


def chosen_namespace(console, namespace, all_namespaces):
    from mflow.errors import ParameterError
    from mflow.meta import user_namespace
    from mflow.meta.tags import validate_tag

    if namespace is not None and all_namespaces:
        raise ParameterError("--namespace and --all-namespaces exclude each other", "Give one of them")
    if all_namespaces:
        return None
    if namespace is not None:
        return validate_tag(namespace)
    return user_namespace(console.environ)


def pathspec_resolver(console, source, namespace=None, all_namespaces=False):
    """The one PathspecResolver of a command, over `source` (a Store or a MetaStore):
    `latest` and `latest_successful` resolve in the namespace --namespace/--all-namespaces
    choose where a command has them, else in user:<you>; once per flow per command."""
    from mflow.meta import MetaStore
    from mflow.meta.resolver import PathspecResolver

    meta = source if isinstance(source, MetaStore) else MetaStore(source)
    return PathspecResolver(meta, chosen_namespace(console, namespace, all_namespaces))


def parse(text, min_depth, max_depth):
    from mflow.store.pathspec import Pathspec

    return Pathspec.parse(text, min_depth, max_depth)


# --- human formats -------------------------------------------------------------------------------


def human_time(value):
    """An ISO time without its milliseconds: 2026-11-22T14:43:58Z."""
    if not value:
        return ""
    return value[:19] + "Z" if len(value) >= 19 else value


def human_duration(value):
    if value is None:
        return ""
    seconds = float(value)
    if seconds < 60:
        return "%.1fs" % seconds
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return "%dm %02ds" % (minutes, seconds)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return "%dh %02dm" % (hours, minutes)
    days, hours = divmod(hours, 24)
    return "%dd %02dh" % (days, hours)


def joined(value):
    return ", ".join(value) if value else ""


def exit_text(row):
    if row.get("signal") is not None:
        text = "signal %s" % row["signal"]
    elif row.get("exit_code") is not None:
        text = "exit %s" % row["exit_code"]
    else:
        text = ""
    if row.get("reason"):
        text = "%s: %s" % (text, row["reason"]) if text else row["reason"]
    return text


TIME_FORMATS = {"started_at": human_time, "ended_at": human_time, "duration": human_duration}


def for_table(console, as_json, rows, extra=None):
    """Rows with the table-only columns added (duration, exit) when a table is printed."""
    if as_json or not console.stdout_isatty:
        yield from rows
        return
    for row in rows:
        row = dict(row, duration=row.get("duration_s"))
        if extra is not None:
            row.update(extra(row))
        yield row


# --- the command -----------------------------------------------------------------------------------


@click.group(name="mflow-meta", context_settings={"help_option_names": ["-h", "--help"]})
@common_options
def cli():
    """Runs, steps, tasks, attempts, tags and latest pointers in an mflow store.

    The metadata lives in the store itself (a folder or s3://bucket/prefix: --store URL,
    else MFLOW_STORE, else the nearest .mflow folder), so a shared store is a shared
    history with no server to run. Listings print a table on a terminal and JSON Lines
    (schema 1) when piped or with --json. Runs are looked at in a namespace, by default
    user:<you>; --all-namespaces lifts it. In a pathspec, latest and latest_successful stand
    for the run id of your latest (successful) run. Pathspecs may come on stdin, one a line,
    with `-`.

    Examples:

      mflow-meta runs TrainFlow --status failed --since 7d

      mflow-meta tasks TrainFlow/latest --failed

      mflow-meta tasks TrainFlow/1700000000000 --failed --json | jq -r .pathspec | mflow-store ls -

      mflow-meta tag add TrainFlow/1700000000000 shipped
    """


@cli.command(name="flows")
@json_option
@store_option
@common_options
@click.pass_obj
def flows_command(console, as_json, store_url):
    """List the flows with runs in the store, with their latest and latest successful runs.

    The latest columns are the flows' pointers, whoever started the runs. JSON fields:
    schema, flow, latest_run, latest_successful_run.

    Examples:

      mflow-meta flows

      mflow-meta flows --json | jq -r .flow
    """
    from mflow.errors import NotFoundError

    meta = meta_store(console, store_url)

    def latest(flow, successful):
        try:
            return meta.latest(flow, successful=successful, namespace=None).run_id
        except NotFoundError:
            return None

    def rows():
        for flow in meta.flows():
            yield {
                "schema": 1,
                "flow": flow,
                "latest_run": latest(flow, False),
                "latest_successful_run": latest(flow, True),
            }

    with meta.store:
        emit_rows(console, rows(), ["flow", "latest_run", "latest_successful_run"], as_json)


RUN_COLUMNS = ["run_id", "status", "user", "started_at", "duration", "user_tags"]
RUN_FORMATS = dict(TIME_FORMATS, user_tags=joined)


@cli.command(name="runs")
@click.argument("flows", metavar="FLOW...|-", nargs=-1, required=True)
@click.option("--tag", "tags", metavar="TAG", multiple=True, help="Only runs carrying this tag (repeatable: all of them).")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs in this state.")
@click.option(
    "--since",
    metavar="DATE",
    help="Only runs started at or after DATE: 2026-11-20, 2026-11-20T09:00Z (UTC unless an offset "
    "is given), or a duration back from now such as 12h or 7d.",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N runs (the newest) per flow.")
@namespace_options
@stale_after_option
@json_option
@store_option
@common_options
@click.pass_obj
def runs_command(console, flows, tags, status, since, limit, namespace, all_namespaces, stale_after, as_json, store_url):
    """List the runs of FLOW, newest first: id, status, user, start, duration, user tags.

    Status is running, successful, failed, interrupted, or stale: a run whose driver
    stopped sending heartbeats without ending it (killed, power lost). `-` reads flow
    names from stdin. JSON fields: schema, pathspec, flow, run_id, status, user, host,
    started_at, ended_at, duration_s, heartbeat_at, tags, user_tags, system_tags, params,
    code_key, origin_run_id.

    Examples:

      mflow-meta runs TrainFlow --status failed --since 7d

      mflow-meta runs TrainFlow --tag shipped --all-namespaces --limit 1 --json | jq -r .run_id
    """
    from mflow.meta import parse_since
    from mflow.meta.tags import validate_tag

    tags = [validate_tag(tag) for tag in tags]
    since_at = parse_since(since)
    ns = chosen_namespace(console, namespace, all_namespaces)
    meta = meta_store(console, store_url, stale_after)

    def rows():
        for text in arguments(console, flows):
            flow = parse(text, 1, 1).flow
            for info in meta.runs(flow, tags=tags, status=status, since=since_at, limit=limit, namespace=ns):
                yield info.to_row()

    from mflow.meta.metastore import paused_gc

    with meta.store, paused_gc():
        emit_rows(console, for_table(console, as_json, rows()), RUN_COLUMNS, as_json, RUN_FORMATS)


STEP_COLUMNS = ["step", "status", "tasks", "started_at", "duration"]


@cli.command(name="steps")
@click.argument("runs", metavar="RUN...|-", nargs=-1, required=True)
@stale_after_option
@json_option
@store_option
@common_options
@click.pass_obj
def steps_command(console, runs, stale_after, as_json, store_url):
    """List the steps of a run (Flow/run_id) that have tasks, in the order they started.

    A step's status is failed if any task failed, else running, stale or pending if any
    task is, else successful. `-` reads runs from stdin. JSON fields: schema, pathspec,
    flow, run_id, step, status, tasks, task_statuses, started_at, ended_at, duration_s.

    Examples:

      mflow-meta steps TrainFlow/1700000000000

      mflow-meta runs TrainFlow --limit 1 --json | jq -r .pathspec | mflow-meta steps -
    """
    meta = meta_store(console, store_url, stale_after)
    resolver = pathspec_resolver(console, meta)

    def rows():
        for text in arguments(console, runs):
            spec = resolver.parse(text, 2, 2)
            for step in meta.steps(spec.flow, spec.run_id):
                yield step.to_row()

    with meta.store:
        emit_rows(console, for_table(console, as_json, rows()), STEP_COLUMNS, as_json, TIME_FORMATS)


TASK_COLUMNS = ["pathspec", "status", "attempts", "foreach_index", "started_at", "duration", "exit"]


@cli.command(name="tasks")
@click.argument("runs", metavar="RUN[/STEP]...|-", nargs=-1, required=True)
@click.option("--failed", is_flag=True, help="Only tasks whose latest attempt failed.")
@stale_after_option
@json_option
@store_option
@common_options
@click.pass_obj
def tasks_command(console, runs, failed, stale_after, as_json, store_url):
    """List the tasks of a run (Flow/run_id) or of one step (Flow/run_id/step).

    A task's status is its latest attempt's: running, successful, failed, or stale (no
    heartbeat for too long, or the run ended without it); pending when it has no attempt
    yet; a task cloned by resume is successful. `-` reads pathspecs from stdin. JSON
    fields: schema, pathspec, flow, run_id, step, task_id, status, attempts, attempt,
    started_at, ended_at, duration_s, exit_code, signal, reason, pid, host, foreach_index,
    foreach_stack, parent_tasks, origin_pathspec.

    Examples:

      mflow-meta tasks TrainFlow/1700000000000/train

      mflow-meta tasks TrainFlow/1700000000000 --failed --json | jq -r .pathspec | mflow-store ls -
    """
    meta = meta_store(console, store_url, stale_after)
    resolver = pathspec_resolver(console, meta)

    def rows():
        for text in arguments(console, runs):
            spec = resolver.parse(text, 2, 3)
            for task in meta.tasks(spec.flow, spec.run_id, spec.step):
                if not failed or task.status == "failed":
                    yield task.to_row()

    with meta.store:
        table_rows = for_table(console, as_json, rows(), lambda row: {"exit": exit_text(row)})
        from mflow.meta.metastore import paused_gc

        with paused_gc():
            emit_rows(console, table_rows, TASK_COLUMNS, as_json, TIME_FORMATS)


@cli.command(name="show")
@click.argument("pathspecs", metavar="PATHSPEC...|-", nargs=-1, required=True)
@json_option
@store_option
@common_options
@click.pass_obj
def show_command(console, pathspecs, as_json, store_url):
    """Print every record of a flow, run, step or task, as stored.

    A flow: its record and its latest pointers. A run: its claim, run record, tag changes,
    end record and heartbeat. A step: the records of each of its tasks. A task: its task
    record and each attempt's start and end records and heartbeat. On a terminal each
    record is a table of its fields; JSON Lines are the records themselves plus `path`,
    where the record lives in the store. `-` reads pathspecs from stdin.

    Examples:

      mflow-meta show TrainFlow/1700000000000

      mflow-meta show TrainFlow/1700000000000/train/3 --json | jq 'select(.type == "attempt-end")'
    """
    meta = meta_store(console, store_url)
    resolver = pathspec_resolver(console, meta)
    with meta.store:
        for text in arguments(console, pathspecs):
            for path, record in meta.records(resolver.parse(text, 1, 4)):
                row = dict(record, path=path)
                if as_json or not console.stdout_isatty:
                    import orjson

                    console.out(orjson.dumps(row).decode("utf-8"))
                else:
                    show_table(console, path, record)


@cli.command(name="run-end")
@click.argument("run", metavar="FLOW/RUN")
@click.option(
    "--status",
    type=click.Choice(["failed", "interrupted", "successful"]),
    default="failed",
    show_default=True,
    help="How the run ended.",
)
@click.option("--reason", metavar="TEXT", help="Why, kept in the end record as its first failure.")
@json_option
@store_option
@common_options
@click.pass_obj
def run_end_command(console, run, status, reason, as_json, store_url):
    """Record how a run ended, for a production scheduler's failure path.

    The first end written wins: a run that has ended already is left as it is (and its end
    is printed), so a scheduler may call this on every failure. Prints the end record in
    the store (schema 1 JSON when piped or with --json).

    Examples:

      mflow-meta run-end TrainFlow/sfn-2f0c --status failed --reason "step train failed"

      mflow-meta run-end TrainFlow/argo-train-x7k2 --json | jq -r .status
    """
    from mflow.deploy.runs import end_run

    meta = meta_store(console, store_url)
    with meta.store:
        spec = parse(run, 2, 2)
        meta.run_record(spec.flow, spec.run_id)  # NotFoundError: no such run
        end = end_run(meta, spec.flow, spec.run_id, status, reason)
        row = end.to_json()
        if as_json or not console.stdout_isatty:
            import orjson

            console.out(orjson.dumps(row).decode("utf-8"))
        else:
            console.out("%s/%s %s at %s" % (spec.flow, spec.run_id, row.get("status"), row.get("ended_at")))


def show_table(console, path, record):
    import orjson
    from tabulate import tabulate

    table = []
    for name, value in record.items():
        if name in ("schema", "type"):
            continue
        table.append([name, value if isinstance(value, str) else orjson.dumps(value).decode("utf-8")])
    console.out("%s  (%s, schema %s)" % (path, record.get("type"), record.get("schema")))
    console.out(tabulate(table, tablefmt="plain", disable_numparse=True))
    console.out()


# --- tags ---------------------------------------------------------------------------------------------


@cli.group(name="tag")
@common_options
def tag_group():
    """Add, remove, replace or list the user tags of runs.

    Tags are any text of 1 to 500 characters. System tags (user:, runtime:,
    python_version:, mflow_version:, date:) are given at start and cannot be added or
    removed: trying is an error (exit 2) and changes nothing. Each change is kept as a
    record of its own, so concurrent changes from several machines are all kept.

    Examples:

      mflow-meta tag add TrainFlow/1700000000000 shipped

      mflow-meta tag list TrainFlow/1700000000000
    """


def change_run_tags(console, store_url, run, change, report):
    """Apply `change(meta, spec)` (a MetaStore tag change; its RunTags) to each run RUN names
    (stdin for `-`), and `report(console, spec, tags)` each result."""
    meta = meta_store(console, store_url)
    resolver = pathspec_resolver(console, meta)
    with meta.store:
        for text in arguments(console, [run]):
            spec = resolver.parse(text, 2, 2)
            report(console, spec, change(meta, spec))


def _report_tags(console, spec, tags):
    console.info("%s: user tags now %s" % (spec, ", ".join(tags.user) if tags.user else "(none)"))


@tag_group.command(name="add")
@click.argument("run", metavar="RUN|-")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@store_option
@common_options
@click.pass_obj
def tag_add_command(console, run, tags, store_url):
    """Add user tags to a run (Flow/run_id); `-` tags each run read from stdin.

    Prints the run's user tags afterwards on stderr.

    Examples:

      mflow-meta tag add TrainFlow/1700000000000 shipped v1.2

      mflow-meta runs TrainFlow --status failed --json | jq -r .pathspec | mflow-meta tag add - needs-look
    """
    from mflow.meta.tags import validate_tags

    validate_tags(tags, "add")
    change_run_tags(
        console, store_url, run, lambda meta, spec: meta.add_tags(spec.flow, spec.run_id, tags), _report_tags
    )


@tag_group.command(name="remove")
@click.argument("run", metavar="RUN|-")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@store_option
@common_options
@click.pass_obj
def tag_remove_command(console, run, tags, store_url):
    """Remove user tags from a run (Flow/run_id); `-` reads runs from stdin.

    Removing a tag the run lacks is not an error; removing a system tag is (exit 2) and
    changes nothing.

    Examples:

      mflow-meta tag remove TrainFlow/1700000000000 candidate
    """
    from mflow.meta.tags import validate_tags

    validate_tags(tags, "remove")
    change_run_tags(
        console, store_url, run, lambda meta, spec: meta.remove_tags(spec.flow, spec.run_id, tags), _report_tags
    )


@tag_group.command(name="replace")
@click.argument("run", metavar="RUN|-")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@store_option
@common_options
@click.pass_obj
def tag_replace_command(console, run, old, new, store_url):
    """Replace user tag OLD of a run by NEW, in one change (as Metaflow's `tag replace`).

    Examples:

      mflow-meta tag replace TrainFlow/1700000000000 candidate shipped
    """
    from mflow.meta.tags import validate_tags

    validate_tags([old], "remove")
    validate_tags([new], "add")
    change_run_tags(
        console, store_url, run, lambda meta, spec: meta.replace_tags(spec.flow, spec.run_id, [old], [new]),
        _report_tags,
    )


@tag_group.command(name="list")
@click.argument("runs", metavar="RUN...|-", nargs=-1, required=True)
@json_option
@store_option
@common_options
@click.pass_obj
def tag_list_command(console, runs, as_json, store_url):
    """List the tags of runs (Flow/run_id), user tags first. JSON fields: schema, pathspec,
    tag, kind (user or system). `-` reads runs from stdin.

    Examples:

      mflow-meta tag list TrainFlow/1700000000000

      mflow-meta tag list TrainFlow/1700000000000 --json | jq -r 'select(.kind == "user") | .tag'
    """
    meta = meta_store(console, store_url)
    resolver = pathspec_resolver(console, meta)

    def rows():
        for text in arguments(console, runs):
            spec = resolver.parse(text, 2, 2)
            tags = meta.tags(spec.flow, spec.run_id)
            for kind, values in (("user", tags.user), ("system", tags.system)):
                for tag in values:
                    yield {"schema": 1, "pathspec": str(spec), "tag": tag, "kind": kind}

    with meta.store:
        emit_rows(console, rows(), ["pathspec", "tag", "kind"], as_json)


# --- latest ---------------------------------------------------------------------------------------------


@cli.command(name="latest")
@click.argument("flows", metavar="FLOW...|-", nargs=-1, required=True)
@click.option("--successful", is_flag=True, help="The latest run that succeeded.")
@namespace_options
@stale_after_option
@json_option
@store_option
@common_options
@click.pass_obj
def latest_command(console, flows, successful, namespace, all_namespaces, stale_after, as_json, store_url):
    """Show the latest run (or latest successful run) of FLOW in the namespace.

    Latest means last started. Every run and every resume moves the flow's pointers
    forward, never back to an older run, even when runs end out of order. Exit 4 when
    there is none. The row is the one `runs` prints.

    Examples:

      mflow-meta latest TrainFlow --successful

      mflow-meta latest TrainFlow --json | jq -r .pathspec | mflow-meta tasks - --failed
    """
    ns = chosen_namespace(console, namespace, all_namespaces)
    meta = meta_store(console, store_url, stale_after)

    def rows():
        for text in arguments(console, flows):
            yield meta.latest(parse(text, 1, 1).flow, successful=successful, namespace=ns).to_row()

    with meta.store:
        emit_rows(console, for_table(console, as_json, rows()), ["flow"] + RUN_COLUMNS, as_json, RUN_FORMATS)


main = entry_point(cli)
