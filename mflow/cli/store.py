"""`mflow-store`: content-addressed blobs and task artifacts in an mflow store.

Plumbing: the JSON Lines of ls, du and gc are a contract (schema 1, fields in man/mflow-store.1).
"""

import click

from .boundary import entry_point
from .meta import pathspec_resolver
from .options import common_options, json_option, store_option
from .output import arguments, binary_stdin, emit_rows, human_size, open_store

CHUNK = 4 << 20


def attempt_option(func):
    return click.option(
        "--attempt",
        type=click.IntRange(min=0),
        metavar="N",
        help="Read this attempt of the task (default: the latest attempt that has artifacts).",
    )(func)


def every_task_option(func):
    return click.option(
        "--all",
        "every_task",
        is_flag=True,
        help="Flow/run/step/NAME is the artifact of every task of the step, not only of its one task "
        "(cat: each value one JSON line).",
    )(func)


def resolved_scope(console, store, text, max_depth=4):
    """The scope pathspec of du or cp (None for none), `latest` resolved in `store`."""
    from mflow.store.maintenance import parse_scope

    spec = parse_scope(text, max_depth)
    return pathspec_resolver(console, store).resolve(spec) if spec is not None else None


@click.group(name="mflow-store", context_settings={"help_option_names": ["-h", "--help"]})
@common_options
def cli():
    """Content-addressed blobs and task artifacts in an mflow store.

    A store is a local folder or s3://bucket/prefix: --store URL, else MFLOW_STORE, else the
    nearest .mflow folder in this directory or its parents, else a new ./.mflow. Blobs are
    keyed by the SHA-256 of their content and stored once per store; each task attempt has
    a manifest naming its artifacts' blobs. Listings (ls, du, gc) print a table on a
    terminal and JSON Lines (schema 1) when piped or with --json. In a pathspec, latest
    and latest_successful stand for the run id of your latest (successful) run.

    Examples:

      key=$(mflow-store put data.csv) && mflow-store get "$key" > copy.csv

      mflow-store ls MyFlow/1700000000/start/1

      mflow-store cat MyFlow/1700000000/end/3/accuracy

      mflow-store cat MyFlow/latest_successful/end/accuracy > accuracy.txt

      mflow-store cp .mflow s3://bucket/mflow MyFlow/1700000000
    """


@cli.command(name="put")
@click.argument("files", metavar="FILE|-", nargs=-1, required=True)
@store_option
@common_options
@click.pass_obj
def put_command(console, files, store_url):
    """Store files (or stdin, `-`) as blobs and print each one's key.

    The key is the SHA-256 of the bytes, as `sha256sum` prints it; storing the same bytes
    again stores nothing new. Input is streamed, so any size works in constant memory.

    Examples:

      mflow-store put data.csv

      curl -s http://127.0.0.1:8000/x | mflow-store put -
    """
    from mflow.errors import FlowFileError

    store = open_store(console, store_url)
    with store:
        for name in files:
            if name == "-":
                info = store.blobs.put_stream(binary_stdin(console))
            else:
                try:
                    stream = open(name, "rb")
                except OSError as exc:
                    raise FlowFileError("cannot read %s: %s" % (name, exc.strerror), "Check the path") from exc
                with stream:
                    info = store.blobs.put_stream(stream)
            console.out(info.key)
            console.debug("%s: %d bytes, %d stored" % (name, info.size, info.stored_size))


@cli.command(name="get")
@click.argument("key", metavar="KEY")
@store_option
@common_options
@click.pass_obj
def get_command(console, key, store_url):
    """Write a blob's bytes to stdout, verified against its key first.

    A corrupt blob is an error (exit 5) and nothing is written. `-` reads the key from stdin.

    Examples:

      mflow-store get 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 > out.bin

      mflow-store ls MyFlow/1/start/1 --json | jq -r .key | head -1 | mflow-store get - | wc -c
    """
    from mflow.store.blobs import check_key

    if key == "-":
        key = next(console.stdin_lines(), "")
    check_key(key)
    store = open_store(console, store_url)
    with store, store.blobs.open(key) as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            console.out_bytes(chunk)


@cli.command(name="has")
@click.argument("keys", metavar="KEY...|-", nargs=-1, required=True)
@store_option
@common_options
@click.pass_obj
def has_command(console, keys, store_url):
    """Exit 0 if the store holds every KEY, 1 if it lacks any; print nothing.

    With -v, each missing key is named on stderr. `-` reads keys from stdin, one a line.

    Examples:

      mflow-store has "$key" || mflow-store put data.csv
    """
    from mflow.errors import ExitCode
    from mflow.store.blobs import check_key

    store = open_store(console, store_url)
    missing = 0
    with store:
        for key in arguments(console, keys):
            if not store.blobs.has(check_key(key)):
                missing += 1
                console.debug("missing: %s" % key)
    return ExitCode.FAILED if missing else ExitCode.OK


LS_COLUMNS = ["name", "key", "size", "stored_size", "type"]


@cli.command(name="ls")
@click.argument("pathspecs", metavar="PATHSPEC...|-", nargs=-1, required=True)
@attempt_option
@every_task_option
@json_option
@store_option
@common_options
@click.pass_obj
def ls_command(console, pathspecs, attempt, every_task, as_json, store_url):
    """List the artifacts of tasks: name, key, size, stored size, type.

    PATHSPEC is Flow/run_id/step/task_id, .../artifact for one artifact, or
    Flow/run_id/step/artifact for one artifact of the step's only task (of every task
    with --all); `-` reads pathspecs from stdin. JSON fields: schema, pathspec, attempt,
    name, key, size, stored_size, type, serializer, inline (true when the value lives in
    the manifest).

    Examples:

      mflow-store ls MyFlow/1700000000/start/1

      mflow-store ls MyFlow/1700000000/start/1 --json | jq -r 'select(.size > 1e6) | .name'

      mflow-store ls MyFlow/latest/train/model --all
    """
    store = open_store(console, store_url)
    resolver = pathspec_resolver(console, store)
    with store:
        rows = []
        for text in arguments(console, pathspecs):
            for spec in resolver.artifacts(resolver.parse(text, 4, 5), every_task):
                rows.extend(_ls_rows(store, spec, attempt))
        emit_rows(console, rows, LS_COLUMNS, as_json, {"size": human_size, "stored_size": human_size})


def _ls_rows(store, spec, attempt):
    """The ls rows of a task pathspec, or of one artifact of a task."""
    task = spec.parent() if spec.artifact else spec
    loader = store.artifacts(task, attempt)
    names = [loader.record(spec.artifact).name] if spec.artifact else list(loader)
    rows = []
    for name in names:
        record = loader.manifest.artifacts[name]
        row = {"schema": 1, "pathspec": str(task), "attempt": loader.attempt, "name": name}
        row.update(record.to_json())
        row["inline"] = record.inline is not None
        rows.append(row)
    return rows


@cli.command(name="cat")
@click.argument("pathspecs", metavar="PATHSPEC/NAME...|-", nargs=-1, required=True)
@click.option("--raw", is_flag=True, help="Write the stored bytes (the pickle) instead of the value.")
@attempt_option
@every_task_option
@store_option
@common_options
@click.pass_obj
def cat_command(console, pathspecs, raw, attempt, every_task, store_url):
    """Print artifacts' values: as one line of JSON when a value is plain data, else its repr.

    PATHSPEC/NAME is Flow/run_id/step/task_id/NAME, or Flow/run_id/step/NAME for the
    artifact of the step's only task (a step of several tasks is an error, exit 2, unless
    --all). Plain data is None, bool, int, finite float, str, and lists, tuples and
    str-keyed dicts of those. --raw writes the stored pickle bytes instead. With --all,
    each value is one JSON line (schema 1): pathspec (the task's), attempt, name, type,
    value, encoding ("json", or "repr" when value is its repr). `-` reads pathspecs from
    stdin.

    Examples:

      mflow-store cat MyFlow/1700000000/end/3/accuracy

      mflow-store cat MyFlow/latest_successful/end/accuracy > accuracy.txt

      mflow-store cat MyFlow/latest_successful/train/loss --all | jq -s 'map(.value) | max'

      mflow-store cat --raw MyFlow/1700000000/start/1/df > df.pickle
    """
    import orjson

    from mflow.errors import ParameterError, PathspecError
    from mflow.store.artifacts import json_value, value_as_json

    if raw and every_task:
        raise ParameterError("--raw and --all exclude each other", "Give one of them")
    store = open_store(console, store_url)
    resolver = pathspec_resolver(console, store)
    loaders = {}
    with store:
        for text in arguments(console, pathspecs):
            for spec in resolver.artifacts(resolver.parse(text, 4, 5), every_task):
                if spec.artifact is None:
                    raise PathspecError(
                        "%s names a task, not an artifact" % (spec,),
                        "Add the artifact's name, %s/NAME; `mflow-store ls %s` lists them" % (spec, spec),
                    )
                task = spec.parent()
                if task not in loaders:
                    loaders[task] = store.artifacts(task, attempt)
                loader = loaders[task]
                if raw:
                    with loader.open_raw(spec.artifact) as stream:
                        for chunk in iter(lambda: stream.read(CHUNK), b""):
                            console.out_bytes(chunk)
                    continue
                value = loader.load(spec.artifact)
                if every_task:
                    shown, encoding = json_value(value)
                    row = {"schema": 1, "pathspec": str(task), "attempt": loader.attempt, "name": spec.artifact,
                           "type": loader.record(spec.artifact).type, "value": shown, "encoding": encoding}
                    console.out(orjson.dumps(row).decode("utf-8"))
                    continue
                text = value_as_json(value)
                console.out(text if text is not None else repr(value))


DU_COLUMNS = [
    "scope",
    "references",
    "blobs",
    "logical_bytes",
    "stored_bytes",
    "dedup_saved_bytes",
    "compression_saved_bytes",
]


@cli.command(name="du")
@click.argument("scope", metavar="[FLOW[/RUN]]", required=False)
@json_option
@store_option
@common_options
@click.pass_obj
def du_command(console, scope, as_json, store_url):
    """Show logical size, stored size and dedup savings: per flow, per run of FLOW, or per
    step of FLOW/RUN, and a last row for the whole scope.

    logical_bytes counts every reference to a blob; stored_bytes counts each blob once,
    compressed; dedup_saved_bytes and compression_saved_bytes are what each saved. JSON
    fields: schema, scope, total, references, blobs, logical_bytes, unique_bytes,
    stored_bytes, dedup_saved_bytes, compression_saved_bytes.

    Examples:

      mflow-store du

      mflow-store du MyFlow --json | jq -s 'map(.stored_bytes) | add'
    """
    from mflow.store.maintenance import usage

    store = open_store(console, store_url)
    with store:
        rows = usage(store, resolved_scope(console, store, scope, max_depth=2))
        formats = {c: human_size for c in DU_COLUMNS if c.endswith("_bytes")}
        emit_rows(console, rows, DU_COLUMNS, as_json, formats)


GC_COLUMNS = ["action", "kind", "path", "size", "age_seconds"]


@cli.command(name="gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted; exit 1 if anything would be.")
@click.option(
    "--grace",
    metavar="DURATION",
    help="Keep anything younger than this, e.g. 30m, 6h, 2d (default: MFLOW_GC_GRACE, else 1d).",
)
@json_option
@store_option
@common_options
@click.pass_obj
def gc_command(console, dry_run, grace, as_json, store_url):
    """Delete blobs that no record names, and abandoned uploads, older than the grace period.

    A blob is kept while any JSON record under data/ or meta/ names it, and whatever is
    younger than the grace period is kept too, so a writer running concurrently is safe.
    Each deleted object is a row; JSON fields: schema, action (deleted or would-delete),
    kind (blob or upload), path, key, size, age_seconds.

    Examples:

      mflow-store gc --dry-run

      mflow-store gc --grace 6h --json | jq -s 'map(.size) | add'
    """
    from mflow.errors import ExitCode
    from mflow.store.maintenance import collect_garbage, grace_seconds

    seconds = grace_seconds(grace, console.environ)
    store = open_store(console, store_url)
    counts = {"blob": [0, 0], "upload": [0, 0]}

    def counted(rows):
        for row in rows:
            counts[row["kind"]][0] += 1
            counts[row["kind"]][1] += row["size"] or 0
            yield row

    with store:
        emit_rows(
            console,
            counted(collect_garbage(store, seconds, dry_run=dry_run)),
            GC_COLUMNS,
            as_json,
            {"size": human_size, "age_seconds": lambda s: "%.0f s" % s},
        )
    verb = "would delete" if dry_run else "deleted"
    console.info(
        "gc: %s %d blobs (%s) and %d abandoned uploads in %s"
        % (verb, counts["blob"][0], human_size(counts["blob"][1]), counts["upload"][0], store.url)
    )
    if dry_run and (counts["blob"][0] or counts["upload"][0]):
        return ExitCode.FAILED
    return ExitCode.OK


@cli.command(name="cp")
@click.argument("source", metavar="SRC_STORE")
@click.argument("target", metavar="DST_STORE")
@click.argument("scope", metavar="[PATHSPEC]", required=False)
@common_options
@click.pass_obj
def cp_command(console, source, target, scope):
    """Copy runs, with every blob they name, from one store to another.

    PATHSPEC (Flow, Flow/run, Flow/run/step or Flow/run/step/task) limits the copy;
    without it everything is copied. Blobs go before the records that name them, blobs
    already in DST_STORE are skipped, and a different record already at the same place
    stops the copy before it writes anything. Prints a summary on stderr (each object
    with -v); nothing on stdout.

    Examples:

      mflow-store cp .mflow s3://team-bucket/mflow MyFlow/1700000000

      mflow-store cp s3://team-bucket/mflow ./.mflow MyFlow
    """
    from mflow.store import open_store as open_
    from mflow.store.maintenance import copy_runs, parse_scope

    parse_scope(scope)  # a malformed PATHSPEC is refused before either store is opened
    source_store = open_(source, environ=console.environ)
    target_store = open_(target, environ=console.environ)
    spec = resolved_scope(console, source_store, scope)
    console.debug("mflow-store: copying from %s" % source_store.describe())
    console.debug("mflow-store: copying to %s" % target_store.describe())
    copied = present = size = 0
    with source_store, target_store:
        for row in copy_runs(source_store, target_store, spec):
            if row["action"] == "copied":
                copied += 1
                size += row["size"] or 0
            else:
                present += 1
            console.debug("%s %s %s" % (row["action"], row["kind"], row["path"]))
    console.info(
        "cp: copied %d objects (%s) to %s; %d were already there" % (copied, human_size(size), target_store.url, present)
    )


main = entry_point(cli)
