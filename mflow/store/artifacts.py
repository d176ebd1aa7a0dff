"""Task artifacts: values pickled into blobs, and the per-attempt manifest that names them.

Writing streams each value into its blob; reading is lazy, one artifact at a time.
"""

from __future__ import annotations

import binascii  # not base64: its two calls, without importing base64
import io
import time
from collections.abc import Mapping

from mflow.errors import (
    ArtifactSerializationError,
    CorruptBlobError,
    MflowError,
    NotFoundError,
    PathspecError,
    StoreError,
)
from mflow.namedtuple import NamedTuple
from mflow.naming import is_identifier

from . import layout
from .blobs import SMALL_READ, pickle  # the C pickler, as blobs.py picks it
from .sha import Sha256, sha256_hex

PICKLE_PROTOCOL = 5
MANIFEST_SCHEMA = 1
#: Small blobs wait in memory up to this many bytes in all, then go out as one batch.
BATCH_BYTES = 64 << 20
#: Pickles up to this size live inside the manifest rather than in blobs of their own, so a
#: task's many small values (counters, names, parameters) cost no request each on S3.
INLINE_SIZE = 1024


class ArtifactRecord(NamedTuple):
    """One artifact in a manifest. `size` is the pickle's size, `stored_size` the blob's on
    the store (after compression); `type` is module.qualname (bare for builtins);
    `serializer` is "pickle" or "cloudpickle". `inline` holds the pickle itself when it is
    small enough to live in the manifest instead of a blob (then there is no blob)."""

    name: str
    key: str
    size: int
    stored_size: int
    type: str
    serializer: str
    inline: object = None  # bytes, or None for an artifact stored as a blob

    def to_json(self):
        record = {
            "key": self.key,
            "size": self.size,
            "stored_size": self.stored_size,
            "type": self.type,
            "serializer": self.serializer,
        }
        if self.inline is not None:
            record["inline"] = binascii.b2a_base64(self.inline, newline=False).decode("ascii")
        return record


class ArtifactManifest(NamedTuple):
    """The artifacts of one task attempt, as written once, after all their blobs."""

    task: object  # Pathspec of the task
    attempt: int
    artifacts: dict  # name -> ArtifactRecord
    created: float

    def to_json(self):
        return {
            "schema": MANIFEST_SCHEMA,
            "pathspec": str(self.task),
            "attempt": self.attempt,
            "created": self.created,
            "artifacts": {name: record.to_json() for name, record in sorted(self.artifacts.items())},
        }

    @classmethod
    def from_json(cls, task, attempt, record, where):
        try:
            artifacts = {
                name: ArtifactRecord(
                    name,
                    item["key"],
                    item["size"],
                    item["stored_size"],
                    item["type"],
                    item["serializer"],
                    binascii.a2b_base64(item["inline"]) if "inline" in item else None,
                )
                for name, item in record["artifacts"].items()
            }
            return cls(task, attempt, artifacts, record.get("created", 0.0))
        except (KeyError, TypeError, AttributeError, ValueError):
            raise CorruptBlobError(
                "manifest %s has fields missing or of the wrong type" % where,
                "Delete the attempt's folder and rerun the task",
            ) from None


def type_name(value):
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else "%s.%s" % (module, kind.__qualname__)


def check_artifact_name(name):
    if not isinstance(name, str) or not is_identifier(name):
        raise PathspecError("%r is not a valid artifact name" % (name,), "Artifact names are Python identifiers")
    return name


class ArtifactWriter:
    """Saves the artifacts of one task attempt, then commits its manifest.

    save() pickles a value straight into its blob (protocol 5, cloudpickle for lambdas and
    locally defined classes): large values stream to the store in constant extra memory,
    small ones wait and go out together in commit(), as parallel PUTs on S3 with no
    per-object existence check. The manifest is written last, atomically and only once per
    attempt, so a reader never sees an artifact whose blob is missing.
    """

    def __init__(self, store, task, attempt):
        if not isinstance(attempt, int) or attempt < 0:
            raise ValueError("attempt must be an int >= 0, not %r" % (attempt,))
        self.store = store
        self.task = task
        self.attempt = attempt
        self.records = {}
        self._pending = []  # (record, BlobWriter) of small blobs not yet written
        self._pending_bytes = 0
        self._committed = False

    def save(self, name, value, previous=None):
        """Serialize and store one artifact; its ArtifactRecord.

        `previous` is the ArtifactRecord the value was loaded from, when the step inherited
        it: if the value still pickles to the same bytes, its blob is reused after one
        hashing pass, with nothing written (a step that reads a 2 GB dataset and passes it
        on does not write it again).
        """
        check_artifact_name(name)
        if previous is not None and self._unchanged(value, previous):
            return self.carry(previous, name)
        writer, serializer = self._serialize(name, value)
        info, stored = writer.finish()
        if stored is not None and info.size <= INLINE_SIZE:
            writer.abort()
            content = self.store.blobs.decode(info.key, stored)
            record = ArtifactRecord(name, info.key, info.size, info.size, type_name(value), serializer, content)
            self.records[name] = record
            return record
        record = ArtifactRecord(name, info.key, info.size, info.stored_size, type_name(value), serializer)
        if stored is None:
            writer.commit()
        else:
            self._pending.append(writer)
            self._pending_bytes += len(stored)
            if self._pending_bytes > BATCH_BYTES:
                self._flush()
        self.records[name] = record
        return record

    def carry(self, record, name=None):
        """Make an artifact of another attempt part of this one, by its record, unchanged and
        without loading it: for values a step inherited and never touched. Its record."""
        name = check_artifact_name(name or record.name)
        record = record._replace(name=name)
        self.records[name] = record
        return record

    def _unchanged(self, value, previous):
        sink = _HashSink()
        try:
            if previous.serializer == "cloudpickle":
                import cloudpickle

                cloudpickle.dump(value, sink, protocol=PICKLE_PROTOCOL)
            else:
                pickle.dump(value, sink, protocol=PICKLE_PROTOCOL)
        except Exception:  # the normal path will pick the serializer and report any error
            return False
        if sink.hexdigest() != previous.key:
            return False
        # The touch keeps the blob safe from a concurrent gc, and fails if it is gone.
        return previous.inline is not None or self.store.backend.touch(layout.blob_path(previous.key))

    def save_many(self, items):
        """Save every (name, value) of a mapping or iterable of pairs; their records."""
        pairs = items.items() if isinstance(items, Mapping) else items
        return [self.save(name, value) for name, value in pairs]

    def _serialize(self, name, value):
        blobs = self.store.blobs
        writer = blobs.writer()
        try:
            pickle.dump(value, writer, protocol=PICKLE_PROTOCOL)
            return writer, "pickle"
        except MflowError:
            writer.abort()
            raise
        except Exception as exc:  # lambdas, local classes: PicklingError, AttributeError, TypeError
            writer.abort()
            first = exc
        writer = blobs.writer()
        try:
            import cloudpickle

            cloudpickle.dump(value, writer, protocol=PICKLE_PROTOCOL)
            return writer, "cloudpickle"
        except MflowError:
            writer.abort()
            raise
        except Exception as exc:
            writer.abort()
            raise ArtifactSerializationError(
                "artifact %r of step %r (%s) cannot be pickled: %s: %s"
                % (name, self.task.step, type_name(value), type(first).__name__, _first_line(first)),
                "Keep such values out of self (use a local variable), or store a picklable form of it",
                artifact=name,
                step=self.task.step,
            ) from exc

    def _flush(self):
        if self._pending:
            self.store.blobs.commit_many(self._pending)
        self._pending = []
        self._pending_bytes = 0

    def commit(self):
        """Write the remaining blobs, then the manifest; the ArtifactManifest."""
        if self._committed:
            raise ValueError("the artifacts of %s attempt %d are already committed" % (self.task, self.attempt))
        self._flush()
        manifest = ArtifactManifest(self.task, self.attempt, dict(self.records), time.time())
        path = layout.manifest_path(self.task, self.attempt)
        if not self.store.write_record(path, manifest.to_json(), exclusive=True):
            raise _already_committed(self.store, self.task, self.attempt)
        self._committed = True
        return manifest


class _HashSink:
    """A file-like object that only hashes what is written: the key a value would get."""

    def __init__(self):
        self._hash = Sha256()

    def write(self, data):
        view = memoryview(data)
        self._hash.update(view if view.ndim == 1 and view.itemsize == 1 else view.cast("B"))
        return view.nbytes

    def hexdigest(self):
        return self._hash.hexdigest()


def _already_committed(store, task, attempt):
    return StoreError(
        "attempt %d of task %s already has artifacts in store %s" % (attempt, task, store.url),
        "Each attempt is written once; run the task with a new attempt number",
        store=store.url,
    )


def read_manifest(store, task, attempt):
    path = layout.manifest_path(task, attempt)
    try:
        record = store.read_record(path)
    except NotFoundError:
        raise NotFoundError(
            "store %s has no artifacts for attempt %d of task %s" % (store.url, attempt, task),
            "Check the pathspec and attempt; `mflow-store ls %s` shows the latest attempt" % (task,),
            store=store.url,
        ) from None
    return ArtifactManifest.from_json(task, attempt, record, "%s in store %s" % (path, store.url))


def _latest_manifest(store, task):
    """(attempt, manifest) of the highest attempt that has one: a listing, then one read."""
    for attempt in reversed(store.attempts(task)):
        try:
            return attempt, read_manifest(store, task, attempt)
        except NotFoundError:  # an attempt that failed before saving anything
            continue
    raise NotFoundError(
        "store %s has no artifacts for task %s" % (store.url, task),
        "Check the pathspec; `mflow-meta tasks` lists the tasks of a run",
        store=store.url,
    )


class ArtifactLoader(Mapping):
    """The artifacts of one task attempt as a read-only Mapping name -> value.

    Only the manifest is read up front; each value is fetched, verified and unpickled on
    first access (and then kept), so touching one artifact of twenty loads one.
    """

    def __init__(self, store, task, attempt=None):
        self.store = store
        self.task = task
        if attempt is None:
            self.attempt, self.manifest = _latest_manifest(store, task)
        else:
            self.attempt, self.manifest = attempt, read_manifest(store, task, attempt)
        self._values = {}

    def __getitem__(self, name):
        if name in self._values:
            return self._values[name]
        record = self.manifest.artifacts[name]  # KeyError, as a Mapping should
        value = self._load(record)
        self._values[name] = value
        return value

    def __iter__(self):
        return iter(sorted(self.manifest.artifacts))

    def __len__(self):
        return len(self.manifest.artifacts)

    def __contains__(self, name):
        return name in self.manifest.artifacts

    def record(self, name):
        """The ArtifactRecord of `name`; NotFoundError when the task has no such artifact."""
        try:
            return self.manifest.artifacts[name]
        except KeyError:
            raise NotFoundError(
                "task %s (attempt %d) has no artifact %r in store %s" % (self.task, self.attempt, name, self.store.url),
                "`mflow-store ls %s` lists its artifacts" % (self.task,),
                store=self.store.url,
            ) from None

    def open_raw(self, name):
        """A binary stream of the artifact's stored pickle, verified."""
        record = self.record(name)
        return self._open(record)

    def _open(self, record):
        if record.inline is None:
            return self.store.blobs.open(record.key, record.stored_size)
        if sha256_hex(record.inline) != record.key:
            raise CorruptBlobError(
                "the value of artifact %r in the manifest of %s (attempt %d) in store %s does not hash to its key"
                % (record.name, self.task, self.attempt, self.store.url),
                "Rerun the task that wrote it",
                store=self.store.url,
                key=record.key,
            )
        return io.BytesIO(record.inline)

    def load(self, name):
        """The value of `name` (NotFoundError rather than KeyError when absent)."""
        self.record(name)
        return self[name]

    def load_many(self, names=None):
        """{name: value} for several artifacts (all when None); the small ones are fetched
        together, in parallel on S3, rather than one round trip each."""
        names = list(self) if names is None else list(names)
        records = [self.record(name) for name in names]
        small = {}
        for record in records:
            if record.name not in self._values and record.inline is None and record.stored_size <= SMALL_READ:
                small.setdefault(record.key, []).append(record)
        for key, content in self.store.blobs.get_many(list(small)):
            for record in small[key]:
                self._values[record.name] = self._unpickle(record, lambda: io.BytesIO(content))
        return {name: self[name] for name in names}

    def _load(self, record):
        return self._unpickle(record, lambda: self._open(record))

    def _unpickle(self, record, open_stream):
        with open_stream() as stream:
            try:
                return pickle.load(stream)
            except MflowError:
                raise
            except Exception as exc:
                raise ArtifactSerializationError(
                    "artifact %r of %s (%s) cannot be unpickled: %s: %s"
                    % (record.name, self.task, record.type, type(exc).__name__, _first_line(exc)),
                    "Load it where the module that defines its type can be imported",
                    artifact=record.name,
                    step=self.task.step,
                ) from exc


def value_as_json(value):
    """The value as one line of JSON when it is plain data (no lossy conversion), else None."""
    from mflow import jsonio

    if not _plain(value, 0):
        return None
    try:
        return jsonio.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        return None


def json_value(value):
    """(value, encoding) as a JSON row carries a value: plain data as itself, "json"; anything
    else as its repr, "repr"."""
    text = value_as_json(value)
    if text is None:
        return repr(value), "repr"
    from mflow import jsonio

    return jsonio.loads(text), "json"


def _plain(value, depth):
    if depth > 100:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) in (list, tuple):
        return all(_plain(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    return False


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
