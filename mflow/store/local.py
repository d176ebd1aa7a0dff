"""The byte backend on a local (or network-mounted) folder: one file per object.

Writes go to tmp/ inside the store and are renamed into place, so they are atomic.
"""

import errno
import io
import os
import stat

from mflow.errors import StoreError

from .backend import ByteBackend, ObjectInfo, ObjectNotFound, Upload
from .layout import TMP

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_WRITE_BUFFER = 1 << 20


def _check_path(path):
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise ValueError("not a store path: %r" % path)
    return path


class LocalBackend(ByteBackend):
    """Objects as files under `root`; created on the first write, never by a read."""

    def __init__(self, root, fsync=False):
        self.root = os.path.abspath(os.path.expanduser(str(root)))
        self.url = self.root
        # Renames are atomic against a killed process without fsync; fsync adds durability
        # against power loss at the cost of a disk flush per object (MFLOW_FSYNC=1).
        self.fsync = fsync
        self._tmp = os.path.join(self.root, TMP.rstrip("/"))

    def describe(self):
        return "local folder %s" % self.root

    def _full(self, path):
        return os.path.join(self.root, _check_path(path))

    def _error(self, exc, action, path=None):
        where = os.path.join(self.root, path) if path else self.root
        if exc.errno in _FULL:
            return StoreError(
                "store %s is full: %s %s failed (%s)" % (self.root, action, where, exc.strerror),
                "Free some space (`mflow-store gc`) or use another store",
                store=self.url,
            )
        if exc.errno in _DENIED:
            return StoreError(
                "permission denied: cannot %s %s in store %s" % (action, where, self.root),
                "Check the folder's owner and mode, or use another store with --store",
                store=self.url,
            )
        if exc.errno == errno.ENOTDIR:
            return StoreError(
                "store %s is not a folder (%s %s failed)" % (self.root, action, where),
                "Point --store or MFLOW_STORE at a folder",
                store=self.url,
            )
        return StoreError(
            "cannot %s %s in store %s: %s" % (action, where, self.root, exc.strerror or exc),
            "Check the store folder",
            store=self.url,
        )

    # --- writes -------------------------------------------------------------------------

    def begin_upload(self):
        return _LocalUpload(self)

    def _new_temp(self):
        name = "%d-%s.tmp" % (os.getpid(), os.urandom(8).hex())
        temp = os.path.join(self._tmp, name)
        for _ in range(2):
            try:
                # 0o666 through the umask, as for any file the user creates (mkstemp's 0o600
                # would hide blobs from the rest of a team sharing the folder).
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
                return temp, fd
            except FileNotFoundError:
                try:
                    os.makedirs(self._tmp, exist_ok=True)
                except OSError as exc:
                    raise self._error(exc, "create") from exc
            except OSError as exc:
                raise self._error(exc, "create", TMP + name) from exc
        raise StoreError("cannot create %s in store %s" % (temp, self.root), store=self.url)

    def _place(self, temp, path, exclusive):
        full = self._full(path)
        for _ in range(2):
            try:
                if exclusive:
                    try:
                        os.link(temp, full)
                    except FileExistsError:
                        return False
                    os.unlink(temp)
                else:
                    os.replace(temp, full)
                if self.fsync:
                    _fsync_dir(os.path.dirname(full))
                return True
            except FileNotFoundError:
                try:
                    os.makedirs(os.path.dirname(full), exist_ok=True)
                except OSError as exc:
                    raise self._error(exc, "create a folder for", path) from exc
            except OSError as exc:
                raise self._error(exc, "write", path) from exc
        raise StoreError("cannot write %s in store %s" % (path, self.root), store=self.url)

    def touch(self, path):
        try:
            os.utime(self._full(path))
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._error(exc, "touch", path) from exc

    def delete(self, path):
        try:
            os.unlink(self._full(path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "delete", path) from exc

    # --- reads --------------------------------------------------------------------------

    def get(self, path):
        with self._open(path) as stream:
            try:
                return stream.read()
            except OSError as exc:
                raise self._error(exc, "read", path) from exc

    def _open(self, path):
        try:
            return open(self._full(path), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.url, path) from None
        except IsADirectoryError:
            raise ObjectNotFound(self.url, path) from None
        except OSError as exc:
            raise self._error(exc, "read", path) from exc

    def open(self, path, start=0, length=None):
        stream = self._open(path)
        if start:
            stream.seek(start)
        if length is None:
            return stream
        return _LimitedReader(stream, length)

    def open_local(self, path):
        return self._open(path)

    def stat(self, path):
        try:
            st = os.stat(self._full(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error(exc, "read", path) from exc
        if not _is_file(st):
            return None
        return ObjectInfo(path, st.st_size, st.st_mtime)

    def list(self, prefix=""):
        if prefix:
            _check_path(prefix.rstrip("/") or "x")
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = os.path.join(self.root, base) if base else self.root
        for dirpath, dirnames, filenames in os.walk(top, onerror=self._walk_error):
            rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            kept = []
            for name in sorted(dirnames):
                sub = rel_dir + name + "/"
                if sub == TMP:
                    continue
                if sub.startswith(prefix) or prefix.startswith(sub):
                    kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                rel = rel_dir + name
                if not rel.startswith(prefix):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except FileNotFoundError:  # deleted while we walked
                    continue
                if _is_file(st):
                    yield ObjectInfo(rel, st.st_size, st.st_mtime)

    def _walk_error(self, exc):
        if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
            return
        raise self._error(exc, "list")

    def list_children(self, prefix):
        folder = os.path.join(self.root, prefix) if prefix else self.root
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise self._error(exc, "list", prefix) from exc
        names = []
        for entry in entries:
            if prefix + entry.name + "/" == TMP:
                continue
            names.append(entry.name + "/" if entry.is_dir() else entry.name)
        return names

    # --- housekeeping -------------------------------------------------------------------

    def stale_uploads(self, older_than):
        stale = []
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return stale
        except OSError as exc:
            raise self._error(exc, "list", TMP) from exc
        for entry in entries:
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime < older_than:
                stale.append(ObjectInfo(TMP + entry.name, st.st_size, st.st_mtime))
        return stale

    def remove_stale_upload(self, info):
        self.delete(info.path)


class _LocalUpload(Upload):
    def __init__(self, backend):
        self._backend = backend
        self._temp, fd = backend._new_temp()
        self._file = io.open(fd, "wb", buffering=_WRITE_BUFFER)
        self.size = 0
        self._done = False

    def write(self, data):
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise self._backend._error(exc, "write", TMP + os.path.basename(self._temp)) from exc
        self.size += len(data) if isinstance(data, (bytes, bytearray)) else memoryview(data).nbytes

    def commit(self, path, exclusive=False):
        if self._done:
            raise ValueError("upload already finished")
        try:
            self._file.flush()
            if self._backend.fsync:
                os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            self.abort()
            raise self._backend._error(exc, "write", path) from exc
        try:
            created = self._backend._place(self._temp, path, exclusive)
        except BaseException:
            self.abort()
            raise
        if not created:
            _unlink_quietly(self._temp)
        self._done = True
        return created

    def abort(self):
        if self._done:
            return
        self._done = True
        try:
            self._file.close()
        except OSError:
            pass
        _unlink_quietly(self._temp)


class _LimitedReader(io.RawIOBase):
    """At most `length` bytes of an open file."""

    def __init__(self, stream, length):
        self._stream = stream
        self._left = length

    def readable(self):
        return True

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")[: self._left]
        if not view:
            return 0
        count = self._stream.readinto(view)
        self._left -= count
        return count

    def close(self):
        self._stream.close()
        super().close()


def _is_file(st):
    return stat.S_ISREG(st.st_mode)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
