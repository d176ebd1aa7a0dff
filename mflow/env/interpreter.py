"""The Python interpreters an environment can be built on: this one, or a `python=` version
found on PATH (or by uv), described by version, implementation and platform."""

from __future__ import annotations

import os
import sys

from mflow.errors import EnvironmentSpecError
from mflow.namedtuple import NamedTuple

_PROBE = (
    "import json, sys, sysconfig; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], "
    "'implementation': sys.implementation.name, 'platform': sysconfig.get_platform()}))"
)


class Interpreter(NamedTuple):
    """A Python interpreter: its path, version ("3.11.2"), implementation ("cpython") and
    platform ("linux-x86_64")."""

    path: str
    version: str
    implementation: str
    platform: str

    @property
    def short(self):
        """"3.11": what wheels and environments must agree on."""
        return ".".join(self.version.split(".")[:2])

    @property
    def key(self):
        """cpython-3.11-linux-x86_64: environments built for one key run on any machine of it."""
        return "%s-%s-%s" % (self.implementation, self.short, self.platform)

    def matches(self, wanted):
        """True when this interpreter is Python `wanted` ("3.11" or "3.11.2")."""
        return wanted is None or self.version == wanted or self.version.startswith(wanted + ".")


_PROBED = {}


def current():
    """The interpreter running this process."""
    import sysconfig

    return Interpreter(
        sys.executable, "%d.%d.%d" % sys.version_info[:3], sys.implementation.name, sysconfig.get_platform()
    )


def probe(path):
    """The Interpreter at `path`, or None when it does not run."""
    import json
    import subprocess

    path = os.path.abspath(path)
    if path not in _PROBED:
        try:
            out = subprocess.run([path, "-I", "-c", _PROBE], capture_output=True, timeout=30, check=True).stdout
            info = json.loads(out)
            _PROBED[path] = Interpreter(path, info["version"], info["implementation"], info["platform"])
        except (OSError, ValueError, KeyError, subprocess.SubprocessError):
            _PROBED[path] = None
    return _PROBED[path]


def find(wanted, steps=(), environ=None) -> Interpreter:
    """The interpreter for `python=wanted` (None: this one); EnvironmentSpecError when this
    machine has none of that version."""
    here = current()
    if here.matches(wanted):
        return here
    for path in _candidates(wanted, environ):
        found = probe(path)
        if found is not None and found.matches(wanted) and found.implementation == here.implementation:
            return found
    raise EnvironmentSpecError(
        "%s: @pypi python=%r is not available on this machine (this one runs %s)"
        % (describe_steps(steps), wanted, here.version),
        "Install Python %s (it is looked for as python%s on PATH, or by uv), or drop python=" % (wanted, _short(wanted)),
        steps=steps,
    )


def describe_steps(steps):
    steps = sorted(steps)
    if not steps:
        return "the flow"
    return ("step %s" if len(steps) == 1 else "steps %s") % ", ".join(steps)


def _short(wanted):
    return ".".join(wanted.split(".")[:2])


def _candidates(wanted, environ):
    import shutil

    environ = os.environ if environ is None else environ
    path = environ.get("PATH")
    seen = []
    for name in ("python%s" % wanted, "python%s" % _short(wanted), "python%s" % wanted.split(".")[0]):
        found = shutil.which(name, path=path)
        if found and found not in seen:
            seen.append(found)
    uv = uv_binary(environ)
    if uv:
        import subprocess

        try:
            out = subprocess.run(
                [uv, "python", "find", "--no-project", wanted], capture_output=True, text=True, timeout=60
            )
            if out.returncode == 0 and out.stdout.strip():
                seen.append(out.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.SubprocessError):
            pass
    return seen


def uv_binary(environ=None) -> Optional[str]:
    """The uv executable: on PATH, beside this interpreter (a venv's bin/), or from the uv
    package of PyPI; None when there is none."""
    import shutil

    environ = os.environ if environ is None else environ
    found = shutil.which("uv", path=environ.get("PATH"))
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "uv")
    if os.access(beside, os.X_OK):
        return beside
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None
