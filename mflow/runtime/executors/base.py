"""What every compute engine mflow hands tasks to has in common.

The driver runs a task either in a forked child on this machine (the `local` executor, in
driver.py) or as a job of a compute engine: AWS Batch (batch.py) or Slurm (slurm.py). A job
runs exactly the `mflow-task` command a local task would, with `--package` so it fetches the
run's code from the store, and `--live-logs` so its output reaches the store while it runs.
The engine does the scheduling; an Executor only submits, polls, cancels and lists.

Every job carries flow, run, step, task, attempt and user in its name and tags/comment, so
`mflow batch list` and `mflow batch kill` find a run's jobs without the flow file.
"""

from __future__ import annotations

import re
import time

from mflow.namedtuple import NamedTuple

#: Job states, the same words for every engine.
PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "pending", "running", "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)

#: Every job name starts with this, so mflow's jobs are told apart from others in a queue.
JOB_PREFIX = "mflow"


class RemoteTask(NamedTuple):
    """One task attempt to run as a job: what the driver hands an executor."""

    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int
    user: str
    arguments: tuple  # mflow-task's arguments, without the program: the executor knows how
    # mflow-task starts on its workers (an image's `mflow-task`, a cluster's shared Python)
    environment: dict  # variables the worker's process needs (MFLOW_STORE, endpoints, ...)
    resources: dict  # cpu, memory (MB), gpu, disk (MB): @resources merged with the engine's decorator
    options: dict  # the engine decorator's attributes (@batch / @slurm), defaults filled in
    timeout: Optional[float] = None  # seconds: the engine's own time limit for the job

    @property
    def pathspec(self):
        return "%s/%s/%s/%s" % (self.flow, self.run_id, self.step, self.task_id)

    @property
    def job_name(self):
        return job_name(self.flow, self.run_id, self.step, self.task_id, self.attempt)

    @property
    def labels(self):
        """The job's identity as key/value pairs (AWS Batch tags; Slurm comment)."""
        return {
            "mflow.flow": self.flow,
            "mflow.run": self.run_id,
            "mflow.step": self.step,
            "mflow.task": self.task_id,
            "mflow.attempt": str(self.attempt),
            "mflow.user": self.user or "",
        }


class JobState(NamedTuple):
    """Where a job is now. `exit_code` and `reason` are known once it has finished."""

    job_id: str
    state: str  # one of PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED
    exit_code: Optional[int] = None
    reason: Optional[str] = None  # the engine's own words: "TIMEOUT", "Essential container exited", ...

    @property
    def finished(self):
        return self.state in FINISHED


class JobInfo(NamedTuple):
    """One of mflow's jobs as an engine lists it (mflow batch list)."""

    executor: str
    job_id: str
    name: str
    flow: Optional[str]
    run_id: Optional[str]
    step: Optional[str]
    task_id: Optional[str]
    attempt: Optional[int]
    user: Optional[str]
    state: str
    submitted_at: Optional[str] = None  # ISO 8601, UTC
    reason: Optional[str] = None

    @property
    def pathspec(self):
        if not (self.flow and self.run_id and self.step and self.task_id):
            return None
        return "%s/%s/%s/%s" % (self.flow, self.run_id, self.step, self.task_id)

    def to_json(self):
        return {
            "schema": 1,
            "executor": self.executor,
            "job_id": self.job_id,
            "name": self.name,
            "pathspec": self.pathspec,
            "flow": self.flow,
            "run_id": self.run_id,
            "step": self.step,
            "task_id": self.task_id,
            "attempt": self.attempt,
            "user": self.user,
            "state": self.state,
            "submitted_at": self.submitted_at,
            "reason": self.reason,
        }


class JobFilter(NamedTuple):
    """Which jobs `mflow batch list/kill` means; None matches any."""

    flow: Optional[str] = None
    run_id: Optional[str] = None
    user: Optional[str] = None
    active_only: bool = True  # pending or running only

    def matches(self, job):
        if self.flow is not None and job.flow != self.flow:
            return False
        if self.run_id is not None and job.run_id != str(self.run_id):
            return False
        if self.user is not None and job.user != self.user:
            return False
        return not self.active_only or job.state not in FINISHED


class Executor:
    """A compute engine the driver hands task attempts to.

    An executor is built once per run (or per `mflow batch` command) with the process's
    environment; it talks to its engine only through the engine's own API or commands.
    """

    name = ""
    #: Seconds between two polls of the engine by the driver.
    poll_interval = 1.0

    def __init__(self, environ):
        self.environ = environ

    def check(self, store, options_by_step):
        """Raise ExecutorError before any task runs if the engine cannot run these steps:
        unreachable, no credentials, a queue/partition/image that does not exist, a store
        its workers cannot reach. `options_by_step` maps step -> decorator attributes."""
        raise NotImplementedError

    def submit(self, task):
        """Submit one RemoteTask; the engine's job id (str). ExecutorError if refused."""
        raise NotImplementedError

    def submit_many(self, tasks):
        """Submit RemoteTasks that became ready together; their job ids, in order. Engines
        that can submit many at once (Slurm's job arrays) do so."""
        return [self.submit(task) for task in tasks]

    def poll(self, job_ids):
        """{job_id: JobState} for these jobs, in as few requests as the engine allows.
        A job the engine no longer knows is reported FAILED with a reason saying so."""
        raise NotImplementedError

    def cancel(self, job_ids, reason="cancelled by mflow"):
        """Ask the engine to stop these jobs; jobs already finished are no error."""
        raise NotImplementedError

    def jobs(self, job_filter):
        """JobInfo of mflow's jobs the engine knows that match `job_filter`."""
        raise NotImplementedError

    def close(self):
        """Release connections and temporary files."""


def wait_finished(executor, job_ids, deadline, errors=()):
    """{job_id: JobState} of those jobs the engine reports finished by `deadline` (a
    time.time()), polling it until then. A poll raising one of `errors` counts as no news."""
    states = {}
    while True:
        pending = [job_id for job_id in job_ids if job_id not in states]
        try:
            found = executor.poll(pending)
        except errors:
            found = {}
        states.update({job_id: state for job_id, state in found.items() if state.finished})
        if len(states) == len(job_ids) or time.time() >= deadline:
            return states
        time.sleep(min(0.5, executor.poll_interval))


def job_name(flow, run_id, step, task_id, attempt):
    """`mflow-Flow-run-step-task-attempt`: the identity of a job, readable in the engine's own
    tools; characters the engines refuse become `_`; at most 128 characters (AWS Batch)."""
    text = "-".join((JOB_PREFIX, flow, str(run_id), step, str(task_id), str(attempt)))
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:128]


def parse_job_name(name):
    """(flow, run_id, step, task_id, attempt) from a job name made by job_name, or None.

    Flow and step names are identifiers (no `-`); run and task ids hold no `-` either."""
    parts = (name or "").split("-")
    if len(parts) != 6 or parts[0] != JOB_PREFIX or not parts[5].isdigit():
        return None
    return parts[1], parts[2], parts[3], parts[4], int(parts[5])


def merged_resources(resources, engine):
    """cpu, memory (MB), gpu, disk (MB) and shared_memory (MB) a job asks for: for each, the
    larger of @resources and the engine decorator's own value (its names: cpu/cpus, memory,
    gpu/gpus, shared_memory)."""
    resources = resources or {}
    engine = engine or {}
    merged = {}
    for name, aliases in (("cpu", ("cpu", "cpus")), ("memory", ("memory",)), ("gpu", ("gpu", "gpus")),
                          ("disk", ("disk",)), ("shared_memory", ("shared_memory",))):
        values = [resources.get(name)] + [engine.get(alias) for alias in aliases]
        values = [v for v in values if v is not None]
        merged[name] = max(values) if values else None
    return merged
