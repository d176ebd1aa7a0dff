"""SHA-256 for blob keys, without loading OpenSSL for small contents.

hashlib's SHA-256 is OpenSSL's: about seven times the speed of CPython's own on large data,
but loading libcrypto costs a process about 4 ms, more than a task spends hashing its few
small artifacts and records. So contents up to SMALL bytes are hashed with CPython's own
SHA-256, and a content that grows past that switches to hashlib's. Both give the same digest.
"""

#: Contents up to this size (bytes) are hashed without hashlib: about 1 ms at CPython's speed.
SMALL = 256 << 10

try:
    from _sha2 import sha256 as _builtin_sha256  # CPython 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256 as _builtin_sha256  # CPython 3.11 and earlier
    except ImportError:
        _builtin_sha256 = None


def _openssl_sha256():
    import hashlib

    return hashlib.sha256()


class Sha256:
    """An incremental SHA-256, like hashlib.sha256(): update(), digest(), hexdigest().

    Up to SMALL bytes are kept and hashed at the end; past that, the kept bytes and all
    that follow go to hashlib. update() may run in a thread of its own (blobs hash large
    writes beside the writing), as long as only one thread uses the object at a time.
    """

    __slots__ = ("_kept", "_size", "_hash")

    def __init__(self, data=b""):
        self._kept = []
        self._size = 0
        self._hash = None if _builtin_sha256 is not None else _openssl_sha256()
        if data:
            self.update(data)

    def update(self, data):
        if self._hash is not None:
            self._hash.update(data)
            return
        view = memoryview(data)
        count = view.nbytes
        if self._size + count <= SMALL:
            # A copy: the caller may reuse its buffer once this returns.
            self._kept.append(view.tobytes())
            self._size += count
            return
        self._hash = _openssl_sha256()
        for chunk in self._kept:
            self._hash.update(chunk)
        self._kept = []
        self._hash.update(data)

    def _final(self):
        if self._hash is not None:
            return self._hash
        return _builtin_sha256(b"".join(self._kept))

    def digest(self):
        return self._final().digest()

    def hexdigest(self):
        return self._final().hexdigest()


def sha256_hex(data):
    """The SHA-256 of `data` (a bytes-like object) in lower-case hex."""
    return Sha256(data).hexdigest()
