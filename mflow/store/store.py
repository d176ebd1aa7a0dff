"""Which store to use (--store > MFLOW_STORE > the nearest .mflow > a new ./.mflow), and the
Store object that ties a byte backend to blobs, artifacts, code packages and logs."""

from __future__ import annotations

import os

from mflow.errors import CorruptBlobError, NotFoundError, StoreError
from mflow.namedtuple import NamedTuple

from . import layout
from .blobs import ContentStore

STORE_DIR = ".mflow"


class StoreLocation(NamedTuple):
    """A resolved store URL and where it came from: flag, env, found, new."""

    url: str
    origin: str

    def describe(self):
        return {
            "flag": "from --store",
            "env": "from MFLOW_STORE",
            "found": "the nearest %s folder" % STORE_DIR,
            "new": "a new %s folder here" % STORE_DIR,
        }.get(self.origin, self.origin)


def resolve_store_url(url=None, environ=None, cwd=None):
    """The store to use: `url` (the --store flag) > MFLOW_STORE > the nearest `.mflow` folder
    in `cwd` or its parents (as git finds .git) > `cwd/.mflow`, created on first write."""
    environ = os.environ if environ is None else environ
    cwd = os.path.abspath(cwd or os.getcwd())
    if url:
        return StoreLocation(_normalize(url, cwd), "flag")
    if environ.get("MFLOW_STORE"):
        return StoreLocation(_normalize(environ["MFLOW_STORE"], cwd), "env")
    folder = cwd
    while True:
        candidate = os.path.join(folder, STORE_DIR)
        if os.path.isdir(candidate):
            return StoreLocation(candidate, "found")
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return StoreLocation(os.path.join(cwd, STORE_DIR), "new")


def _normalize(url, cwd):
    url = url.strip()
    if url.startswith("s3://"):
        return url.rstrip("/")
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        raise StoreError(
            "store URL %r has an unknown scheme" % url,
            "Use a folder path or s3://bucket/prefix",
            store=url,
        )
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(url)))


def open_backend(url, environ=None):
    """The ByteBackend for a resolved store URL."""
    environ = os.environ if environ is None else environ
    if url.startswith("s3://"):
        from .s3 import S3Backend

        return S3Backend(url, environ)
    from .local import LocalBackend

    return LocalBackend(url, fsync=environ.get("MFLOW_FSYNC", "") not in ("", "0"))


def open_store(url=None, environ=None, cwd=None):
    """The Store for `url` (or the resolved default); nothing is created until a write."""
    environ = os.environ if environ is None else environ
    location = resolve_store_url(url, environ, cwd)
    return Store(open_backend(location.url, environ), location, environ)


class Store:
    """One mflow store: content-addressed blobs plus the records that name them.

    The entry point of the Python API: `store.blobs` (a ContentStore), per-attempt artifact
    writers and lazy loaders, code packages and logs. See man/mflow-store.1 for the layout.
    """

    def __init__(self, backend, location=None, environ=None):
        self.backend = backend
        self.location = location or StoreLocation(backend.url, "flag")
        self.environ = os.environ if environ is None else environ
        self.blobs = ContentStore(backend)

    @property
    def url(self):
        return self.backend.url

    def describe(self):
        """One line for people: which store, what it is, and why this one."""
        return "store %s (%s, %s)" % (self.url, self.backend.describe(), self.location.describe())

    # --- records: small JSON objects that name blobs -------------------------------------

    def read_record(self, path):
        """The parsed JSON record at `path`; NotFoundError if absent, CorruptBlobError if unparsable."""
        from mflow import jsonio

        data = self.backend.get(path)
        try:
            return jsonio.loads(data)
        except ValueError:
            raise CorruptBlobError(
                "record %s in store %s is not valid JSON" % (path, self.url),
                "Delete it, or restore it from a copy of the store",
                store=self.url,
            ) from None

    def write_record(self, path, record, exclusive=False):
        """Write a JSON record atomically; with exclusive=True only if none is there (True if written)."""
        from mflow import jsonio

        data = jsonio.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
        if exclusive:
            return self.backend.put_if_absent(path, data)
        self.backend.put(path, data)
        return True

    # --- artifacts -----------------------------------------------------------------------

    def artifact_writer(self, task, attempt):
        """An ArtifactWriter for attempt `attempt` of task pathspec `task`."""
        from .artifacts import ArtifactWriter

        return ArtifactWriter(self, _task(task), attempt)

    def artifacts(self, task, attempt=None):
        """A lazy ArtifactLoader (a Mapping name -> value) of a task's attempt, the latest
        attempt with artifacts when `attempt` is None."""
        from .artifacts import ArtifactLoader

        return ArtifactLoader(self, _task(task), attempt)

    def attempts(self, task):
        """Attempt numbers of a task that hold something (artifacts or logs), ascending."""
        names = self.backend.list_children(layout.data_prefix(_task(task)))
        return sorted(int(n[:-1]) for n in names if n.endswith("/") and n[:-1].isdigit())

    def latest_attempt(self, task):
        """The highest attempt of `task` that has an artifact manifest."""
        task = _task(task)
        for attempt in reversed(self.attempts(task)):
            if self.backend.exists(layout.manifest_path(task, attempt)):
                return attempt
        raise NotFoundError(
            "store %s has no artifacts for task %s" % (self.url, task),
            "Check the pathspec; `mflow-meta tasks` lists the tasks of a run",
            store=self.url,
        )

    # --- code packages and logs ------------------------------------------------------------

    def save_code_package(self, flow, run_id, directory, suffixes=None, graph=None):
        """Archive `directory` deterministically and record it as the code of run `run_id`,
        once: a second call for the same run returns the first record. Its CodePackage.
        `graph` (mflow.graph.graph_record) is kept in the record for remote tasks."""
        from .code import save_code_package

        return save_code_package(self, flow, run_id, directory, suffixes, graph)

    def code_package(self, flow, run_id):
        """The CodePackage record of a run."""
        from .code import read_code_package

        return read_code_package(self, flow, run_id)

    def load_code_package(self, flow, run_id):
        """The code package's archive (an uncompressed tar) as bytes."""
        return self.blobs.get(self.code_package(flow, run_id).key)

    def save_logs(self, task, attempt, stdout=b"", stderr=b""):
        """Keep an attempt's stdout and stderr verbatim; each bytes, a path, or a binary file."""
        from .logs import save_logs

        return save_logs(self, _task(task), attempt, stdout, stderr)

    def load_log(self, task, attempt, stream="stdout"):
        """One stream of an attempt's log, as the bytes the task wrote."""
        from .logs import load_log

        return load_log(self, _task(task), attempt, stream)

    # --- lifetime ----------------------------------------------------------------------------

    def close(self):
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _task(task):
    from .pathspec import Pathspec

    if isinstance(task, Pathspec):
        if task.depth != 4:
            return Pathspec.parse(str(task), 4, 4)
        return task
    return Pathspec.parse(task, 4, 4)
