"""The overlap lock: one run at a time of a flow on a branch, so cron runs cannot pile up.

A lock is a folder of numbered holder records, `meta/<Flow>/.locks/<name>/<000000000007>.json`,
each written create-if-absent. The highest number holds the lock while its run is running;
once that run has ended, or gone stale (its driver died without an end), or never started
within MFLOW_STALE_AFTER of taking the lock, the next run takes it by writing the next
number, which only one writer can do. Nothing is ever rewritten or released: a run's end
releases its lock, and a killed holder's lock is recovered the same way.
"""

import os
import time

from mflow.errors import NotFoundError, RunLockedError
from mflow.meta import paths
from mflow.meta.records import iso_time, parse_time

LOCKS = ".locks"
_POLL_SECONDS = 1.0


def lock_prefix(flow, name):
    return "%s%s/%s/" % (paths.flow_prefix(flow), LOCKS, name)


class RunLock:
    """The lock `name` (a flow name within its project, e.g. fraud.prod.TrainFlow) of `flow`."""

    def __init__(self, meta, flow, name, mode="refuse", poll=_POLL_SECONDS, clock=time.time, sleep=time.sleep):
        if mode not in ("wait", "refuse"):
            raise ValueError("a lock's mode is wait or refuse, not %r" % (mode,))
        self.meta, self.flow, self.name, self.mode = meta, flow, name, mode
        self.poll, self.clock, self.sleep = poll, clock, sleep
        self.prefix = lock_prefix(flow, name)

    def holder(self):
        """(number, record) of the newest holder record, or (0, None) when there is none."""
        names = [n for n in self.meta.backend.list_children(self.prefix) if n.endswith(".json")]
        if not names:
            return 0, None
        newest = max(names)
        return int(newest[: -len(".json")]), self.meta._read(self.prefix + newest)

    def live(self, record):
        """True while the holder's run may still be running."""
        if record is None:
            return False
        try:
            info = self.meta.run(self.flow, record["run_id"])
        except NotFoundError:
            # Took the lock and has not written its run record yet, or died before it did.
            return self.clock() - parse_time(record["acquired_at"]) < self.meta.stale_after
        return info.status == "running"

    def acquire(self, run_id, on_wait=None):
        """Take the lock for run `run_id` of the flow. While another run holds it: wait
        (calling on_wait(holder_run_id) once) or raise RunLockedError, as the mode says."""
        waited = False
        while True:
            number, record = self.holder()
            if record is not None and record.get("run_id") == str(run_id):
                return number
            if not self.live(record):
                mine = {
                    "schema": 1,
                    "type": "run-lock",
                    "flow": self.flow,
                    "lock": self.name,
                    "run_id": str(run_id),
                    "acquired_at": iso_time(self.clock()),
                    "host": _host(),
                    "pid": os.getpid(),
                    "after": record.get("run_id") if record else None,
                    "nonce": os.urandom(8).hex(),
                }
                if self.meta._write("%s%012d.json" % (self.prefix, number + 1), mine, exclusive=True):
                    return number + 1
                continue  # another run took it first: look again
            holder = record["run_id"]
            if self.mode == "refuse":
                raise RunLockedError(
                    "run %s/%s of %s is still running, so this run does not start" % (self.flow, holder, self.name),
                    "Wait for it to end (or give --lock wait); `mflow-meta show %s/%s` shows it" % (self.flow, holder),
                    holder="%s/%s" % (self.flow, holder),
                )
            if not waited and on_wait is not None:
                on_wait("%s/%s" % (self.flow, holder))
            waited = True
            self.sleep(self.poll)


def _host():
    import socket

    return socket.gethostname()
