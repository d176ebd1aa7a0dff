"""The driver's side of tasks that run as jobs of a compute engine (AWS Batch, Slurm).

A remote attempt is one job running `mflow-task --package` against the run's store. The
driver learns how it ended from the attempt's end record in the store (the job's own exit
status only says whether mflow-task got that far), streams its output from the logs the
task copies to the store while it runs, and cancels its job when the run stops.
"""

from __future__ import annotations

import os
import time

from mflow.errors import ExecutorError, MflowError, NotFoundError
from mflow.namedtuple import NamedTuple

from .executors import executor_name, make_executor
from .executors.base import CANCELLED, SUCCEEDED, RemoteTask, merged_resources, wait_finished

#: Seconds between two copies of a remote task's output to the store.
LIVE_LOG_SECONDS = 5.0
#: Seconds between two reads of running remote tasks' logs by the driver.
LOG_POLL_SECONDS = 2.0
#: How long the driver waits, after a job reports success, for the task's end record to
#: show in the store before it calls the attempt lost (also MFLOW_REMOTE_RESULT_GRACE).
RESULT_GRACE_SECONDS = 60.0
#: Seconds between two reads of the active tasks' end records on a folder store, at least;
#: with many tasks, no more than RECORD_READS_PER_SECOND reads a second.
RECORD_CHECK_SECONDS = 0.02
RECORD_READS_PER_SECOND = 2000.0
#: How long an engine may fail to answer polls before the run gives up on it.
POLL_PATIENCE_SECONDS = 120.0
#: Variables a worker's mflow-task needs to reach the same store as the driver. Credentials
#: are not among them: a worker gets its own (an AWS Batch job role, a cluster's account).
PASSED_VARIABLES = ("AWS_DEFAULT_REGION", "AWS_REGION", "MFLOW_CODE_SUFFIXES", "MFLOW_STALE_AFTER", "MFLOW_DEBUG")
PASSED_PREFIXES = ("MFLOW_S3_",)


class RemoteAttempt(NamedTuple):
    """A task attempt submitted as a job."""

    executor: str
    job_id: str
    spec: object  # the planner's TaskSpec
    attempt: int
    pathspec: str
    started: float
    timeout: Optional[float]


class RemoteTasks:
    """The run's jobs: which steps go to which engine, submitting, polling, cancelling."""

    def __init__(self, store, flow, flow_file, decorators_of, steps, with_specs=(), environ=None):
        self.store = store
        self.flow = flow
        self.flow_file = flow_file
        self.environ = dict(os.environ if environ is None else environ)
        self.with_specs = tuple(with_specs)
        self._decorators_of = decorators_of
        engines = {step: executor_name(decorators_of(step)) for step in steps}
        self.engine_of = {step: name for step, name in engines.items() if name != "local"}  # remote steps only
        self._executors = {}
        self.active = {}  # job id -> RemoteAttempt
        self.queued = []  # (RemoteTask, RemoteAttempt without its job) to submit
        self._finished_at = {}  # job id -> (time the engine said it finished, JobState)
        self._last_poll = {}
        self._last_records = 0.0
        self._last_logs = 0.0
        self._log_offsets = {}  # (job id, stream) -> bytes passed on
        self._log_keys = {}  # job id -> the logs record's blob keys last read
        self.result_grace = float(self.environ.get("MFLOW_REMOTE_RESULT_GRACE", RESULT_GRACE_SECONDS))
        self.poll_patience = POLL_PATIENCE_SECONDS
        self._poll_failing_since = {}  # engine -> when its polls started failing
        self.origin_run_id = None  # a resumed run's origin, for current.origin_run_id

    @property
    def used(self):
        return bool(self.engine_of)

    def remote(self, step):
        return step in self.engine_of

    def executor(self, name):
        if name not in self._executors:
            self._executors[name] = make_executor(name, self.environ)
        return self._executors[name]

    def check(self):
        """Ask each engine the run uses whether it can run its steps: before any task."""
        by_engine = {}
        for step, name in self.engine_of.items():
            by_engine.setdefault(name, {})[step] = self._decorators_of(step)[name]
        for name, options in sorted(by_engine.items()):
            self.executor(name).check(self.store, options)

    # --- submitting --------------------------------------------------------------------------

    def enqueue(self, run_id, spec, attempt, pathspec, fallback, tags, timeout, user):
        """Queue an attempt for submission; submit_queued() hands the queue to the engines,
        so that attempts ready together go together (a foreach as one Slurm job array)."""
        name = self.engine_of[spec.step]
        decorators = self._decorators_of(spec.step)
        task = RemoteTask(
            flow=self.flow,
            run_id=str(run_id),
            step=spec.step,
            task_id=str(spec.task_id),
            attempt=attempt,
            user=user or "",
            arguments=tuple(self._arguments(run_id, spec, attempt, fallback, tags)),
            environment=self._environment(user),
            resources=merged_resources(decorators.get("resources"), decorators[name]),
            options=dict(decorators[name]),
            timeout=timeout,
        )
        self.queued.append((task, RemoteAttempt(name, None, spec, attempt, pathspec, None, timeout)))

    def submit_queued(self):
        """Submit the queued attempts, each engine's in one call; they are active after."""
        by_engine = {}
        for task, remote in self.queued:
            by_engine.setdefault(remote.executor, []).append((task, remote))
        self.queued = []
        for name, items in by_engine.items():
            job_ids = self.executor(name).submit_many([task for task, _ in items])
            now = time.time()
            for job_id, (_, remote) in zip(job_ids, items):
                self.active[job_id] = remote._replace(job_id=job_id, started=now)

    def _arguments(self, run_id, spec, attempt, fallback, tags):
        arguments = ["--package"] + task_arguments(
            self.flow, self.store.url, os.path.basename(self.flow_file), run_id, spec, attempt, fallback, tags,
            self.with_specs, self.origin_run_id,
        )
        return arguments + ["--live-logs", str(float(self.environ.get("MFLOW_LIVE_LOGS", LIVE_LOG_SECONDS)))]

    def _environment(self, user):
        passed = {
            key: value
            for key, value in self.store.environ.items()
            if key in PASSED_VARIABLES or key.startswith(PASSED_PREFIXES)
        }
        passed["MFLOW_STORE"] = self.store.url
        if user:
            passed["MFLOW_USER"] = user
        return passed

    # --- watching ----------------------------------------------------------------------------

    def poll(self, meta, now=None):
        """[(RemoteAttempt, TaskResult or None, JobState or None)] of the attempts that ended.
        A None result means the job ended without the task recording its end: it is lost.

        A task's end record says it ended; the engine is asked every poll_interval of its own.
        On a folder store, reading the records is cheap, so they are read on every call and
        the driver moves on as soon as a task ends, not at the engine's next poll."""
        now = now or time.time()
        ended = []
        if not self.store.backend.remote and now - self._last_records >= self._record_interval():
            self._last_records = now
            for remote in list(self.active.values()):
                end = _attempt_end(meta, remote)
                if end is not None:
                    ended.append((remote, _result_of(remote, end), None))
                    self._forget(remote)
        by_engine = {}
        for job_id, remote in self.active.items():
            by_engine.setdefault(remote.executor, []).append(job_id)
        for name, job_ids in by_engine.items():
            executor = self.executor(name)
            if now - self._last_poll.get(name, 0.0) < executor.poll_interval:
                continue
            self._last_poll[name] = now
            try:
                states = executor.poll(job_ids)
            except ExecutorError:
                # An engine that does not answer for a moment (a busy controller, a
                # throttled API) is asked again next time; one silent for long ends the run.
                first = self._poll_failing_since.setdefault(name, now)
                if now - first >= self.poll_patience:
                    raise
                continue
            self._poll_failing_since.pop(name, None)
            for job_id in job_ids:
                state = states.get(job_id)
                remote = self.active[job_id]
                end = _attempt_end(meta, remote)
                if end is not None:
                    ended.append((remote, _result_of(remote, end), state))
                    self._forget(remote)
                elif state is not None and state.finished:
                    first_seen, _ = self._finished_at.setdefault(job_id, (now, state))
                    # A success with no end record yet: the store may lag; anything else
                    # ended before mflow-task could record it (killed, out of memory, no Python).
                    if state.state != SUCCEEDED or now - first_seen >= self.result_grace:
                        ended.append((remote, None, state))
                        self._forget(remote)
        return ended

    def _record_interval(self):
        return max(RECORD_CHECK_SECONDS, len(self.active) / RECORD_READS_PER_SECOND)

    def wait_seconds(self, now=None):
        """How long the driver may sleep before poll() has something to ask: the next read of
        end records (folder stores) or the next engine poll, whichever comes first."""
        now = now or time.time()
        due = [self._last_poll.get(name, 0.0) + self.executor(name).poll_interval
               for name in {remote.executor for remote in self.active.values()}]
        if not self.store.backend.remote:
            due.append(self._last_records + self._record_interval())
        return max(0.0, min(due) - now) if due else 0.5

    def _forget(self, remote):
        self.active.pop(remote.job_id, None)
        self._finished_at.pop(remote.job_id, None)

    def overdue(self, grace, now=None):
        """Attempts running past their timeout plus `grace` (the engine should have ended them)."""
        now = now or time.time()
        return [r for r in self.active.values() if r.timeout and now - r.started > r.timeout + grace]

    def new_log_lines(self, final_for=None, now=None):
        """[(pathspec, stream, line)] of output the running tasks added to the store since the
        last call; every LOG_POLL_SECONDS at most, unless `final_for` names an attempt that ended."""
        now = now or time.time()
        if final_for is None:
            if now - self._last_logs < LOG_POLL_SECONDS:
                return []
            self._last_logs = now
            attempts = list(self.active.values())
        else:
            attempts = [final_for]
        lines = []
        for remote in attempts:
            lines.extend(self._read_logs(remote, final=final_for is not None))
        return lines

    def _read_logs(self, remote, final):
        from mflow.store.logs import logs_record, unseen_output
        from mflow.store.pathspec import Pathspec

        task = Pathspec.parse(remote.pathspec, 4, 4)
        try:
            record = logs_record(self.store, task, remote.attempt)
        except (NotFoundError, MflowError, OSError):
            return []
        lines = []
        for stream in ("stdout", "stderr"):
            entry = record.get(stream) or {}
            key = (remote.job_id, stream)
            if self._log_keys.get(key) == entry.get("key"):
                continue
            self._log_keys[key] = entry.get("key")
            try:
                with self.store.blobs.open(entry["key"], entry.get("stored_size")) as source:
                    data = source.read()
            except (KeyError, MflowError, OSError):
                continue
            offset = self._log_offsets.get(key, 0)
            fresh = unseen_output(data, offset, final)
            self._log_offsets[key] = offset + len(fresh)
            text_lines = fresh.split(b"\n")
            if text_lines and text_lines[-1] == b"":
                text_lines.pop()
            lines.extend((remote.pathspec, stream, line) for line in text_lines)
        if final:
            for stream in ("stdout", "stderr"):
                self._log_offsets.pop((remote.job_id, stream), None)
                self._log_keys.pop((remote.job_id, stream), None)
        return lines

    # --- stopping ----------------------------------------------------------------------------

    def cancel(self, remotes, reason):
        by_engine = {}
        for remote in remotes:
            by_engine.setdefault(remote.executor, []).append(remote.job_id)
        for name, job_ids in by_engine.items():
            self.executor(name).cancel(job_ids, reason)

    def cancel_all(self, reason, wait=30.0):
        """Cancel every active job and wait up to `wait` seconds for the engines to report
        them ended; [(RemoteAttempt, JobState or None)] for each, None where one did not end."""
        remotes = list(self.active.values())
        if not remotes:
            return []
        try:
            self.cancel(remotes, reason)
        except ExecutorError:
            pass  # reported below as not stopped
        deadline = time.time() + wait
        by_engine = {}
        for remote in remotes:
            by_engine.setdefault(remote.executor, []).append(remote.job_id)
        states = {}
        for name, job_ids in by_engine.items():
            states.update(wait_finished(self.executor(name), job_ids, deadline, errors=ExecutorError))
        self.active.clear()
        return [(remote, states.get(remote.job_id)) for remote in remotes]

    def close(self):
        for executor in self._executors.values():
            executor.close()


def task_arguments(flow, store_url, flow_file, run_id, spec, attempt, fallback, tags, with_specs, origin_run_id=None):
    """mflow-task's arguments for one attempt of the planner's TaskSpec `spec`: the same
    whether the driver starts it as a process or an engine runs it as a job."""
    arguments = [flow_file, spec.step, "--flow", flow, "--store", store_url, "--run-id", str(run_id),
                 "--task-id", str(spec.task_id), "--attempt", str(attempt)]
    for ref in spec.inputs:
        arguments += ["--input", ref]
    if spec.split_index is not None:
        arguments += ["--split-index", str(spec.split_index)]
    for tag in tags:
        arguments += ["--tag", tag]
    for text in with_specs:
        arguments += ["--with", text]
    if fallback is not None:
        arguments.append("--fallback")
    if origin_run_id is not None:
        arguments += ["--origin-run-id", str(origin_run_id)]
    return arguments


def _attempt_end(meta, remote):
    try:
        return meta.attempt_end(remote.pathspec, remote.attempt)
    except NotFoundError:
        return None


def _result_of(remote, end):
    """The TaskResult of an attempt, from its end record in the store."""
    from mflow.task.runner import TaskResult

    result = end.result or {}
    return TaskResult(
        remote.pathspec,
        remote.attempt,
        end.status,
        tuple(result.get("next") or ()),
        result.get("transition"),
        result.get("foreach_splits"),
        end.exit_code if end.exit_code is not None else (0 if end.status == "successful" else 1),
        end.reason,
        end.exception,
    )


def lost_reason(state):
    """Why a job ended without its task recording an end, in the engine's words."""
    if state is None:
        return "its job did not report an end"
    if state.state == CANCELLED:
        return "its job was cancelled" + (" (%s)" % state.reason if state.reason else "")
    if state.state == SUCCEEDED:
        return "its job ended but the task recorded no end in the store"
    words = "its job failed"
    if state.exit_code is not None:
        words += " with exit code %d" % state.exit_code
    return words + (": %s" % state.reason if state.reason else "")
