"""Send a task's stdout and stderr (file descriptors 1 and 2) into log files.

What the step prints is kept verbatim, byte for byte, and can be copied live elsewhere.
"""

import os
import sys

from mflow.background import DaemonThread, StopSignal


class LogCapture:
    """While active, fds 1 and 2 write to `stdout_path` and `stderr_path`.

    With `echo=True` both get copied, live, to the original stderr (as `mflow-task` shows
    the step's output there while its stdout stays free for the result line).
    """

    def __init__(self, stdout_path, stderr_path, echo=False):
        self.paths = (stdout_path, stderr_path)
        self.echo = echo
        self.echo_fd = None
        self._saved = None
        self._stop = StopSignal()
        self._thread = None

    def __enter__(self):
        flush_python_streams()
        self._saved = (os.dup(1), os.dup(2))
        for fd, path in zip((1, 2), self.paths):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        # Python's own streams: line by line, so the log and any live copy keep up.
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                try:
                    reconfigure(line_buffering=True)
                except (ValueError, OSError):
                    pass
        if self.echo:
            self.echo_fd = self._saved[1]  # the real stderr, not fd 2, which is now the log
            self._thread = DaemonThread(self._echo)
            self._thread.start()
        return self

    def _echo(self):
        offsets = [0, 0]
        while True:
            stopping = self._stop.wait(0.1)
            for i, path in enumerate(self.paths):
                offsets[i] = copy_new_bytes(path, offsets[i], self.echo_fd)
            if stopping:
                return

    def __exit__(self, *exc):
        flush_python_streams()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        return False


def copy_new_bytes(path, offset, fd):
    """Copy what `path` holds past `offset` to `fd`; the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return offset
    if data:
        try:
            os.write(fd, data)
        except OSError:
            pass
    return offset + len(data)


def flush_python_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
