"""What every task attempt records of its interpreter: the Python version and the exact
installed distributions, as one blob stored once per store by content hash.

Listing distributions costs tens of milliseconds, so it is done once per interpreter and
installation: the result is cached on disk under a fingerprint of sys.prefix and the mtimes
of the site folders (installing or removing a package changes them). On a cache hit a task
pays a few stat calls and one small file read; importlib.metadata is not imported.
"""

import os
import sys

from mflow.store.sha import sha256_hex

SCHEMA = 1


def _site_dirs():
    return sorted(p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p))


def _fingerprint(dirs):
    parts = [sys.executable, sys.prefix, sys.version]
    parts += ["%s:%d" % (d, os.stat(d).st_mtime_ns) for d in dirs]
    return sha256_hex("\n".join(parts).encode("utf-8"))[:32]


def inventory(dirs=None):
    """{"schema", "python", "implementation", "platform", "distributions": [[name, version]]}
    of this interpreter: what `import` can find in its site folders."""
    import sysconfig
    from importlib import metadata

    seen = {}
    for dist in metadata.distributions(path=_site_dirs() if dirs is None else dirs):
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:  # the first on sys.path is the one imported
            seen[name.lower()] = [name, dist.version]
    return {
        "schema": SCHEMA,
        "python": "%d.%d.%d" % sys.version_info[:3],
        "implementation": sys.implementation.name,
        "platform": sysconfig.get_platform(),
        "distributions": sorted(seen.values(), key=lambda item: item[0].lower()),
    }


def _encode(data):
    from mflow import jsonio

    return jsonio.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def interpreter_record(store, environ=None):
    """{"key": blob of this interpreter's inventory, "python": version, "env_id": the mflow
    environment it is, if any} for an attempt's start record, the blob put in `store` once.
    None if it cannot be had (the step still runs: the record is a convenience)."""
    from .cache import cache_path, read_json, write_json

    try:
        dirs = _site_dirs()
        path = cache_path("inventory", _fingerprint(dirs) + ".json", environ=environ)
        cached = read_json(path)
        if cached is None or "inventory" not in cached:
            data = inventory(dirs)
            cached = {"key": sha256_hex(_encode(data)), "inventory": data, "stores": []}
        if store.url not in cached["stores"]:
            info = store.blobs.put(_encode(cached["inventory"]))
            cached["key"] = info.key
            cached["stores"] = (cached["stores"] + [store.url])[-20:]
            try:
                write_json(path, cached)
            except OSError:
                pass  # an unwritable cache: the next task lists again
        from .cache import inside_environment

        return {"key": cached["key"], "python": cached["inventory"]["python"], "env_id": inside_environment(environ)}
    except Exception:  # noqa: BLE001 - never fail a task over its inventory
        return None


def load_inventory(store, key):
    """The inventory stored under `key`."""
    from mflow import jsonio

    return jsonio.loads(store.blobs.get(key))
