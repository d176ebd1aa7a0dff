"""MetaStore: run metadata (runs, tasks, attempts, tags, latest pointers) kept in the store
itself as immutable JSON records under meta/, so a shared store is a shared history.
"""

from __future__ import annotations

import os
import sys
import time

from mflow import jsonio
from mflow.errors import AlreadyExistsError, NotFoundError, ParameterError, PathspecError
from mflow.namedtuple import NamedTuple
from mflow.store.backend import ObjectNotFound
from mflow.store.layout import META
from mflow.store.pathspec import Pathspec

from . import paths
from .records import (
    ATTEMPT_END_STATUSES,
    RUN_END_STATUSES,
    SCHEMA,
    AttemptEndRecord,
    AttemptInfo,
    AttemptStartRecord,
    FlowRecord,
    RunEndRecord,
    RunInfo,
    RunRecord,
    StepInfo,
    TagChangeRecord,
    TaskInfo,
    TaskRecord,
    iso_time,
    parse_time,
)
from .tags import apply_changes, get_namespace, in_namespace, system_tags, validate_tag, validate_tags

DEFAULT_HEARTBEAT_INTERVAL = 10.0  # seconds between heartbeats (MFLOW_HEARTBEAT_INTERVAL)
DEFAULT_STALE_AFTER = 60.0  # seconds without a heartbeat before a run is stale (MFLOW_STALE_AFTER)


class _Default:
    def __repr__(self):
        return "DEFAULT"


#: The `namespace` argument meaning "the namespace in use" (see mflow.meta.get_namespace).
DEFAULT = _Default()

#: Names that stand for a run id in pathspecs (see mflow.meta.resolver), and whether each
#: means the latest successful run; no run may have one as its id.
RUN_ALIASES = {"latest": False, "latest_successful": True}


class RunTags(NamedTuple):
    """A run's tags: `user` (changeable) and `system` (fixed at start), each in order."""

    user: tuple
    system: tuple

    @property
    def all(self):
        return frozenset(self.user) | frozenset(self.system)


def parse_duration(text, name="duration"):
    """Seconds in "90", "90s", "15m", "6h", "2d" or "1w"; ParameterError otherwise."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
    if not match:
        raise ParameterError(
            "%s %r is not a duration" % (name, text), "Write it as a number with s, m, h, d or w, e.g. 90s or 7d"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


def parse_since(value, now=None):
    """Epoch seconds of a --since value: a duration back from now ("7d", "12h"), an ISO date
    or time ("2026-11-20", "2026-11-20T09:00", UTC unless it has an offset), a datetime,
    or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime, timezone

    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    text = str(value).strip()
    now = time.time() if now is None else now
    if text and text[-1:] in "smhdw" and text[:-1].replace(".", "", 1).isdigit():
        return now - parse_duration(text)
    try:
        return parse_time(text)
    except ValueError:
        raise ParameterError(
            "%r is not a date, a time or a duration" % text,
            "Write it as 2026-11-20, 2026-11-20T09:00:00Z or 7d",
        ) from None


def setting(environ, name, default, value=None):
    """A duration setting: `value` (a flag) > environ[name] > default, in seconds (> 0)."""
    text = value if value is not None else environ.get(name)
    if text is None or text == "":
        return default
    seconds = parse_duration(text, name if value is None else "value")
    if seconds <= 0:
        raise ParameterError("%s must be more than 0 seconds, not %r" % (name, text), "Give a positive duration")
    return seconds


def _host():
    try:
        return os.uname().nodename
    except AttributeError:  # Windows
        import platform

        return platform.node()


def _python_version():
    return "%d.%d.%d" % sys.version_info[:3]


class paused_gc:
    """Pause the cyclic garbage collector while thousands of records are turned into
    objects (or rows): they hold no cycles, and the collections that their allocations
    would set off cost a third of a large listing's time."""

    def __enter__(self):
        import gc

        self._was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        import gc

        if self._was_enabled:
            gc.enable()
        return False


def _jsonable(value):
    """`value` as plain JSON data; anything JSON cannot hold becomes its repr."""
    return jsonio.loads(jsonio.dumps(value, default=repr))


def _run_spec(flow, run_id):
    return Pathspec.parse("%s/%s" % (flow, run_id), 2, 2)


def _task_spec(task_pathspec):
    if isinstance(task_pathspec, Pathspec):
        task_pathspec = str(task_pathspec)
    return Pathspec.parse(task_pathspec, 4, 4)


def _id_order(value):
    # Numeric ids (every allocated one) in numeric order, then the rest as text.
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _pointer_order(entry):
    return (entry.get("started_at") or "", _id_order(entry.get("run_id") or ""))


class MetaStore:
    """The metadata of every run in one Store. Cheap to create; holds no open resources.

    Writers (the driver, mflow-task) call allocate_run_id, start_run, register_task,
    start_attempt, end_attempt, end_run; readers (mflow-meta, the client) call runs, run,
    latest, steps, tasks, attempts, tags. man/mflow-meta.1 documents the layout and fields.

    `stale_after` and `heartbeat_interval` (seconds, or duration text like "2m") default to
    MFLOW_STALE_AFTER and MFLOW_HEARTBEAT_INTERVAL in the store's environment, else 60 s
    and 10 s. `clock` gives the current epoch time (tests pass their own).
    """

    def __init__(self, store, stale_after=None, heartbeat_interval=None, clock=None):
        self.store = store
        self.backend = store.backend
        environ = getattr(store, "environ", None)
        self.environ = os.environ if environ is None else environ
        self.stale_after = setting(self.environ, "MFLOW_STALE_AFTER", DEFAULT_STALE_AFTER, stale_after)
        self.heartbeat_interval = setting(
            self.environ, "MFLOW_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL, heartbeat_interval
        )
        self._clock = clock or time.time

    @property
    def url(self):
        return self.backend.url

    # --- small helpers -------------------------------------------------------------------

    def _now(self):
        return self._clock()

    def _user(self, user=None):
        if user:
            return user
        from mflow.flow.current import resolve_username

        return resolve_username(self.environ)

    def _write(self, path, data, exclusive=False):
        return self.store.write_record(path, data, exclusive=exclusive)

    def _get(self, path):
        try:
            return self.backend.get(path)
        except ObjectNotFound:
            return None

    def _read(self, path):
        data = self._get(path)
        # One record: mflow.jsonio, as a task reads a few and orjson (or json) costs it more
        # to import than it saves; the listings read many with orjson.
        return _loads(data, path, self.url, jsonio.loads) if data is not None else None

    def _pointer(self, flow, successful, user=None):
        from .pointers import PointerLog  # for runs and listings; a task never needs it

        return PointerLog(self.backend, paths.pointer_prefix(flow, successful, user), _pointer_order)

    def _move_pointers(self, flow, record, successful):
        # The flow's pointer and the run's user's own, so that `latest` in the default
        # namespace (user:<name>) is one read too. Moved before the record they point to
        # is written: a writer killed in between leaves a pointer ahead of the records,
        # which latest() notices and looks past, never one that lags behind them.
        entry = _pointer_entry(record)
        self._pointer(flow, successful).advance(entry)
        if record.user:
            self._pointer(flow, successful, record.user).advance(entry)

    def _not_found_run(self, flow, run_id):
        if not self.backend.list_children(paths.flow_prefix(flow)):
            return self._not_found_flow(flow)
        return NotFoundError(
            "store %s has no run %s/%s" % (self.url, flow, run_id),
            "`mflow-meta runs %s --all-namespaces` lists its runs" % flow,
            store=self.url,
        )

    def _not_found_flow(self, flow):
        return NotFoundError(
            "store %s has no flow %s" % (self.url, flow),
            "`mflow-meta flows` lists the flows it has",
            store=self.url,
        )

    # --- writers: runs -------------------------------------------------------------------

    def allocate_run_id(self, flow, run_id=None):
        """A new run id of `flow`, claimed in the store so no other run can have it.

        Allocated ids are the claim time in milliseconds since the epoch, as decimal text,
        bumped by 1 ms while taken: unique across processes and machines sharing the
        store (each claim is a create-if-absent), and in start order. An explicit `run_id`
        is claimed as given; AlreadyExistsError when it is taken, PathspecError when it is
        `latest` or `latest_successful` (they stand for run ids in pathspecs).
        """
        Pathspec.parse(flow, 1, 1)
        if run_id is not None and str(run_id) in RUN_ALIASES:
            raise PathspecError(
                "a run cannot have the id %r: %s/%s names the flow's %s run in pathspecs"
                % (str(run_id), flow, run_id, str(run_id).replace("_", " ")),
                "Choose another run id, or leave it out to get a new one",
            )
        self._ensure_flow(flow)
        user, host, pid = self._user(), _host(), os.getpid()

        def claim(candidate):
            record = {
                "schema": SCHEMA,
                "type": "run-claim",
                "flow": flow,
                "run_id": candidate,
                "pathspec": "%s/%s" % (flow, candidate),
                "claimed_at": iso_time(self._now()),
                "user": user,
                "host": host,
                "pid": pid,
                # Unique bytes for every claim: some S3-compatible servers (SeaweedFS) let a
                # conditional PUT succeed when the object there holds the very same bytes.
                "nonce": os.urandom(8).hex(),
            }
            return self._write(paths.claim_path(flow, candidate), record, exclusive=True)

        if run_id is not None:
            run_id = str(run_id)
            _run_spec(flow, run_id)
            if not claim(run_id):
                raise AlreadyExistsError(
                    "run %s/%s already exists in store %s" % (flow, run_id, self.url),
                    "Choose another run id, or leave it out to get a new one",
                    store=self.url,
                )
            return run_id
        candidate = int(self._now() * 1000)
        while not claim(str(candidate)):
            candidate = max(candidate + 1, int(self._now() * 1000))
        return str(candidate)

    def _ensure_flow(self, flow):
        path = paths.flow_record_path(flow)
        if not self.backend.exists(path):
            self._write(path, FlowRecord(flow).to_json(), exclusive=True)

    def start_run(
        self,
        flow,
        run_id,
        *,
        params,
        user_tags=(),
        code_key=None,
        origin_run_id=None,
        user=None,
        host=None,
        runtime="mflow",
        graph=None,
        extra_system_tags=(),
    ):
        """Write the run record of an allocated run id and move the latest pointer to it.

        System tags are computed (user:NAME, runtime:RUNTIME, python_version:X.Y.Z,
        mflow_version:V, date:YYYY-MM-DD); user tags are validated (TagError). `params`
        are the parameter values, kept as JSON (anything else as its repr).
        AlreadyExistsError if the run has started already. Returns the RunRecord.
        """
        from mflow import __version__

        run_id = str(run_id)
        _run_spec(flow, run_id)
        user_tags = validate_tags(user_tags)
        if origin_run_id is not None:
            origin_run_id = str(origin_run_id)
            _run_spec(flow, origin_run_id)
        user = self._user(user)
        now = self._now()
        record = RunRecord(
            flow=flow,
            run_id=run_id,
            started_at=iso_time(now),
            user=user,
            host=host or _host(),
            pid=os.getpid(),
            system_tags=system_tags(user, runtime, now) + tuple(validate_tag(t) for t in extra_system_tags),
            user_tags=user_tags,
            params=_jsonable(dict(params or {})),
            code_key=code_key,
            origin_run_id=origin_run_id,
            mflow_version=__version__,
            python_version=_python_version(),
            graph=graph,
        )
        self._ensure_flow(flow)
        if self.backend.exists(paths.run_path(flow, run_id)):
            raise self._started_already(flow, run_id)
        self._move_pointers(flow, record, successful=False)
        if not self._write(paths.run_path(flow, run_id), record.to_json(), exclusive=True):
            raise self._started_already(flow, run_id)
        return record

    def _started_already(self, flow, run_id):
        return AlreadyExistsError(
            "run %s/%s has already started" % (flow, run_id),
            "Allocate a new run id for a new run",
            store=self.url,
        )

    def heartbeat_run(self, flow, run_id):
        """Record that the run's driver is alive now."""
        self.backend.put(paths.run_heartbeat_path(flow, run_id), iso_time(self._now()).encode("ascii") + b"\n")

    def run_heartbeat(self, flow, run_id, interval=None):
        """A started Heartbeat (see mflow.meta.heartbeat) calling heartbeat_run every
        `interval` seconds (default: heartbeat_interval); stop() it when the run ends."""
        from .heartbeat import Heartbeat

        interval = interval or self.heartbeat_interval
        return Heartbeat(lambda: self.heartbeat_run(flow, run_id), interval).start()

    def end_run(self, flow, run_id, status, first_failure=None):
        """Write the run's end record (the first end written wins) and move the latest and,
        for a successful run, the latest successful pointer, never backwards.
        Returns the RunEndRecord in the store."""
        if status not in RUN_END_STATUSES:
            raise ValueError("run status must be one of %s, not %r" % (", ".join(RUN_END_STATUSES), status))
        run_id = str(run_id)
        record = self.run_record(flow, run_id)
        path = paths.run_end_path(flow, run_id)
        existing = self._read(path)
        if existing is not None:
            end = RunEndRecord.from_json(existing)
        else:
            end = RunEndRecord(
            flow=flow, run_id=run_id, status=status, ended_at=iso_time(self._now()), first_failure=first_failure
        )
        # Pointers first (see _move_pointers): latest() checks that the run it is pointed
        # to did succeed, so losing a race for the end record to another status is safe.
        self._move_pointers(flow, record, successful=False)
        if end.status == "successful":
            self._move_pointers(flow, record, successful=True)
        if existing is None and not self._write(path, end.to_json(), exclusive=True):
            end = RunEndRecord.from_json(self._read(path))
        return end

    # --- writers: tasks and attempts -------------------------------------------------------

    def task_record(self, flow, run_id, step, task_id, *, foreach_stack=(), parent_tasks=(), origin_pathspec=None):
        """A checked TaskRecord, not written (register_task and start_attempt write it).

        `foreach_stack` holds one frame per enclosing foreach, outermost first: the split
        index as an int, or a mapping with an "index" (and e.g. "step", "var",
        "num_splits"); foreach_index is the innermost frame's index. `parent_tasks` and
        `origin_pathspec` are task pathspecs.
        """
        spec = Pathspec.task(flow, run_id, step, task_id)
        frames = []
        index = None
        for frame in foreach_stack or ():
            if isinstance(frame, int) and not isinstance(frame, bool):
                frames.append(frame)
                index = frame
            elif hasattr(frame, "keys"):
                frame = _jsonable(dict(frame))
                frames.append(frame)
                index = frame.get("index")
            else:
                raise TypeError("a foreach frame is a split index or a mapping with an 'index', not %r" % (frame,))
        parents = tuple(str(_task_spec(p)) for p in parent_tasks or ())
        if origin_pathspec is not None:
            origin_pathspec = str(_task_spec(origin_pathspec))
        return TaskRecord(
            flow=spec.flow,
            run_id=spec.run_id,
            step=spec.step,
            task_id=spec.task_id,
            foreach_stack=tuple(frames),
            foreach_index=index,
            parent_tasks=parents,
            origin_pathspec=origin_pathspec,
            registered_at=iso_time(self._now()),
        )

    def register_task(self, flow, run_id, step, task_id, *, foreach_stack=(), parent_tasks=(), origin_pathspec=None):
        """Write a task's record (its foreach stack, parent tasks, and the task it was cloned
        from by resume) as task.json. Writing it again keeps the first. Returns the
        TaskRecord stored. (start_attempt can carry the same fields, saving this write.)"""
        record = self.task_record(
            flow,
            run_id,
            step,
            task_id,
            foreach_stack=foreach_stack,
            parent_tasks=parent_tasks,
            origin_pathspec=origin_pathspec,
        )
        path = paths.task_path(paths.task_prefix(flow, record.run_id, step, record.task_id))
        if not self._write(path, record.to_json(), exclusive=True):
            return TaskRecord.from_json(self._read(path))
        return record

    def start_attempt(
        self,
        task_pathspec,
        attempt,
        *,
        pid,
        host=None,
        foreach_stack=None,
        parent_tasks=None,
        origin_pathspec=None,
        resources=None,
        fallback=False,
        environment=None,
    ):
        """Record that attempt `attempt` (0, 1, ...) of a task started in process `pid`.

        Given any of foreach_stack, parent_tasks or origin_pathspec (see task_record), the
        record carries the task's record too, so a task costs two writes per attempt: this
        one and end_attempt's. `environment` is the interpreter's record (mflow.env.inventory).
        AlreadyExistsError if that attempt was started before.
        """
        spec = _task_spec(task_pathspec)
        task = None
        if foreach_stack is not None or parent_tasks is not None or origin_pathspec is not None:
            task = self.task_record(
                *spec.parts,
                foreach_stack=foreach_stack,
                parent_tasks=parent_tasks,
                origin_pathspec=origin_pathspec,
            )
        record = AttemptStartRecord(
            pathspec=str(spec),
            attempt=int(attempt),
            started_at=iso_time(self._now()),
            pid=pid,
            host=host or _host(),
            python_version=_python_version(),
            task=task,
            resources=_jsonable(dict(resources)) if resources else None,
            fallback=bool(fallback),
            environment=environment,
        )
        prefix = paths.task_prefix(*spec.parts)
        if not self._write(paths.attempt_start_path(prefix, record.attempt), record.to_json(), exclusive=True):
            raise AlreadyExistsError(
                "attempt %d of task %s has already started" % (record.attempt, spec),
                "Give each attempt of a task its own number",
                store=self.url,
            )
        return record

    def heartbeat_attempt(self, task_pathspec, attempt):
        """Record that the attempt's process is alive now."""
        spec = _task_spec(task_pathspec)
        path = paths.attempt_heartbeat_path(paths.task_prefix(*spec.parts), int(attempt))
        self.backend.put(path, iso_time(self._now()).encode("ascii") + b"\n")

    def attempt_heartbeat(self, task_pathspec, attempt, interval=None):
        """A started Heartbeat calling heartbeat_attempt every `interval` seconds, the first
        after one interval, so that short attempts write none. stop() it at the end."""
        from .heartbeat import Heartbeat

        interval = interval or self.heartbeat_interval
        return Heartbeat(lambda: self.heartbeat_attempt(task_pathspec, attempt), interval).start()

    def end_attempt(
        self,
        task_pathspec,
        attempt,
        status,
        *,
        exit_code=None,
        signal=None,
        reason=None,
        duration=None,
        exception=None,
        result=None,
    ):
        """Record how an attempt ended: status successful or failed, the exit code or the
        signal that ended its process, a short reason ("killed after timeout of 60 s"), and
        the seconds it took as its process measured them; for a failure the exception's
        {"type", "message", "traceback"}, for a success the result {"next", "transition",
        "foreach_splits"} that resume replays. The first end written wins; returns the
        AttemptEndRecord in the store."""
        if status not in ATTEMPT_END_STATUSES:
            raise ValueError("attempt status must be one of %s, not %r" % (", ".join(ATTEMPT_END_STATUSES), status))
        spec = _task_spec(task_pathspec)
        record = AttemptEndRecord(
            pathspec=str(spec),
            attempt=int(attempt),
            ended_at=iso_time(self._now()),
            status=status,
            exit_code=exit_code,
            signal=signal,
            reason=reason,
            duration_s=round(float(duration), 6) if duration is not None else None,
            exception=_jsonable(dict(exception)) if exception else None,
            result=_jsonable(dict(result)) if result else None,
        )
        path = paths.attempt_end_path(paths.task_prefix(*spec.parts), record.attempt)
        if not self._write(path, record.to_json(), exclusive=True):
            return AttemptEndRecord.from_json(self._read(path))
        return record

    # --- readers: flows and runs -----------------------------------------------------------

    def flows(self):
        """Names of the flows with metadata in the store, sorted."""
        names = self.backend.list_children(META)
        return sorted(n[:-1] for n in names if n.endswith("/") and _is_identifier(n[:-1]))

    def run_ids(self, flow):
        """Every run id with a folder under the flow (started or only allocated), unordered.
        NotFoundError for a flow the store has never seen."""
        Pathspec.parse(flow, 1, 1)
        names = self.backend.list_children(paths.flow_prefix(flow))
        if not names:
            raise self._not_found_flow(flow)
        return [n[:-1] for n in names if n.endswith("/") and not n.startswith(".")]

    def run_record(self, flow, run_id):
        """The RunRecord of a run; NotFoundError if it never started."""
        run_id = str(run_id)
        _run_spec(flow, run_id)
        data = self._read(paths.run_path(flow, run_id))
        if data is None:
            raise self._not_found_run(flow, run_id)
        return RunRecord.from_json(data)

    def run(self, flow, run_id):
        """The RunInfo of one run (record, end, current tags, status); NotFoundError if absent."""
        run_id = str(run_id)
        _run_spec(flow, run_id)
        infos = self._run_infos(flow, [run_id])
        if not infos:
            raise self._not_found_run(flow, run_id)
        return infos[0]

    def runs(self, flow, tags=(), status=None, since=None, limit=None, namespace=DEFAULT):
        """RunInfo of the flow's runs, newest first, that carry every tag in `tags`, have
        `status` (running, successful, failed, interrupted, stale), started at or after
        `since` (see parse_since), and are in `namespace` (DEFAULT: the one in use; None:
        all); at most `limit` of them. NotFoundError for an unknown flow."""
        if isinstance(tags, str):
            tags = (tags,)
        ns = get_namespace(self.environ) if namespace is DEFAULT else namespace
        since_at = parse_since(since, self._now())
        since_text = iso_time(since_at) if since_at is not None else None
        infos = []
        with paused_gc():
            for info in self._run_infos(flow, self.run_ids(flow), use_index=True):
                if since_text is not None and info.started_at < since_text:
                    continue
                if status is not None and info.status != status:
                    continue
                every = info.tags
                if not in_namespace(every, ns) or any(t not in every for t in tags):
                    continue
                infos.append(info)
            infos.sort(key=lambda i: (i.started_at, _id_order(i.run_id)), reverse=True)
        return infos[:limit] if limit is not None else infos

    def latest(self, flow, successful=False, namespace=DEFAULT):
        """The RunInfo of the flow's latest run (latest successful run), in start order, in
        `namespace`. Read from the flow's pointer, which every run and resume moves
        forward; NotFoundError when there is none."""
        Pathspec.parse(flow, 1, 1)
        ns = get_namespace(self.environ) if namespace is DEFAULT else namespace
        user = ns[len("user:") :] if ns and ns.startswith("user:") else None
        _slot, entry = self._pointer(flow, successful, user).read()
        if entry is not None:
            infos = self._run_infos(flow, [entry["run_id"]])
            if infos and in_namespace(infos[0].tags, ns) and (not successful or infos[0].status == "successful"):
                return infos[0]
        # No pointer for this namespace (a custom tag, a copied store), or one ahead of the
        # records (its writer was killed): the newest run in the namespace is the answer.
        found = self.runs(flow, status="successful" if successful else None, limit=1, namespace=ns)
        if found:
            return found[0]
        raise NotFoundError(
            "flow %s has no %srun%s in store %s"
            % (flow, "successful " if successful else "", " in namespace %s" % ns if ns else "", self.url),
            "Use --all-namespaces to look at everyone's runs" if ns else "Run the flow first",
            store=self.url,
        )

    def pointer(self, flow, successful=False):
        """The run id the flow's latest (latest successful) pointer holds, in any namespace;
        None when it was never set."""
        _slot, entry = self._pointer(flow, successful).read()
        return entry["run_id"] if entry is not None else None

    def _run_infos(self, flow, run_ids, use_index=False):
        """RunInfo of each run that has a run record, in no particular order.

        With use_index, finished runs come from the flow's packs (mflow.meta.index) where
        they can, and enough finished runs read one by one get packed for next time.
        """
        from . import index as run_index  # listings only: a task never imports it

        packs = run_index.RunIndex(self.backend, flow) if use_index else None
        packed = packs.load() if packs is not None else {}
        markers = packs.tag_markers() if packs is not None else {}
        entries = {}
        loose = []
        more_tags = {}  # run id -> entry whose tag changes go on past the ones it holds
        packed_tags = {}  # run id -> tag changes its pack holds, for the runs re-read
        for run_id in run_ids:
            entry = packed.get(run_id)
            if entry is None:
                loose.append(run_id)
                continue
            if markers.get(run_id, 0) > len(entry["tags"]):
                entry = {"run": entry["run"], "end": entry["end"], "tags": list(entry["tags"])}
                more_tags[run_id] = entry
                packed_tags[run_id] = len(entry["tags"])
            entries[run_id] = entry
        wanted = []
        for run_id in loose:
            wanted.append(paths.run_path(flow, run_id))
            wanted.append(paths.run_end_path(flow, run_id))
            wanted.append(paths.tags_path(flow, run_id, 1))
        found = dict(self.backend.get_many(wanted)) if wanted else {}
        for run_id in loose:
            path = paths.run_path(flow, run_id)
            data = found.get(path)
            if data is None:  # allocated but not started (yet, or ever)
                continue
            end_path = paths.run_end_path(flow, run_id)
            end = found.get(end_path)
            entry = {"run": _loads(data, path, self.url), "end": _loads(end, end_path, self.url) if end else None}
            entry["tags"] = []
            first = found.get(paths.tags_path(flow, run_id, 1))
            if first is not None:
                entry["tags"].append(_loads(first, paths.tags_path(flow, run_id, 1), self.url))
                more_tags[run_id] = entry
            entries[run_id] = entry
        # Later tag changes, one round per sequence number, for the few runs that have them.
        while more_tags:
            want = {paths.tags_path(flow, r, len(e["tags"]) + 1): r for r, e in more_tags.items()}
            more_tags = {}
            for path, data in self.backend.get_many(list(want)):
                if data is not None:
                    entry = entries[want[path]]
                    entry["tags"].append(_loads(data, path, self.url))
                    more_tags[want[path]] = entry
        live = [r for r, e in entries.items() if e["end"] is None]
        beats = {}
        if live:
            want = {paths.run_heartbeat_path(flow, r): r for r in live}
            for path, data in self.backend.get_many(list(want)):
                if data is not None:
                    beats[want[path]] = data.decode("ascii", "replace").strip()
        now = self._now()
        infos = []
        for run_id, entry in entries.items():
            record = RunRecord.from_json(entry["run"])
            heartbeat = beats.get(run_id)
            if entry["end"] is not None:
                end = RunEndRecord.from_json(entry["end"])
                status = end.status
            else:
                end = None
                status = self._liveness(record.started_at, heartbeat, now)
            user_tags = record.user_tags
            if entry["tags"]:
                user_tags = apply_changes(user_tags, [TagChangeRecord.from_json(t) for t in entry["tags"]])
            infos.append(RunInfo(record, end, user_tags, heartbeat, status))
        if packs is not None:
            # Pack what was read one by one and is final, and packed runs whose tags have
            # changed since (not those with a marker whose change was never written: they
            # would be packed again at every listing).
            changed = [r for r in loose if r in entries and entries[r]["end"] is not None]
            changed += [r for r, count in packed_tags.items() if len(entries[r]["tags"]) > count]
            if len(changed) >= run_index.PACK_MIN:
                packs.save({r: entries[r] for r in changed}, known=packed)
        return infos

    def _liveness(self, started_at, heartbeat_at, now):
        """running while the start or the last heartbeat is within stale_after, else stale."""
        last = parse_time(started_at)
        if heartbeat_at:
            try:
                last = max(last, parse_time(heartbeat_at))
            except ValueError:
                pass
        return "running" if now - last <= self.stale_after else "stale"

    # --- readers: steps, tasks, attempts ---------------------------------------------------------

    def tasks(self, flow, run_id, step=None):
        """TaskInfo of every task of a run (of one step), in step order then task id order.
        NotFoundError for an unknown run, or a step with no tasks."""
        run_id = str(run_id)
        if step is not None:
            Pathspec.parse("%s/%s/%s" % (flow, run_id, step), 3, 3)
        now = self._now()
        run_state = self._run_state(flow, run_id, now)
        prefix = paths.run_prefix(flow, run_id) + ("%s/" % step if step else "")
        files = {}
        for info in self.backend.list(prefix):
            parts = info.path[len(paths.run_prefix(flow, run_id)) :].split("/")
            if len(parts) != 3:
                continue
            kind = paths.parse_task_file(parts[2])
            if kind is not None:
                files.setdefault((parts[0], parts[1]), []).append((kind, info.path))
        if step is not None and not files:
            raise NotFoundError(
                "run %s/%s has no tasks of step %s in store %s" % (flow, run_id, step, self.url),
                "`mflow-meta steps %s/%s` lists the steps that ran" % (flow, run_id),
                store=self.url,
            )
        contents = dict(self.backend.get_many([path for found in files.values() for _kind, path in found]))
        tasks = []
        with paused_gc():
            for (step_name, task_id), found in files.items():
                tasks.append(self._task_info(flow, run_id, step_name, task_id, found, contents, run_state, now))
        steps_started = {}
        for task in tasks:
            started = task.started_at or "~"
            if started < steps_started.get(task.step, "~"):
                steps_started[task.step] = started
            steps_started.setdefault(task.step, started)
        tasks.sort(key=lambda t: (steps_started[t.step], t.step, _id_order(t.task_id)))
        return tasks

    def _run_state(self, flow, run_id, now):
        """(end record or None, whether the run is live); NotFoundError for an unknown run."""
        _run_spec(flow, run_id)
        wanted = [paths.run_path(flow, run_id), paths.run_end_path(flow, run_id), paths.run_heartbeat_path(flow, run_id)]
        run, end, beat = (data for _path, data in sorted(self.backend.get_many(wanted), key=lambda f: wanted.index(f[0])))
        if run is None:
            raise self._not_found_run(flow, run_id)
        if end is not None:
            return RunEndRecord.from_json(_loads(end, wanted[1], self.url)), False
        started = _loads(run, wanted[0], self.url).get("started_at") or iso_time(0)
        heartbeat = beat.decode("ascii", "replace").strip() if beat is not None else None
        return None, self._liveness(started, heartbeat, now) == "running"

    def _task_info(self, flow, run_id, step, task_id, found, contents, run_state, now):
        record = None
        starts, ends, beats = {}, {}, {}
        for (kind, attempt), path in found:
            data = contents.get(path)
            if data is None:
                continue
            if kind == "task":
                record = TaskRecord.from_json(_loads(data, path, self.url))
            elif kind == "start":
                starts[attempt] = AttemptStartRecord.from_json(_loads(data, path, self.url))
            elif kind == "end":
                ends[attempt] = AttemptEndRecord.from_json(_loads(data, path, self.url))
            else:
                beats[attempt] = data.decode("ascii", "replace").strip()
        carried = next((starts[a].task for a in sorted(starts) if starts[a].task is not None), None)
        if record is None:
            record = carried
        elif carried is not None:
            # The driver's task.json and the task's own start record may each know part.
            missing = [f for f in ("foreach_stack", "parent_tasks", "origin_pathspec") if not getattr(record, f)]
            record = record._replace(**{f: getattr(carried, f) for f in missing})
            if record.foreach_index is None:
                record = record._replace(foreach_index=carried.foreach_index)
        pathspec = "%s/%s/%s/%s" % (flow, run_id, step, task_id)
        run_end, run_live = run_state
        attempts = []
        for attempt in sorted(set(starts) | set(ends)):
            start, end = starts.get(attempt), ends.get(attempt)
            if end is not None:
                status = end.status
            elif start is None or run_end is not None:
                status = "stale"  # its process is gone: the run ended, or it never started properly
            else:
                status = self._liveness(start.started_at, beats.get(attempt), now)
                if status == "stale" and run_live:
                    # A live driver records the end of every attempt it started, even one
                    # whose process died: until it has, the attempt counts as running.
                    status = "running"
            attempts.append(AttemptInfo(pathspec, attempt, start, end, beats.get(attempt), status))
        if attempts:
            status = attempts[-1].status
        elif record is not None and record.origin_pathspec:
            status = "successful"  # cloned by resume from a task that succeeded
        else:
            status = "pending"
        return TaskInfo(flow, run_id, step, task_id, record, tuple(attempts), status)

    def steps(self, flow, run_id):
        """StepInfo of each step of a run that has tasks, in the order the steps started."""
        groups = {}
        for task in self.tasks(flow, run_id):
            groups.setdefault(task.step, []).append(task)
        return [StepInfo(flow, str(run_id), step, tuple(tasks)) for step, tasks in groups.items()]

    def task(self, task_pathspec):
        """The TaskInfo of one task; NotFoundError if the store has no record of it."""
        spec = _task_spec(task_pathspec)
        now = self._now()
        run_state = self._run_state(spec.flow, spec.run_id, now)
        prefix = paths.task_prefix(*spec.parts)
        found = []
        for info in self.backend.list(prefix):
            name = info.path[len(prefix) :]
            kind = paths.parse_task_file(name) if "/" not in name else None
            if kind is not None:
                found.append((kind, info.path))
        if not found:
            raise NotFoundError(
                "store %s has no task %s" % (self.url, spec),
                "`mflow-meta tasks %s/%s` lists the tasks of the run" % (spec.flow, spec.run_id),
                store=self.url,
            )
        contents = dict(self.backend.get_many([path for _kind, path in found]))
        return self._task_info(spec.flow, spec.run_id, spec.step, spec.task_id, found, contents, run_state, now)

    def attempt_end(self, task_pathspec, attempt):
        """The AttemptEndRecord of one attempt, or None while it has none: one read."""
        spec = _task_spec(task_pathspec)
        data = self._read(paths.attempt_end_path(paths.task_prefix(*spec.parts), int(attempt)))
        return AttemptEndRecord.from_json(data) if data is not None else None

    def attempts(self, task_pathspec):
        """AttemptInfo of each attempt of a task, in attempt order."""
        return list(self.task(task_pathspec).attempts)

    # --- tags ------------------------------------------------------------------------------------

    def tags(self, flow, run_id):
        """The RunTags of a run: user tags as changed so far, and its system tags."""
        info = self.run(flow, run_id)
        return RunTags(info.user_tags, info.system_tags)

    def add_tags(self, flow, run_id, tags):
        """Add user tags to a run (TagError for an invalid or system tag); returns RunTags."""
        return self._change_tags(flow, run_id, add=validate_tags(tags, "add"), remove=())

    def remove_tags(self, flow, run_id, tags):
        """Remove user tags from a run; removing a system tag is a TagError and changes
        nothing; removing a tag the run lacks is not an error. Returns RunTags."""
        return self._change_tags(flow, run_id, add=(), remove=validate_tags(tags, "remove"))

    def replace_tags(self, flow, run_id, tags_to_remove, tags_to_add):
        """Remove some user tags and add others in one change, as Metaflow's replace_tags.
        Returns RunTags."""
        remove = validate_tags(tags_to_remove, "remove")
        add = validate_tags(tags_to_add, "add")
        return self._change_tags(flow, run_id, add=add, remove=remove)

    def _change_tags(self, flow, run_id, add, remove):
        from . import index as run_index

        run_id = str(run_id)
        info = self.run(flow, run_id)
        current = info.user_tags
        after = apply_changes(current, [TagChangeRecord(flow, run_id, 0, "", add=add, remove=remove)])
        if after == current:
            return RunTags(current, info.system_tags)
        seq = self._tag_change_count(flow, run_id) + 1
        user = self._user()
        while True:
            change = TagChangeRecord(flow, run_id, seq, iso_time(self._now()), user, add=add, remove=remove)
            run_index.mark_tag_change(self.backend, flow, run_id, seq)
            # Each change takes the next sequence number with create-if-absent, so that
            # changes from several machines at once are all kept, in one order for all.
            if self._write(paths.tags_path(flow, run_id, seq), change.to_json(), exclusive=True):
                break
            seq += 1
        return self.tags(flow, run_id)

    def _tag_change_count(self, flow, run_id):
        seq = 0
        while self.backend.exists(paths.tags_path(flow, run_id, seq + 1)):
            seq += 1
        return seq

    # --- every record ----------------------------------------------------------------------------

    def records(self, pathspec):
        """(store path, record dict) of every record of a flow, run, step or task, as stored;
        heartbeats and pointers appear as records of type heartbeat and pointer."""
        spec = pathspec if isinstance(pathspec, Pathspec) else Pathspec.parse(str(pathspec), 1, 4)
        if spec.depth == 1:
            return self._flow_records(spec.flow)
        if spec.depth == 2:
            return self._run_records(spec.flow, spec.run_id)
        prefix = paths.run_prefix(spec.flow, spec.run_id) + "/".join(spec.parts[2:]) + "/"
        listed = [
            info.path
            for info in self.backend.list(prefix)
            if paths.parse_task_file(info.path.rsplit("/", 1)[-1]) is not None
            and info.path.count("/") == paths.run_prefix(spec.flow, spec.run_id).count("/") + 2
        ]
        if not listed:
            if spec.depth == 3:
                self._run_state(spec.flow, spec.run_id, self._now())
                raise NotFoundError(
                    "run %s/%s has no tasks of step %s in store %s" % (spec.flow, spec.run_id, spec.step, self.url),
                    "`mflow-meta steps %s/%s` lists the steps that ran" % (spec.flow, spec.run_id),
                    store=self.url,
                )
            raise NotFoundError(
                "store %s has no task %s" % (self.url, spec),
                "`mflow-meta tasks %s/%s` lists the tasks of the run" % (spec.flow, spec.run_id),
                store=self.url,
            )
        listed.sort(key=_record_order)
        return self._load_records(listed)

    def _flow_records(self, flow):
        Pathspec.parse(flow, 1, 1)
        data = self._read(paths.flow_record_path(flow))
        if data is None and not self.backend.list_children(paths.flow_prefix(flow)):
            raise self._not_found_flow(flow)
        out = []
        if data is not None:
            out.append((paths.flow_record_path(flow), data))
        for successful in (False, True):
            slot, entry = self._pointer(flow, successful).read()
            if entry is not None:
                prefix = paths.pointer_prefix(flow, successful)
                record = {
                    "schema": SCHEMA,
                    "type": "pointer",
                    "name": "latest_successful" if successful else "latest",
                    "flow": flow,
                    "slot": slot,
                }
                record.update(entry)
                out.append((paths.pointer_slot_path(prefix, slot), record))
        return out

    def _run_records(self, flow, run_id):
        _run_spec(flow, run_id)
        prefix = paths.run_prefix(flow, run_id)
        names = [n for n in self.backend.list_children(prefix) if not n.endswith("/")]
        if paths.RUN not in names:
            raise self._not_found_run(flow, run_id)
        order = {paths.CLAIM: 0, paths.RUN: 1, paths.RUN_END: 3, paths.RUN_HEARTBEAT: 4}
        names.sort(key=lambda n: (order.get(n, 2), n))
        return self._load_records([prefix + n for n in names])

    def _load_records(self, listed):
        contents = dict(self.backend.get_many(listed))
        out = []
        for path in listed:
            data = contents.get(path)
            if data is None:
                continue
            if path.endswith(".json"):
                out.append((path, _loads(data, path, self.url)))
            else:
                pathspec = _pathspec_of(path)
                at = data.decode("ascii", "replace").strip()
                record = {"schema": SCHEMA, "type": "heartbeat", "pathspec": pathspec, "at": at}
                kind = paths.parse_task_file(path.rsplit("/", 1)[-1])
                if kind is not None and kind[0] == "heartbeat":
                    record["attempt"] = kind[1]
                out.append((path, record))
        return out


def _pointer_entry(record):
    return {"run_id": record.run_id, "started_at": record.started_at}


def _is_identifier(name):
    return name.isidentifier()


def _pathspec_of(path):
    parts = path.split("/")[1:-1]
    return "/".join(parts)


def _record_order(path):
    folder, name = path.rsplit("/", 1)
    kind = paths.parse_task_file(name)
    rank = {"task": 0, "start": 1, "end": 2, "heartbeat": 3}[kind[0]]
    folder_parts = folder.split("/")
    return (folder_parts[-2], _id_order(folder_parts[-1]), -1 if kind[1] is None else kind[1], rank)


def _loads(data, path, url, parse=None):
    if parse is None:
        import orjson

        parse = orjson.loads
    try:
        return parse(data)
    except ValueError:
        from mflow.errors import CorruptBlobError

        raise CorruptBlobError(
            "record %s in store %s is not valid JSON" % (path, url),
            "Delete it, or restore it from a copy of the store",
            store=url,
        ) from None
