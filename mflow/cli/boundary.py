"""The one error boundary: runs a click command and turns every failure into an exit code.

A user's mistake becomes one `Error: what happened. What to do.` line on stderr;
`--traceback` (or MFLOW_TRACEBACK=1) shows the whole trace as well.
"""

import os
import sys

from mflow.errors import ExitCode, MflowError

from .console import Console, StdoutClosed


def run_cli(command, argv=None, console=None, prog_name=None):
    """Run `command` with `argv` and return its exit code; never raises."""
    import click

    console = console or Console()
    args = list(sys.argv[1:] if argv is None else argv)
    prog_name = prog_name or os.path.basename(sys.argv[0] or command.name)

    def call():
        try:
            return command.main(args=args, prog_name=prog_name, standalone_mode=False, obj=console)
        except click.exceptions.Exit as exc:
            return exc.exit_code
        except click.exceptions.UsageError as exc:
            exc.show(file=console.stderr)
            return ExitCode.USAGE
        except click.exceptions.ClickException as exc:
            console.err("Error: %s" % exc.format_message())
            return exc.exit_code
        except click.exceptions.Abort:
            raise KeyboardInterrupt from None

    return run_guarded(console, args, call)


def run_guarded(console, args, call):
    """Run `call()` (a command; returns an exit code, or None for success) as the process's
    command with arguments `args`, turning every failure into an exit code; never raises."""
    if "--traceback" in args:
        console.traceback = True
    # click writes help and usage errors through sys.stdout/sys.stderr; point them at the console.
    with _Redirected(console.stdout, console.stderr):
        try:
            result = call()
            code = result if isinstance(result, int) else ExitCode.OK
        except KeyboardInterrupt:
            console.err("Error: interrupted.")
            code = ExitCode.INTERRUPTED
        except MflowError as exc:
            _show_traceback(console)
            for line in getattr(exc, "details", ()):
                console.err(line)
            console.err("Error: %s" % exc)
            code = exc.exit_code
        except (StdoutClosed, BrokenPipeError):
            _silence_stdout()
            code = ExitCode.BROKEN_PIPE
        except Exception as exc:  # a bug in mflow: say so and how to see more
            _show_traceback(console)
            console.err(
                "Error: internal error: %s: %s. Rerun with --traceback and report it."
                % (type(exc).__name__, exc)
            )
            code = ExitCode.INTERNAL
        try:
            console.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            code = ExitCode.BROKEN_PIPE
    return int(code)


class _Redirected:
    """contextlib's redirect_stdout and redirect_stderr in one, without importing contextlib
    into every mflow-task."""

    def __init__(self, stdout, stderr):
        self._streams = (stdout, stderr)
        self._saved = []

    def __enter__(self):
        self._saved.append((sys.stdout, sys.stderr))
        sys.stdout, sys.stderr = self._streams

    def __exit__(self, *exc_info):
        sys.stdout, sys.stderr = self._saved.pop()


def _show_traceback(console):
    if console.traceback:
        import traceback

        traceback.print_exc(file=console.stderr)


def _silence_stdout():
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def entry_point(command):
    """A `main()` for a bin/ executable: run `command` and exit with its code."""

    def main(argv=None, console=None):
        sys.exit(run_cli(command, argv, console))

    return main
