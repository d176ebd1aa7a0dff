"""A daemon thread that can be stopped and waited for: the little of `threading` that a task's
heartbeat and log copier need, on `_thread` directly. Importing threading costs every task
process about 2 ms; these threads need none of what it adds.
"""

import _thread


class StopSignal:
    """threading.Event's set() and wait(timeout), for one waiting thread."""

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._set = False

    def set(self):
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self):
        return self._set

    def wait(self, timeout):
        """True once set(), else False after `timeout` seconds."""
        if self._lock.acquire(timeout=max(0.0, timeout)):
            self._lock.release()  # stays set for the next wait
        return self._set


class DaemonThread:
    """Runs `target()` on a daemon thread (the process does not wait for it at exit)."""

    def __init__(self, target):
        self._target = target
        self._done = _thread.allocate_lock()
        self._done.acquire()

    def start(self):
        _thread.start_new_thread(self._run, ())
        return self

    def _run(self):
        try:
            self._target()
        finally:
            self._done.release()

    def join(self, timeout=None):
        """Wait until `target()` has returned, or `timeout` seconds; True if it has."""
        if self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._done.release()
            return True
        return False
