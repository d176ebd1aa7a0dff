"""Whole flows on a real one-node Slurm cluster (tests/slurm_cluster.py): `mflow run` submits
tasks as sbatch jobs that run mflow-task against the store (a folder on this machine, which
the node shares, or the S3 test server). Checked: the results in the store, the jobs Slurm
ran, retries, timeouts, Ctrl-C cancelling jobs, `mflow batch list` and `mflow batch kill`."""

import contextlib
import json
import os
import signal
import time

import pytest
from flow_runs import FlowRuns, retry_flow


class SlurmRuns(FlowRuns):
    """Flow files in a folder, run against a store with the test cluster configured."""

    def __init__(self, tmp_path, cluster, store_url, store_env=None):
        env = dict(os.environ, **cluster.env)
        env.update(store_env or {})
        env.update(MFLOW_USER="tester", MFLOW_SLURM_OUTPUT=str(tmp_path / "slurm-output"), MFLOW_LIVE_LOGS="0.5",
                   MFLOW_REMOTE_RESULT_GRACE="30")
        super().__init__(tmp_path, env, store_url)
        self.cluster = cluster

    def jobs(self, run_id, states="all"):
        """[(job id, name, state, partition, time limit, exit code)] of a run's jobs, by name."""
        out = self.cluster.command("squeue", "-h", "--states=%s" % states,
                                   "-O", "JobID:|,Name:|,State:|,Partition:|,TimeLimit:|,exit_code:|").stdout
        rows = [tuple(line.split("|")[:6]) for line in out.splitlines()]
        return sorted((r for r in rows if "-%s-" % run_id in r[1]), key=lambda r: r[1])

    def finished_jobs(self, run_id):
        """jobs(run_id) once none is pending, running or completing: the driver moves on when a
        task records its end, which can be a moment before Slurm has finished its job."""
        deadline = time.monotonic() + 30
        while self.jobs(run_id, "PENDING,RUNNING,COMPLETING"):
            assert time.monotonic() < deadline, self.jobs(run_id)
            time.sleep(0.1)
        return self.jobs(run_id)

    def wait_for_running(self, run_id, count, process):
        deadline = time.monotonic() + 60
        while len(self.jobs(run_id, "RUNNING")) < count:
            assert time.monotonic() < deadline and process.poll() is None, self.jobs(run_id)
            time.sleep(0.2)


@pytest.fixture
def runs(tmp_path, slurm_cluster):  # noqa: F811
    return SlurmRuns(tmp_path, slurm_cluster, str(tmp_path / "store"))


BRANCHES = """
class SlurmBranchFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, self.label)

    @step
    def square(self):
        self.next(self.each, foreach="items")

    @step
    def each(self):
        import os
        self.value = self.input * self.input
        self.job = os.environ.get("SLURM_JOB_ID")
        print("squared", self.input)
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.jobs = sorted(i.job for i in inputs)
        self.next(self.meet)

    @step
    def label(self):
        self.word = "squares"
        self.next(self.meet)

    @step
    def meet(self, inputs):
        self.merge_artifacts(inputs, include=["total", "word", "jobs"])
        self.next(self.end)

    @step
    def end(self):
        print(self.word, "total", self.total)
"""


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_whole_flow_with_slurm(store, request, tmp_path, slurm_cluster):  # noqa: F811
    if store == "s3":
        s3 = request.getfixturevalue("s3_server")
        runs = SlurmRuns(tmp_path, slurm_cluster, s3.url(), s3.env)
    else:
        runs = SlurmRuns(tmp_path, slurm_cluster, str(tmp_path / "store"))
    path = runs.write(BRANCHES)
    result = runs.command("run", path, "--with", "slurm")
    assert result.returncode == 0, result.stderr
    pathspec = result.stdout.strip()
    run_id = pathspec.split("/")[1]
    end = [t for t in runs.tasks(pathspec) if t["step"] == "end"][0]
    assert runs.artifact("%s/total" % end["pathspec"]) == 14
    assert runs.artifact("%s/word" % end["pathspec"]) == "squares"

    # Every task ran once, as a Slurm job that succeeded; each foreach task in its own job.
    jobs = runs.finished_jobs(run_id)
    steps = sorted(name.split("-")[3] for _, name, *_ in jobs)
    assert steps == sorted(["start", "square", "each", "each", "each", "gather", "label", "meet", "end"]), jobs
    assert {(state, exit_code) for _, _, state, _, _, exit_code in jobs} == {("COMPLETED", "0")}
    each = sorted(job_id for job_id, name, *_ in jobs if "-each-" in name)
    assert runs.artifact("%s/jobs" % end["pathspec"]) == each
    # The driver streamed each job's output from the store's live logs.
    assert "squared 2" in result.stderr and "squares total 14" in result.stderr


ONE_STEP = """
class SlurmOneStepFlow(FlowSpec):
    @step
    def start(self):
        import os
        self.driver_job = os.environ.get("SLURM_JOB_ID")
        self.next(self.train)

    @slurm(partition="other", cpus=2, memory=500)
    @step
    def train(self):
        import os
        self.cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_slurm_on_one_step_only(runs):
    path = runs.write(ONE_STEP)
    result = runs.command("run", path)
    assert result.returncode == 0, result.stderr
    pathspec = result.stdout.strip()
    jobs = runs.finished_jobs(pathspec.split("/")[1])
    assert [(name.split("-")[3], partition) for _, name, _, partition, _, _ in jobs] == [("train", "other")]
    tasks = {t["step"]: t["pathspec"] for t in runs.tasks(pathspec)}
    assert runs.artifact("%s/cpus" % tasks["train"]) == "2"
    assert runs.artifact("%s/driver_job" % tasks["start"]) is None  # start ran here, not on Slurm


def test_retry_of_a_failing_remote_task_is_a_new_job(runs):
    path = runs.write(retry_flow("slurm", "SlurmRetryFlow"))
    result = runs.command("run", path)
    assert result.returncode == 0, result.stderr
    pathspec = result.stdout.strip()
    jobs = runs.finished_jobs(pathspec.split("/")[1])
    # Attempt 0 failed with mflow-task's "may retry" exit code, attempt 1 succeeded.
    assert [(name.rsplit("-", 1)[1], state, code) for _, name, state, _, _, code in jobs] == [
        ("0", "FAILED", str(10 << 8)), ("1", "COMPLETED", "0")]
    start = [t for t in runs.tasks(pathspec) if t["step"] == "start"][0]
    assert runs.artifact("%s/attempt_seen" % start["pathspec"]) == 1
    assert "the first attempt fails" in result.stderr


TIMEOUT = """
class SlurmTimeoutFlow(FlowSpec):
    @slurm
    @timeout(seconds=2)
    @step
    def start(self):
        import time
        time.sleep(120)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_timeout_of_a_remote_task(runs):
    path = runs.write(TIMEOUT)
    started = time.monotonic()
    result = runs.command("run", path, "--run-id-file", runs.dir / "run-id")
    assert result.returncode == 1
    assert time.monotonic() - started < 60  # the step's own alarm, not Slurm's minute
    assert "timed out" in result.stderr.lower() or "timeout" in result.stderr.lower(), result.stderr
    ((_, _, state, _, limit, _),) = runs.finished_jobs((runs.dir / "run-id").read_text().strip())
    assert state == "FAILED" and limit == "1:00"  # Slurm's own limit: the timeout and its grace, in minutes


SLEEPERS = """
class SlurmSleepFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.nap, foreach="items")

    @slurm
    @step
    def nap(self):
        import time
        print("napping", flush=True)
        time.sleep(300)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@contextlib.contextmanager
def sleeping_run(runs):
    """A run of SlurmSleepFlow whose three nap jobs are running: (process, run id); the
    process is killed on the way out if the test left it running."""
    process, run_id = runs.start(runs.write(SLEEPERS))
    try:
        runs.wait_for_running(run_id, 3, process)
        yield process, run_id
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_ctrl_c_cancels_the_running_jobs(runs):
    with sleeping_run(runs) as (process, run_id):
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "was interrupted" in stderr
        assert runs.jobs(run_id, "PENDING,RUNNING,COMPLETING") == []
        assert {state for _, name, state, *_ in runs.jobs(run_id) if "-nap-" in name} == {"CANCELLED"}
        meta = runs.command("runs", "SlurmSleepFlow", "--json", program="mflow-meta")
        assert json.loads(meta.stdout.splitlines()[0])["status"] == "interrupted"


def test_batch_list_and_kill_of_a_live_run(runs):
    with sleeping_run(runs) as (process, run_id):
        listed = runs.command("batch", "list", "--executor", "slurm", "--run-id", run_id, "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert sorted(r["pathspec"] for r in rows) == ["SlurmSleepFlow/%s/nap/%d" % (run_id, i) for i in (2, 3, 4)]
        assert {(r["executor"], r["user"], r["state"], r["attempt"]) for r in rows} == {
            ("slurm", "tester", "running", 0)}
        mine = runs.command("batch", "list", "--executor", "slurm", "--json", env={"MFLOW_USER": "tester"})
        assert len(mine.stdout.splitlines()) == 3
        others = runs.command("batch", "list", "--executor", "slurm", "--user", "nobody-else", "--json")
        assert others.returncode == 0 and others.stdout == ""

        killed = runs.command("batch", "kill", "--executor", "slurm", "--run-id", "SlurmSleepFlow/" + run_id, "--json")
        assert killed.returncode == 0, killed.stderr
        assert {json.loads(line)["state"] for line in killed.stdout.splitlines()} == {"cancelled"}
        assert runs.jobs(run_id, "PENDING,RUNNING,COMPLETING") == []
        again = runs.command("batch", "kill", "--executor", "slurm", "--run-id", run_id)
        assert again.returncode == 0 and "No pending or running jobs match" in again.stderr

        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stderr  # its tasks were cancelled: the run failed
        assert "cancelled" in stderr


def test_run_refuses_before_any_task(runs, tmp_path):
    path = runs.write(ONE_STEP)
    missing = runs.command("run", path, "--with", "slurm:partition=nope")  # train keeps its own partition
    assert missing.returncode == 6, missing.stderr
    (line,) = missing.stderr.strip().splitlines()
    assert line == "Error: Slurm partition nope (steps end, start) does not exist. Use one of: debug, other."

    dead = runs.cluster.unreachable_conf(tmp_path / "dead.conf")
    unreachable = runs.command("run", path, env={"SLURM_CONF": dead})
    assert unreachable.returncode == 6
    (line,) = unreachable.stderr.strip().splitlines()
    assert line.startswith("Error: cannot reach the Slurm controller") and "scontrol ping" in line
    made = runs.command("runs", "SlurmOneStepFlow", "--json", program="mflow-meta")
    assert made.stdout == ""  # refused before the run was made
