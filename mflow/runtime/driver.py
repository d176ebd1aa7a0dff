"""The driver behind `mflow run`: allocate the run, schedule its tasks, watch them finish.

Every task is its own process: a child forked from the driver (which has imported the
flow once, so a task costs no interpreter start-up) running exactly what `mflow-task` runs.
A step in a @pypi environment runs `mflow-task` as a new process (it switches interpreter);
a step on @batch or @slurm runs `mflow-task` as a job of that engine (see remote.py).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

from mflow.errors import ExitCode, MflowError
from mflow.folders import make_private_folder, remove_tree
from mflow.namedtuple import NamedTuple
from mflow.process_status import describe_wait_status, exit_code_of
from mflow.task.capture import flush_python_streams

from .planner import PARAMETERS_STEP, PARAMETERS_TASK_ID, RunPlanner, TaskOutcome

DEFAULT_MAX_WORKERS = 16
DEFAULT_MAX_JOBS = 256
DEFAULT_MAX_NUM_SPLITS = 100
KILL_GRACE_SECONDS = 5.0
HEARTBEAT_SECONDS = 10.0
CHILD_NICENESS = 5
#: How long past its @timeout an attempt that ignores the timeout exception may run before
#: the driver kills its process group (also MFLOW_TIMEOUT_GRACE).
TIMEOUT_GRACE_SECONDS = 10.0


class RunFailed(MflowError):
    """A run ended without success; the message names the first failure."""

    exit_code = ExitCode.FAILED


class RunInterrupted(MflowError):
    exit_code = ExitCode.INTERRUPTED


class TaskFailure(NamedTuple):
    """The first task that failed: its pathspec, attempt, and what happened."""

    pathspec: str
    attempt: int
    reason: str


class RunSummary(NamedTuple):
    flow: str
    run_id: str
    status: str  # successful, failed, interrupted
    tasks_done: int
    first_failure: Optional[TaskFailure]
    seconds: float

    @property
    def pathspec(self):
        return "%s/%s" % (self.flow, self.run_id)


class RunEvents:
    """What the driver tells whoever watches it (the CLI prints these; tests record them).
    Every method is a no-op here."""

    def run_started(self, flow, run_id):
        pass

    def task_started(self, pathspec, attempt):
        pass

    def log_line(self, pathspec, stream, line):
        """One line (bytes, with its newline) a task wrote on stream "stdout" or "stderr"."""

    def task_finished(self, pathspec, result):
        pass

    def progress(self, counts):
        """counts: dict with done, running, queued, failed."""

    def warning(self, message):
        pass


class RunOptions(NamedTuple):
    max_workers: int = DEFAULT_MAX_WORKERS  # tasks running at once on this machine
    max_jobs: int = DEFAULT_MAX_JOBS  # tasks running at once as jobs of compute engines
    max_num_splits: int = DEFAULT_MAX_NUM_SPLITS
    user_tags: tuple = ()
    run_id: Optional[str] = None
    run_id_file: Optional[str] = None
    stream_logs: bool = True
    kill_grace: float = KILL_GRACE_SECONDS
    with_decorators: dict = {}  # --with: {name: arguments}, for steps that lack the decorator
    timeout_grace: float = TIMEOUT_GRACE_SECONDS
    resume: object = None  # a ResumePlan: clone what it allows, run the rest
    environment: str = "pypi"  # --environment: "pypi" builds @pypi steps' environments, "local" ignores them
    system_tags: tuple = ()  # project:, project_branch: of a @project flow's run
    lock: object = None  # (name, "wait" or "refuse"): the overlap lock the run takes first


class _Running(NamedTuple):
    pid: int
    spec: object
    attempt: int
    pathspec: str
    stdout_path: str
    stderr_path: str
    result_path: str
    started: float
    timeout: Optional[float] = None  # seconds, from @timeout


class _Retry(NamedTuple):
    ready_at: float
    spec: object
    attempt: int
    fallback: Optional[dict]


class RunDriver:
    """Runs one flow to the end. `parameters` maps parameter attributes to their values."""

    def __init__(self, store, meta, graph, flow_class, flow_file, parameters, options=None, events=None):
        self.store = store
        self.meta = meta
        self.graph = graph
        self.flow_class = flow_class
        self.flow_file = os.path.abspath(flow_file)
        self.parameters = dict(parameters)
        self.options = options or RunOptions()
        self.events = events or RunEvents()
        self.flow = graph.name
        self.run_id = None
        self.planner = RunPlanner(graph)
        self._queue = []
        self._running = {}  # pid -> _Running
        self._offsets = {}  # (pid, stream) -> bytes already passed on
        self._partial = {}  # (pid, stream) -> an unfinished last line
        self._done = 0
        self._failed = []  # failures that end the run
        self._first_failure = None  # the first attempt that failed, retried or not
        self._retries = []  # _Retry: attempts waiting for their delay
        self._timed_out = set()  # pids killed for running past their timeout
        self._decorators = {}  # step -> {name: attributes}
        self._cloner = None  # resume only
        self._log_dir = None
        self._remote = None  # RemoteTasks: the steps that run as jobs of a compute engine
        self._environments = None  # the EnvPlan of @pypi steps, or None
        self._timed_out_jobs = set()  # job ids cancelled for running past their timeout
        self._preloaded = False  # what forked tasks use, imported before the first fork

    # --- the run ----------------------------------------------------------------------------

    def run(self):
        """Run the flow; the RunSummary. Raises RunInterrupted on Ctrl-C or SIGTERM, after
        stopping every task and recording the run as interrupted."""
        from mflow.graph import graph_record
        from mflow.task.decorators import with_texts

        from .remote import RemoteTasks
        from .resume import Cloner, graph_summary

        started = time.time()
        plan = self.options.resume
        # Everything that can refuse the run does so before it exists: the engines its
        # steps run on and the environments they need.
        self._remote = RemoteTasks(
            self.store, self.flow, self.flow_file, self.decorators, list(self.graph.steps),
            with_specs=with_texts(self.options.with_decorators),
        )
        if self._remote.used:
            self._remote.check()
        self._remote.origin_run_id = plan.origin_run_id if plan is not None else None
        self._environments = self._resolve_environments(plan)
        self.run_id = self.meta.allocate_run_id(self.flow, self.options.run_id)
        if self.options.lock is not None:
            from mflow.meta.lock import RunLock

            name, mode = self.options.lock
            RunLock(self.meta, self.flow, name, mode).acquire(
                self.run_id, on_wait=lambda holder: self.events.warning("Waiting for run %s to end (--lock wait)." % holder)
            )
        if self._environments is not None:
            self._environments.record(self.flow, self.run_id)
        if self.options.run_id_file:
            _write_atomically(self.options.run_id_file, self.run_id)
        # The analyzed graph goes with the code, so that remote tasks need not parse the flow.
        code = self.store.save_code_package(
            self.flow, self.run_id, os.path.dirname(self.flow_file),
            graph=graph_record(self.graph, os.path.basename(self.flow_file), _read_bytes(self.flow_file)),
        )
        if plan is not None:
            params = plan.params
        else:
            params = {p.name: _recorded(p, self.parameters.get(attr)) for attr, p in self.flow_class._get_parameters()}
        # The parameters are stored before the run record, so that every run a reader (or
        # resume) can find has them, wherever its driver was killed.
        if plan is not None:
            self._cloner = Cloner(self.store, self.meta, plan, self.flow, self.run_id)
            self._cloner.copy_parameters()
        else:
            self._save_parameters()
        self.meta.start_run(
            self.flow,
            self.run_id,
            params=params,
            user_tags=self.options.user_tags,
            code_key=getattr(code, "key", None),
            origin_run_id=plan.origin_run_id if plan is not None else None,
            graph=graph_summary(self.graph),
            extra_system_tags=self.options.system_tags,
        )
        self.events.run_started(self.flow, self.run_id)
        self._log_dir = make_private_folder("mflow-%s-%s-" % (self.flow, self.run_id))
        previous = _install_signal_handlers()
        status = "failed"
        try:
            self._queue.extend(self.planner.start())
            self._loop()
            status = "failed" if self._failed else "successful"
        except KeyboardInterrupt:
            status = "interrupted"
            self._stop_all("interrupted")
        finally:
            _restore_signal_handlers(previous)
            if self._running or self._remote.active:  # an error of mflow's own: leave nothing running
                self._stop_all("failed")
            self.meta.end_run(self.flow, self.run_id, status, first_failure=self._first_failure)
            remove_tree(self._log_dir)
            self._remote.close()
        summary = RunSummary(
            self.flow, self.run_id, status, self._done, self._failed[0] if self._failed else None, time.time() - started
        )
        if status == "interrupted":
            raise RunInterrupted(
                "run %s/%s was interrupted; its running tasks were stopped" % (self.flow, self.run_id),
                "Continue it with: mflow resume %s --origin-run-id %s"
                % (os.path.basename(self.flow_file), self.run_id),
            )
        return summary

    def _resolve_environments(self, plan):
        """The EnvPlan of the run's @pypi steps (built or found in the cache), or None."""
        from mflow.env.spec import step_specs

        environment = self.options.environment
        if environment == "local" or (environment == "pypi" and not step_specs(
                self.flow_class, self.graph, self.options.with_decorators)):
            # What resolve_run would find, without importing its machinery (hashlib, json,
            # the builders: about 9 ms of every run's start).
            return None
        from mflow.env import resolve_run

        origin = (self.flow, plan.origin_run_id) if plan is not None else None
        environments = resolve_run(
            self.store, self.flow_class, self.graph, self.flow_file, self.options.with_decorators,
            self.options.environment, origin=origin,
        )
        return environments if environments is not None and environments.steps else None

    def _save_parameters(self):
        from mflow.store.pathspec import Pathspec

        task = Pathspec.task(self.flow, self.run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)
        writer = self.store.artifact_writer(task, 0)
        writer.save_many(sorted(self.parameters.items()))
        writer.commit()

    def decorators(self, step):
        """{name: attributes} of the decorators that apply to `step`'s tasks."""
        found = self._decorators.get(step)
        if found is None:
            from mflow.task.decorators import task_decorators

            found = self._decorators[step] = task_decorators(
                self.flow_class, self.graph, step, self.options.with_decorators
            )
        return found

    def _loop(self):
        last_beat = 0.0
        while self._queue or self._running or self._retries or self._remote.active:
            now = time.time()
            if self._retries and not self._failed:
                due = [r for r in self._retries if r.ready_at <= now]
                self._retries = [r for r in self._retries if r.ready_at > now]
                for retry in due:
                    self._queue.insert(0, retry)
            while self._queue and not self._failed:
                index = self._next_launchable()
                if index is None:
                    break
                item = self._queue.pop(index)
                if isinstance(item, _Retry):
                    self._launch(item.spec, item.attempt, item.fallback)
                elif not self._clone(item):
                    self._launch(item)
            if self._remote.queued:
                self._remote.submit_queued()
            if self._failed and not self._running and not self._remote.active:
                break
            timeout = 0.05 if self.options.stream_logs else 0.5
            if self._remote.active:
                timeout = min(timeout, self._remote.wait_seconds())  # jobs are polled, not waited for
            if self._retries and not self._queue:
                timeout = max(0.0, min(timeout, min(r.ready_at for r in self._retries) - time.time()))
            self._wait(timeout)
            self._reap()
            if self._remote.active:
                self._poll_remote()
            self._enforce_timeouts()
            if self.options.stream_logs:
                self._pass_on_logs()
            now = time.time()
            # Beats from this loop, not a thread: the driver forks, and forking a process
            # that has threads is unsafe.
            interval = getattr(self.meta, "heartbeat_interval", HEARTBEAT_SECONDS)
            if now - last_beat >= interval:
                self.meta.heartbeat_run(self.flow, self.run_id)
                for task in self._running.values():
                    if now - task.started >= interval:
                        self.meta.heartbeat_attempt(task.pathspec, task.attempt)
                last_beat = now
            self.events.progress(self.counts())
            if self._failed and (self._running or self._remote.active):
                self._stop_all("failed")

    def _next_launchable(self):
        """Index of the first queued item with room to run (local tasks and jobs are counted
        apart: a full cluster queue does not hold back local tasks), or None."""
        local_room = len(self._running) < self.options.max_workers
        if not self._remote.used:
            return 0 if local_room else None
        remote_room = len(self._remote.active) + len(self._remote.queued) < self.options.max_jobs
        for index, item in enumerate(self._queue):
            spec = item.spec if isinstance(item, _Retry) else item
            if (remote_room if self._remote.remote(spec.step) else local_room):
                return index
            if not local_room and not remote_room:
                return None
        return None

    def _busy(self):
        return len(self._running) + len(self._remote.active)

    def counts(self):
        return {
            "done": self._done,
            "running": self._busy(),
            "queued": len(self._queue),
            "failed": len(self._failed),
        }

    # --- launching ---------------------------------------------------------------------------

    def _launch(self, spec, attempt=0, fallback=None):
        from mflow.decospec import timeout_seconds
        from mflow.store.pathspec import Pathspec

        pathspec = str(Pathspec.task(self.flow, self.run_id, spec.step, spec.task_id))
        timeout = self.decorators(spec.step).get("timeout")
        timeout = timeout_seconds(timeout) if timeout and fallback is None else None
        if self._remote.remote(spec.step):
            from mflow.flow.current import resolve_username

            # The engine ends the job a grace period after the step's own alarm, which
            # records the timeout as the step's failure first.
            limit = timeout + self.options.timeout_grace if timeout else None
            self._remote.enqueue(self.run_id, spec, attempt, pathspec, fallback, self.options.user_tags, limit,
                                 resolve_username())
            self.events.task_started(pathspec, attempt)
            return
        base = os.path.join(self._log_dir, "%s.%s.%d" % (spec.step, spec.task_id, attempt))
        paths = (base + ".out", base + ".err", base + ".result")
        if self._environments is not None and spec.step in self._environments.steps:
            pid = self._spawn(spec, attempt, paths, fallback)
            self._running[pid] = _Running(pid, spec, attempt, pathspec, paths[0], paths[1], paths[2], time.time(),
                                          timeout)
            self.events.task_started(pathspec, attempt)
            return
        if not self._preloaded:
            _preload_task_modules()
            self._preloaded = True
        flush_python_streams()
        # Objects that exist now are the driver's: keep the child's garbage collector off
        # them, or its first collection touches (and so copies) every page it inherited.
        gc.freeze()
        driver_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the task's process
            self._child(spec, attempt, paths, fallback, driver_pid)
        self._running[pid] = _Running(pid, spec, attempt, pathspec, paths[0], paths[1], paths[2], time.time(), timeout)
        self.events.task_started(pathspec, attempt)

    def _spawn(self, spec, attempt, paths, fallback):
        """Start `mflow-task` for the attempt as a new process (a @pypi step: mflow-task moves
        into the step's environment); its result line goes to the result file, what the step
        prints to the two log files, and mflow-task's own errors to a third."""
        from mflow.task.decorators import with_texts

        from .remote import task_arguments

        arguments = [sys.executable, "-m", "mflow.cli.task"] + task_arguments(
            self.flow, self.store.url, self.flow_file, self.run_id, spec, attempt, fallback, self.options.user_tags,
            with_texts(self.options.with_decorators), self._remote.origin_run_id,
        ) + ["--log-files", paths[0], paths[1]]
        environ = dict(os.environ)
        environ.update(self.store.environ)
        environ["MFLOW_STORE"] = self.store.url
        create = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, paths[2], create, 0o644),
            (os.POSIX_SPAWN_OPEN, 2, paths[2] + ".errors", create, 0o644),
        ]
        flush_python_streams()
        return os.posix_spawn(sys.executable, arguments, environ, file_actions=actions, setpgroup=0)

    def _child(self, spec, attempt, paths, fallback, driver_pid):
        code = ExitCode.INTERNAL
        try:
            os.setpgid(0, 0)  # its own process group: stopping it stops what it started
            _die_with_parent(driver_pid)
            # A notch below the driver, so that with every core busy the driver still
            # starts and reaps tasks on time instead of queueing behind them.
            os.nice(CHILD_NICENESS)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            store, meta = self.store, self.meta
            # Steps that read results (the client API) or data (S3(run=self)) find this store.
            os.environ["MFLOW_STORE"] = store.url
            if store.backend.remote:
                # Connections inherited from the driver are the driver's: requests from two
                # processes on one socket corrupt each other. A task opens its own.
                from mflow.meta import MetaStore
                from mflow.store import open_store

                store = open_store(store.url, environ=store.environ)
                meta = MetaStore(store)
            code = run_in_child(store, meta, self.graph, self.flow_class, self.run_id, spec, attempt,
                                paths, tags=self.options.user_tags, decorators=self.decorators(spec.step),
                                fallback=fallback, origin_run_id=self._remote.origin_run_id)
        except BaseException:  # noqa: B902 - a child must never return into the driver's code
            import traceback

            try:
                os.write(2, traceback.format_exc().encode("utf-8", "replace"))
            except OSError:
                pass
        finally:
            os._exit(int(code))

    # --- watching ------------------------------------------------------------------------------

    def _wait(self, timeout):
        import select

        try:
            select.select([_wakeup_reader()], [], [], timeout)
        except (InterruptedError, OSError):
            pass
        _drain_wakeup()

    def _reap(self):
        while self._running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            task = self._running.pop(pid, None)
            if task is None:
                continue
            self._finish(task, status)

    def _finish(self, task, status):
        if self.options.stream_logs:
            self._pass_on_logs(task, final=True)
        result = _read_result(task.result_path)
        if result is None:
            if task.pid in self._timed_out:
                reason = "killed after timeout of %s s" % _seconds(task.timeout)
                kind = "TimeoutKilled"
            else:
                reason = describe_wait_status(status)
                kind = "TaskKilled" if os.WIFSIGNALED(status) else "TaskExited"
                if not os.WIFSIGNALED(status):
                    reason += " without a result"
                said = _last_line(task.result_path + ".errors")
                if said:
                    reason += ": " + said
            self._timed_out.discard(task.pid)
            result = self._record_lost_attempt(
                task, exit_code_of(status), reason, kind, os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
            )
        self._handle_result(task, result)

    def _poll_remote(self):
        for remote, result, state in self._remote.poll(self.meta):
            if self.options.stream_logs:
                for pathspec, stream, line in self._remote.new_log_lines(final_for=remote):
                    self.events.log_line(pathspec, stream, line)
            if result is None:
                result = self._lost_remote(remote, state)
            self._handle_result(remote, result)
        if self.options.stream_logs and self._remote.active:
            for pathspec, stream, line in self._remote.new_log_lines():
                self.events.log_line(pathspec, stream, line)

    def _lost_remote(self, remote, state):
        """Record the end of a remote attempt whose job ended before its task recorded one."""
        from .remote import lost_reason

        if remote.job_id in self._timed_out_jobs:
            reason, kind = "killed after timeout of %s s" % _seconds(remote.timeout), "TimeoutKilled"
        else:
            reason = "%s job %s: %s" % (remote.executor, remote.job_id, lost_reason(state))
            kind = "JobLost"
        self._timed_out_jobs.discard(remote.job_id)
        exit_code = state.exit_code if state is not None and state.exit_code is not None else ExitCode.TASK_FAILED
        return self._record_lost_attempt(remote, int(exit_code), reason, kind)

    def _handle_result(self, task, result):
        """Go on from an attempt's end: the next tasks, a retry, a @catch stand-in, or failure.
        `task` is a _Running (local) or a RemoteAttempt."""
        self.events.task_finished(task.pathspec, result)
        if result.status != "successful":
            if self._first_failure is None:
                self._first_failure = {"pathspec": task.pathspec, "attempt": task.attempt, "reason": result.error}
            self._after_failure(task, result)
            return
        self._done += 1
        if result.transition == "foreach" and result.foreach_splits > self.options.max_num_splits:
            self._failed.append(
                TaskFailure(
                    task.pathspec,
                    task.attempt,
                    "foreach step %s has %d splits, more than --max-num-splits %d; raise --max-num-splits to allow it"
                    % (task.spec.step, result.foreach_splits, self.options.max_num_splits),
                )
            )
            return
        outcome = TaskOutcome(tuple(result.next_steps), result.transition, result.foreach_splits)
        self._queue.extend(self.planner.finished(task.spec.task_id, outcome))

    def _clone(self, spec):
        """Resume: clone the task if the origin run has it done; True if it did."""
        origin = self._cloner.source(spec) if self._cloner is not None else None
        if origin is None:
            return False
        result = self._cloner.clone(spec, origin)
        self._done += 1
        outcome = TaskOutcome(tuple(result.get("next") or ()), result.get("transition"), result.get("foreach_splits"))
        self._queue.extend(self.planner.finished(spec.task_id, outcome))
        return True

    def _after_failure(self, task, result):
        """Retry the task, stand in for it with its @catch, or fail the run."""
        import random

        from mflow.decospec import retry_delay

        decorators = self.decorators(task.spec.step)
        retry = decorators.get("retry")
        retries_used = task.attempt  # attempts are numbered from 0
        final = result.exit_code == ExitCode.TASK_FAILED_FINAL
        if retry and not final and retries_used < retry["times"] and not self._failed:
            delay = retry_delay(retry, retries_used + 1, random.random(), self._remote.remote(task.spec.step))
            self.events.warning(
                "Task %s (attempt %d) failed: %s; %s"
                % (task.pathspec, task.attempt, result.error, _retry_wait(delay))
            )
            self._retries.append(_Retry(time.time() + delay, task.spec, task.attempt + 1, None))
            return
        if "catch" in decorators and not self._failed:
            self.events.warning("Task %s failed: %s; @catch stands in for it" % (task.pathspec, result.error))
            exception = result.exception or {"type": "Exception", "message": result.error or "", "traceback": ""}
            self._queue.insert(0, _Retry(0.0, task.spec, task.attempt + 1, exception))
            return
        self._failed.append(TaskFailure(task.pathspec, task.attempt, result.error or "failed"))

    def _enforce_timeouts(self):
        """Kill the attempts still running well past their @timeout (their code ignored
        the timeout exception): the grace period, then SIGKILL to the process group."""
        now = time.time()
        for task in self._running.values():
            if task.timeout and task.pid not in self._timed_out:
                if now - task.started > task.timeout + self.options.timeout_grace:
                    self._timed_out.add(task.pid)
                    _signal_group(task.pid, signal.SIGKILL)
        # A job's time limit is the engine's to enforce; one it has not ended a while after
        # (a poll or two late, say) is cancelled here.
        if self._remote.active:
            overdue = [r for r in self._remote.overdue(self.options.timeout_grace + 30.0, now)
                       if r.job_id not in self._timed_out_jobs]
            if overdue:
                self._timed_out_jobs.update(r.job_id for r in overdue)
                self._remote.cancel(overdue, "ran past its timeout")

    def _record_lost_attempt(self, task, exit_code, reason, kind, signal_number=None):
        """An attempt whose process or job ended before it recorded its end (killed, crashed,
        lost): record the failure here, with a local task's logs; its TaskResult."""
        from mflow.store.pathspec import Pathspec
        from mflow.task.runner import TaskResult

        result = TaskResult(
            task.pathspec, task.attempt, "failed", exit_code=exit_code, error=reason,
            exception={"type": kind, "message": reason, "traceback": ""},
        )
        pathspec = Pathspec.parse(task.pathspec, 4, 4)
        if isinstance(task, _Running):  # a job's logs are in the store already, as far as it got
            try:
                self.store.save_logs(pathspec, task.attempt, stdout=task.stdout_path, stderr=task.stderr_path)
            except (MflowError, OSError):
                pass  # the logs of a task killed mid-write may be unreadable; its end still counts
        self.meta.end_attempt(
            pathspec, task.attempt, "failed", exit_code=result.exit_code, reason=result.error,
            exception=result.exception, duration=time.time() - task.started, signal=signal_number,
        )
        return result

    def _pass_on_logs(self, only=None, final=False):
        tasks = [only] if only is not None else list(self._running.values())
        for task in tasks:
            for stream, path in (("stdout", task.stdout_path), ("stderr", task.stderr_path)):
                key = (task.pid, stream)
                offset = self._offsets.get(key, 0)
                try:
                    with open(path, "rb") as handle:
                        handle.seek(offset)
                        data = handle.read()
                except OSError:
                    continue
                self._offsets[key] = offset + len(data)
                data = self._partial.pop(key, b"") + data
                lines = data.split(b"\n")
                rest = lines.pop()
                if rest and not final:
                    self._partial[key] = rest
                elif rest:
                    lines.append(rest)
                for line in lines:
                    self.events.log_line(task.pathspec, stream, line)
            if final:
                self._offsets.pop((task.pid, "stdout"), None)
                self._offsets.pop((task.pid, "stderr"), None)

    def _stop_all(self, why):
        """Stop every running task: SIGTERM to its process group, SIGKILL after the grace;
        cancel every job, and record the end of those whose task could not."""
        for task in self._running.values():
            _signal_group(task.pid, signal.SIGTERM)
        for remote, state in self._remote.cancel_all("run %s" % why, wait=max(self.options.kill_grace, 30.0)):
            end = self.meta.attempt_end(remote.pathspec, remote.attempt)
            if end is None:
                if state is None:
                    self.events.warning(
                        "%s job %s of task %s did not report stopped; check it with: mflow batch list --run-id %s"
                        % (remote.executor, remote.job_id, remote.pathspec, self.run_id)
                    )
                self._handle_result(remote, self._lost_remote(remote, state))
        deadline = time.time() + self.options.kill_grace
        while self._running and time.time() < deadline:
            self._reap()
            if self._running:
                time.sleep(0.02)
        for task in list(self._running.values()):
            _signal_group(task.pid, signal.SIGKILL)
        while self._running:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            task = self._running.pop(pid, None)
            if task is not None:
                self._finish(task, status)


def _retry_wait(seconds):
    """How the console says when a retry starts."""
    if seconds < 0.5:
        return "retrying at once"
    if seconds < 90:
        return "retrying in %.0f s" % seconds
    return "retrying in %.0f s (%.1f min)" % (seconds, seconds / 60)


def run_in_child(store, meta, graph, flow_class, run_id, spec, attempt, paths, tags=(), decorators=None,
                 fallback=None, origin_run_id=None):
    """The body of a forked task: run the attempt with its output in the log files and
    write the result for the driver. The exit code mflow-task would give."""
    import orjson

    from mflow.task.capture import LogCapture
    from mflow.task.runner import TaskAttempt

    stdout_path, stderr_path, result_path = paths
    with LogCapture(stdout_path, stderr_path):
        attempt_runner = TaskAttempt(
            store, meta, graph, flow_class, run_id, spec.step, spec.task_id, spec.inputs,
            split_index=spec.split_index, attempt=attempt, log_paths=(stdout_path, stderr_path), tags=tags,
            heartbeat=False, decorators=decorators, fallback=fallback, origin_run_id=origin_run_id,
        )
        result = attempt_runner.run()
    _write_atomically(result_path, orjson.dumps(result.to_json()).decode("utf-8"))
    return result.exit_code


def _preload_task_modules():
    """Import here, once, what every task would otherwise import after each fork: before
    the first fork, so that a run whose first tasks are jobs submits them without it."""
    import orjson  # noqa: F401

    import mflow.env.inventory  # noqa: F401
    import mflow.meta.heartbeat  # noqa: F401
    import mflow.store.artifacts  # noqa: F401
    import mflow.store.logs  # noqa: F401
    import mflow.task.capture  # noqa: F401
    import mflow.task.runner  # noqa: F401

    _load_libc()


def _seconds(value):
    return ("%d" % value) if float(value).is_integer() else ("%g" % value)


_LIBC = []  # loaded once in the driver, before forking: not once per task


def _load_libc():
    if not _LIBC:
        try:
            import ctypes

            _LIBC.append(ctypes.CDLL(None, use_errno=True))
        except (OSError, ImportError):
            _LIBC.append(None)
    return _LIBC[0]


def _die_with_parent(driver_pid):
    """Have the kernel stop this task if the driver dies (kill -9, power loss), so that no
    orphan writes into a run that resume may already be redoing. Linux only."""
    libc = _load_libc()
    if libc is None:
        return
    try:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except AttributeError:
        return
    if os.getppid() != driver_pid:  # the driver died before the call
        os._exit(int(ExitCode.INTERNAL))


def _last_line(path):
    """The last non-empty line of a small text file, or None."""
    try:
        with open(path, "rb") as handle:
            lines = [line.strip() for line in handle.read()[-4096:].decode("utf-8", "replace").splitlines()]
    except OSError:
        return None
    lines = [line for line in lines if line]
    return lines[-1] if lines else None


def _read_result(path):
    from mflow.task.runner import TaskResult

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    import orjson

    try:
        return TaskResult.from_json(orjson.loads(data))
    except (ValueError, KeyError, TypeError):
        return None


def _read_bytes(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError:
        return None  # the code package reads it too, and says what is wrong


def _write_atomically(path, text):
    temp = "%s.tmp.%d" % (path, os.getpid())
    with open(temp, "w") as handle:
        handle.write(text + "\n")
    os.replace(temp, path)


def _recorded(parameter, value):
    """A parameter's value as the run record keeps it: an included file by its size (its
    content is the parameter's artifact), the rest as plain data."""
    if parameter.kind == "IncludeFile" and value is not None:
        return {"included_file_bytes": len(value)}
    return _plain(value)


def _plain(value):
    """A parameter value as JSON-friendly data for the run record."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# --- signals: a child's exit and Ctrl-C wake the driver's loop at once ------------------------

_WAKEUP = []


def _wakeup_reader():
    return _WAKEUP[0]


def _drain_wakeup():
    try:
        while os.read(_WAKEUP[0], 4096):
            pass
    except (BlockingIOError, OSError):
        pass


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt()


def _install_signal_handlers():
    if not _WAKEUP:
        reader, writer = os.pipe()
        os.set_blocking(reader, False)
        os.set_blocking(writer, False)
        _WAKEUP.extend([reader, writer])
    previous = {
        signal.SIGCHLD: signal.signal(signal.SIGCHLD, lambda *args: None),
        signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
    }
    previous["wakeup"] = signal.set_wakeup_fd(_WAKEUP[1])
    return previous


def _restore_signal_handlers(previous):
    signal.set_wakeup_fd(previous.pop("wakeup"))
    for sig, handler in previous.items():
        signal.signal(sig, handler)
