"""Metaflow, Flow, Run, Step, Task and DataArtifact: the results in a store by pathspec, with
Metaflow's client semantics (namespaces, newest first, artifacts loaded lazily and kept).
"""

import html
import re

from mflow.errors import MflowNamespaceMismatch, MflowNotFound, NotFoundError, PathspecError
from mflow.meta.metastore import DEFAULT
from mflow.meta.tags import get_namespace, validate_tag
from mflow.store.pathspec import Pathspec

from .context import context_for
from .fetch import (
    ManifestLoader,
    ManifestReader,
    RunView,
    flow_exists,
    local_datetime,
    missing_flow,
    read_manifests,
)

END_STEP = "end"


def _chosen_namespace(namespace, check):
    """The namespace an object is looked at in: None (every run) when the check is off."""
    if not check:
        return None
    if namespace is DEFAULT:
        return get_namespace()
    if namespace is not None:
        validate_tag(namespace)
    return namespace


def _id_order(value):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def _newest_first(tasks):
    return sorted(tasks, key=lambda t: (t.started_at or "", _id_order(t.task_id)), reverse=True)


def _tag_list(tags):
    return [tags] if isinstance(tags, str) else list(tags)


class MflowObject:
    """What every client object has: a pathspec, the store it was read from, the namespace
    it was looked at in, tags, times, and reprs for a terminal and a notebook."""

    _DEPTH = 0
    _attempt = None

    def __init__(self, pathspec, *, store=None, namespace=DEFAULT, _namespace_check=True):
        if not isinstance(pathspec, str):
            raise TypeError("%s() takes a pathspec string, not %r" % (type(self).__name__, pathspec))
        self._spec = Pathspec.parse(pathspec, self._DEPTH, self._DEPTH)
        self._ctx = context_for(store)
        self._namespace = _chosen_namespace(namespace, _namespace_check)

    @classmethod
    def _make(cls, source, spec, **state):
        """An object of this class for `spec`, read from the same store and namespace as
        `source`, with state already known (no reads, no checks)."""
        obj = cls.__new__(cls)
        obj._spec = spec
        obj._ctx = source._ctx
        obj._namespace = source._namespace
        for name, value in state.items():
            setattr(obj, name, value)
        return obj

    # --- identity ----------------------------------------------------------------------------

    @property
    def id(self):
        """The last part of the pathspec: the flow's name, run id, step name, task id or artifact name."""
        return self._spec.parts[-1]

    @property
    def pathspec(self):
        return str(self._spec)

    @property
    def path_components(self):
        return list(self._spec.parts)

    @property
    def parent(self):
        return None

    @property
    def origin_pathspec(self):
        """The pathspec of what this was cloned from by resume, or None."""
        return None

    @property
    def tags(self):
        """Every tag of the run this belongs to, user and system."""
        return frozenset()

    @property
    def user_tags(self):
        return frozenset()

    @property
    def system_tags(self):
        return frozenset()

    def is_in_namespace(self):
        """True when the namespace in use now (see namespace()) holds this object."""
        ns = get_namespace()
        return ns is None or ns in self.tags

    def __str__(self):
        if self._attempt is not None:
            return "%s('%s', attempt=%d)" % (type(self).__name__, self.pathspec, self._attempt)
        return "%s('%s')" % (type(self).__name__, self.pathspec)

    __repr__ = __str__

    def __eq__(self, other):
        return (
            type(other) is type(self)
            and other.pathspec == self.pathspec
            and other._attempt == self._attempt
            and other._ctx.url == self._ctx.url
        )

    def __hash__(self):
        return hash((type(self).__name__, self.pathspec, self._attempt))

    def __reduce__(self):
        # Pickled as what names it, so that objects travel to other processes (parallel_map).
        return _rebuild, (type(self).__name__, self.pathspec, self._attempt, self._ctx.url)

    # --- notebooks -----------------------------------------------------------------------------

    def _summary(self):
        """(label, text) pairs that a notebook shows under the object's name."""
        return []

    def _repr_html_(self):
        rows = "".join(
            "<tr><th style='text-align:left'>%s</th><td style='text-align:left'>%s</td></tr>"
            % (html.escape(label), html.escape(str(value)))
            for label, value in self._summary()
        )
        return "<b>%s</b><table>%s</table>" % (html.escape(str(self)), rows)


def _rebuild(kind, pathspec, attempt, url):
    cls = {c.__name__: c for c in (Flow, Run, Step, Task, DataArtifact)}[kind]
    if attempt is not None:
        return cls(pathspec, attempt, store=url, _namespace_check=False)
    return cls(pathspec, store=url, _namespace_check=False)


def _when(value):
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _seconds(value):
    if value is None:
        return ""
    return "%.1f s" % value if value < 120 else "%d min %02d s" % divmod(int(value), 60)


# --- flows ----------------------------------------------------------------------------------------


class Metaflow:
    """Every flow in the store that has a run in the namespace (Metaflow's entry point)."""

    def __init__(self, *, store=None, namespace=DEFAULT):
        self._ctx = context_for(store)
        self._namespace = _chosen_namespace(namespace, True)

    @property
    def flows(self):
        """The Flow of every flow with a run in the namespace, by name."""
        return list(self)

    def __iter__(self):
        for name in self._ctx.meta.flows():
            try:
                yield self[name]
            except MflowNotFound:  # no run in the namespace, or no run at all
                continue

    def __getitem__(self, name):
        return Flow(name, store=self._ctx, namespace=self._namespace)

    def _ipython_key_completions_(self):
        return [flow.id for flow in self]

    def __str__(self):
        return "Metaflow()"

    __repr__ = __str__


class Flow(MflowObject):
    """A flow: its runs, newest first, in the namespace. Flow('TrainFlow') fails when the
    store has no run of it in the namespace (MflowNamespaceMismatch when others have)."""

    _DEPTH = 1

    def __init__(self, pathspec, *, store=None, namespace=DEFAULT, _namespace_check=True):
        super().__init__(pathspec, store=store, namespace=namespace, _namespace_check=_namespace_check)
        ctx, flow, ns = self._ctx, self.id, self._namespace
        if ns is None:
            if not flow_exists(ctx, flow):
                raise missing_flow(ctx, flow)
            return
        try:
            ctx.meta.latest(flow, namespace=ns)
        except NotFoundError:
            if not flow_exists(ctx, flow):
                raise missing_flow(ctx, flow) from None
            raise MflowNamespaceMismatch(
                "flow %s has no run in namespace %s in store %s" % (flow, ns, ctx.url),
                "Call namespace(None) to look at every user's runs",
                store=ctx.url,
                namespace=ns,
            ) from None

    def _run(self, info):
        view = RunView(self._ctx, self.id, info.run_id, info)
        return Run._make(self, Pathspec(self.id, info.run_id), _view=view)

    def _latest(self, successful):
        try:
            info = self._ctx.meta.latest(self.id, successful=successful, namespace=self._namespace)
        except NotFoundError:
            return None
        return self._run(info)

    @property
    def latest_run(self):
        """The run started last in the namespace (running, finished or not), or None."""
        return self._latest(False)

    @property
    def latest_successful_run(self):
        """The run started last in the namespace among those that succeeded, or None."""
        return self._latest(True)

    def runs(self, *tags):
        """The runs in the namespace carrying every tag given, newest first."""
        try:
            infos = self._ctx.meta.runs(self.id, tags=tags, namespace=self._namespace)
        except NotFoundError:
            raise missing_flow(self._ctx, self.id) from None
        for info in infos:
            yield self._run(info)

    def __iter__(self):
        return self.runs()

    def __getitem__(self, run_id):
        return Run("%s/%s" % (self.id, run_id), store=self._ctx, namespace=self._namespace)

    def __contains__(self, run_id):
        try:
            self._ctx.meta.run_record(self.id, str(run_id))
        except (NotFoundError, PathspecError):
            return False
        return True

    def is_in_namespace(self):
        """True when the namespace in use now holds a run of the flow."""
        try:
            self._ctx.meta.latest(self.id, namespace=get_namespace())
        except NotFoundError:
            return False
        return True

    @property
    def created_at(self):
        """When the flow's first run (of any user) started."""
        infos = self._ctx.meta.runs(self.id, namespace=None)
        return local_datetime(infos[-1].started_at) if infos else None

    def _ipython_key_completions_(self):
        return [run.id for run in self]

    def _summary(self):
        latest = self.latest_run
        return [("latest run", latest.id if latest else ""), ("namespace", self._namespace or "(all)")]


# --- the parts of a run ----------------------------------------------------------------------------


class _RunPart(MflowObject):
    """Run, Step, Task and DataArtifact: things inside one run, sharing what was read of it."""

    _view = None

    def _open_run(self):
        self._view = RunView(self._ctx, self._spec.flow, self._spec.run_id)
        info = self._view.info()
        ns = self._namespace
        if ns is not None and ns not in info.tags:
            user = info.record.user or "unknown"
            raise MflowNamespaceMismatch(
                "%s is not in namespace %s: run %s was started by %s" % (self.pathspec, ns, info.pathspec, user),
                "Call namespace(None) to look at every run, or namespace('user:%s') for %s's" % (user, user),
                store=self._ctx.url,
                namespace=ns,
            )

    @property
    def _run_info(self):
        return self._view.info()

    @property
    def tags(self):
        return self._run_info.tags

    @property
    def user_tags(self):
        return frozenset(self._run_info.user_tags)

    @property
    def system_tags(self):
        return frozenset(self._run_info.system_tags)

    def _run_code(self):
        """The run's FlowCode (None without one), read once for every object of the run."""
        view = self._view
        if view.code is False:
            from .code import FlowCode

            try:
                package = self._ctx.store.code_package(self._spec.flow, self._spec.run_id)
            except NotFoundError:
                view.code = None
            else:
                view.code = FlowCode(self._ctx.store, self._spec.flow, self._spec.run_id, package)
        return view.code

    def _step(self, step):
        self._view.step_tasks(step)  # MflowNotFound for a step without tasks
        return Step._make(self, Pathspec(self._spec.flow, self._spec.run_id, step), _view=self._view)

    def _task(self, info):
        spec = Pathspec(info.flow, info.run_id, info.step, info.task_id)
        return Task._make(self, spec, _view=self._view, _info=info)


_RUN_STATES = {"running": "running", "successful": "succeeded", "failed": "failed", "interrupted": "killed",
               "stale": "killed"}


class Run(_RunPart):
    """One run of a flow: its steps (newest first), its status and times, its tags (which can
    be changed), and `data`, the artifacts of its end step."""

    _DEPTH = 2

    def __init__(self, pathspec, *, store=None, namespace=DEFAULT, _namespace_check=True):
        super().__init__(pathspec, store=store, namespace=namespace, _namespace_check=_namespace_check)
        self._open_run()

    @property
    def parent(self):
        return Flow._make(self, Pathspec(self._spec.flow), _namespace=None)

    @property
    def status(self):
        """running, successful, failed, interrupted, or stale (its driver died unnoticed)."""
        return self._run_info.status

    @property
    def successful(self):
        """True when its end step succeeded (the run succeeded), as in Metaflow."""
        return self._run_info.status == "successful"

    @property
    def finished(self):
        """True when its end step ran to an end, as in Metaflow: False for a run that failed
        before end, is still running, or was interrupted. `state` tells how any run stands."""
        end = self.end_task
        return end is not None and end.finished

    @property
    def finished_at(self):
        """When its end step finished (a datetime), as in Metaflow; else None. `ended_at`
        is when the run stopped, however it stopped."""
        end = self.end_task
        return end.finished_at if end is not None and end.finished else None

    @property
    def state(self):
        """How the run stands: running, succeeded, failed, or killed (interrupted by Ctrl-C
        or SIGTERM, or its driver died without recording an end: status stale)."""
        return _RUN_STATES.get(self._run_info.status, self._run_info.status)

    @property
    def ended_at(self):
        """When the run stopped (a datetime): succeeded, failed or interrupted; None while
        it runs or when its driver died without recording an end."""
        return local_datetime(self._run_info.ended_at)

    @property
    def created_at(self):
        return local_datetime(self._run_info.started_at)

    @property
    def origin_pathspec(self):
        origin = self._run_info.record.origin_run_id
        return "%s/%s" % (self._spec.flow, origin) if origin else None

    @property
    def code(self):
        """The run's code package (FlowCode), or None when it has none."""
        return self._run_code()

    def steps(self, *tags):
        """The steps that ran, the last started first (only if the run has every tag given)."""
        if any(tag not in self.tags for tag in tags):
            return
        groups = self._view.all_tasks()
        for step in reversed(list(groups)):
            yield Step._make(self, Pathspec(self._spec.flow, self._spec.run_id, step), _view=self._view)

    def __iter__(self):
        return self.steps()

    def __getitem__(self, step):
        return self._step(step)

    def __contains__(self, step):
        try:
            self._view.step_tasks(step)
        except (MflowNotFound, PathspecError):
            return False
        return True

    @property
    def end_task(self):
        """The task of the end step, or None when the run has not got that far."""
        try:
            return self._step(END_STEP).task
        except MflowNotFound:
            return None

    @property
    def data(self):
        """The artifacts of the end step's task (MflowData), or None before it ran."""
        end = self.end_task
        return end.data if end is not None else None

    # --- tags ----------------------------------------------------------------------------------

    def add_tag(self, tag):
        """Add a user tag (a string, or several in a list)."""
        self.add_tags(_tag_list(tag))

    def add_tags(self, tags):
        self._tags_now(self._ctx.meta.add_tags(self._spec.flow, self._spec.run_id, _tag_list(tags)))

    def remove_tag(self, tag):
        """Remove a user tag; removing a system tag is a TagError, one the run lacks is not an error."""
        self.remove_tags(_tag_list(tag))

    def remove_tags(self, tags):
        self._tags_now(self._ctx.meta.remove_tags(self._spec.flow, self._spec.run_id, _tag_list(tags)))

    def replace_tag(self, tag_to_remove, tag_to_add):
        """Remove one user tag and add another in one change (each may be a list)."""
        self.replace_tags(_tag_list(tag_to_remove), _tag_list(tag_to_add))

    def replace_tags(self, tags_to_remove, tags_to_add):
        run_tags = self._ctx.meta.replace_tags(
            self._spec.flow, self._spec.run_id, _tag_list(tags_to_remove), _tag_list(tags_to_add)
        )
        self._tags_now(run_tags)

    def _tags_now(self, run_tags):
        self._view.set_info(self._run_info._replace(user_tags=tuple(run_tags.user)))

    def _ipython_key_completions_(self):
        return list(self._view.all_tasks())

    def _summary(self):
        info = self._run_info
        return [
            ("status", info.status),
            ("started", _when(self.created_at)),
            ("finished", _when(self.finished_at)),
            ("user", info.record.user or ""),
            ("user tags", ", ".join(sorted(info.user_tags))),
        ]


class Step(_RunPart):
    """A step of a run: its tasks, newest first (one, or one per foreach item)."""

    _DEPTH = 3

    def __init__(self, pathspec, *, store=None, namespace=DEFAULT, _namespace_check=True):
        super().__init__(pathspec, store=store, namespace=namespace, _namespace_check=_namespace_check)
        self._open_run()
        self._view.step_tasks(self.id)

    @property
    def parent(self):
        return Run._make(self, self._spec.parent(), _view=self._view)

    def _tasks(self):
        return self._view.step_tasks(self.id)

    def __iter__(self):
        return self._walk()

    def _walk(self, by_id=False):
        """The step's tasks, newest first (or in task id order), sharing one reader that
        fetches manifests in batches ahead of the task asked for."""
        tasks = sorted(self._tasks(), key=lambda t: _id_order(t.task_id)) if by_id else _newest_first(self._tasks())
        keys, final = [], []
        for info in tasks:
            if info.attempts:
                latest = info.attempts[-1]
                key = (info.step, info.task_id, latest.attempt)
                keys.append(key)
                if latest.status != "running":
                    final.append(key)
        reader = ManifestReader(self._ctx.store, self._spec.flow, self._spec.run_id, keys, final)
        for info in tasks:
            spec = Pathspec(info.flow, info.run_id, info.step, info.task_id)
            yield Task._make(self, spec, _view=self._view, _info=info, _reader=reader)

    def tasks(self, *tags):
        """The step's tasks, newest first (only if the run has every tag given)."""
        if any(tag not in self.tags for tag in tags):
            return iter(())
        return iter(self)

    @property
    def task(self):
        """A task of the step: the only one of a step outside a foreach."""
        return next(iter(self), None)

    def __getitem__(self, task_id):
        return self._task(self._view.task_info(self.id, str(task_id)))

    def __contains__(self, task_id):
        return any(info.task_id == str(task_id) for info in self._tasks())

    @property
    def created_at(self):
        starts = [t.started_at for t in self._tasks() if t.started_at]
        return local_datetime(min(starts)) if starts else None

    @property
    def finished_at(self):
        """When its last task finished, once every task has; else None."""
        tasks = self._tasks()
        if any(not (t.latest and t.latest.end) for t in tasks):
            return None
        return local_datetime(max(t.ended_at for t in tasks))

    @property
    def origin_pathspec(self):
        origin = self.parent.origin_pathspec
        return "%s/%s" % (origin, self.id) if origin else None

    @property
    def parent_steps(self):
        """The steps whose tasks this step's tasks read from."""
        names = {Pathspec.parse(p, 4, 4).step for t in self._tasks() if t.record for p in t.record.parent_tasks}
        return [self._step(name) for name in self._view.all_tasks() if name in names]

    @property
    def child_steps(self):
        """The steps whose tasks read from this step's tasks."""
        mine = {t.pathspec for t in self._tasks()}
        names = []
        for name, tasks in self._view.all_tasks().items():
            if any(t.record and mine.intersection(t.record.parent_tasks) for t in tasks):
                names.append(name)
        return [self._step(name) for name in names]

    def _ipython_key_completions_(self):
        return [t.task_id for t in self._tasks()]

    def _summary(self):
        tasks = self._tasks()
        counts = {}
        for task in tasks:
            counts[task.status] = counts.get(task.status, 0) + 1
        return [
            ("tasks", len(tasks)),
            ("statuses", ", ".join("%d %s" % (n, s) for s, n in sorted(counts.items()))),
            ("started", _when(self.created_at)),
            ("finished", _when(self.finished_at)),
        ]


class TaskException:
    """Why a task attempt failed: the exception's type (e.g. "ValueError"), its message, and
    its traceback. `exception` and `stacktrace` are the names Metaflow's wrapper uses."""

    def __init__(self, type, message, traceback=None, task=None, attempt=None):
        self.type = type
        self.message = message
        self._traceback = traceback
        self._task = task
        self._attempt = attempt

    @property
    def traceback(self):
        """The traceback as Python printed it; read from the attempt's stderr when the end
        record does not hold it. None when there is none (the process was killed)."""
        if self._traceback is None and self._task is not None:
            text = self._task._log("stderr", self._attempt)
            start = text.rfind("Traceback (most recent call last):")
            self._traceback = text[start:].rstrip("\n") if start >= 0 else ""
        return self._traceback or None

    @property
    def exception(self):
        return self.message

    @property
    def stacktrace(self):
        return self.traceback

    def __str__(self):
        if self.type and self.message:
            return "%s: %s" % (self.type, self.message)
        return self.type or self.message or ""

    def __repr__(self):
        return "TaskException(type=%r, message=%r)" % (self.type, self.message)


_EXCEPTION_TYPE = re.compile(r"[A-Za-z_][\w.]*\Z")


def _exception_of(task, attempt):
    end = attempt.end
    detail = getattr(end, "exception", None)
    if isinstance(detail, dict):
        return TaskException(detail.get("type"), detail.get("message"), detail.get("traceback"), task, attempt.attempt)
    reason = end.reason or ""
    head, sep, tail = reason.partition(": ")
    if sep and _EXCEPTION_TYPE.match(head):
        return TaskException(head, tail, None, task, attempt.attempt)
    return TaskException(None, reason or None, None, task, attempt.attempt)


class Task(_RunPart):
    """One task: its artifacts (`data`, `artifacts`, task['x']), its status, logs and
    exception, its place in the graph. The latest attempt, or `attempt=N` for an earlier one."""

    _DEPTH = 4
    _info = None
    _reader = None
    _loaded = None

    def __init__(self, pathspec, attempt=None, *, store=None, namespace=DEFAULT, _namespace_check=True):
        super().__init__(pathspec, store=store, namespace=namespace, _namespace_check=_namespace_check)
        self._open_run()
        self._info = self._view.task_info(self._spec.step, self._spec.task_id)
        if attempt is not None:
            self._attempt = self._check_attempt(attempt)

    def _check_attempt(self, attempt):
        if isinstance(attempt, str) and attempt.isdigit():  # as Metaflow takes it
            attempt = int(attempt)
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise TypeError("attempt must be an int of 0 or more, not %r" % (attempt,))
        numbers = [a.attempt for a in self._info.attempts]
        if attempt not in numbers:
            raise MflowNotFound(
                "task %s has no attempt %d in store %s" % (self.pathspec, attempt, self._ctx.url),
                "Its attempts are %s" % (", ".join(map(str, numbers)) or "none yet"),
                store=self._ctx.url,
            )
        return attempt

    @property
    def parent(self):
        return Step._make(self, self._spec.parent(), _view=self._view)

    # --- attempts -----------------------------------------------------------------------------

    def _attempt_info(self):
        attempts = self._info.attempts
        if self._attempt is None:
            return attempts[-1] if attempts else None
        return next(a for a in attempts if a.attempt == self._attempt)

    @property
    def current_attempt(self):
        """The attempt this object shows: the one asked for, else the latest."""
        attempt = self._attempt_info()
        return attempt.attempt if attempt is not None else 0

    @property
    def attempts(self):
        """Every attempt of the task as a Task of its own, the first one first."""
        return [Task._make(self, self._spec, _view=self._view, _info=self._info, _attempt=a.attempt)
                for a in self._info.attempts]

    @property
    def status(self):
        """successful, failed, running, stale, or pending (no attempt yet)."""
        attempt = self._attempt_info()
        return attempt.status if attempt is not None else self._info.status

    @property
    def successful(self):
        return self.status == "successful"

    @property
    def finished(self):
        """True once the attempt has ended, successfully or not."""
        attempt = self._attempt_info()
        if attempt is None:
            return self._info.status == "successful"  # cloned by resume from a finished task
        return attempt.end is not None

    @property
    def finished_at(self):
        attempt = self._attempt_info()
        return local_datetime(attempt.ended_at) if attempt is not None else None

    @property
    def created_at(self):
        """When the task's first attempt started (or the attempt asked for, if one was)."""
        attempt = self._attempt_info() if self._attempt is not None else None
        started = attempt.started_at if attempt is not None else self._info.started_at
        if started:
            return local_datetime(started)
        record = self._info.record
        return local_datetime(record.registered_at) if record is not None else None

    @property
    def exception(self):
        """Why the attempt failed (TaskException: type, message, traceback), or None."""
        attempt = self._attempt_info()
        if attempt is None or attempt.end is None or attempt.status == "successful":
            return None
        return _exception_of(self, attempt)

    def _log(self, stream, attempt=None):
        if attempt is None:
            latest = self._attempt_info()
            if latest is None:
                return ""
            attempt = latest.attempt
        try:
            data = self._ctx.store.load_log(self._spec, attempt, stream)
        except NotFoundError:  # still running, or killed before its logs were kept
            return ""
        return data.decode("utf-8", "replace")

    @property
    def stdout(self):
        """What the attempt printed on standard output, verbatim ("" while it runs)."""
        return self._log("stdout")

    @property
    def stderr(self):
        """What the attempt printed on standard error, tracebacks included."""
        return self._log("stderr")

    @property
    def index(self):
        """The item index of the innermost foreach the task is in, or None."""
        record = self._info.record
        return record.foreach_index if record is not None else None

    @property
    def origin_pathspec(self):
        record = self._info.record
        return record.origin_pathspec if record is not None else None

    @property
    def code(self):
        return self._run_code()

    @property
    def runtime_name(self):
        for tag in self.system_tags:
            if tag.startswith("runtime:"):
                return tag.split(":", 1)[1]
        return None

    # --- the graph ----------------------------------------------------------------------------

    @property
    def parent_task_pathspecs(self):
        record = self._info.record
        return iter(record.parent_tasks if record is not None else ())

    @property
    def child_task_pathspecs(self):
        mine = self.pathspec
        for tasks in self._view.all_tasks().values():
            for info in tasks:
                if info.record is not None and mine in info.record.parent_tasks:
                    yield info.pathspec

    @property
    def parent_tasks(self):
        """The tasks this task read its inputs from (several for a join)."""
        for pathspec in self.parent_task_pathspecs:
            spec = Pathspec.parse(pathspec, 4, 4)
            yield self._task(self._view.task_info(spec.step, spec.task_id))

    @property
    def child_tasks(self):
        """The tasks that read from this one."""
        for pathspec in self.child_task_pathspecs:
            spec = Pathspec.parse(pathspec, 4, 4)
            yield self._task(self._view.task_info(spec.step, spec.task_id))

    # --- artifacts -----------------------------------------------------------------------------

    def _loader(self):
        """The ArtifactLoader of the attempt, kept once the attempt has ended."""
        if self._loaded is not None:
            return self._loaded
        attempt = self._attempt_info()
        if attempt is None:
            loader, final = self._loader_without_attempts()
        else:
            step, task_id = self._spec.step, self._spec.task_id
            if self._reader is not None and self._attempt is None:
                manifest = self._reader.manifest(step, task_id, attempt.attempt)
            else:
                key = (step, task_id, attempt.attempt)
                manifest = read_manifests(self._ctx.store, self._spec.flow, self._spec.run_id, [key])[key]
            loader = ManifestLoader(self._ctx.store, self._spec, attempt.attempt, manifest)
            final = manifest is not None or attempt.status != "running"
        if final:
            self._loaded = loader
        return loader

    def _loader_without_attempts(self):
        """A task with no attempt of its own: cloned by resume (its artifacts are its own
        copy, or else its origin's), or not started yet (none)."""
        from mflow.store.artifacts import ArtifactLoader

        store = self._ctx.store
        sources = [self._spec]
        if self.origin_pathspec:
            sources.append(Pathspec.parse(self.origin_pathspec, 4, 4))
        for source in sources:
            try:
                return ArtifactLoader(store, source), True
            except NotFoundError:
                continue
        return ManifestLoader(store, self._spec, 0), self._info.status != "pending"

    def _record(self, name):
        loader = self._loader()
        record = loader.manifest.artifacts.get(name)
        if record is not None:
            return record
        if not loader.manifest.artifacts and self.status == "failed":
            hint = "Attempt %d failed before it saved any; see .exception" % loader.attempt
        elif not loader.manifest.artifacts:
            hint = "It has saved none (status %s)" % self.status
        else:
            hint = "Task('%s').artifacts lists them" % self.pathspec
        raise MflowNotFound(
            "task %s has no artifact %r in store %s" % (self.pathspec, name, self._ctx.url), hint, store=self._ctx.url
        )

    def _artifact(self, name):
        record = self._record(name)
        spec = Pathspec(*self._spec.parts, name)
        return DataArtifact._make(self, spec, _view=self._view, _task=self, _record_=record, _attempt=self._attempt)

    def _names(self):
        return sorted(name for name in self._loader().manifest.artifacts if not name.startswith("_"))

    @property
    def data(self):
        """The task's artifacts as attributes: task.data.x loads x on first use, then keeps it."""
        return MflowData(self)

    @property
    def artifacts(self):
        """The task's DataArtifacts as a named tuple: task.artifacts.x.data."""
        from collections import namedtuple

        found = list(self)
        return namedtuple("MflowArtifacts", [a.id for a in found], rename=True)._make(found)

    def __iter__(self):
        """The task's artifacts (DataArtifact) by name; internal ones (_name) left out."""
        for name in self._names():
            yield self._artifact(name)

    def __getitem__(self, name):
        return self._artifact(name)

    def __contains__(self, name):
        return name in self._loader().manifest.artifacts

    def _ipython_key_completions_(self):
        return self._names()

    def _summary(self):
        attempt = self._attempt_info()
        rows = [
            ("status", self.status),
            ("attempt", attempt.attempt if attempt is not None else ""),
            ("started", _when(self.created_at)),
            ("finished", _when(self.finished_at)),
            ("duration", _seconds(attempt.duration_s) if attempt is not None else ""),
        ]
        if self.index is not None:
            rows.append(("foreach index", self.index))
        if self.status == "failed":
            rows.append(("exception", str(self.exception)))
        rows.append(("artifacts", ", ".join(self._names())))
        return rows


class DataArtifact(_RunPart):
    """One artifact of a task: `data` (loaded on first use, then kept), `sha` (its blob key),
    `size` (of its pickle), `type`, and `finished_at`."""

    _DEPTH = 5

    def __init__(self, pathspec, attempt=None, *, store=None, namespace=DEFAULT, _namespace_check=True):
        super().__init__(pathspec, store=store, namespace=namespace, _namespace_check=_namespace_check)
        self._task = Task(str(self._spec.parent()), attempt, store=self._ctx, namespace=self._namespace)
        self._view = self._task._view
        self._attempt = self._task._attempt
        self._record_ = self._task._record(self.id)

    @property
    def parent(self):
        return self._task

    @property
    def data(self):
        """The value, unpickled on first use and then kept."""
        return self._task._loader()[self.id]

    @property
    def sha(self):
        """The artifact's blob key: the SHA-256 of its pickle, equal for equal values."""
        return self._record_.key

    @property
    def size(self):
        """The size of the artifact's pickle, in bytes."""
        return self._record_.size

    @property
    def type(self):
        """The value's type as module.qualname (bare for builtins), known without loading it."""
        return self._record_.type

    @property
    def created_at(self):
        return _epoch_datetime(self._task._loader().manifest.created)

    @property
    def finished_at(self):
        return self.created_at

    @property
    def origin_pathspec(self):
        origin = self._task.origin_pathspec
        return "%s/%s" % (origin, self.id) if origin else None

    def _summary(self):
        return [("type", self.type), ("size", "%d bytes" % self.size), ("sha", self.sha)]


def _epoch_datetime(seconds):
    from datetime import datetime

    return datetime.fromtimestamp(seconds) if seconds else None


class MflowData:
    """A task's artifacts as attributes (Metaflow's MetaflowData): `data.x` loads x on first
    use and keeps it; `"x" in data`; dir(data) lists them. Internal ones (_name) are left out."""

    def __init__(self, task):
        self._task = task

    def _names(self):
        return self._task._names()

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        loader = self._task._loader()
        if name not in loader.manifest.artifacts:
            raise AttributeError("task %s has no artifact %r" % (self._task.pathspec, name))
        return loader[name]

    def __contains__(self, name):
        return not name.startswith("_") and name in self._task._loader().manifest.artifacts

    def __dir__(self):
        return self._names() + list(object.__dir__(self))

    def __str__(self):
        return "<MflowData: %s>" % ", ".join(self._names())

    __repr__ = __str__

    def _repr_html_(self):
        artifacts = self._task._loader().manifest.artifacts
        rows = "".join(
            "<tr><td style='text-align:left'>%s</td><td style='text-align:left'>%s</td><td>%d</td></tr>"
            % (html.escape(name), html.escape(artifacts[name].type), artifacts[name].size)
            for name in self._names()
        )
        return "<b>data of %s</b><table><tr><th>name</th><th>type</th><th>bytes</th></tr>%s</table>" % (
            html.escape(str(self._task)),
            rows,
        )
