"""The process's standard streams and environment, owned by one object.

Commands write through a Console so that tests can hand them a fake one.
"""

import os
import sys


class Console:
    """stdin, stdout, stderr, whether each is a terminal, the environment, the verbosity."""

    def __init__(self, stdin=None, stdout=None, stderr=None, environ=None, stdout_isatty=None, stderr_isatty=None):
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.environ = environ if environ is not None else os.environ
        self.stdout_isatty = _isatty(self.stdout) if stdout_isatty is None else stdout_isatty
        self.stderr_isatty = _isatty(self.stderr) if stderr_isatty is None else stderr_isatty
        self.verbosity = 0
        self.traceback = self.environ.get("MFLOW_TRACEBACK", "") not in ("", "0")

    def out(self, text=""):
        """One line of data to stdout."""
        self.write(text + "\n")

    def write(self, text):
        """Text to stdout as it is."""
        try:
            self.stdout.write(text)
        except BrokenPipeError as exc:
            raise StdoutClosed() from exc

    def out_bytes(self, data):
        """Raw bytes to stdout, bypassing text encoding."""
        try:
            self.stdout.flush()
            buffer = getattr(self.stdout, "buffer", None)
            if buffer is not None:
                buffer.write(data)
                buffer.flush()
            else:
                self.stdout.write(data.decode("utf-8", "replace"))
        except BrokenPipeError as exc:
            raise StdoutClosed() from exc

    def err(self, text=""):
        """One line for people to stderr: warnings, problems, progress."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def info(self, text):
        """A message shown unless -q was given."""
        if self.verbosity >= 0:
            self.err(text)

    def debug(self, text):
        """A message shown only with -v."""
        if self.verbosity > 0:
            self.err(text)

    def stdin_lines(self):
        """Non-empty lines of stdin, stripped: the `-` argument convention."""
        for line in self.stdin:
            line = line.strip()
            if line:
                yield line


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class StdoutClosed(Exception):
    """The reader of stdout went away (`| head`). Not an OSError, so that click leaves it
    to the error boundary, which exits quietly with 141."""
