"""What the client reads of a run, read once and shared by every object of it: the run's
record, its tasks by step, and task manifests fetched in growing batches as tasks are walked.
"""

import time

from mflow.errors import CorruptBlobError, MflowNotFound, NotFoundError
from mflow.store import layout
from mflow.store.artifacts import ArtifactLoader, ArtifactManifest
from mflow.store.pathspec import Pathspec

#: A live run's record is read again at most this often (seconds).
LIVE_REFRESH = 1.0
#: Manifests read in one batch when a walk over tasks starts; each further batch is twice
#: the size, up to MAX_BATCH, so one task costs one read and a thousand cost a few batches.
FIRST_BATCH = 8
MAX_BATCH = 512


def local_datetime(iso):
    """A stored ISO time as a naive local datetime, as Metaflow's client gives times; None for None."""
    if not iso:
        return None
    from datetime import datetime

    from mflow.meta.records import parse_time

    return datetime.fromtimestamp(parse_time(iso))


class RunView:
    """One run as the client has read it. A finished run's tasks are read once and kept; a
    live run's are read again each time they are asked for."""

    def __init__(self, ctx, flow, run_id, info=None):
        self.ctx = ctx
        self.flow = flow
        self.run_id = run_id
        self._info = info
        self._info_read_at = time.monotonic() if info is not None else 0.0
        self._steps = {}  # step -> tuple of TaskInfo, kept once the run has finished
        self._step_order = None  # every step's name in start order, once all were read
        self.code = False  # the run's FlowCode once read (None: it has none)

    @property
    def pathspec(self):
        return "%s/%s" % (self.flow, self.run_id)

    def info(self):
        """The run's RunInfo; a live run's is read again when older than LIVE_REFRESH."""
        info = self._info
        if info is None or (info.end is None and time.monotonic() - self._info_read_at > LIVE_REFRESH):
            try:
                info = self.ctx.meta.run(self.flow, self.run_id)
            except NotFoundError:
                raise missing_run(self.ctx, self.flow, self.run_id) from None
            self._info = info
            self._info_read_at = time.monotonic()
        return info

    def set_info(self, info):
        self._info = info
        self._info_read_at = time.monotonic()

    def _finished(self):
        # Asked before the tasks are listed: a run that had ended by then has all of them.
        return self.info().end is not None

    def step_tasks(self, step):
        """TaskInfo of the tasks of `step`, in task id order; MflowNotFound if it has none."""
        cached = self._steps.get(step)
        if cached is not None:
            return cached
        finished = self._finished()
        try:
            tasks = tuple(self.ctx.meta.tasks(self.flow, self.run_id, step))
        except NotFoundError:
            raise missing_step(self.ctx, self.flow, self.run_id, step) from None
        if finished:
            self._steps[step] = tasks
        return tasks

    def all_tasks(self):
        """{step: TaskInfo tuple} of every step that has tasks, in the order steps started."""
        if self._step_order is not None:
            return {step: self._steps[step] for step in self._step_order}
        finished = self._finished()
        groups = {}
        for task in self.ctx.meta.tasks(self.flow, self.run_id):
            groups.setdefault(task.step, []).append(task)
        groups = {step: tuple(tasks) for step, tasks in groups.items()}
        if finished:
            self._steps.update(groups)
            self._step_order = tuple(groups)
        return groups

    def task_info(self, step, task_id):
        """The TaskInfo of one task: from the step's tasks when read already, else on its own."""
        cached = self._steps.get(step)
        if cached is not None:
            for task in cached:
                if task.task_id == task_id:
                    return task
            raise missing_task(self.ctx, self.flow, self.run_id, step, task_id)
        try:
            return self.ctx.meta.task("%s/%s/%s/%s" % (self.flow, self.run_id, step, task_id))
        except NotFoundError:
            if step not in self._steps:
                self.step_tasks(step)  # MflowNotFound naming the step, when it is the step that is missing
            raise missing_task(self.ctx, self.flow, self.run_id, step, task_id) from None


class ManifestReader:
    """Reads the manifests of a sequence of task attempts in the order they are walked: each
    miss reads a batch from there on (in parallel on S3), twice as large as the last."""

    def __init__(self, store, flow, run_id, keys=(), final=()):
        self.store = store
        self.flow = flow
        self.run_id = run_id
        self._keys = list(keys)  # (step, task_id, attempt) in walking order
        self._position = {key: index for index, key in enumerate(self._keys)}
        self._final = set(final)  # keys whose attempt has ended: a missing manifest stays missing
        self._ready = {}
        self._batch = FIRST_BATCH

    def manifest(self, step, task_id, attempt):
        """The ArtifactManifest of one task attempt, or None when it has none (yet)."""
        key = (step, task_id, attempt)
        if key in self._ready:
            return self._ready.pop(key)
        start = self._position.get(key)
        if start is None:
            batch = [key]
        else:
            batch = [k for k in self._keys[start : start + self._batch] if k not in self._ready]
            self._batch = min(self._batch * 2, MAX_BATCH)
        found = read_manifests(self.store, self.flow, self.run_id, batch)
        for other, manifest in found.items():
            if other != key and (manifest is not None or other in self._final):
                self._ready[other] = manifest
        return found[key]


def read_manifests(store, flow, run_id, keys):
    """{(step, task_id, attempt): ArtifactManifest or None} for the keys, read together."""
    import orjson

    paths = {}
    for key in keys:
        step, task_id, attempt = key
        paths[layout.manifest_path(Pathspec(flow, run_id, step, task_id), attempt)] = key
    found = {}
    for path, data in store.backend.get_many(list(paths)):
        key = paths[path]
        if data is None:
            found[key] = None
            continue
        where = "%s in store %s" % (path, store.url)
        try:
            record = orjson.loads(data)
        except ValueError:
            raise CorruptBlobError(
                "manifest %s is not valid JSON" % where,
                "Delete the attempt's folder and rerun the task",
                store=store.url,
            ) from None
        found[key] = ArtifactManifest.from_json(Pathspec(flow, run_id, key[0], key[1]), key[2], record, where)
    return found


class ManifestLoader(ArtifactLoader):
    """An ArtifactLoader over a manifest already read (an empty one for a task with none):
    values load on first access and are kept, as with the store's own loader."""

    def __init__(self, store, task, attempt, manifest=None):
        self.store = store
        self.task = task
        self.attempt = attempt
        self.manifest = manifest if manifest is not None else ArtifactManifest(task, attempt, {}, 0.0)
        self._values = {}


# --- what to say when something is not there ------------------------------------------------


def missing_flow(ctx, flow):
    return MflowNotFound(
        "store %s has no flow %s" % (ctx.url, flow), "Metaflow().flows lists the flows it has", store=ctx.url
    )


def flow_exists(ctx, flow):
    try:
        ctx.meta.run_ids(flow)
    except NotFoundError:
        return False
    return True


def missing_run(ctx, flow, run_id):
    if not flow_exists(ctx, flow):
        return missing_flow(ctx, flow)
    return MflowNotFound(
        "flow %s has no run %s in store %s" % (flow, run_id, ctx.url),
        "list(Flow(%r)) lists the runs in your namespace; namespace(None) first for everyone's" % flow,
        store=ctx.url,
    )


def missing_step(ctx, flow, run_id, step):
    return MflowNotFound(
        "run %s/%s has no step %s in store %s" % (flow, run_id, step, ctx.url),
        "list(Run('%s/%s')) lists the steps that ran" % (flow, run_id),
        store=ctx.url,
    )


def missing_task(ctx, flow, run_id, step, task_id):
    return MflowNotFound(
        "step %s/%s/%s has no task %s in store %s" % (flow, run_id, step, task_id, ctx.url),
        "list(Step('%s/%s/%s')) lists its tasks" % (flow, run_id, step),
        store=ctx.url,
    )
