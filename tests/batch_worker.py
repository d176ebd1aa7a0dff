"""The container runtime the AWS Batch emulator lacks: run each submitted job's command here.

A BatchWorker watches job queues of the moto server (tests/batch_server.py) and runs every
mflow job submitted there once, as its container would: the job's command, with the job's
environment (its overrides and its definition's), in an empty working directory, with the
credentials its job role would give (the S3 test server's). moto has already marked the job
SUCCEEDED at submission; what the task did shows in the store, as on a real engine.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional

from s3_server import ISOLATED_AWS

POLL_SECONDS = 0.2
JOB_TIMEOUT = 120.0
CANCEL_PREFIX = "mflow: "
#: What a job role gives a container; all else it must get from the job itself.
ROLE_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class JobRun(NamedTuple):
    """One job as the worker saw it, and what running it did."""

    job_id: str
    name: str
    queue: str
    command: list
    environment: dict  # the job's own variables (what Batch would put in the container)
    definition: dict  # the job definition, as DescribeJobDefinitions gives it
    returncode: Optional[int]  # None: not run (mflow terminated it first)
    stdout: str
    stderr: str


class BatchWorker:
    """Runs the jobs submitted to `queues` on `server`; use as a context manager."""

    def __init__(self, server, role_env, queues=None, workers=4):
        self.server = server
        self.role_env = dict(role_env)  # holds the credentials a job role would give
        self.queues = list(queues or [server.queue, server.other_queue])
        self.runs = {}  # job id -> JobRun, once run
        self.paused = threading.Event()  # set: jobs are seen but not run, as in a busy queue
        self._seen = set()
        self._held = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="batch-worker")
        self._processes = {}
        self._client = server.client()
        self._definitions = {}
        self._thread = threading.Thread(target=self._watch, name="batch-worker-watch", daemon=True)
        self.errors = []

    def __enter__(self):
        # Jobs already in the queues are other tests' (the server lives for the session).
        self._seen.update(self._list())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            for process in self._processes.values():
                if process.poll() is None:
                    os.killpg(process.pid, 9)
        self._pool.shutdown(wait=True)

    @property
    def waiting(self):
        """How many jobs the worker has seen but holds (while paused)."""
        return len(self._held)

    def resume(self):
        """Run the jobs held while paused (those mflow has not terminated meanwhile)."""
        self.paused.clear()

    def wait_for(self, count, timeout=60.0):
        """Wait until `count` jobs have been run; the JobRuns."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.runs) >= count:
                    return list(self.runs.values())
            time.sleep(0.05)
        raise AssertionError("the worker ran %d of %d jobs within %.0f s; errors: %s"
                             % (len(self.runs), count, timeout, self.errors))

    # --- the watcher ------------------------------------------------------------------------------

    def _watch(self):
        while not self._stop.is_set():
            try:
                self._take_new_jobs()
            except Exception as exc:  # noqa: B902 - report in the test, keep watching
                self.errors.append(repr(exc))
            self._stop.wait(POLL_SECONDS)

    def _take_new_jobs(self):
        new = [job_id for job_id in self._list() if job_id not in self._seen]
        for start in range(0, len(new), 100):
            for job in self._client.describe_jobs(jobs=new[start:start + 100])["jobs"]:
                self._seen.add(job["jobId"])
                self._held.append(job)
        if self.paused.is_set():
            return
        held, self._held = self._held, []
        for job in held:
            # Described again: mflow may have terminated it while it waited.
            job = self._client.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
            self._pool.submit(self._run, job)

    def _list(self):
        """The ids of every mflow job in the queues."""
        found = []
        for queue in self.queues:
            pages = self._client.get_paginator("list_jobs").paginate(
                jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["mflow-*"]}])
            found += [job["jobId"] for page in pages for job in page["jobSummaryList"]]
        return found

    def _definition(self, arn):
        if arn not in self._definitions:
            found = self._client.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
            self._definitions[arn] = found[0] if found else {}
        return self._definitions[arn]

    def _run(self, job):
        try:
            self._run_job(job)
        except Exception as exc:  # noqa: B902
            self.errors.append("%s: %r" % (job.get("jobName"), exc))

    def _run_job(self, job):
        definition = self._definition(job["jobDefinition"])
        container = job.get("container") or {}
        environment = {}
        # The definition's variables, then the submission's, which win (moto lists both).
        for item in (definition.get("containerProperties") or {}).get("environment") or []:
            environment[item["name"]] = item["value"]
        overrides = {item["name"]: item["value"] for item in container.get("environment") or []}
        environment.update(overrides)
        queue = job.get("jobQueue", "").rsplit("/", 1)[-1]
        if (job.get("statusReason") or "").startswith(CANCEL_PREFIX):
            self._record(JobRun(job["jobId"], job["jobName"], queue, container.get("command") or [], environment,
                                definition, None, "", ""))
            return
        workdir = tempfile.mkdtemp(prefix="batch-job-")
        try:
            env = self._process_env(environment, workdir)
            try:
                process = subprocess.Popen(
                    container.get("command") or [], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                )
            except OSError as exc:  # the image has no such program: a container exits 127
                self._record(JobRun(job["jobId"], job["jobName"], queue, container.get("command"), environment,
                                    definition, 127, "", str(exc)))
                return
            with self._lock:
                self._processes[job["jobId"]] = process
            try:
                stdout, stderr = process.communicate(timeout=JOB_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                stdout, stderr = process.communicate()
            self._record(JobRun(job["jobId"], job["jobName"], queue, container.get("command"), environment,
                                definition, process.returncode, stdout.decode("utf-8", "replace"),
                                stderr.decode("utf-8", "replace")))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _process_env(self, environment, workdir):
        """A container's environment: the image's PATH (mflow-task on it), the job's variables,
        and what its job role gives (credentials), nothing of the test process's own."""
        env = dict(ISOLATED_AWS, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
                   HOME=workdir, LANG="C.UTF-8")
        env.update(environment)
        if "TMPDIR" in env and not os.path.isdir(env["TMPDIR"]):
            # @batch(use_tmpfs=True) mounts a tmpfs there; a folder stands in for it here.
            env["TMPDIR"] = tempfile.mkdtemp(dir=workdir)
        env.update({k: v for k, v in self.role_env.items() if k in ROLE_VARIABLES})
        return env

    def _record(self, run):
        with self._lock:
            self.runs[run.job_id] = run
            self._processes.pop(run.job_id, None)
