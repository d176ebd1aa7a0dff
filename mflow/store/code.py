"""Code packages: a deterministic tar of a flow's directory, stored as a blob once per run.

Identical code gives byte-identical archives and so the identical key, whatever the
files' timestamps, owners or the order the file system lists them in.

Every remote task unpacks its run's package, so unpacking reads the few kinds of tar entry
build_code_package writes by itself instead of importing tarfile (with shutil, bz2, lzma and
more: about 8 ms of a task's start). Building writes them by itself too, byte for byte as
tarfile's GNU format does (the tests hold it to tarfile): every run's driver builds one
before its first task.
"""

from __future__ import annotations

import os
import sys

from mflow.errors import FlowFileError, NotFoundError, StoreError
from mflow.namedtuple import NamedTuple

from . import layout

DEFAULT_SUFFIXES = (".py",)
CODE_SCHEMA = 1
# Folders never packaged: hidden ones (version control, .venv, .mflow) and these caches; also
# any virtualenv (a folder holding pyvenv.cfg) and the run's own store when it lies inside.
_SKIP_DIRS = {"__pycache__", "node_modules"}
_VENV_MARKER = "pyvenv.cfg"


class CodePackage(NamedTuple):
    """A run's code package: blob key, archive size in bytes, files in it, the suffixes used."""

    flow: str
    run_id: str
    key: str
    size: int
    stored_size: int
    files: int
    suffixes: tuple
    graph: Optional[dict] = None  # the flow's analyzed graph (mflow.graph.graph_record), for remote tasks

    def to_json(self):
        record = {
            "schema": CODE_SCHEMA,
            "pathspec": "%s/%s" % (self.flow, self.run_id),
            "key": self.key,
            "size": self.size,
            "stored_size": self.stored_size,
            "files": self.files,
            "suffixes": list(self.suffixes),
        }
        if self.graph is not None:
            record["graph"] = self.graph
        return record


def code_suffixes(environ=None):
    """Suffixes to package: MFLOW_CODE_SUFFIXES (comma-separated, e.g. ".py,.yaml") or .py."""
    environ = os.environ if environ is None else environ
    text = environ.get("MFLOW_CODE_SUFFIXES", "")
    suffixes = tuple(s.strip() if s.strip().startswith(".") else "." + s.strip() for s in text.split(",") if s.strip())
    return suffixes or DEFAULT_SUFFIXES


def package_files(directory, suffixes=DEFAULT_SUFFIXES, skip=()):
    """Relative '/'-separated paths of the files to package, sorted. Folders in `skip`
    (absolute paths: a store inside the flow's folder) are not walked."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FlowFileError("%s is not a folder" % directory, "Give the folder that holds the flow file")
    skip = {os.path.realpath(path) for path in skip}
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [
            d for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS and not _skipped(os.path.join(dirpath, d), skip)
        ]
        for name in filenames:
            if name.startswith(".") or not name.endswith(tuple(suffixes)):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, directory).replace(os.sep, "/"))
    return sorted(found)


def _skipped(folder, skip):
    return os.path.isfile(os.path.join(folder, _VENV_MARKER)) or (bool(skip) and os.path.realpath(folder) in skip)


def build_code_package(directory, suffixes=DEFAULT_SUFFIXES, skip=()):
    """(archive bytes, number of files): an uncompressed tar with fixed metadata.

    Every entry has mtime 0, owner 0:0 with no names, and mode 0644 or 0755 (executables),
    in sorted order, so the bytes depend only on the files' paths, contents and x bits.
    The blob layer compresses it.
    """
    directory = os.path.abspath(directory)
    files = package_files(directory, suffixes, skip)
    parts = []
    for rel in files:
        full = os.path.join(directory, rel)
        with open(full, "rb") as stream:
            data = stream.read()
        parts.append(_tar_entry(rel, data, 0o755 if os.access(full, os.X_OK) else 0o644))
    # The end: two zero blocks, then zeros to a whole record of 20 blocks.
    size = sum(len(part) for part in parts) + 2 * _BLOCK
    parts.append(b"\0" * (2 * _BLOCK + -size % _RECORD))
    return b"".join(parts), len(files)


def _tar_entry(name, data, mode):
    """A regular file's entry as tarfile.GNU_FORMAT writes it: a GNU long-name entry first
    when the name has more than 100 bytes, the header, the content padded to whole blocks."""
    # tarfile's encoding of names: the file system's, undecodable bytes kept as they were.
    encoded = name.encode(sys.getfilesystemencoding(), "surrogateescape")
    entry = b""
    if len(encoded) > _NAME_SIZE:
        long_name = encoded + b"\0"
        entry = _tar_header(b"././@LongLink", 0, len(long_name), _LONG_NAME) + _padded(long_name)
    return entry + _tar_header(encoded[:_NAME_SIZE], mode, len(data), _REGULAR[0]) + _padded(data)


def _tar_header(name, mode, size, kind):
    """One header block: owner 0:0 with no names, mtime 0, GNU's magic."""
    if size < 8 ** 11:
        size_field = b"%011o\0" % size
    else:  # GNU's base-256, as tarfile writes sizes of 8 GiB and more
        size_field = b"\x80" + size.to_bytes(11, "big")
    header = b"".join([
        name.ljust(_NAME_SIZE, b"\0"), b"%07o\0" % mode, b"%07o\0" % 0, b"%07o\0" % 0, size_field, b"%011o\0" % 0,
        b" " * 8,  # the checksum, counted as spaces
        kind, b"\0" * 100, _GNU_MAGIC, b"\0" * 32, b"\0" * 32, b"\0" * 8, b"\0" * 8, b"\0" * 155,
    ]).ljust(_BLOCK, b"\0")
    return header[:148] + b"%06o\0" % sum(header) + header[155:]


def _padded(data):
    return data + b"\0" * (-len(data) % _BLOCK)


def extract_code_package(data, destination):
    """Unpack an archive made by build_code_package into `destination`; the paths written.

    Only regular files with relative paths inside `destination` are unpacked; any other
    entry (a link, a device, an absolute path or one with `..`) or a damaged archive is a
    StoreError, raised before anything is written, as is a path that a link already in
    `destination` would lead outside it."""
    entries = _tar_files(data)
    for name, _, _ in entries:
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or "" in parts[:-1] or not parts[-1]:
            raise StoreError("code package holds an unsafe entry %r" % name, "Rebuild the code package")
    root = os.path.realpath(destination)
    made = set()
    for name, mode, content in entries:
        path = os.path.join(destination, *name.split("/"))
        if not os.path.realpath(path).startswith(root + os.sep):
            # A link already in `destination` would lead the file elsewhere.
            raise StoreError(
                "code package entry %r would be written outside %s (through a link there)" % (name, destination),
                "Unpack into an empty folder",
            )
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(path, "wb") as handle:
            handle.write(content)
        os.chmod(path, 0o755 if mode & 0o111 else 0o644)
    return [name for name, _, _ in entries]


_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile pads an archive to whole records
_NAME_SIZE = 100
_GNU_MAGIC = b"ustar  \0"
_REGULAR = (b"0", b"\0")
_LONG_NAME = b"L"  # GNU: the next entry's name, too long for the header, as this entry's data


def _tar_files(data):
    """[(name, mode, content)] of the entries of an uncompressed tar, GNU or POSIX ustar.

    A regular file's entry gives its content; any other kind of entry is refused here as an
    unsafe entry of a code package."""
    view = memoryview(data)
    entries, offset, long_name = [], 0, None
    while offset + _BLOCK <= len(view):
        header = bytes(view[offset : offset + _BLOCK])
        if not header.strip(b"\0"):
            break  # the end-of-archive blocks
        if _number(header[148:156]) != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise _damaged("an entry's header fails its checksum")
        size, kind = _number(header[124:136]), header[156:157]
        start = offset + _BLOCK
        if start + size > len(view):
            raise _damaged("it is truncated")
        content = bytes(view[start : start + size])
        offset = start + -(-size // _BLOCK) * _BLOCK
        if kind == _LONG_NAME:
            long_name = content.split(b"\0", 1)[0]
            continue
        name = long_name if long_name is not None else header[:100].split(b"\0", 1)[0]
        if header[257:263] == b"ustar\0" and header[345:500].strip(b"\0"):
            name = header[345:500].split(b"\0", 1)[0] + b"/" + name  # POSIX ustar's name prefix
        long_name = None
        name = name.decode("utf-8", "surrogateescape")
        if kind not in _REGULAR:
            raise StoreError("code package holds an unsafe entry %r" % name, "Rebuild the code package")
        entries.append((name, _number(header[100:108]), content))
    return entries


def _number(field):
    """A tar header's number: octal digits, or GNU's base-256 for large values."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    digits = field.replace(b"\0", b" ").strip()
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise _damaged("an entry's header holds %r where a number belongs" % digits) from None


def _damaged(why):
    return StoreError("code package is damaged: %s" % why, "Rebuild the code package (run the flow again)")


def save_code_package(store, flow, run_id, directory, suffixes=None, graph=None):
    suffixes = tuple(suffixes) if suffixes else code_suffixes(store.environ)
    # A folder store inside the flow's folder (MFLOW_STORE=./store) is never walked.
    root = getattr(store.backend, "root", None)
    data, count = build_code_package(directory, suffixes, skip=[root] if root else ())
    info = store.blobs.put(data)
    package = CodePackage(flow, str(run_id), info.key, info.size, info.stored_size, count, suffixes, graph)
    if store.write_record(layout.code_path(flow, run_id), package.to_json(), exclusive=True):
        return package
    return read_code_package(store, flow, run_id)


def read_code_package(store, flow, run_id):
    path = layout.code_path(flow, run_id)
    try:
        record = store.read_record(path)
    except NotFoundError:
        raise NotFoundError(
            "store %s has no code package for run %s/%s" % (store.url, flow, run_id),
            "Check the run id; the driver stores it when the run starts",
            store=store.url,
        ) from None
    return CodePackage(
        flow,
        str(run_id),
        record["key"],
        record["size"],
        record.get("stored_size", record["size"]),
        record.get("files", 0),
        tuple(record.get("suffixes", DEFAULT_SUFFIXES)),
        record.get("graph"),
    )
