"""The metadata records as stored (immutable JSON, schema 1: FlowRecord, RunRecord, ...) and
the views derived from them for readers (RunInfo, StepInfo, TaskInfo, AttemptInfo).
"""

from __future__ import annotations

import time

from mflow.namedtuple import NamedTuple

SCHEMA = 1

RUN_END_STATUSES = ("successful", "failed", "interrupted")
RUN_STATUSES = ("running", "stale") + RUN_END_STATUSES
ATTEMPT_END_STATUSES = ("successful", "failed")
ATTEMPT_STATUSES = ("running", "stale") + ATTEMPT_END_STATUSES
TASK_STATUSES = ("pending",) + ATTEMPT_STATUSES


# --- time ------------------------------------------------------------------------------------


def iso_time(seconds):
    """Epoch seconds as ISO 8601 UTC with milliseconds: 2026-11-22T14:43:58.123Z."""
    millis = int(round(seconds * 1000))
    whole, millis = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + ".%03dZ" % millis


def parse_time(text):
    """Epoch seconds of an ISO 8601 time as iso_time() writes it (any offset accepted)."""
    from datetime import datetime, timezone

    if len(text) == 24 and text[-1] == "Z":  # what iso_time() writes: the fast path
        return (datetime.fromisoformat(text[:23]) - datetime(1970, 1, 1)).total_seconds()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


# --- stored records --------------------------------------------------------------------------


_FIELD_SETS = {}


def _load(cls, data):
    """An instance of NamedTuple `cls` from a stored dict; unknown fields (from a newer
    writer) are ignored, missing ones take their defaults."""
    fields = _FIELD_SETS.get(cls)
    if fields is None:
        fields = _FIELD_SETS[cls] = frozenset(cls._fields)
    # The fast path, taken for every record this version wrote: C-level all the way.
    if data.keys() >= fields:
        return cls._make(map(data.__getitem__, cls._fields))
    return cls(**{name: data[name] for name in cls._fields if name in data})


class FlowRecord(NamedTuple):
    """meta/<Flow>/.flow.json: the flow exists. Deterministic, so copies of it compare equal."""

    flow: str

    def to_json(self):
        return {"schema": SCHEMA, "type": "flow", "flow": self.flow}


class RunRecord(NamedTuple):
    """meta/<Flow>/<run>/run.json: a run as it started. Never changes."""

    flow: str
    run_id: str
    started_at: str
    user: Optional[str] = None
    host: Optional[str] = None
    pid: Optional[int] = None
    system_tags: tuple = ()
    user_tags: tuple = ()
    params: dict = {}
    code_key: Optional[str] = None
    origin_run_id: Optional[str] = None
    mflow_version: Optional[str] = None
    python_version: Optional[str] = None
    # {step: {"type": ..., "next": [...]}}: the static graph the run ran, so that resume
    # can refuse a flow file whose graph has changed since.
    graph: Optional[dict] = None

    @property
    def pathspec(self):
        return "%s/%s" % (self.flow, self.run_id)

    def to_json(self):
        data = {"schema": SCHEMA, "type": "run", "pathspec": self.pathspec}
        data.update(self._asdict())
        data["system_tags"] = list(self.system_tags)
        data["user_tags"] = list(self.user_tags)
        return data

    @classmethod
    def from_json(cls, data):
        if data.keys() >= _RUN_FIELDS:  # every record this version wrote: the fast path
            values = list(map(data.__getitem__, cls._fields))
            values[_SYSTEM_TAGS] = tuple(values[_SYSTEM_TAGS])
            values[_USER_TAGS] = tuple(values[_USER_TAGS])
            return cls._make(values)
        record = _load(cls, data)
        return record._replace(system_tags=tuple(record.system_tags), user_tags=tuple(record.user_tags))


_RUN_FIELDS = frozenset(RunRecord._fields)
_SYSTEM_TAGS = RunRecord._fields.index("system_tags")
_USER_TAGS = RunRecord._fields.index("user_tags")


class RunEndRecord(NamedTuple):
    """meta/<Flow>/<run>/end.json: how and when a run ended. Written once; the first wins."""

    flow: str
    run_id: str
    status: str
    ended_at: str
    # {"pathspec", "attempt", "reason"} of the first attempt that failed, if any.
    first_failure: Optional[dict] = None

    def to_json(self):
        data = {"schema": SCHEMA, "type": "run-end", "pathspec": "%s/%s" % (self.flow, self.run_id)}
        data.update(self._asdict())
        return data

    @classmethod
    def from_json(cls, data):
        return _load(cls, data)


class TagChangeRecord(NamedTuple):
    """meta/<Flow>/<run>/tags.<seq>.json: one change of a run's user tags; replayed in order
    of seq, each removes `remove` and then adds `add`."""

    flow: str
    run_id: str
    seq: int
    at: str
    user: Optional[str] = None
    add: tuple = ()
    remove: tuple = ()

    def to_json(self):
        data = {"schema": SCHEMA, "type": "tags", "pathspec": "%s/%s" % (self.flow, self.run_id)}
        data.update(self._asdict())
        data["add"] = list(self.add)
        data["remove"] = list(self.remove)
        return data

    @classmethod
    def from_json(cls, data):
        record = _load(cls, data)
        return record._replace(add=tuple(record.add), remove=tuple(record.remove))


class TaskRecord(NamedTuple):
    """A task: its place in foreach splits, the tasks it read from, the task it was cloned
    from by resume. In meta/<Flow>/<run>/<step>/<task>/task.json, or carried by the task's
    first attempt-start record."""

    flow: str
    run_id: str
    step: str
    task_id: str
    foreach_stack: tuple = ()
    foreach_index: Optional[int] = None
    parent_tasks: tuple = ()
    origin_pathspec: Optional[str] = None
    registered_at: Optional[str] = None

    @property
    def pathspec(self):
        return "%s/%s/%s/%s" % (self.flow, self.run_id, self.step, self.task_id)

    def to_json(self):
        data = {"schema": SCHEMA, "type": "task", "pathspec": self.pathspec}
        data.update(self._asdict())
        data["foreach_stack"] = list(self.foreach_stack)
        data["parent_tasks"] = list(self.parent_tasks)
        return data

    @classmethod
    def from_json(cls, data):
        record = _load(cls, data)
        return record._replace(foreach_stack=tuple(record.foreach_stack), parent_tasks=tuple(record.parent_tasks))


class AttemptStartRecord(NamedTuple):
    """meta/<Flow>/<run>/<step>/<task>/<attempt>.start.json: an attempt began."""

    pathspec: str
    attempt: int
    started_at: str
    pid: Optional[int] = None
    host: Optional[str] = None
    python_version: Optional[str] = None
    task: Optional[TaskRecord] = None
    resources: Optional[dict] = None  # what @resources (merged) asked for
    fallback: bool = False  # the @catch attempt that stands in for failed ones
    # {"key": blob of the interpreter's distributions, "python", "env_id"} (see mflow.env.inventory)
    environment: Optional[dict] = None

    def to_json(self):
        data = {"schema": SCHEMA, "type": "attempt-start"}
        data.update(self._asdict())
        data["task"] = self.task.to_json() if self.task is not None else None
        return data

    @classmethod
    def from_json(cls, data):
        record = _load(cls, data)
        if record.task is not None:
            record = record._replace(task=TaskRecord.from_json(record.task))
        return record


class AttemptEndRecord(NamedTuple):
    """meta/<Flow>/<run>/<step>/<task>/<attempt>.end.json: an attempt ended, and how."""

    pathspec: str
    attempt: int
    ended_at: str
    status: str
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    reason: Optional[str] = None
    duration_s: Optional[float] = None
    # A failure's {"type", "message", "traceback"}; what @catch stores.
    exception: Optional[dict] = None
    # A success's {"next", "transition", "foreach_splits"}; what resume replays.
    result: Optional[dict] = None

    def to_json(self):
        data = {"schema": SCHEMA, "type": "attempt-end"}
        data.update(self._asdict())
        return data

    @classmethod
    def from_json(cls, data):
        return _load(cls, data)


# --- derived views ---------------------------------------------------------------------------


def _duration(start, end):
    if start is None or end is None:
        return None
    return round(max(0.0, parse_time(end) - parse_time(start)), 3)


class RunInfo(NamedTuple):
    """A run as readers see it: its record, end, current user tags and derived status."""

    record: RunRecord
    end: Optional[RunEndRecord]
    user_tags: tuple
    heartbeat_at: Optional[str]
    status: str

    @property
    def flow(self):
        return self.record.flow

    @property
    def run_id(self):
        return self.record.run_id

    @property
    def pathspec(self):
        return self.record.pathspec

    @property
    def system_tags(self):
        return self.record.system_tags

    @property
    def tags(self):
        """Every tag, user and system: what namespaces and --tag filters match."""
        return frozenset(self.record.system_tags) | frozenset(self.user_tags)

    @property
    def started_at(self):
        return self.record.started_at

    @property
    def ended_at(self):
        return self.end.ended_at if self.end is not None else None

    @property
    def finished(self):
        return self.end is not None

    def to_row(self):
        """The JSON Lines row of `mflow-meta runs` (schema 1)."""
        record = self.record
        user_tags = self.user_tags
        system = record.system_tags
        return {
            "schema": SCHEMA,
            "pathspec": record.pathspec,
            "flow": record.flow,
            "run_id": record.run_id,
            "status": self.status,
            "user": record.user,
            "host": record.host,
            "started_at": record.started_at,
            "ended_at": self.ended_at,
            "duration_s": _duration(record.started_at, self.ended_at),
            "heartbeat_at": self.heartbeat_at,
            "tags": sorted(set(system).union(user_tags)),
            "user_tags": sorted(user_tags),
            "system_tags": sorted(system),
            "params": record.params,
            "code_key": record.code_key,
            "origin_run_id": record.origin_run_id,
        }


class AttemptInfo(NamedTuple):
    """One attempt of a task: its start and end records, last heartbeat, derived status."""

    pathspec: str
    attempt: int
    start: Optional[AttemptStartRecord]
    end: Optional[AttemptEndRecord]
    heartbeat_at: Optional[str]
    status: str

    @property
    def started_at(self):
        return self.start.started_at if self.start is not None else None

    @property
    def ended_at(self):
        return self.end.ended_at if self.end is not None else None

    @property
    def duration_s(self):
        """Seconds the attempt took: as its process measured them, else from the records' times."""
        if self.end is not None and self.end.duration_s is not None:
            return self.end.duration_s
        return _duration(self.started_at, self.ended_at)

    def to_row(self):
        start, end = self.start, self.end
        return {
            "schema": SCHEMA,
            "pathspec": self.pathspec,
            "attempt": self.attempt,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
            "heartbeat_at": self.heartbeat_at,
            "pid": start.pid if start is not None else None,
            "host": start.host if start is not None else None,
            "python_version": start.python_version if start is not None else None,
            "exit_code": end.exit_code if end is not None else None,
            "signal": end.signal if end is not None else None,
            "reason": end.reason if end is not None else None,
        }


class TaskInfo(NamedTuple):
    """A task: its record (None when only attempts were written), attempts, final status.

    The final status is the latest attempt's; a task cloned by resume (origin_pathspec and
    no attempts of its own) is successful; a registered task with no attempt is pending.
    """

    flow: str
    run_id: str
    step: str
    task_id: str
    record: Optional[TaskRecord]
    attempts: tuple
    status: str

    @property
    def pathspec(self):
        return "%s/%s/%s/%s" % (self.flow, self.run_id, self.step, self.task_id)

    @property
    def latest(self):
        return self.attempts[-1] if self.attempts else None

    @property
    def started_at(self):
        starts = [a.started_at for a in self.attempts if a.started_at]
        return min(starts) if starts else None

    @property
    def ended_at(self):
        latest = self.latest
        return latest.ended_at if latest is not None else None

    def to_row(self):
        """The JSON Lines row of `mflow-meta tasks` (schema 1)."""
        record = self.record
        latest = self.latest
        latest_row = latest.to_row() if latest is not None else {}
        return {
            "schema": SCHEMA,
            "pathspec": self.pathspec,
            "flow": self.flow,
            "run_id": self.run_id,
            "step": self.step,
            "task_id": self.task_id,
            "status": self.status,
            "attempts": len(self.attempts),
            "attempt": latest.attempt if latest is not None else None,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": _duration(self.started_at, self.ended_at),
            "exit_code": latest_row.get("exit_code"),
            "signal": latest_row.get("signal"),
            "reason": latest_row.get("reason"),
            "pid": latest_row.get("pid"),
            "host": latest_row.get("host"),
            "foreach_index": record.foreach_index if record is not None else None,
            "foreach_stack": list(record.foreach_stack) if record is not None else [],
            "parent_tasks": list(record.parent_tasks) if record is not None else [],
            "origin_pathspec": record.origin_pathspec if record is not None else None,
        }


class StepInfo(NamedTuple):
    """A step of a run, summarized from its tasks."""

    flow: str
    run_id: str
    step: str
    tasks: tuple

    @property
    def pathspec(self):
        return "%s/%s/%s" % (self.flow, self.run_id, self.step)

    @property
    def status(self):
        """failed if any task failed; else running, stale or pending if any task is; else successful."""
        statuses = {task.status for task in self.tasks}
        for status in ("failed", "running", "stale", "pending"):
            if status in statuses:
                return status
        return "successful"

    def to_row(self):
        """The JSON Lines row of `mflow-meta steps` (schema 1)."""
        starts = [t.started_at for t in self.tasks if t.started_at]
        ends = [t.ended_at for t in self.tasks if t.ended_at]
        started = min(starts) if starts else None
        ended = max(ends) if ends and self.status not in ("running", "pending") else None
        counts = {}
        for task in self.tasks:
            counts[task.status] = counts.get(task.status, 0) + 1
        return {
            "schema": SCHEMA,
            "pathspec": self.pathspec,
            "flow": self.flow,
            "run_id": self.run_id,
            "step": self.step,
            "status": self.status,
            "tasks": len(self.tasks),
            "task_statuses": counts,
            "started_at": started,
            "ended_at": ended,
            "duration_s": _duration(started, ended),
        }
