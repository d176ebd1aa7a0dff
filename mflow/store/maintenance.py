"""Whole-store work: disk usage with dedup savings, garbage collection, copying runs.

All three read the JSON records under data/ and meta/ and follow every "key" field in them.
"""

from __future__ import annotations

import json
import re
import time

from mflow.errors import CorruptBlobError, NotFoundError, ParameterError, StoreError
from mflow.namedtuple import NamedTuple

from . import layout
from .pathspec import Pathspec

DEFAULT_GRACE = 24 * 3600
ROW_SCHEMA = 1

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text):
    """Seconds in "90", "90s", "15m", "6h", "2d" or "1w"."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
    if not match:
        raise ParameterError("%r is not a duration" % (text,), "Write it as a number with s, m, h, d or w, e.g. 6h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def grace_seconds(value=None, environ=None):
    """The gc grace period: `value` (the --grace flag) > MFLOW_GC_GRACE > one day."""
    import os

    environ = os.environ if environ is None else environ
    if value is not None:
        return parse_duration(value)
    if environ.get("MFLOW_GC_GRACE"):
        return parse_duration(environ["MFLOW_GC_GRACE"])
    return DEFAULT_GRACE


class Reference(NamedTuple):
    """A blob named by a record: key, raw size, stored size (None when the record omits them)."""

    key: str
    size: object
    stored_size: object


def _record_prefixes(scope):
    """Prefixes of the records under a pathspec scope (None: the whole store)."""
    if scope is None:
        return [layout.DATA, layout.META]
    prefixes = [layout.data_prefix(scope), layout.meta_prefix(scope)]
    if scope.depth > 2:
        # A task or step needs its run's code package to be of use elsewhere.
        prefixes.append(layout.code_path(scope.flow, scope.run_id))
    return prefixes


def iter_records(store, prefixes):
    """Yield (ObjectInfo, parsed JSON) of every .json object under the prefixes.

    An unparsable record raises: gc must never delete blobs that a record it could not read
    may name.
    """
    infos = []
    for prefix in prefixes:
        infos.extend(info for info in store.backend.list(prefix) if info.path.endswith(".json"))
    by_path = {info.path: info for info in infos}
    for path, data in store.backend.get_many([info.path for info in infos]):
        if data is None:  # deleted since we listed it
            continue
        try:
            record = json.loads(data)
        except ValueError:
            raise CorruptBlobError(
                "record %s in store %s is not valid JSON" % (path, store.url),
                "Repair or delete it; gc and cp stop rather than lose the blobs it may name",
                store=store.url,
            ) from None
        yield by_path[path], record


def references(record, inline=False):
    """Every blob a record names: each "key" field at any depth holding a blob key. Values
    kept inline in a manifest (an "inline" field beside the key) have no blob; they count
    only with inline=True, for sizes."""
    found = []
    stack = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            key = item.get("key")
            if isinstance(key, str) and layout.is_key(key) and (inline or "inline" not in item):
                found.append(Reference(key, item.get("size"), item.get("stored_size")))
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return found


# --- du -----------------------------------------------------------------------------------


def usage(store, scope=None):
    """Rows of logical size, stored size and savings for each child of `scope`, then a total.

    `scope` is None (rows per flow), a flow (rows per run) or a run (rows per step, plus
    its code package). logical_bytes counts every reference; unique_bytes each blob once
    within the row; stored_bytes what those blobs take on the store; dedup_saved_bytes and
    compression_saved_bytes the differences.
    """
    if scope is not None and scope.depth > 2:
        raise ParameterError("du takes FLOW or FLOW/RUN, not %s" % (scope,), "Give a flow or a run")
    groups = {}
    order = []
    for info, record in iter_records(store, _record_prefixes(scope)):
        if not info.path.startswith(layout.DATA):
            continue
        parts = info.path[len(layout.DATA) :].split("/")
        depth = 1 if scope is None else scope.depth + 1
        if len(parts) <= depth:  # a run's code.json inside a run scope
            name = "/".join(parts[: depth - 1]) + " (code)"
        else:
            name = "/".join(parts[:depth])
        if name not in groups:
            groups[name] = []
            order.append(name)
        groups[name].extend(references(record, inline=True))
    rows = [_usage_row(name, groups[name]) for name in sorted(order)]
    everything = [ref for name in order for ref in groups[name]]
    rows.append(_usage_row(str(scope) if scope else "total", everything, total=True))
    return rows


def _usage_row(name, refs, total=False):
    unique = {}
    for ref in refs:
        unique.setdefault(ref.key, ref)
    logical = sum(ref.size or 0 for ref in refs)
    unique_bytes = sum(ref.size or 0 for ref in unique.values())
    stored = sum(ref.stored_size if ref.stored_size is not None else (ref.size or 0) for ref in unique.values())
    return {
        "schema": ROW_SCHEMA,
        "scope": name,
        "total": total,
        "references": len(refs),
        "blobs": len(unique),
        "logical_bytes": logical,
        "unique_bytes": unique_bytes,
        "stored_bytes": stored,
        "dedup_saved_bytes": logical - unique_bytes,
        "compression_saved_bytes": unique_bytes - stored,
    }


# --- gc -----------------------------------------------------------------------------------


def collect_garbage(store, grace, dry_run=False, now=None):
    """Delete blobs that no record names and abandoned uploads, all older than `grace` seconds.

    Blobs are listed before the records are read, and each candidate is stat'ed again just
    before deletion, so a blob written or touched by a concurrent writer within the grace
    period is never deleted. Yields one row per deleted (or, dry_run, deletable) object.
    """
    now = time.time() if now is None else now
    cutoff = now - grace
    listed = list(store.blobs.list())
    referenced = set()
    for _info, record in iter_records(store, _record_prefixes(None)):
        referenced.update(ref.key for ref in references(record))
    for key, info in listed:
        if key in referenced or info.mtime >= cutoff:
            continue
        if not dry_run:
            fresh = store.backend.stat(info.path)
            if fresh is None or fresh.mtime >= cutoff:
                continue
            store.backend.delete(info.path)
        yield _gc_row("blob", info, key, now, dry_run)
    for info in store.backend.stale_uploads(cutoff):
        if not dry_run:
            store.backend.remove_stale_upload(info)
        yield _gc_row("upload", info, None, now, dry_run)


def _gc_row(kind, info, key, now, dry_run):
    return {
        "schema": ROW_SCHEMA,
        "action": "would-delete" if dry_run else "deleted",
        "kind": kind,
        "path": info.path,
        "key": key,
        "size": info.size,
        "age_seconds": round(max(0.0, now - info.mtime), 3),
    }


# --- cp -----------------------------------------------------------------------------------


def copy_runs(source, target, scope=None):
    """Copy the records under `scope` (None: everything) and every blob they name from Store
    `source` to Store `target`. Blobs go first and records after them, so the target never
    holds a record whose blobs are missing; blobs already there are skipped, identical
    records too, and a different record at the same path stops the copy before any write.
    Yields one row per object copied or skipped."""
    records = list(iter_records(source, _record_prefixes(scope)))
    if scope is not None and not records:
        raise NotFoundError(
            "store %s holds nothing under %s" % (source.url, scope),
            "Check the pathspec against `mflow-store du`",
            store=source.url,
        )
    plan = []
    for info, record in records:
        try:
            existing = target.read_record(info.path)
        except NotFoundError:
            existing = None
        if existing is None:
            plan.append((info, record))
        elif existing != record:
            raise StoreError(
                "store %s already holds a different %s" % (target.url, info.path),
                "The two stores gave out the same run id; copy into another prefix or store",
                store=target.url,
            )
        else:
            yield _cp_row("record", info.path, None, info.size, "present")
    keys = {}
    for _info, record in records:
        for ref in references(record):
            keys.setdefault(ref.key, ref)
    for key in sorted(keys):
        path = layout.blob_path(key)
        if target.backend.exists(path):
            yield _cp_row("blob", path, key, keys[key].stored_size, "present")
            continue
        info = source.blobs.copy_to(target.blobs, key)
        yield _cp_row("blob", path, key, info.stored_size, "copied")
    for info, record in plan:
        data = source.backend.get(info.path)
        target.backend.put(info.path, data)
        yield _cp_row("record", info.path, None, len(data), "copied")


def _cp_row(kind, path, key, size, action):
    return {"schema": ROW_SCHEMA, "action": action, "kind": kind, "path": path, "key": key, "size": size}


def parse_scope(text, max_depth=4):
    """A pathspec scope for du, gc or cp; None for an empty one."""
    if text in (None, ""):
        return None
    return Pathspec.parse(text, 1, max_depth)
