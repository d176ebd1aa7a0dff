"""A heartbeat: a daemon thread that calls a beat function every few seconds, so that readers
can tell a live run or attempt from one whose process died (no heartbeat for a while: stale).
"""

from mflow.background import DaemonThread, StopSignal


class Heartbeat:
    """Calls `beat()` every `interval` seconds, the first time after `first_after` seconds
    (default: one interval, so that short tasks never write one), until stop().

    A failed beat (the store briefly unreachable) is kept in `last_error` and counted in
    `failures`, never raised: a missing heartbeat only makes readers call the run stale.
    """

    def __init__(self, beat, interval, first_after=None):
        if interval <= 0:
            raise ValueError("heartbeat interval must be positive, not %r" % (interval,))
        self._beat = beat
        self.interval = float(interval)
        self.first_after = self.interval if first_after is None else float(first_after)
        self.beats = 0
        self.failures = 0
        self.last_error = None
        self._stop = StopSignal()
        self._thread = None

    def start(self):
        if self._thread is None:
            self._thread = DaemonThread(self._loop)
            self._thread.start()
        return self

    def _loop(self):
        wait = self.first_after
        while not self._stop.wait(wait):
            try:
                self._beat()
                self.beats += 1
            except Exception as exc:  # noqa: BLE001 - any failure only delays the next beat
                self.failures += 1
                self.last_error = exc
            wait = self.interval

    def stop(self, timeout=5.0):
        """Stop beating; waits up to `timeout` seconds for a beat in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
