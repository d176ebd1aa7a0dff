"""Per-attempt logs: a task's stdout and stderr kept verbatim as blobs, named by one record.

Bytes in, the same bytes out: indentation, blank lines, colours and partial lines survive.
"""

import os

from mflow.errors import NotFoundError

from . import layout

LOGS_SCHEMA = 1
STREAMS = ("stdout", "stderr")


def save_logs(store, task, attempt, stdout=b"", stderr=b""):
    """Store both streams and the attempt's logs record (replacing an earlier one); the record.

    Each stream is bytes (the content), a str or os.PathLike (a file to read), or a binary file.
    """
    record = {"schema": LOGS_SCHEMA, "pathspec": str(task), "attempt": attempt}
    for name, source in (("stdout", stdout), ("stderr", stderr)):
        info = _put(store, source)
        record[name] = {"key": info.key, "size": info.size, "stored_size": info.stored_size}
    store.write_record(layout.logs_path(task, attempt), record)
    return record


def _put(store, source):
    if source is None:
        source = b""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return store.blobs.put(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as stream:
            return store.blobs.put_stream(stream)
    return store.blobs.put_stream(source)


def unseen_output(data, offset, ended):
    """The part of a log's bytes past `offset` ready to show: the rest when its attempt has
    ended, else only whole lines (a running task may be mid-line)."""
    fresh = data[offset:]
    return fresh if ended else fresh[: fresh.rfind(b"\n") + 1]


def logs_record(store, task, attempt):
    path = layout.logs_path(task, attempt)
    try:
        return store.read_record(path)
    except NotFoundError:
        raise NotFoundError(
            "store %s has no logs for attempt %d of task %s" % (store.url, attempt, task),
            "Check the pathspec and attempt number",
            store=store.url,
        ) from None


def load_log(store, task, attempt, stream="stdout"):
    if stream not in STREAMS:
        raise ValueError("stream must be one of %s" % (STREAMS,))
    record = logs_record(store, task, attempt)
    entry = record[stream]
    with store.blobs.open(entry["key"], entry.get("stored_size")) as source:
        return source.read()
