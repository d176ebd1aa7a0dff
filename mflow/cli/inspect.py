"""`mflow dump`, `mflow tag` and `mflow runs`: what runs produced, for people at a terminal.

Porcelain over the client API and the metadata; scripts use mflow-store and mflow-meta.
"""

import click

from .meta import change_run_tags, chosen_namespace, human_duration, meta_store, namespace_options, pathspec_resolver
from .options import common_options, json_option, store_option
from .output import arguments, emit_rows, open_store

#: On a terminal, values whose pickle is larger than this are not loaded unless named.
DISPLAY_LOAD_LIMIT = 16 << 20
MIN_VALUE_WIDTH = 20


def _local_time(iso):
    """An ISO time of the store as local time for people: 2026-11-22 15:43:58."""
    if not iso:
        return ""
    from datetime import datetime

    from mflow.meta.records import parse_time

    return datetime.fromtimestamp(parse_time(iso)).strftime("%Y-%m-%d %H:%M:%S")


def _terminal_width(console):
    import shutil

    columns = console.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else shutil.get_terminal_size((100, 24)).columns


# --- dump --------------------------------------------------------------------------------------------


@click.command()
@click.argument("pathspecs", metavar="PATHSPEC...|-", nargs=-1, required=True)
@click.option(
    "--include",
    metavar="NAMES",
    help="Only these artifacts, comma-separated; internal ones (_name) only when named here.",
)
@click.option(
    "--file",
    "file_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the values to FILE as one pickle, {task pathspec: {name: value}}, instead of printing them.",
)
@json_option
@store_option
@common_options
@click.pass_obj
def dump(console, pathspecs, include, file_path, as_json, store_url):
    """Print the artifacts of a task (Flow/run/step/task) or of every task of a step.

    Flow/run/step/NAME, where NAME is no task of the step, is artifact NAME of each task of
    the step (as Flow/run/step --include NAME). On a terminal each task is a header and
    one line per artifact: name, type and the value cut to the terminal's width (values
    over 16 MiB are not loaded unless named with --include). Piped, or with --json, each
    artifact is one JSON line with its whole value: schema, pathspec, attempt, name, type,
    size, sha, value, encoding ("json" when the value is plain data, else "repr" and value
    is its repr). `-` reads pathspecs from stdin. Internal artifacts (_name) are left out
    unless --include names them.

    Examples:

      mflow dump MovieStatsFlow/1700000000000/end/7

      mflow dump MovieStatsFlow/1700000000000/compute_statistics --include genre,stats

      mflow dump MovieStatsFlow/latest_successful/end/genre_stats

      mflow dump MovieStatsFlow/1700000000000/end/7 --json | jq -r 'select(.name == "genre_stats") | .value'

      mflow dump MovieStatsFlow/1700000000000/end/7 --file stats.pkl
    """
    from mflow.errors import NotFoundError

    store = open_store(console, store_url)
    resolver = pathspec_resolver(console, store)
    wanted = [name.strip() for name in include.split(",") if name.strip()] if include else None
    as_rows = as_json or not console.stdout_isatty
    found = set()
    pickled = {}
    with store:
        for text in arguments(console, pathspecs):
            spec = resolver.parse(text, 3, 4)
            name = resolver.step_artifact(spec)
            names = [name] if name else wanted
            here = set()
            for task in _tasks_of(store, spec.parent() if name else spec):
                artifacts = _chosen(task, names)
                here.update(a.id for a in artifacts)
                if file_path is not None:
                    pickled[task.pathspec] = {a.id: a.data for a in artifacts}
                elif as_rows:
                    _dump_rows(console, task, artifacts)
                else:
                    _dump_text(console, task, artifacts, names)
            found |= here
            if name and name not in here:
                raise NotFoundError(
                    "step %s has no task %s, and none of its tasks has an artifact %s" % (spec.parent(), name, name),
                    "`mflow dump %s` shows its tasks and their artifacts" % (spec.parent(),),
                )
        missing = [name for name in wanted or () if name not in found]
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise NotFoundError(
                "no task of %s has artifact%s %s" % (", ".join(pathspecs), plural, ", ".join(missing)),
                "Leave out --include to see the artifacts there are",
            )
        if file_path is not None:
            _write_pickle(file_path, pickled)
            count = sum(len(values) for values in pickled.values())
            console.info("Wrote %d artifact%s of %d task%s to %s." % (
                count, "" if count == 1 else "s", len(pickled), "" if len(pickled) == 1 else "s", file_path))


def _tasks_of(store, spec):
    """The tasks of a task or step pathspec, in task id order, their manifests read in batches."""
    from mflow.client import Step, Task

    if spec.depth == 4:
        return [Task(str(spec), store=store, namespace=None)]
    return Step(str(spec), store=store, namespace=None)._walk(by_id=True)


def _chosen(task, wanted):
    if wanted is None:
        return list(task)
    return [task[name] for name in wanted if name in task]


def _value_row(task, artifact):
    from mflow.store.artifacts import json_value

    value, encoding = json_value(artifact.data)
    return {
        "schema": 1,
        "pathspec": task.pathspec,
        "attempt": task.current_attempt,
        "name": artifact.id,
        "type": artifact.type,
        "size": artifact.size,
        "sha": artifact.sha,
        "value": value,
        "encoding": encoding,
    }


def _dump_rows(console, task, artifacts):
    import orjson

    for artifact in artifacts:
        console.out(orjson.dumps(_value_row(task, artifact)).decode("utf-8"))


def _dump_text(console, task, artifacts, wanted):
    from .output import human_size

    console.out("%s (attempt %d, %s)" % (task.pathspec, task.current_attempt, task.status))
    if not artifacts:
        why = ": the attempt failed before saving any" if task.status == "failed" else ""
        console.out("  (no artifacts%s)" % why)
        console.out()
        return
    name_width = max(len(a.id) for a in artifacts)
    type_width = max(len(a.type) for a in artifacts)
    value_width = max(MIN_VALUE_WIDTH, _terminal_width(console) - name_width - type_width - 6)
    for artifact in artifacts:
        if artifact.size > DISPLAY_LOAD_LIMIT and not (wanted and artifact.id in wanted):
            text = "(%s, not loaded: name it with --include to see it)" % human_size(artifact.size)
        else:
            text = _short_repr(artifact.data, value_width)
        console.out("  %-*s  %-*s  %s" % (name_width, artifact.id, type_width, artifact.type, text))
    console.out()


def _short_repr(value, width):
    """The value's repr on one line, at most `width` characters."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = max(width, 10)
    shortener.maxlist = shortener.maxtuple = shortener.maxset = shortener.maxdict = 20
    shortener.maxlevel = 4
    text = " ".join(shortener.repr(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_pickle(path, values):
    """Pickle `values` into `path` atomically: a reader never sees half a file."""
    import os
    import pickle
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".mflow-dump-")
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(values, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


# --- tag ----------------------------------------------------------------------------------------------


@click.group(name="tag")
@common_options
def tag():
    """Add, remove, replace or list the user tags of runs.

    A tag is any text of 1 to 500 characters. System tags (user:, runtime:,
    python_version:, mflow_version:, date:) are given when a run starts and cannot be
    added or removed (exit 2, nothing changed). Changes show at once in the client API
    (Run.tags) and in mflow-meta.

    Examples:

      mflow tag add TrainFlow/1700000000000 shipped

      mflow tag list TrainFlow
    """


def _say_tags(console, spec, tags):
    console.info("%s: user tags %s" % (spec, ", ".join(tags.user) if tags.user else "(none)"))


@tag.command(name="add")
@click.argument("run", metavar="RUN|-")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@store_option
@common_options
@click.pass_obj
def tag_add(console, run, tags, store_url):
    """Add user tags to a run (Flow/run_id); `-` tags every run read from stdin.

    The run's user tags afterwards are shown on stderr.

    Examples:

      mflow tag add TrainFlow/1700000000000 shipped v1.2

      mflow runs TrainFlow --status failed --json | jq -r .pathspec | mflow tag add - needs-look
    """
    from mflow.meta.tags import validate_tags

    validate_tags(tags, "add")
    change_run_tags(
        console, store_url, run, lambda meta, spec: meta.add_tags(spec.flow, spec.run_id, tags), _say_tags
    )


@tag.command(name="remove")
@click.argument("run", metavar="RUN|-")
@click.argument("tags", metavar="TAG...", nargs=-1, required=True)
@store_option
@common_options
@click.pass_obj
def tag_remove(console, run, tags, store_url):
    """Remove user tags from a run (Flow/run_id); `-` reads runs from stdin.

    Removing a tag the run lacks is not an error; removing a system tag is (exit 2).

    Examples:

      mflow tag remove TrainFlow/1700000000000 candidate
    """
    from mflow.meta.tags import validate_tags

    validate_tags(tags, "remove")
    change_run_tags(
        console, store_url, run, lambda meta, spec: meta.remove_tags(spec.flow, spec.run_id, tags), _say_tags
    )


@tag.command(name="replace")
@click.argument("run", metavar="RUN|-")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@store_option
@common_options
@click.pass_obj
def tag_replace(console, run, old, new, store_url):
    """Replace user tag OLD of a run (Flow/run_id) by NEW, in one change.

    Examples:

      mflow tag replace TrainFlow/1700000000000 candidate shipped
    """
    from mflow.meta.tags import validate_tags

    validate_tags([old], "remove")
    validate_tags([new], "add")
    change_run_tags(
        console, store_url, run, lambda meta, spec: meta.replace_tags(spec.flow, spec.run_id, [old], [new]), _say_tags
    )


@tag.command(name="list")
@click.argument("pathspecs", metavar="FLOW|RUN...|-", nargs=-1, required=True)
@namespace_options
@json_option
@store_option
@common_options
@click.pass_obj
def tag_list(console, pathspecs, namespace, all_namespaces, as_json, store_url):
    """List the tags of runs: of a run (Flow/run_id), or of every run of a flow in the
    namespace, newest first. JSON fields: schema, pathspec, user_tags, system_tags.

    Examples:

      mflow tag list TrainFlow/1700000000000

      mflow tag list TrainFlow --all-namespaces --json | jq -r 'select(.user_tags | index("shipped")) | .pathspec'
    """
    from mflow.meta.metastore import paused_gc

    meta = meta_store(console, store_url)
    resolver = pathspec_resolver(console, meta, namespace, all_namespaces)
    ns = resolver.namespace

    def rows():
        for text in arguments(console, pathspecs):
            spec = resolver.parse(text, 1, 2)
            infos = [meta.run(spec.flow, spec.run_id)] if spec.depth == 2 else meta.runs(spec.flow, namespace=ns)
            for info in infos:
                yield {
                    "schema": 1,
                    "pathspec": info.pathspec,
                    "user_tags": sorted(info.user_tags),
                    "system_tags": sorted(info.system_tags),
                }

    joined = {"user_tags": ", ".join, "system_tags": ", ".join}
    with meta.store, paused_gc():
        emit_rows(console, rows(), ["pathspec", "user_tags", "system_tags"], as_json, joined)


# --- runs ---------------------------------------------------------------------------------------------


RUN_STATUSES = ["running", "successful", "failed", "interrupted", "stale"]


@click.command()
@click.argument("flows", metavar="FLOW...|-", nargs=-1, required=True)
@click.option(
    "--tag", "tags", metavar="TAG", multiple=True, help="Only runs carrying this tag (repeatable: all of them)."
)
@click.option("--status", type=click.Choice(RUN_STATUSES), help="Only runs in this state.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N runs (the newest) per flow.")
@namespace_options
@json_option
@store_option
@common_options
@click.pass_obj
def runs(console, flows, tags, status, limit, namespace, all_namespaces, as_json, store_url):
    """List the runs of FLOW in your namespace, newest first: id, status, start, duration, tags.

    Start times are local; a running run's duration is the time so far. Piped, or with
    --json, one JSON line per run: schema, pathspec, flow, run_id, status, user,
    started_at, ended_at (UTC), duration_s, user_tags, system_tags. `-` reads flow names
    from stdin. mflow-meta runs is the stable form for scripts.

    Examples:

      mflow runs MovieStatsFlow

      mflow runs TrainFlow --tag shipped --all-namespaces --limit 5
    """
    import time

    from mflow.meta.metastore import paused_gc
    from mflow.meta.records import parse_time
    from mflow.meta.tags import validate_tag
    from mflow.store.pathspec import Pathspec

    tags = [validate_tag(t) for t in tags]
    ns = chosen_namespace(console, namespace, all_namespaces)
    meta = meta_store(console, store_url)
    as_rows = as_json or not console.stdout_isatty
    one_flow = len(flows) == 1 and flows[0] != "-"
    now = time.time()

    def rows():
        for text in arguments(console, flows):
            flow = Pathspec.parse(text, 1, 1).flow
            found = meta.runs(flow, tags=tags, status=status, limit=limit, namespace=ns)
            if not found:
                console.info("No runs of %s%s%s." % (
                    flow, " in namespace %s" % ns if ns else "", " match" if tags or status else ""))
            for info in found:
                row = info.to_row()
                if row["duration_s"] is None and info.status == "running":
                    row["duration_s"] = round(now - parse_time(info.started_at), 3)
                if as_rows:
                    yield {k: row[k] for k in (
                        "schema", "pathspec", "flow", "run_id", "status", "user", "started_at", "ended_at",
                        "duration_s", "user_tags", "system_tags")}
                else:
                    yield {
                        "id": row["run_id"] if one_flow else row["pathspec"],
                        "status": row["status"],
                        "started": _local_time(row["started_at"]),
                        "duration": human_duration(row["duration_s"]),
                        "tags": ", ".join(row["user_tags"]),
                    }

    with meta.store, paused_gc():
        emit_rows(console, rows(), ["id", "status", "started", "duration", "tags"], as_json)
