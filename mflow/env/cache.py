"""Where environments, wheels and resolutions are kept on this machine, and the file lock
that lets concurrent tasks build one environment once.

MFLOW_ENV_CACHE > $XDG_CACHE_HOME/mflow/env > ~/.cache/mflow/env; see man/mflow.1 (ENVIRONMENT).
"""

import os

#: Bumped when the layout of a built environment changes, so old ones are not reused.
FORMAT = 1
#: The file at the root of a built environment naming its env id and lock.
MARKER = "mflow-env.json"
#: Set by mflow-task for the interpreter it switches to: the environment it is in.
ACTIVE_VARIABLE = "MFLOW_ENV_ID"


def cache_root(environ=None):
    """The folder of every cached environment, wheel and resolution on this machine."""
    environ = os.environ if environ is None else environ
    if environ.get("MFLOW_ENV_CACHE"):
        return os.path.abspath(os.path.expanduser(environ["MFLOW_ENV_CACHE"]))
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mflow", "env")


def cache_path(*parts, environ=None):
    return os.path.join(cache_root(environ), *parts)


def write_json(path, data):
    """Write `data` as JSON atomically: a reader sees the old file or the whole new one.

    Every task writes its interpreter's inventory here once per store, so the temporary
    file is made as tempfile.mkstemp makes one (a new random name, mode 0600) without
    importing tempfile (with shutil, random and more)."""
    from mflow import jsonio

    os.makedirs(os.path.dirname(path), exist_ok=True)
    while True:
        temp = os.path.join(os.path.dirname(path), ".tmp-" + os.urandom(8).hex())
        try:
            handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            continue  # a one in 2**64 chance
    try:
        with os.fdopen(handle, "w") as out:
            out.write(jsonio.dumps(data, sort_keys=True, separators=(",", ":")))
            out.write("\n")
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def read_json(path):
    """The JSON in `path`, or None when it is missing or damaged (a cache entry to redo)."""
    from mflow import jsonio

    try:
        with open(path, "rb") as handle:
            return jsonio.loads(handle.read())
    except (OSError, ValueError):
        return None


class FileLock:
    """An exclusive lock on `path` (flock) for the time of a with block: the first task to
    need an environment builds it, the others wait and then find it built."""

    def __init__(self, path):
        self.path = path
        self._fd = None

    def __enter__(self):
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return False


def inside_environment(environ=None):
    """The env id of the mflow environment this interpreter is, when mflow-task switched to
    it; None otherwise."""
    import sys

    environ = os.environ if environ is None else environ
    active = environ.get(ACTIVE_VARIABLE)
    if not active:
        return None
    marker = read_json(os.path.join(sys.prefix, MARKER))
    return active if marker is not None and marker.get("env_id") == active else None
