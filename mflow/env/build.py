"""Build a locked environment on this machine, once: a venv under the cache holding exactly
the lock's wheels, linked to mflow's runtime folder, marked complete only at the end."""

from __future__ import annotations

import hashlib
import os
import shutil
import time

from mflow.namedtuple import NamedTuple

from .cache import FORMAT, MARKER, FileLock, cache_path, read_json, write_json
from .runtime import link_runtime, runtime_site
from .wheels import fetch_wheels


class BuiltEnv(NamedTuple):
    """An environment ready on this machine: its lock (wheel keys filled in), its folder and
    interpreter, and whether this call built it ("built") or found it ("reused")."""

    env: object  # LockedEnv
    path: str
    python: str
    action: str
    seconds: float
    wheels: tuple = ()  # paths of the wheel files, when this call had to fetch them


def env_path(env, interp, environ=None):
    """envs/<hash of env id and interpreter>: one folder per environment and base Python."""
    identity = "%d\n%s\n%s" % (FORMAT, env.env_id, os.path.realpath(interp.path))
    return cache_path("envs", hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20], environ=environ)


def scratch_python(interp, installer, environ=None):
    """A bare venv of `interp` that pip resolves against (never installed into)."""
    if installer.name != "pip":
        return None
    folder = cache_path("resolver", hashlib.sha256(os.path.realpath(interp.path).encode()).hexdigest()[:16],
                        environ=environ)
    python = installer.venv_python(folder)
    if not os.path.exists(python):
        with FileLock(folder + ".lock"):
            if not os.path.exists(python):
                shutil.rmtree(folder, ignore_errors=True)
                installer.create_venv(interp, folder)
    return python


def find_built(env, interp, environ=None):
    """The BuiltEnv of `env` if it is built on this machine, else None: a file read."""
    path = env_path(env, interp, environ)
    marker = read_json(os.path.join(path, MARKER))
    if marker is None or marker.get("env_id") != env.env_id:
        return None
    from .lock import LockedEnv

    return BuiltEnv(LockedEnv.from_json(marker["lock"]), path, os.path.join(path, "bin", "python"), "reused", 0.0)


def ensure_env(env, interp, installer, store=None, environ=None):
    """The BuiltEnv of locked environment `env` on `interp`, building it if needed: wheels
    from this machine's cache, the store or the index, then installed with no index."""
    started = time.time()
    path = env_path(env, interp, environ)
    found = find_built(env, interp, environ)
    if found is None:
        with FileLock(path + ".lock"):
            found = find_built(env, interp, environ)  # another task may have built it meanwhile
            if found is None:
                found = _build(env, interp, installer, store, path, environ, started)
    site = installer.site_packages(found.path, interp)
    link_runtime(site, runtime_site(interp, installer, scratch_python(interp, installer, environ), environ))
    return found._replace(seconds=time.time() - started)


def _build(env, interp, installer, store, path, environ, started):
    shutil.rmtree(path, ignore_errors=True)  # what a killed build left
    scratch = scratch_python(interp, installer, environ)
    packages, wheels = fetch_wheels(env.packages, installer, interp, store, scratch, environ)
    env = env.with_packages(packages)
    try:
        installer.create_venv(interp, path)
        installer.install(path, wheels)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    write_json(
        os.path.join(path, MARKER),
        {
            "format": FORMAT,
            "env_id": env.env_id,
            "lock": env.to_json(),
            "interpreter": interp.path,
            "installer": installer.describe(),
            "build_seconds": round(time.time() - started, 3),
        },
    )
    return BuiltEnv(env, path, installer.venv_python(path), "built", 0.0, tuple(wheels))
