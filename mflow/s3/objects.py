"""What the S3 data client returns and accepts: S3Object, RangeInfo, S3GetObject, S3PutObject.

Names, fields and meanings follow Metaflow's, so code written against metaflow.S3 reads the same.
"""

import json
from collections import namedtuple

from mflow.errors import S3LocalFileError

#: A ranged get: `offset` (from 0; None means 0) and `length` (None: to the end; negative:
#: the last -length bytes of the object).
S3GetObject = namedtuple("S3GetObject", "key offset length", defaults=(None, None))

#: One object of put_many (with `value`) or put_files (with `path`), with optional headers.
S3PutObject = namedtuple(
    "S3PutObject", "key value path content_type encryption metadata", defaults=(None, None, None, None, None)
)

#: What part of an object a download holds: the object's `total_size`, and the
#: `request_offset` and `request_length` of the bytes in the local file.
RangeInfo = namedtuple("RangeInfo", "total_size request_offset request_length")

# Metaflow keeps user metadata as one JSON document in this header, so that any JSON value
# survives S3's rules for header names and values; mflow reads and writes the same.
USER_ATTRIBUTES = "metaflow-user-attributes"


class S3Object:
    """An object (or, from list_paths, a prefix) in S3, with an optional local copy.

    `key` is relative to the client's root (the whole URL without one), `url` the s3:// URL,
    `path` the downloaded file (None when not downloaded; deleted when the client closes).
    A download's bytes may be in the client's memory (`downloads`, see client.Downloads),
    its file written only when `path` is first asked for; from outside, both look the same.
    """

    def __init__(self, root, url, path=None, size=None, content_type=None, metadata=None, range_info=None,
                 last_modified=None, encryption=None, key=None, downloads=None):
        self._root = root
        self._url = url
        self._path = path
        self._downloads = downloads
        self._size = size
        self._content_type = content_type
        self._metadata = _user_metadata(metadata)
        self._range_info = range_info
        self._last_modified = last_modified
        self._encryption = encryption
        if key is not None:
            self._key = key
        elif root and url.startswith(root.rstrip("/") + "/"):
            self._key = url[len(root.rstrip("/")) + 1 :].rstrip("/")
        else:
            self._key = url

    @property
    def exists(self):
        """True for an object that is in S3; False for a missing key or a prefix."""
        return self._size is not None

    @property
    def downloaded(self):
        """True for a download, whose bytes are in a file or in memory (`path`, `blob`, `text` work)."""
        return bool(self._path)

    @property
    def url(self):
        return self._url

    @property
    def prefix(self):
        """The client's root that `key` is relative to (None without one)."""
        return self._root

    @property
    def key(self):
        return self._key

    @property
    def path(self):
        """The local file holding the downloaded bytes (written now if they were only in
        memory), or None."""
        if self._downloads is not None and self._path:
            return self._downloads.file(self._path, self._url)
        return self._path

    @property
    def blob(self):
        """The downloaded bytes, or None."""
        if not self._path:
            return None
        if self._downloads is not None:
            return self._downloads.read(self._path, self._url)
        return read_download(self._path, self._url)

    @property
    def text(self):
        """The downloaded bytes decoded as UTF-8 (undecodable bytes replaced), or None."""
        if self._path:
            return self.blob.decode("utf-8", errors="replace")
        return None

    @property
    def size(self):
        """Bytes: of the local copy when downloaded (a range's length), else of the object; None if missing."""
        return self._size

    @property
    def has_info(self):
        """True when content_type, metadata, range_info or encryption are known."""
        return any(v is not None for v in (self._content_type, self._metadata, self._range_info, self._encryption))

    @property
    def metadata(self):
        """The user metadata given to put (any JSON value), or the object's x-amz-meta-* headers
        when another program wrote it; None when it has none."""
        return self._metadata

    @property
    def content_type(self):
        return self._content_type

    @property
    def encryption(self):
        """The server-side encryption S3 applied (e.g. AES256, aws:kms), or None."""
        return self._encryption

    @property
    def range_info(self):
        """RangeInfo of a downloaded object, None otherwise."""
        return self._range_info

    @property
    def last_modified(self):
        """When the object was last written, in epoch seconds; None if unknown."""
        return self._last_modified

    def __str__(self):
        if self._path:
            return "<S3Object %s (%d bytes, local)>" % (self._url, self._size)
        if self._size is not None:
            return "<S3Object %s (%d bytes, in S3)>" % (self._url, self._size)
        return "<S3Object %s (object does not exist)>" % self._url

    __repr__ = __str__

    def __getstate__(self):
        # A copy (say, a pickled artifact) is not tied to the client: it names the file,
        # written first if the bytes were only in memory, as a plain download would have.
        state = dict(self.__dict__)
        if self._downloads is not None:
            if self._path and not self._downloads.closed:
                self._downloads.file(self._path, self._url)
            state["_downloads"] = None
        return state


def read_download(path, url):
    """The bytes of `path`, the local copy of `url`; S3LocalFileError when it cannot be read."""
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise S3LocalFileError(
            "cannot read %s, the download of %s: %s" % (path, url, exc.strerror or exc),
            "Read it before its S3 client closes, and leave the client's folder alone until then",
            path,
        ) from None


def _user_metadata(headers):
    if not headers:
        return None
    encoded = headers.get(USER_ATTRIBUTES)
    if encoded is not None:
        try:
            return json.loads(encoded)
        except ValueError:
            pass
    return dict(headers)


def user_metadata_headers(metadata):
    """The x-amz-meta-* headers that store `metadata` (a JSON-encodable dict) with an object."""
    if not metadata:
        return {}
    return {"x-amz-meta-" + USER_ATTRIBUTES: json.dumps(metadata, ensure_ascii=True, sort_keys=True)}
