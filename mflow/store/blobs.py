"""Content-addressed blobs: bytes stored once per store under the SHA-256 of their content.

Blobs are cut into frames, each compressed only where it pays; every read is checked
against the key before a byte of it is handed out.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

try:  # the C pickler that the pickle module itself uses, without pickle.py's import of re
    import _pickle as pickle
except ImportError:
    import pickle

from mflow.errors import CorruptBlobError, NotFoundError, PathspecError
from mflow.namedtuple import NamedTuple

from .backend import ObjectNotFound
from .layout import BLOBS, blob_path, is_key, key_of_blob_path
from .sha import Sha256

# The stored form of a blob: MAGIC, then frames of (kind, raw length, stored length, bytes).
# The key is the SHA-256 of the raw (uncompressed) content, so `sha256sum FILE` equals the
# key that `mflow-store put FILE` prints, and recompressing never changes a key.
MAGIC = b"MFB1"
_FRAME_HEADER = struct.Struct(">cII")
RAW = b"r"
ZLIB = b"z"

FRAME_SIZE = 4 << 20
MAX_FRAME = 64 << 20  # a larger frame length can only be damage
PARALLEL_HASH_SIZE = 4 * FRAME_SIZE
# Compression is tried on a small sample of each frame first: zlib crawls through random
# bytes (about 25 MB/s here), so a full attempt on incompressible data would cost far more
# than storing it raw.
SAMPLE_SIZE = 16 << 10
SAMPLE_RATIO = 0.85  # compress a frame only if its sample shrinks below this
KEEP_RATIO = 0.95  # ...and keep the compressed frame only if it really is smaller than this
ZLIB_LEVEL = 1  # most of the gain of level 6 at several times the speed

#: Encoded blobs up to this size are kept in memory while written (and written to S3 in one
#: batch of parallel PUTs); larger ones stream to a temporary file or upload.
SPILL_SIZE = 8 << 20
#: Blobs up to this stored size are read whole; larger ones are verified from a file first.
SMALL_READ = 32 << 20


class BlobInfo(NamedTuple):
    """A stored blob: its key, raw (logical) size and stored (compressed) size in bytes."""

    key: str
    size: int
    stored_size: int


def check_key(key):
    """`key` if it is a well-formed blob key, else a usage error."""
    if not is_key(key):
        raise PathspecError("%r is not a blob key" % key, "A key is the 64 lower-case hex digits of a SHA-256")
    return key


class _FrameEncoder:
    """Cuts a stream of writes into frames, compresses those where it pays, hashes the raw bytes."""

    def __init__(self, sink):
        self._sink = sink
        self._hash = Sha256()
        self._pending = bytearray()
        self.size = 0
        self.stored_size = 0
        self._emit_bytes(MAGIC)

    def write(self, data):
        if isinstance(data, pickle.PickleBuffer):
            view = data.raw()  # an array's buffer (C or Fortran order) as flat bytes
        else:
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
        count = view.nbytes
        self.size += count
        if count >= PARALLEL_HASH_SIZE:
            # Hash in a second thread while the frames are written: both release the GIL,
            # so a large artifact costs the slower of the two instead of their sum.
            import threading

            hasher = threading.Thread(target=self._hash.update, args=(view,))
            hasher.start()
            try:
                self._write_frames(view)
            finally:
                hasher.join()
        else:
            self._hash.update(view)
            self._write_frames(view)
        return count

    def _write_frames(self, view):
        if self._pending:
            take = min(FRAME_SIZE - len(self._pending), view.nbytes)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) == FRAME_SIZE:
                self._emit_frame(self._pending)
                self._pending = bytearray()
        # Whole frames go straight from the caller's buffer to the sink, uncopied: this is
        # what keeps a 2 GB artifact at one copy in memory.
        while view.nbytes >= FRAME_SIZE:
            self._emit_frame(view[:FRAME_SIZE])
            view = view[FRAME_SIZE:]
        if view.nbytes:
            self._pending += view

    def finish(self):
        if self._pending:
            self._emit_frame(self._pending)
            self._pending = bytearray()
        return BlobInfo(self._hash.hexdigest(), self.size, self.stored_size)

    def _emit_frame(self, chunk):
        raw_length = len(chunk)
        if _worth_compressing(chunk):
            packed = zlib.compress(chunk, ZLIB_LEVEL)
            if len(packed) < raw_length * KEEP_RATIO:
                self._emit_bytes(_FRAME_HEADER.pack(ZLIB, raw_length, len(packed)))
                self._emit_bytes(packed)
                return
        self._emit_bytes(_FRAME_HEADER.pack(RAW, raw_length, raw_length))
        self._emit_bytes(chunk)

    def _emit_bytes(self, data):
        self.stored_size += len(data)
        self._sink(data)


def _remaining(stream):
    """Bytes left to read in a regular file, or None when that cannot be known."""
    try:
        return max(0, os.fstat(stream.fileno()).st_size - stream.tell())
    except (AttributeError, OSError, ValueError):
        return None


def _worth_compressing(chunk):
    length = len(chunk)
    if length < 64:
        return False
    if length <= SAMPLE_SIZE:
        sample = chunk
    else:
        # Pieces from four places, so a frame that is part noise, part zeros is judged whole.
        piece = SAMPLE_SIZE // 4
        sample = b"".join(chunk[i * length // 4 : i * length // 4 + piece] for i in range(4))
    return len(zlib.compress(sample, ZLIB_LEVEL)) < len(sample) * SAMPLE_RATIO


def encode(data):
    """(BlobInfo, stored bytes) of `data`, all in memory: for small blobs."""
    parts = []
    encoder = _FrameEncoder(parts.append)
    encoder.write(data)
    info = encoder.finish()
    return info, b"".join(parts)


def _frame_header(buffer, offset, end, corrupt):
    """(kind, raw length, stored length) of the frame at `offset` of a buffer, checked."""
    if offset + _FRAME_HEADER.size > end:
        raise corrupt("it ends inside a frame header")
    kind, raw_length, stored_length = _FRAME_HEADER.unpack_from(buffer, offset)
    if kind not in (RAW, ZLIB) or raw_length > MAX_FRAME or kind == RAW and stored_length != raw_length:
        raise corrupt("a frame header is damaged")
    if offset + _FRAME_HEADER.size + stored_length > end:
        raise corrupt("it is truncated")
    return kind, raw_length, stored_length


def _read_frame_header(stream, left, corrupt):
    """(kind, raw length, stored length) of the next frame, checked against the `left` bytes."""
    header = stream.read(_FRAME_HEADER.size)
    if len(header) != _FRAME_HEADER.size:
        raise corrupt("it ends inside a frame header")
    kind, raw_length, stored_length = _FRAME_HEADER.unpack(header)
    if kind not in (RAW, ZLIB) or raw_length > MAX_FRAME or kind == RAW and stored_length != raw_length:
        raise corrupt("a frame header is damaged")
    if _FRAME_HEADER.size + stored_length > left:
        raise corrupt("it is truncated")
    return kind, raw_length, stored_length


def _inflate(payload, raw_length, corrupt):
    try:
        # max_length bounds the output, so a damaged frame cannot balloon memory.
        inflater = zlib.decompressobj()
        data = inflater.decompress(payload, raw_length + 1)
    except zlib.error as exc:
        raise corrupt("a compressed frame does not decompress (%s)" % exc) from None
    if len(data) != raw_length:
        raise corrupt("a frame decompresses to the wrong length")
    return data


class ContentStore:
    """Blobs by key in one backend: put bytes or streams, get them back verified.

    Blobs are immutable and shared by every task, run and flow of the store.
    """

    def __init__(self, backend):
        self.backend = backend

    # --- writing ------------------------------------------------------------------------

    def writer(self):
        """A BlobWriter: write() bytes to it, then commit() for the BlobInfo."""
        return BlobWriter(self)

    def put(self, data):
        """Store bytes-like `data`; its BlobInfo. Storing the same bytes again adds nothing."""
        if memoryview(data).nbytes > SPILL_SIZE:
            with self.writer() as writer:
                writer.write(data)
                return writer.commit()
        info, stored = encode(data)
        store_blob(self.backend, blob_path(info.key), stored)
        return info

    def put_stream(self, stream, chunk_size=FRAME_SIZE):
        """Store everything read from binary `stream`, in constant memory; its BlobInfo."""
        with self.writer() as writer:
            readinto = getattr(stream, "readinto", None)
            if readinto is not None:
                # No bigger buffer than the file needs: zeroing 4 MiB for a 20-byte log
                # costs a thousand page faults in every task process.
                remaining = _remaining(stream)
                buffer = bytearray(chunk_size if remaining is None else min(chunk_size, max(remaining, 4096)))
                view = memoryview(buffer)
                while True:
                    count = readinto(view)
                    if not count:
                        break
                    writer.write(view[:count])
            else:
                for chunk in iter(lambda: stream.read(chunk_size), b""):
                    writer.write(chunk)
            return writer.commit()

    def commit_many(self, writers):
        """Commit finished BlobWriters together: small blobs go out as one batch of blind PUTs
        (parallel on S3, no existence round-trip), large ones one by one."""
        infos, batch, batched = [], [], []
        for writer in writers:
            info, stored = writer.finish()
            infos.append(info)
            if stored is not None:
                batch.append((blob_path(info.key), stored))
                batched.append(writer)
            else:
                writer.commit()
        if batch:
            store_blobs(self.backend, list(_unique(batch)))
        for writer in batched:
            writer.closed = True
        return infos

    # --- reading ------------------------------------------------------------------------

    def has(self, key):
        return self.backend.exists(blob_path(check_key(key)))

    def stored_size(self, key):
        """Stored size in bytes, or None when the blob is not there."""
        info = self.backend.stat(blob_path(check_key(key)))
        return None if info is None else info.size

    def get(self, key):
        """The blob's bytes, verified against the key (whole in memory: for small blobs)."""
        with self.open(key) as stream:
            return stream.read()

    def get_many(self, keys):
        """Yield (key, content) for small blobs, fetched in parallel on S3, each verified."""
        keys = [check_key(key) for key in keys]
        for path, stored in self.backend.get_many([blob_path(key) for key in keys]):
            key = key_of_blob_path(path)
            if stored is None:
                raise self._not_found(key)
            yield key, self._decode_all(key, stored)

    def open(self, key, stored_size=None):
        """A readable binary stream of the blob's content, verified before it is returned.

        Small blobs are read and checked in memory; large ones are checked from a local
        file (the file itself, or an S3 download) and then streamed from it, so a corrupt
        blob raises CorruptBlobError before a single byte is handed out.
        `stored_size`, when known (manifests record it), saves a round trip on S3.
        """
        check_key(key)
        path = blob_path(key)
        if stored_size is None and self.backend.remote:
            info = self.backend.stat(path)
            if info is None:
                raise self._not_found(key)
            stored_size = info.size
        try:
            if stored_size is not None and stored_size <= SMALL_READ:
                return io.BytesIO(self._decode_all(key, self.backend.get(path)))
            source = self.backend.open_local(path)
        except ObjectNotFound:
            raise self._not_found(key) from None
        try:
            size = _file_size(source)
            if size <= SMALL_READ:
                return io.BytesIO(self._decode_all(key, source.read()))
            self._verify_file(key, source, size)
            source.seek(0)
            return BlobReader(source, self._corrupt_error(key))
        except BaseException:
            source.close()
            raise

    def verify(self, key):
        """Raise CorruptBlobError unless the stored blob hashes to `key`; its BlobInfo."""
        check_key(key)
        try:
            source = self.backend.open_local(blob_path(key))
        except ObjectNotFound:
            raise self._not_found(key) from None
        with source:
            size = _file_size(source)
            return BlobInfo(key, self._verify_file(key, source, size), size)

    def decode(self, key, stored):
        """The content of a blob from its stored form held in memory, verified against `key`."""
        return self._decode_all(key, stored)

    def _decode_all(self, key, stored):
        """The content of a stored blob held in memory, verified."""
        corrupt = self._corrupt_error(key)
        view, size = memoryview(stored), len(stored)
        if bytes(view[: len(MAGIC)]) != MAGIC:
            raise corrupt("it does not start with the blob marker")
        digest = Sha256()
        parts = []
        offset = len(MAGIC)
        while offset < size:
            kind, raw_length, stored_length = _frame_header(view, offset, size, corrupt)
            offset += _FRAME_HEADER.size
            payload = view[offset : offset + stored_length]
            chunk = payload if kind == RAW else _inflate(payload, raw_length, corrupt)
            digest.update(chunk)
            parts.append(chunk)
            offset += stored_length
        if digest.hexdigest() != key:
            raise corrupt("its content does not hash to its key")
        return b"".join(parts)

    def _verify_file(self, key, source, size):
        """Hash the content of a stored blob in a file, frame by frame; its raw size.

        The file is mapped, so raw frames are hashed where they lie, without a copy.
        """
        import mmap

        corrupt = self._corrupt_error(key)
        if size < len(MAGIC):
            raise corrupt("it is truncated")
        digest = Sha256()
        raw_size = 0
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            whole = memoryview(mapped)
            try:
                if whole[: len(MAGIC)] != MAGIC:
                    raise corrupt("it does not start with the blob marker")
                offset = len(MAGIC)
                while offset < size:
                    kind, raw_length, stored_length = _frame_header(whole, offset, size, corrupt)
                    offset += _FRAME_HEADER.size
                    payload = whole[offset : offset + stored_length]
                    try:
                        digest.update(payload if kind == RAW else _inflate(payload, raw_length, corrupt))
                    finally:
                        payload.release()
                    offset += stored_length
                    raw_size += raw_length
            finally:
                whole.release()
        if digest.hexdigest() != key:
            raise corrupt("its content does not hash to its key")
        return raw_size

    def _corrupt_error(self, key):
        store = self.backend.url

        def corrupt(why):
            return CorruptBlobError(
                "blob %s in store %s is corrupt: %s" % (key, store, why),
                "Delete it (`mflow-store gc` will not) and rerun the task that wrote it, "
                "or copy it from another store with `mflow-store cp`",
                store=store,
                key=key,
            )

        return corrupt

    def _not_found(self, key):
        return NotFoundError(
            "store %s has no blob %s" % (self.backend.url, key),
            "Check the key; an artifact's small value lives in its manifest, not in a blob: "
            "read it with `mflow-store cat --raw PATHSPEC/NAME`",
            store=self.backend.url,
        )

    # --- listing and housekeeping -------------------------------------------------------

    def list(self):
        """Yield (key, ObjectInfo) of every blob in the store."""
        for info in self.backend.list(BLOBS):
            key = key_of_blob_path(info.path)
            if key:
                yield key, info

    def delete(self, key):
        self.backend.delete(blob_path(check_key(key)))

    def copy_to(self, other, key):
        """Copy one blob, as stored (no recompression), into ContentStore `other`; verified
        first, so a corrupt source blob raises and leaves nothing behind. Its BlobInfo."""
        check_key(key)
        path = blob_path(key)
        try:
            source = self.backend.open_local(path)
        except ObjectNotFound:
            raise self._not_found(key) from None
        with source:
            size = _file_size(source)
            raw_size = self._verify_file(key, source, size)
            source.seek(0)
            target = other.backend
            if size <= SPILL_SIZE:
                store_blob(target, path, source.read())
            elif not (target.remote and target.touch(path)):
                with target.begin_upload() as upload:
                    for chunk in iter(lambda: source.read(FRAME_SIZE), b""):
                        upload.write(chunk)
                    commit_blob_upload(target, upload, path)
        return BlobInfo(key, raw_size, size)


class BlobWriter:
    """A file-like sink for one blob of unknown length: write(), then commit().

    The encoded bytes stay in memory up to SPILL_SIZE and then stream to a backend Upload
    (a temporary file locally, a spooled file for S3), so memory stays flat for any size.
    Leaving a `with` block without commit() discards everything written.
    """

    def __init__(self, content):
        self._content = content
        self._buffer = bytearray()
        self._upload = None
        self._encoder = _FrameEncoder(self._sink)
        self._info = None
        self.closed = False

    def write(self, data):
        return self._encoder.write(data)

    def writable(self):
        return True

    def _sink(self, data):
        if self._upload is None:
            if len(self._buffer) + len(data) <= SPILL_SIZE:
                self._buffer += data
                return
            self._upload = self._content.backend.begin_upload()
            self._upload.write(self._buffer)
            self._buffer = None
        self._upload.write(data)

    def finish(self):
        """End the stream: (BlobInfo, stored bytes) when small, (BlobInfo, None) when spilled."""
        if self._info is None:
            self._info = self._encoder.finish()
        return self._info, (bytes(self._buffer) if self._upload is None else None)

    def commit(self):
        """Store the blob (idempotent: a blob already there is only touched); its BlobInfo."""
        info, stored = self.finish()
        if not self.closed:
            self.closed = True
            backend = self._content.backend
            path = blob_path(info.key)
            if stored is not None:
                store_blob(backend, path, stored)
            elif backend.remote and backend.touch(path):
                # Already stored: skip the upload; the touch keeps gc's grace period honest.
                self._upload.abort()
            else:
                commit_blob_upload(backend, self._upload, path)
        return info

    def abort(self):
        if not self.closed:
            self.closed = True
            if self._upload is not None:
                self._upload.abort()
            self._buffer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()
        return False


class BlobReader(io.RawIOBase):
    """Reads a blob's content from a file holding its stored (framed) form.

    Raw frames are read straight into the caller's buffer (the unpickler's, for a large
    bytes or array), so loading an artifact holds one copy of it.
    """

    def __init__(self, source, corrupt):
        self._source = source
        self._corrupt = corrupt
        self._kind = None
        self._left = 0  # raw bytes left in the current frame
        self._inflated = None  # the current compressed frame's content, and our place in it
        self._inflated_at = 0
        self._size = _file_size(source)
        magic = source.read(len(MAGIC))
        if magic != MAGIC:
            raise corrupt("it does not start with the blob marker")

    def readable(self):
        return True

    def _next_frame(self):
        left = self._size - self._source.tell()
        if left <= 0:
            return False
        kind, raw_length, stored_length = _read_frame_header(self._source, left, self._corrupt)
        self._kind, self._left = kind, raw_length
        if kind == ZLIB:
            payload = self._source.read(stored_length)
            if len(payload) != stored_length:
                raise self._corrupt("it is truncated")
            self._inflated, self._inflated_at = _inflate(payload, raw_length, self._corrupt), 0
        return True

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self._left == 0 and not self._next_frame():
                break
            want = min(self._left, len(view) - filled)
            if self._kind == RAW:
                count = self._source.readinto(view[filled : filled + want])
                if not count:
                    raise self._corrupt("it is truncated")
            else:
                start = self._inflated_at
                view[filled : filled + want] = self._inflated[start : start + want]
                self._inflated_at += want
                count = want
            filled += count
            self._left -= count
        return filled

    def close(self):
        if not self.closed:
            self._source.close()
        super().close()


def store_blob(backend, path, stored):
    """Make sure blob `path` exists and is fresh. Its name is its content, so on S3 a blind
    PUT (no existence round trip) is right; locally an existing blob is only touched, since
    renaming over a file makes ext4 flush the new one to disk at once (auto_da_alloc)."""
    if backend.remote:
        backend.put(path, stored)
    elif not backend.put_if_absent(path, stored):
        backend.touch(path)


def store_blobs(backend, items):
    """store_blob() for many (path, stored bytes): parallel PUTs on S3."""
    if backend.remote:
        backend.put_many(items)
    else:
        for path, stored in items:
            store_blob(backend, path, stored)


def commit_blob_upload(backend, upload, path):
    """Commit a large blob's upload; an identical blob already there is kept and touched."""
    if backend.remote:
        upload.commit(path)
    elif not upload.commit(path, exclusive=True):
        backend.touch(path)


def _file_size(stream):
    return os.fstat(stream.fileno()).st_size


def _unique(batch):
    seen = set()
    for path, data in batch:
        if path not in seen:
            seen.add(path)
            yield path, data
