"""The byte backend interface: named byte objects under one root, a local folder or S3.

Everything above it (blobs, manifests, logs, metadata records) speaks only these methods.
"""

from __future__ import annotations

from mflow.errors import NotFoundError
from mflow.namedtuple import NamedTuple


class ObjectInfo(NamedTuple):
    """One stored object: its path relative to the store root, size in bytes, mtime (epoch s)."""

    path: str
    size: int
    mtime: float


class ObjectNotFound(NotFoundError):
    """The backend holds no object at that path; callers usually re-raise with more context."""

    def __init__(self, store, path):
        self.path = path
        super().__init__("store %s has no object %s" % (store, path), store=store)


class Upload:
    """A write in progress: bytes go somewhere hidden and appear at a path only on commit.

    Use as a context manager: leaving the block without commit() aborts it, so a failed or
    interrupted writer leaves nothing visible.
    """

    size = 0

    def write(self, data):
        """Append bytes (any bytes-like object) to the upload."""
        raise NotImplementedError

    def commit(self, path, exclusive=False):
        """Make the bytes visible at `path`, atomically.

        With exclusive=True the object is created only if `path` does not exist yet; returns
        False (and writes nothing) when it did. Otherwise replaces any object there; True.
        """
        raise NotImplementedError

    def abort(self):
        """Discard the bytes; nothing becomes visible. Safe to call twice or after commit."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()
        return False


class ByteBackend:
    """Named byte objects under one root. Paths are relative, '/'-separated, never '..'.

    Every write is atomic: a reader sees the old object, the new one, or none, never part.
    Implementations: mflow.store.local.LocalBackend, mflow.store.s3.S3Backend.
    """

    url = ""
    #: True when probing for an object is cheaper than rewriting a large one (S3), so the
    #: content store asks before uploading a large blob that may already be stored.
    remote = False

    # --- writes -------------------------------------------------------------------------

    def put(self, path, data):
        """Store `data` (bytes-like) at `path`, replacing any object there."""
        with self.begin_upload() as upload:
            upload.write(data)
            upload.commit(path)

    def put_many(self, items):
        """Store many (path, data) pairs; in parallel where the backend can. No existence checks."""
        for path, data in items:
            self.put(path, data)

    def put_if_absent(self, path, data):
        """Create `path` holding `data` only if no object is there; True if this call created it.

        The primitive for race-free allocation (run ids, once-only records): locally an
        O_EXCL-style hard link, on S3 a conditional PUT with If-None-Match: *. On S3 an
        object already holding exactly `data` also counts as created (a retried PUT whose
        first response was lost), so racing writers must write distinguishable bytes, e.g.
        with a random token or their host and pid in the record.
        """
        with self.begin_upload() as upload:
            upload.write(data)
            return upload.commit(path, exclusive=True)

    def begin_upload(self):
        """A new Upload (see there): for streams of unknown length, e.g. a blob being pickled."""
        raise NotImplementedError

    def touch(self, path):
        """Refresh the object's modification time; False if it does not exist.

        Writers touch a blob they find already stored, so gc's grace period protects it.
        """
        raise NotImplementedError

    def delete(self, path):
        """Delete the object at `path`; deleting a missing object is not an error."""
        raise NotImplementedError

    def delete_many(self, paths):
        for path in paths:
            self.delete(path)

    # --- reads --------------------------------------------------------------------------

    def get(self, path):
        """The object's bytes; raises ObjectNotFound."""
        raise NotImplementedError

    def get_many(self, paths):
        """Yield (path, bytes or None when missing), in parallel where the backend can."""
        for path in paths:
            try:
                yield path, self.get(path)
            except ObjectNotFound:
                yield path, None

    def open(self, path, start=0, length=None):
        """A readable binary stream of the object from byte `start`, `length` bytes or to the end."""
        raise NotImplementedError

    def open_local(self, path):
        """A seekable binary file holding the object: the file itself locally, a downloaded copy
        (parallel ranged GETs, already unlinked) on S3. The caller closes it."""
        raise NotImplementedError

    def stat(self, path):
        """ObjectInfo of the object, or None if there is none."""
        raise NotImplementedError

    def exists(self, path):
        return self.stat(path) is not None

    def list(self, prefix=""):
        """Yield ObjectInfo of every object whose path starts with `prefix`, recursively."""
        raise NotImplementedError

    def list_children(self, prefix):
        """Names of the immediate children of folder `prefix` (ending in '/'): sub-folders end in '/'."""
        raise NotImplementedError

    # --- housekeeping -------------------------------------------------------------------

    def stale_uploads(self, older_than):
        """ObjectInfo of writes abandoned before epoch time `older_than` (killed writers):
        temporary files locally, incomplete multipart uploads on S3."""
        return []

    def remove_stale_upload(self, info):
        """Remove one abandoned write found by stale_uploads()."""

    def describe(self):
        """One line for people: where the bytes live."""
        return self.url

    def close(self):
        """Release connections and threads."""
