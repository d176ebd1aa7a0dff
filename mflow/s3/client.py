"""`S3`, the client a step uses for data in S3: keys scoped to a root, many objects at once,
downloads in memory or a temporary folder that closing it removes. Requests are in transport.py.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import tempfile
import threading
import weakref

from mflow.errors import ParameterError, S3LocalFileError, S3URLError, S3ValueError
from mflow.namedtuple import NamedTuple

from .objects import RangeInfo, S3Object, read_download, user_metadata_headers

#: A download up to this size, arriving in one answer, may stay in memory instead of a file.
#: Creating a file costs 0.5 to 1 ms of kernel CPU (measured on ext4): twice the rest of the
#: client's CPU for a 100 KB object, still a quarter of it for 1 MiB, less and less beyond.
#: It is also the transport's read size, so a body kept whole is no larger than what each
#: connection buffers anyway.
MEMORY_OBJECT_SIZE = 1 << 20
#: The MiB of downloads a client holds in memory at most, unless MFLOW_S3_MEMORY_MB says:
#: room for 2,500 objects of 100 KB, yet little beside the memory of a machine that runs data
#: steps; past it, downloads go to files again, so memory stays bounded however many there are.
DEFAULT_MEMORY_MB = 256

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*\Z")  # printable ASCII: what an HTTP header may carry


class _Located(NamedTuple):
    """A key resolved against the client's root."""

    bucket: str
    path: str  # the object key in the bucket
    url: str
    key: str  # what S3Object.key shows: relative to the root, or the URL without a root


class _Get(NamedTuple):
    where: _Located
    start: Optional[int]
    end: Optional[int]
    suffix: Optional[int]


class _Put(NamedTuple):
    given: str  # the key as the caller wrote it, returned with the URL
    where: _Located
    value: object  # bytes-like, a binary file, or None for `file`
    file: Optional[str]
    headers: dict


class S3:
    """Read and write many S3 objects at once; use as a context manager.

        with S3(run=self) as s3:                      # inside a step: this run's own prefix
            s3.put_many([("a.csv", data), ("b.csv", more)])
        with S3(s3root="s3://bucket/datasets") as s3:
            for obj in s3.get_all():
                print(obj.key, obj.size, obj.path)

    Without `run` or `s3root` (or `bucket`), every key must be a whole s3:// URL. See
    man/mflow-s3.7 for the methods, the objects they return, and the settings.
    """

    def __init__(self, s3root=None, run=None, bucket=None, prefix=None, tmproot=None, encryption=None, environ=None):
        from .transport import Transport

        self._environ = os.environ if environ is None else environ
        if run is not None:
            self._root = _run_root(run, bucket, prefix, self._environ)
        elif s3root:
            self._root = _root_of(s3root, "s3root")
        elif bucket:
            self._root = _root_of("s3://%s/%s" % (bucket, (prefix or "").strip("/")), "bucket")
        else:
            self._root = None
        self._encryption = encryption
        self._downloads = Downloads(tmproot, _memory_limit(self._environ))
        self._transport = Transport(self._environ)
        # Connections and the transfer thread go on close(), or with the client; so do the
        # downloads, removed also when Python exits.
        self._release = weakref.finalize(self, self._transport.close)
        self._cleanup = weakref.finalize(self, self._downloads.close)
        self._closed = False

    @property
    def root(self):
        """The s3:// URL keys are relative to, or None when keys must be whole URLs."""
        return self._root

    # --- reads ------------------------------------------------------------------------------

    def get(self, key=None, return_missing=False, return_info=True):
        """Download one object (a key, an s3:// URL or an S3GetObject range); an S3Object whose
        `path` is the local copy. None gets the root itself."""
        return self.get_many([key], return_missing, return_info)[0]

    def get_many(self, keys, return_missing=False, return_info=True):
        """Download many objects in parallel; S3Objects in the order of `keys`.

        A missing key raises S3NotFoundError, or with return_missing=True comes back with
        `exists` False. `return_info` is accepted for Metaflow's sake: the content type and
        metadata come with every download at no cost.
        """
        return self._download([self._get_request(key) for key in _many(keys)], return_missing)

    def get_recursive(self, keys, return_info=False):
        """Download every object under the given prefixes (each a key, a folder or a URL)."""
        listed = self._list(keys, recursive=True)
        return self._download([_Get(where, None, None, None) for where, _ in listed], False)

    def get_all(self, return_info=False):
        """Download every object under the root."""
        self._need_root("get_all()")
        return self.get_recursive([None], return_info)

    def info(self, key=None, return_missing=False):
        """An S3Object with the object's size, content type, metadata and time, without its bytes."""
        return self.info_many([key], return_missing)[0]

    def info_many(self, keys, return_missing=False):
        """info() of many keys at once (parallel HEAD requests), in the order of `keys`."""
        from .transport import HeadRequest

        wheres = [self._locate(key, need_object=True) for key in _many(keys)]
        self._check_open()
        heads = self._transport.head_many([HeadRequest(w.bucket, w.path, w.url) for w in wheres], return_missing)
        return [
            S3Object(self._root, w.url, key=w.key)
            if head is None
            else S3Object(
                self._root, w.url, None, head.size, head.content_type, head.metadata, None, head.last_modified,
                head.encryption, key=w.key,
            )
            for w, head in zip(wheres, heads)
        ]

    def list_paths(self, keys=None):
        """The next level under each prefix (the root by default): objects, and sub-prefixes
        as S3Objects with `exists` False."""
        return [self._listed_object(where, size, modified) for where, (size, modified) in self._list(keys, False)]

    def list_recursive(self, keys=None):
        """Every object under each prefix (the root by default), at any depth. A key names the
        object itself and everything in the folder of that name: "data" lists "data" and
        "data/...", never "database"."""
        return [self._listed_object(where, size, modified) for where, (size, modified) in self._list(keys, True)]

    # --- writes -------------------------------------------------------------------------------

    def put(self, key, obj, overwrite=True, content_type=None, metadata=None):
        """Upload bytes, text (as UTF-8) or a readable, seekable binary file to `key`; its URL.
        With overwrite=False an existing object is kept (and nothing is sent)."""
        request = self._put_request(key, obj, None, content_type, metadata, None)
        self._upload([request], overwrite)
        return request.where.url

    def put_many(self, key_objs, overwrite=True):
        """Upload many (key, value) pairs or S3PutObjects in parallel; [(key, url)] of those
        written (with overwrite=False, existing keys are skipped)."""
        requests = []
        for item in _many(key_objs):
            key, value, _, content_type, encryption, metadata = _put_fields(item, "value")
            requests.append(self._put_request(key, value, None, content_type, metadata, encryption))
        return self._upload(requests, overwrite)

    def put_files(self, key_paths, overwrite=True):
        """Upload many local files, given as (key, path) pairs or S3PutObjects with `path`, in
        parallel; [(key, url)] of those written."""
        requests = []
        for item in _many(key_paths):
            key, _, path, content_type, encryption, metadata = _put_fields(item, "path")
            requests.append(self._put_request(key, None, path, content_type, metadata, encryption))
        for request in requests:
            # Fail before anything is sent, not after half of it.
            if not os.path.isfile(request.file):
                raise _missing_file(request)
        return self._upload(requests, overwrite)

    # --- lifetime -------------------------------------------------------------------------------

    def close(self):
        """Delete the downloads (files and bytes in memory) and release connections; the client
        cannot be used after."""
        self._closed = True
        self._release()
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return "<S3 %s>" % (self._root or "(whole URLs)")

    # --- keys -------------------------------------------------------------------------------------

    def _locate(self, key, need_object=False):
        """Resolve a key (relative to the root, or a URL inside it) to bucket, key and URL."""
        key = getattr(key, "key", key)
        if key is not None and not isinstance(key, str):
            raise S3URLError(
                "an S3 key must be text, not %s (%r)" % (type(key).__name__, key), "Give a key or an s3:// URL"
            )
        if self._root is None:
            if not key or not key.startswith("s3://"):
                raise _no_root_error(key)
            bucket, path = _split_url(key)
            where = _Located(bucket, path, "s3://%s/%s" % (bucket, path) if path else "s3://" + bucket, key)
        else:
            bucket, root_path = _split_url(self._root)
            if not key:
                relative = ""
            elif key.startswith("s3://"):
                if key.rstrip("/") == self._root:
                    relative = ""
                elif key.startswith(self._root + "/"):
                    relative = key[len(self._root) + 1 :]
                else:
                    raise S3URLError(
                        "%s is outside this S3's root %s" % (key, self._root),
                        "Give keys relative to the root, or open another S3 for that location",
                        key,
                    )
            else:
                relative = key.lstrip("/")
            if ".." in relative.split("/"):
                raise S3URLError(
                    "key %r leaves this S3's root %s" % (key, self._root),
                    "Give keys inside the root, without '..'",
                    key,
                )
            path = "%s/%s" % (root_path, relative) if root_path and relative else (root_path or relative)
            url = "s3://%s/%s" % (bucket, path) if path else "s3://" + bucket
            where = _Located(bucket, path, url, relative or url)
        if need_object and not where.path:
            raise S3URLError(
                "%s names a bucket, not an object" % (key or where.url), "Give the key of an object in the bucket", key
            )
        return where

    def _need_root(self, what):
        if self._root is None:
            raise S3URLError(
                "%s needs a root: this S3 has neither s3root nor run" % what,
                "Open it as S3(s3root=...) or S3(run=self)",
            )

    # --- downloads --------------------------------------------------------------------------------

    def _get_request(self, key):
        where = self._locate(key, need_object=True)
        offset, length = getattr(key, "offset", None), getattr(key, "length", None)
        if length is not None and length < 0:
            return _Get(where, None, None, -length)
        if offset is not None and offset < 0:
            raise S3URLError("offset %d of %s is negative" % (offset, where.url), "Give an offset from 0", where.key)
        if offset is None and length is None:
            return _Get(where, None, None, None)
        start = offset or 0
        return _Get(where, start, None if length is None else start + length, None)

    def _download(self, requests, return_missing):
        from .transport import GetRequest

        self._check_open()
        downloads = self._downloads
        memory = downloads.allowance()
        gets = [
            GetRequest(
                r.where.bucket, r.where.path, r.where.url, downloads.new_path(r.where.path), r.start, r.end,
                r.suffix, memory,
            )
            for r in requests
        ]
        try:
            done = self._transport.get_many(gets, return_missing)
        except BaseException:
            if memory is not None:
                memory.refund()  # the bytes of a failed batch are dropped
            raise
        objects = []
        for request, get, download in zip(requests, gets, done):
            where = request.where
            if download is None:
                objects.append(S3Object(self._root, where.url, key=where.key))
                continue
            if download.data is not None:
                downloads.hold(get.path, download.data)
            head, length = download.head, download.end - download.start
            objects.append(
                S3Object(
                    self._root, where.url, get.path, length, head.content_type, head.metadata,
                    RangeInfo(head.size, download.start, length), head.last_modified, head.encryption, key=where.key,
                    downloads=downloads,
                )
            )
        return objects

    def _check_open(self):
        if self._closed:
            raise ValueError("this S3 is closed; its downloads are gone")

    # --- listings ---------------------------------------------------------------------------------

    def _list(self, keys, recursive):
        """[(Located, (size, last_modified))] under each key, in order; for a prefix size is None."""
        from .transport import ListRequest

        keys = [None] if keys is None else _many(keys)
        wheres = [self._locate(key) for key in keys]
        self._check_open()
        requests = []
        for where in wheres:
            folder = where.path.rstrip("/") + "/" if where.path else ""
            if recursive:  # the object of that name too, so the bare prefix, filtered below
                requests.append(ListRequest(where.bucket, where.path, "", where.url))
            else:
                requests.append(ListRequest(where.bucket, folder, "/", where.url))
        seen = set()
        out = []
        for key, where, listed in zip(keys, wheres, self._transport.list_many(requests)):
            folder = where.path.rstrip("/") + "/" if where.path else ""
            own = bool(key) and recursive and not where.path.endswith("/")
            for entry in listed:
                if recursive and not (entry.key.startswith(folder) or (own and entry.key == where.path)):
                    continue  # "data" lists "data" and "data/...", never "database"
                url = "s3://%s/%s" % (where.bucket, entry.key)
                if url not in seen:
                    seen.add(url)
                    out.append((self._where_of(where.bucket, entry.key, url), (entry.size, entry.last_modified)))
        return out

    def _where_of(self, bucket, path, url):
        if self._root and url.startswith(self._root + "/"):
            return _Located(bucket, path, url, url[len(self._root) + 1 :].rstrip("/"))
        return _Located(bucket, path, url, url)

    def _listed_object(self, where, size, modified):
        return S3Object(self._root, where.url, None, size, last_modified=modified, key=where.key)

    # --- uploads ----------------------------------------------------------------------------------

    def _put_request(self, key, value, file, content_type, metadata, encryption):
        where = self._locate(key, need_object=True)
        headers = {}
        encryption = encryption or self._encryption
        for name, text in (("content-type", content_type), ("x-amz-server-side-encryption", encryption)):
            if text:
                if not isinstance(text, str) or not _HEADER_VALUE.match(text):
                    raise S3ValueError(
                        "%s %r for %s is not printable ASCII" % (name, text, where.url), "Give a plain value"
                    )
                headers[name] = text
        try:
            headers.update(user_metadata_headers(metadata))
        except (TypeError, ValueError) as exc:
            raise S3ValueError(
                "the metadata of %s is not JSON: %s" % (where.url, exc), "Give a dict of JSON values"
            ) from None
        if file is None:
            value = _put_value(value, where)
        elif not isinstance(file, (str, os.PathLike)):
            raise S3ValueError(
                "the path to upload to %s is %r, not a file name" % (where.url, file), "Give a local file's path"
            )
        given = key if isinstance(key, str) else getattr(key, "key", key)
        return _Put(given, where, value, file and os.fspath(file), headers)

    def _upload(self, requests, overwrite):
        from .transport import PutRequest

        self._check_open()
        puts = [
            PutRequest(r.where.bucket, r.where.path, r.where.url, r.value, r.file, self._size_of(r), r.headers)
            for r in requests
        ]
        written = self._transport.put_many(puts, overwrite)
        return [(request.given, request.where.url) for request, done in zip(requests, written) if done]

    def _size_of(self, request):
        if request.file is not None:
            try:
                return os.stat(request.file).st_size
            except OSError:
                raise _missing_file(request) from None
        if isinstance(request.value, (bytes, bytearray, memoryview)):
            return memoryview(request.value).nbytes
        stream = request.value
        position = stream.tell()
        size = stream.seek(0, io.SEEK_END) - position
        stream.seek(position)
        return size


# --- downloads -----------------------------------------------------------------------------------


class Downloads:
    """Where one client's downloads are: files in a temporary folder of its own, and the bytes
    of small ones in memory, each written to its file only when its `path` is first asked for.

    Most of the cost of fetching many small objects was creating their files (see
    MEMORY_OBJECT_SIZE), and most programs that fetch them only want the bytes. At most
    `memory_limit` bytes are held; each batch of downloads draws on that through an allowance.
    Closing deletes the folder and drops the bytes, so an object reads the same either way.
    """

    def __init__(self, tmproot, memory_limit):
        self._tmproot = tmproot or None
        self._folder = None
        self._names = itertools.count()
        self._lock = threading.Lock()
        self._held = {}  # path -> the bytes of a download whose file is not written (yet)
        self.memory_limit = memory_limit
        self.memory_used = 0  # bytes held, or taken by batches still running
        self.closed = False

    def new_path(self, key):
        """A new file name in the folder (made on first use) for a download of `key`."""
        if self._folder is None:
            try:
                self._folder = tempfile.mkdtemp(prefix="mflow-s3-", dir=self._tmproot)
            except OSError as exc:
                raise S3LocalFileError(
                    "cannot create a folder for downloads in %s: %s"
                    % (self._tmproot or tempfile.gettempdir(), exc.strerror),
                    "Point TMPDIR (or tmproot=) at a writable folder",
                    self._tmproot,
                ) from exc
        # The key's last part (extension included, so that tools that infer a format from a
        # file name keep working), made safe; a counter keeps names unique.
        name = _UNSAFE_NAME.sub("_", key.rstrip("/").rsplit("/", 1)[-1]).strip(".") or "object"
        return os.path.join(self._folder, "%06d-%s" % (next(self._names), name[-100:]))

    def allowance(self):
        """A MemoryAllowance for one batch of downloads; None when every download is a file."""
        return MemoryAllowance(self) if self.memory_limit > 0 else None

    def hold(self, path, data):
        """Keep `data`, a finished download (already counted by an allowance), for `path`."""
        self._held[path] = data

    def read(self, path, url):
        """The bytes of the download at `path` (of `url`), from memory or from its file."""
        data = self._held.get(path)
        if data is not None:
            return data
        if self.closed:
            raise S3LocalFileError(
                "the download of %s is gone: the S3 client that made it is closed" % url,
                "Use downloads inside the client's with block; copy what you keep",
                path,
            )
        return read_download(path, url)

    def file(self, path, url):
        """`path`, its file written first if the download's bytes were only in memory. After
        close, the name alone (the file is gone, as every download's is)."""
        if path not in self._held:
            return path
        from .transport import local_write_error

        with self._lock:  # another thread may be asking for the same file
            data = self._held.get(path)
            if data is None:
                return path
            try:
                with open(path, "wb", opener=_private) as stream:
                    stream.write(data)
            except OSError as exc:
                _remove(path)  # a partial file; the bytes stay in memory for another try
                raise local_write_error(exc, url, path) from None
            del self._held[path]
            self.memory_used -= len(data)
        return path

    def close(self):
        """Drop the bytes and delete the folder."""
        with self._lock:
            self.closed = True
            self._held.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


class MemoryAllowance:
    """What one batch of downloads may keep in memory, drawn from its client's Downloads: a
    body up to MEMORY_OBJECT_SIZE, while the client's total stays within its limit. What a
    failed batch took is refunded, since its bytes are dropped."""

    def __init__(self, downloads):
        self._downloads = downloads
        self._taken = 0
        self._open = True

    def take(self, size):
        """True when a body of `size` bytes may be kept in memory; it is counted from now."""
        if size > MEMORY_OBJECT_SIZE:
            return False
        downloads = self._downloads
        with downloads._lock:
            if not self._open or downloads.closed or downloads.memory_used + size > downloads.memory_limit:
                return False
            downloads.memory_used += size
            self._taken += size
        return True

    def give_back(self, size):
        """Return what take(size) counted, for a body that did not arrive after all."""
        with self._downloads._lock:
            if self._open:
                self._downloads.memory_used -= size
                self._taken -= size

    def refund(self):
        """Return everything this batch took; later take() calls are refused."""
        with self._downloads._lock:
            if self._open:
                self._downloads.memory_used -= self._taken
                self._taken = 0
                self._open = False


def _memory_limit(environ):
    """The bytes of downloads a client may hold in memory: MFLOW_S3_MEMORY_MB, in MiB."""
    text = environ.get("MFLOW_S3_MEMORY_MB")
    if not text:
        return DEFAULT_MEMORY_MB << 20
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ParameterError(
            "MFLOW_S3_MEMORY_MB=%r is not a number of MiB" % text,
            "Unset it, or give 0 or more (0 writes every download to a file)",
        )
    return int(value * (1 << 20))


def _private(path, flags):
    return os.open(path, flags, 0o600)  # as the transport makes download files


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# --- roots ---------------------------------------------------------------------------------------


def _split_url(url):
    """(bucket, key) of an s3:// URL; S3URLError when it names no bucket."""
    rest = url[len("s3://") :]
    bucket, _, path = rest.partition("/")
    if not bucket:
        raise S3URLError("%s names no bucket" % url, "Write it as s3://BUCKET/KEY", url)
    return bucket, path


def _root_of(url, what):
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise S3URLError("%s %r is not an s3:// URL" % (what, url), "Write it as s3://BUCKET/PREFIX", url)
    bucket, path = _split_url(url)
    path = path.strip("/")
    if ".." in path.split("/"):
        raise S3URLError("%s %r contains '..'" % (what, url), "Write the prefix without '..'", url)
    return "s3://%s/%s" % (bucket, path) if path else "s3://" + bucket


def _run_root(run, bucket, prefix, environ):
    """The root of S3(run=...): <base>/<Flow>/<run id>, where the base is MFLOW_S3_ROOT, else
    <the run's store>/s3 when that store is on S3; `bucket` and `prefix` replace its parts."""
    flow_name, run_id = _run_identity(run)
    base = environ.get("MFLOW_S3_ROOT")
    if base:
        base_bucket, base_path = _split_url(_root_of(base, "MFLOW_S3_ROOT"))
    else:
        from mflow.store import layout, resolve_store_url

        store = resolve_store_url(environ=environ).url
        if store.startswith("s3://"):
            # Beside the run's artifacts: <store>/s3/<Flow>/<run id>/<key>.
            base_bucket, store_path = _split_url(store)
            base_path = "/".join(p for p in (store_path.strip("/"), layout.S3_DATA.rstrip("/")) if p)
        elif bucket:
            base_bucket, base_path = bucket, ""
        else:
            raise S3URLError(
                "S3(run=...) needs an S3 location, and the run's store %s is a local folder" % store,
                "Set MFLOW_S3_ROOT=s3://BUCKET/PREFIX, or give S3 a bucket=",
            )
    bucket = bucket or base_bucket
    path = base_path if prefix is None else prefix.strip("/")
    return _root_of("s3://%s/%s" % (bucket, "/".join(p for p in (path, flow_name, run_id) if p)), "run root")


def _run_identity(run):
    """(flow name, run id) of `self` in a running step, or of a Run (anything with a
    'Flow/run' pathspec)."""
    from mflow.flow.spec import FlowSpec

    if isinstance(run, FlowSpec):
        from mflow.flow.current import current

        if not current.is_running_flow:
            raise S3URLError(
                "S3(run=self) works only inside a running step", "Outside a run, give s3root='s3://BUCKET/PREFIX'"
            )
        return current.flow_name, current.run_id
    pathspec = getattr(run, "pathspec", None)
    if isinstance(pathspec, str) and pathspec.count("/") == 1 and all(pathspec.split("/")):
        flow_name, run_id = pathspec.split("/")
        return flow_name, run_id
    raise S3URLError("run=%r is neither a step's self nor a Run" % (run,), "Pass self inside a step, or a Run")


def _no_root_error(key):
    from mflow.flow.current import current

    if key is not None and key.startswith("s3://"):
        return S3URLError("%s names no bucket" % key, "Write it as s3://BUCKET/KEY", key)
    if current.is_running_flow:
        return S3URLError(
            "%r is not an s3:// URL, and this S3 has no root" % (key,),
            "Use S3(run=self) inside a step, or whole s3://BUCKET/KEY URLs",
            key,
        )
    return S3URLError(
        "%r is not an s3:// URL, and this S3 has no root" % (key,),
        "Open it as S3(s3root='s3://BUCKET/PREFIX'), or give whole s3:// URLs",
        key,
    )


def _many(keys):
    """`keys` as a list; a lone string is a mistake (it would be read as one key per character)."""
    if isinstance(keys, (str, bytes)):
        raise S3URLError("expected a list of keys, got the string %r" % (keys,), "Wrap a single key in a list", keys)
    return list(keys)


# --- put values ----------------------------------------------------------------------------------


def _put_fields(item, kind):
    """(key, value, path, content_type, encryption, metadata) of a pair or an S3PutObject."""
    if hasattr(item, "_fields") and "content_type" in getattr(item, "_fields", ()):
        return item.key, item.value, item.path, item.content_type, item.encryption, item.metadata
    try:
        key, thing = item
    except (TypeError, ValueError):
        raise S3ValueError(
            "%r is neither a (key, %s) pair nor an S3PutObject" % (item, kind), "Give (key, %s) pairs" % kind
        ) from None
    return (key, thing, None, None, None, None) if kind == "value" else (key, None, thing, None, None, None)


def _put_value(value, where):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    if isinstance(value, (io.RawIOBase, io.BufferedIOBase)) or (hasattr(value, "read") and hasattr(value, "seek")):
        try:
            ok = value.readable() and value.seekable()
        except (AttributeError, ValueError):
            ok = False
        if ok and not isinstance(value, io.TextIOBase):
            return value
        raise S3ValueError(
            "the file to upload to %s is not a readable, seekable binary file" % where.url, "Open it with mode 'rb'"
        )
    raise S3ValueError(
        "cannot upload a %s to %s" % (type(value).__name__, where.url), "Give bytes, text, or a file opened with 'rb'"
    )


def _missing_file(request):
    return S3LocalFileError(
        "local file %s, to upload to %s, does not exist or cannot be read" % (request.file, request.where.url),
        "Check the path",
        request.file,
    )
