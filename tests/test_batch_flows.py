"""Whole flows on AWS Batch: `mflow run` submits each task as a job to the Batch API emulator
(moto, 127.0.0.1), and tests/batch_worker.py runs each job's command as its container would,
against the S3 test server. What is checked is what a real engine would show: the run's
results in the store, the jobs the driver submitted, `mflow batch list` and `mflow batch kill`."""

import json
import os
import time

import pytest
from batch_worker import BatchWorker
from flow_runs import FlowRuns, retry_flow


class BatchRuns(FlowRuns):
    """Flow files in a folder, run against an S3 store with the Batch emulator configured."""

    def __init__(self, tmp_path, s3_server, batch_server):
        # moto takes any key, so the S3 server's keys serve both the store and the Batch API.
        env = dict(os.environ, **batch_server.env)
        env.update(s3_server.env, MFLOW_USER="tester", MFLOW_REMOTE_RESULT_GRACE="30", MFLOW_LIVE_LOGS="0.5")
        super().__init__(tmp_path, env, s3_server.url())
        self.s3, self.batch = s3_server, batch_server

    def run(self, path, *args, **kwargs):
        return self.command("run", path, *args, **kwargs)


@pytest.fixture
def runs(tmp_path, s3_server, batch_server):
    return BatchRuns(tmp_path, s3_server, batch_server)


@pytest.fixture
def worker(batch_server, s3_server):
    with BatchWorker(batch_server, s3_server.env) as running:
        yield running


FOREACH = """
class BatchForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @resources(cpu=2, memory=6000)
    @step
    def square(self):
        import os
        self.value = self.input * self.input
        self.where = os.environ.get("AWS_BATCH_JOB_ID", "")
        print("squared", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)
"""


def job_runs_of(worker, run_id):
    return sorted((r for r in worker.runs.values() if "-%s-" % run_id in r.name), key=lambda r: r.name)


def test_a_whole_flow_on_batch(runs, worker):
    path = runs.write(FOREACH)
    result = runs.run(path, "--with", "batch", "--run-id-file", runs.dir / "run-id")
    assert result.returncode == 0, result.stderr + "\nworker errors: %s" % worker.errors
    pathspec = result.stdout.strip()
    run_id = pathspec.split("/")[1]
    tasks = runs.tasks(pathspec)
    by_step = {}
    for task in tasks:
        by_step.setdefault(task["step"], []).append(task)
    assert sorted(by_step) == ["end", "join", "square", "start"] and len(by_step["square"]) == 3
    end = by_step["end"][0]
    assert runs.artifact("%s/total" % end["pathspec"]) == 14
    assert sorted(runs.artifact("%s/value" % t["pathspec"]) for t in by_step["square"]) == [1, 4, 9]

    # Every task ran as a job, once, from its command and environment alone.
    jobs = job_runs_of(worker, run_id)
    assert len(jobs) == 6 and all(j.returncode == 0 for j in jobs), [(j.name, j.stderr[-2000:]) for j in jobs]
    for job in jobs:
        assert job.command[:2] == ["mflow-task", "--package"]
        assert job.environment["MFLOW_STORE"] == runs.store_url
        assert job.environment["MFLOW_S3_ENDPOINT_URL"] == runs.s3.endpoint
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(job.environment)
        assert job.definition["containerProperties"]["image"] == runs.batch.image
    square = [j for j in jobs if "-square-" in j.name]
    where = {runs.artifact("%s/where" % t["pathspec"]) for t in by_step["square"]}
    assert where == {j.job_id for j in square}  # each task ran inside its own job

    # The driver streamed each job's output from the store's live logs.
    assert "squared 2" in result.stderr and "total 14" in result.stderr


def test_batch_on_one_step_only(runs, worker):
    path = runs.write(FOREACH.replace("    @resources(cpu=2, memory=6000)\n", "    @batch(cpu=2, memory=6000)\n"))
    result = runs.run(path)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().split("/")[1]
    jobs = job_runs_of(worker, run_id)
    assert [j.name.split("-")[3] for j in jobs] == ["square"] * 3
    end = [t for t in runs.tasks(result.stdout.strip()) if t["step"] == "end"][0]
    assert runs.artifact("%s/total" % end["pathspec"]) == 14


RETRY = retry_flow("batch", "BatchRetryFlow")


def test_retry_submits_a_new_job_per_attempt(runs, worker):
    path = runs.write(RETRY)
    result = runs.run(path)
    assert result.returncode == 0, result.stderr
    pathspec = result.stdout.strip()
    jobs = job_runs_of(worker, pathspec.split("/")[1])
    assert [j.name.rsplit("-", 1)[1] for j in jobs] == ["0", "1"]  # attempts 0 and 1, one job each
    assert jobs[0].job_id != jobs[1].job_id
    assert jobs[0].returncode == 10 and jobs[1].returncode == 0  # failed (may retry), then succeeded
    start = [t for t in runs.tasks(pathspec) if t["step"] == "start"][0]
    assert runs.artifact("%s/attempt_seen" % start["pathspec"]) == 1
    assert "the first attempt fails" in result.stderr


def test_a_failing_remote_task_fails_the_run(runs, worker):
    path = runs.write(RETRY.replace("    @retry(times=2, minutes_between_retries=0)\n", ""))
    result = runs.run(path)
    assert result.returncode == 1
    assert "the first attempt fails" in result.stderr


def test_a_job_that_records_no_end_is_a_lost_attempt(runs, worker):
    path = runs.write(RETRY)
    result = runs.run(path, env={"MFLOW_BATCH_PROGRAM": "no-such-mflow-task", "MFLOW_REMOTE_RESULT_GRACE": "2"})
    assert result.returncode == 1, result.stderr
    jobs = worker.wait_for(3)  # attempts 0, 1 and 2 (@retry(times=2)), a job each
    assert sorted(j.name[-1] for j in jobs) == ["0", "1", "2"]
    assert all(j.returncode == 127 and j.command[0] == "no-such-mflow-task" for j in jobs)
    # moto says the job SUCCEEDED; the driver waits the grace period for the task's end
    # record, then records the attempt as lost, and @retry submits the next attempt.
    assert "ended but the task recorded no end in the store" in result.stderr


def test_batch_list_and_kill_of_a_live_run(runs, worker):
    worker.paused.set()  # the queue is busy: jobs wait
    path = runs.write(FOREACH)
    process, run_id = runs.start(path, "--with", "batch")
    try:
        deadline = time.monotonic() + 60
        while not worker.waiting:
            assert time.monotonic() < deadline and process.poll() is None, worker.errors
            time.sleep(0.1)

        listed = runs.command("batch", "list", "--executor", "batch", "--run-id", "BatchForeachFlow/" + run_id,
                              "--all", "--json")
        assert listed.returncode == 0, listed.stderr
        (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
        assert row["pathspec"] == "BatchForeachFlow/%s/start/1" % run_id and row["user"] == "tester"
        assert row["executor"] == "batch" and row["attempt"] == 0
        # moto marked the job SUCCEEDED as it was submitted: nothing is pending or running for
        # Batch, so kill has nothing to stop (terminating is tested in test_batch.py).
        assert row["state"] == "succeeded"
        killed = runs.command("batch", "kill", "--executor", "batch", "--run-id", run_id, "--wait", "5")
        assert killed.returncode == 0 and "No pending or running jobs match" in killed.stderr

        worker.resume()  # the job runs after all; the run goes on
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_run_refuses_before_any_task(runs, tmp_path):
    path = runs.write(FOREACH)
    local = runs.run(path, "--with", "batch", "--store", tmp_path / "local-store")
    assert local.returncode == 6
    (line,) = local.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "--store s3://" in line
    runs_made = runs.command("runs", "BatchForeachFlow", "--json", "--store", tmp_path / "local-store",
                             program="mflow-meta")
    assert runs_made.stdout == ""  # refused before the run was made

    no_queue = runs.run(path, "--with", "batch", env={"MFLOW_BATCH_QUEUE": ""})
    assert no_queue.returncode == 6 and "MFLOW_BATCH_QUEUE" in no_queue.stderr
    assert len(no_queue.stderr.strip().splitlines()) == 1

    no_keys = runs.run(path, "--with", "batch:queue=%s" % runs.batch.queue,
                       env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert no_keys.returncode == 6 and "no AWS credentials" in no_keys.stderr
