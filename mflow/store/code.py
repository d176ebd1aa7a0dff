"""Code packages: a deterministic tar of a flow's directory, stored as a blob once per run.

Identical code gives byte-identical archives and so the identical key, whatever the
files' timestamps, owners or the order the file system lists them in.
"""

import io
import os
import tarfile
from typing import NamedTuple

from mflow.errors import FlowFileError, NotFoundError, StoreError

from . import layout

DEFAULT_SUFFIXES = (".py",)
CODE_SCHEMA = 1
# Folders never packaged: version control, virtualenvs, caches and mflow stores.
_SKIP_DIRS = {"__pycache__", "node_modules"}


class CodePackage(NamedTuple):
    """A run's code package: blob key, archive size in bytes, files in it, the suffixes used."""

    flow: str
    run_id: str
    key: str
    size: int
    stored_size: int
    files: int
    suffixes: tuple

    def to_json(self):
        return {
            "schema": CODE_SCHEMA,
            "pathspec": "%s/%s" % (self.flow, self.run_id),
            "key": self.key,
            "size": self.size,
            "stored_size": self.stored_size,
            "files": self.files,
            "suffixes": list(self.suffixes),
        }


def code_suffixes(environ=None):
    """Suffixes to package: MFLOW_CODE_SUFFIXES (comma-separated, e.g. ".py,.yaml") or .py."""
    environ = os.environ if environ is None else environ
    text = environ.get("MFLOW_CODE_SUFFIXES", "")
    suffixes = tuple(s.strip() if s.strip().startswith(".") else "." + s.strip() for s in text.split(",") if s.strip())
    return suffixes or DEFAULT_SUFFIXES


def package_files(directory, suffixes=DEFAULT_SUFFIXES):
    """Relative '/'-separated paths of the files to package, sorted."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        raise FlowFileError("%s is not a folder" % directory, "Give the folder that holds the flow file")
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS]
        for name in filenames:
            if name.startswith(".") or not name.endswith(tuple(suffixes)):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                found.append(os.path.relpath(full, directory).replace(os.sep, "/"))
    return sorted(found)


def build_code_package(directory, suffixes=DEFAULT_SUFFIXES):
    """(archive bytes, number of files): an uncompressed tar with fixed metadata.

    Every entry has mtime 0, owner 0:0 with no names, and mode 0644 or 0755 (executables),
    in sorted order, so the bytes depend only on the files' paths, contents and x bits.
    The blob layer compresses it.
    """
    directory = os.path.abspath(directory)
    files = package_files(directory, suffixes)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for rel in files:
            full = os.path.join(directory, rel)
            with open(full, "rb") as stream:
                data = stream.read()
            entry = tarfile.TarInfo(rel)
            entry.size = len(data)
            entry.mtime = 0
            entry.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            entry.uid = entry.gid = 0
            entry.uname = entry.gname = ""
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue(), len(files)


def extract_code_package(data, destination):
    """Unpack an archive made by build_code_package into `destination`; the paths written."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = archive.getmembers()
        for member in members:
            parts = member.name.split("/")
            if member.name.startswith("/") or ".." in parts or not member.isfile():
                raise StoreError("code package holds an unsafe entry %r" % member.name, "Rebuild the code package")
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, members=members, filter="data")
        else:
            archive.extractall(destination, members=members)
    return [m.name for m in members]


def save_code_package(store, flow, run_id, directory, suffixes=None):
    suffixes = tuple(suffixes) if suffixes else code_suffixes(store.environ)
    data, count = build_code_package(directory, suffixes)
    info = store.blobs.put(data)
    package = CodePackage(flow, str(run_id), info.key, info.size, info.stored_size, count, suffixes)
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
    )
