"""What a child process's wait status means, in words people read in error messages."""

import os
import signal


def describe_wait_status(status):
    """'killed by signal 9 (SIGKILL)' or 'exited with code 3', from os.waitpid's status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "signal %d" % number
        return "killed by signal %d (%s)" % (number, name)
    return "exited with code %d" % os.WEXITSTATUS(status)


def exit_code_of(status):
    """The status a shell would report: the exit code, or 128 + the signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
