"""The AWS Batch executor against an emulator of the Batch API (moto's server on 127.0.0.1):
the exact jobs it submits, job definitions, polling, terminating, listing, and every check
that refuses a run before it starts. No job runs here (tests/test_batch_flows.py runs them)."""

import os
import time
import uuid

import pytest

from mflow.errors import ExecutorError, ExitCode
from mflow.runtime.executors import make_executor
from mflow.runtime.executors.base import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, JobFilter, RemoteTask
from mflow.runtime.executors.batch import BatchExecutor, job_state

BATCH_DEFAULTS = {
    "cpu": 1, "gpu": 0, "memory": 4096, "image": None, "queue": None, "iam_role": None, "execution_role": None,
    "shared_memory": None, "max_swap": None, "swappiness": None, "use_tmpfs": False, "tmpfs_size": None, "tags": None,
}


def executor(server, **env):
    environ = dict(server.env, **env)
    return make_executor("batch", {k: v for k, v in environ.items() if v is not None})


def remote_task(flow="BatchTestFlow", run_id=None, step="train", task_id="2", attempt=0, user="alice",
                resources=None, timeout=None, **options):
    return RemoteTask(
        flow=flow, run_id=run_id or str(int(time.time() * 1000)) + uuid.uuid4().hex[:4].replace("-", ""),
        step=step, task_id=task_id, attempt=attempt, user=user,
        arguments=("--package", "--flow", flow, "flow.py", step, "--run-id", "R", "--task-id", task_id),
        environment={"MFLOW_STORE": "s3://bucket/prefix", "MFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:1"},
        resources=resources or {"cpu": 1, "memory": 4096, "gpu": None, "disk": None},
        options=dict(BATCH_DEFAULTS, **options), timeout=timeout,
    )


class Recorder:
    """The parameters of every request of one operation the executor's client sends."""

    def __init__(self, client, operation):
        self.calls = []
        client.meta.events.register("provide-client-params.batch.%s" % operation, self._record)

    def _record(self, params, **kwargs):
        self.calls.append(dict(params))


# --- the job submitted -------------------------------------------------------------------------


def test_submitted_job_is_exactly_what_the_task_needs(batch_server):
    ex = executor(batch_server)
    sent = Recorder(ex.client, "SubmitJob")
    task = remote_task(
        resources={"cpu": 4, "memory": 16000, "gpu": None, "disk": 10000},  # @resources
        cpu=2, memory=32000, gpu=1, iam_role=batch_server.job_role, tags={"team": "ds", "mflow.user": "mallory"},
        timeout=25,
    )
    task = task._replace(environment=dict(task.environment, AWS_SECRET_ACCESS_KEY="s3cret", AWS_ACCESS_KEY_ID="AK"))
    job_id = ex.submit(task)

    (request,) = sent.calls
    assert request["jobName"] == task.job_name == "mflow-BatchTestFlow-%s-train-2-0" % task.run_id
    assert request["jobQueue"] == batch_server.queue
    overrides = request["containerOverrides"]
    assert overrides["command"] == ["mflow-task"] + list(task.arguments)
    # @resources and @batch merged, the larger of each; disk has no Batch equivalent on EC2.
    assert overrides["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "32000"}, {"type": "GPU", "value": "1"}]
    # The store's variables and the region; never credentials (the job role gives those).
    assert overrides["environment"] == [
        {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
        {"name": "MFLOW_S3_ENDPOINT_URL", "value": "http://127.0.0.1:1"},
        {"name": "MFLOW_STORE", "value": "s3://bucket/prefix"},
    ]
    assert request["tags"] == dict(task.labels, team="ds")  # mflow's own tags win over the decorator's
    assert request["propagateTags"] is True
    assert request["timeout"] == {"attemptDurationSeconds": 60}  # Batch's minimum
    assert request["retryStrategy"] == {"attempts": 1}

    # What the emulator holds is what was sent.
    (job,) = batch_server.client().describe_jobs(jobs=[job_id])["jobs"]
    assert job["jobName"] == task.job_name
    assert job["container"]["command"] == overrides["command"]
    assert job["tags"] == request["tags"]
    assert job["timeout"] == {"attemptDurationSeconds": 60}
    (definition,) = batch_server.client().describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
        "jobDefinitions"]
    assert definition["jobDefinitionName"].startswith("mflow-")
    assert definition["status"] == "ACTIVE"
    properties = definition["containerProperties"]
    assert properties["image"] == batch_server.image
    assert properties["jobRoleArn"] == batch_server.job_role
    assert properties["command"] == ["mflow-task"]


def test_timeout_program_and_fractions(batch_server):
    ex = executor(batch_server, MFLOW_BATCH_PROGRAM="/opt/conda/bin/mflow-task --traceback")
    sent = Recorder(ex.client, "SubmitJob")
    ex.submit(remote_task(resources={"cpu": 0.5, "memory": 1000.5, "gpu": None, "disk": None}, cpu=0.25,
                          memory=512, timeout=3600.2))
    ex.submit(remote_task())
    first, second = sent.calls
    assert first["containerOverrides"]["command"][:3] == ["/opt/conda/bin/mflow-task", "--traceback", "--package"]
    assert first["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1001"}]
    assert first["timeout"] == {"attemptDurationSeconds": 3601}
    assert "timeout" not in second  # no @timeout: no limit of Batch's own


def test_job_definitions_are_registered_once_and_reused(batch_server):
    image = "example.org/mflow:%s" % uuid.uuid4().hex[:8]
    ex = executor(batch_server, MFLOW_BATCH_IMAGE=image)
    registered = Recorder(ex.client, "RegisterJobDefinition")
    submitted = Recorder(ex.client, "SubmitJob")
    ex.submit(remote_task(cpu=2))
    ex.submit(remote_task(memory=9000, step="other"))  # resources differ: same definition
    ex.submit(remote_task(shared_memory=256, max_swap=1024, swappiness=10, use_tmpfs=True))
    assert len(registered.calls) == 2
    arns = [call["jobDefinition"] for call in submitted.calls]
    assert arns[0] == arns[1] != arns[2]
    tuned = registered.calls[1]["containerProperties"]
    assert tuned["linuxParameters"] == {
        "sharedMemorySize": 256, "maxSwap": 1024, "swappiness": 10,
        "tmpfs": [{"containerPath": "/mflow_tmpfs", "size": 2048, "mountOptions": ["rw"]}],
    }
    assert tuned["environment"] == [{"name": "TMPDIR", "value": "/mflow_tmpfs"}]

    # Another process (a new executor) finds the ACTIVE definition instead of registering one.
    again = executor(batch_server, MFLOW_BATCH_IMAGE=image)
    registered_again = Recorder(again.client, "RegisterJobDefinition")
    submitted_again = Recorder(again.client, "SubmitJob")
    again.submit(remote_task(cpu=8))
    assert registered_again.calls == []
    assert submitted_again.calls[0]["jobDefinition"] == arns[0]

    # A definition deregistered (INACTIVE) is not reused.
    batch_server.client().deregister_job_definition(jobDefinition=arns[0])
    third = executor(batch_server, MFLOW_BATCH_IMAGE=image)
    registered_third = Recorder(third.client, "RegisterJobDefinition")
    third.submit(remote_task())
    assert len(registered_third.calls) == 1


def test_the_decorator_overrides_the_environment_defaults(batch_server):
    ex = executor(batch_server, MFLOW_BATCH_IAM_ROLE="arn:aws:iam::123456789012:role/default-role",
                  MFLOW_BATCH_EXECUTION_ROLE="arn:aws:iam::123456789012:role/exec")
    registered = Recorder(ex.client, "RegisterJobDefinition")
    submitted = Recorder(ex.client, "SubmitJob")
    ex.submit(remote_task(queue=batch_server.other_queue, image="example.org/other:%s" % uuid.uuid4().hex[:6]))
    properties = registered.calls[0]["containerProperties"]
    assert properties["image"].startswith("example.org/other:")
    assert properties["jobRoleArn"].endswith("role/default-role")
    assert properties["executionRoleArn"].endswith("role/exec")
    assert submitted.calls[0]["jobQueue"] == batch_server.other_queue


def test_a_refused_submission_is_one_line(batch_server):
    ex = executor(batch_server)
    with pytest.raises(ExecutorError) as caught:
        ex.submit(remote_task(queue="no-such-queue"))
    assert "no-such-queue" in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.exit_code == ExitCode.EXECUTOR


# --- polling, terminating ----------------------------------------------------------------------


def test_poll_reports_the_emulators_states(batch_server):
    ex = executor(batch_server)
    ids = [ex.submit(remote_task(task_id=str(i))) for i in range(3)]
    states = ex.poll(ids + ["00000000-0000-0000-0000-000000000000"])
    for job_id in ids:
        assert states[job_id].state == SUCCEEDED and states[job_id].exit_code == 0  # moto ends jobs at submission
    lost = states["00000000-0000-0000-0000-000000000000"]
    assert lost.state == FAILED and "no longer knows" in lost.reason


def test_poll_in_batches_of_a_hundred(batch_server):
    ex = executor(batch_server)
    described = Recorder(ex.client, "DescribeJobs")
    job_id = ex.submit(remote_task())
    unknown = ["%08d-0000-0000-0000-000000000000" % i for i in range(230)]
    states = ex.poll([job_id] + unknown)
    assert [len(call["jobs"]) for call in described.calls] == [100, 100, 31]
    assert states[job_id].state == SUCCEEDED and len(states) == 231


def test_a_failed_job_and_a_terminated_one(failing_batch_server):
    ex = executor(failing_batch_server)
    failed, cancelled = ex.submit(remote_task(task_id="1")), ex.submit(remote_task(task_id="2"))
    ex.cancel([cancelled], "run interrupted")
    ex.cancel([cancelled], "run interrupted")  # again: no error
    states = ex.poll([failed, cancelled])
    assert states[failed].state == FAILED and states[failed].reason
    assert states[cancelled] == (cancelled, CANCELLED, None, "run interrupted")
    job = failing_batch_server.client().describe_jobs(jobs=[cancelled])["jobs"][0]
    assert job["statusReason"] == "mflow: run interrupted"


def test_terminate_reaches_the_engine(batch_server):
    ex = executor(batch_server)
    job_id = ex.submit(remote_task())
    ex.cancel([job_id])
    ex.cancel([job_id, "00000000-0000-0000-0000-000000000001"])  # finished or unknown: no error
    job = batch_server.client().describe_jobs(jobs=[job_id])["jobs"][0]
    # moto had finished the job at submission, so the status stays; the reason shows the call.
    assert job["statusReason"] == "mflow: cancelled by mflow"


@pytest.mark.parametrize(
    "job, expected",
    [
        ({"status": "SUBMITTED"}, (PENDING, None, None)),
        ({"status": "PENDING"}, (PENDING, None, None)),
        ({"status": "RUNNABLE"}, (PENDING, None, None)),
        ({"status": "STARTING"}, (PENDING, None, None)),
        ({"status": "RUNNING"}, (RUNNING, None, None)),
        ({"status": "SUCCEEDED", "container": {"exitCode": 0}}, (SUCCEEDED, 0, None)),
        ({"status": "FAILED", "statusReason": "Essential container in task exited", "container": {"exitCode": 11}},
         (FAILED, 11, "Essential container in task exited")),
        ({"status": "FAILED", "statusReason": "Essential container in task exited",
          "attempts": [{"container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory"
                                                                  " usage"}}]},
         (FAILED, 137, "Essential container in task exited: OutOfMemoryError: Container killed due to memory usage")),
        ({"status": "FAILED", "statusReason": "Job attempt duration exceeded timeout"},
         (FAILED, None, "timed out: AWS Batch stopped the job at its time limit (Job attempt duration exceeded "
                        "timeout)")),
        ({"status": "FAILED", "statusReason": "mflow: cancelled by mflow batch kill"},
         (CANCELLED, None, "cancelled by mflow batch kill")),
        ({"status": "FAILED", "statusReason": "Terminated by the console", "container": {"exitCode": 143}},
         (FAILED, 143, "Terminated by the console")),
        ({"status": "FAILED"}, (FAILED, None, "AWS Batch reports the job FAILED")),
    ],
)
def test_job_states_as_batch_describes_them(job, expected):
    # The shapes of DescribeJobs answers for states the emulator never reaches.
    state = job_state(dict(job, jobId="j"))
    assert (state.state, state.exit_code, state.reason) == expected


# --- listing -----------------------------------------------------------------------------------


def test_jobs_finds_a_runs_jobs_in_every_queue(batch_server):
    flow = "ListFlow%s" % uuid.uuid4().hex[:6]
    ex = executor(batch_server)
    mine = remote_task(flow=flow, run_id="100", user="alice")
    ids = {
        ex.submit(mine),
        ex.submit(mine._replace(step="end", task_id="3", attempt=1, options=dict(mine.options,
                                                                                  queue=batch_server.other_queue))),
    }
    other_run = ex.submit(remote_task(flow=flow, run_id="200", user="alice"))
    bob = ex.submit(remote_task(flow=flow, run_id="300", user="bob"))

    listed = ex.jobs(JobFilter(flow=flow, run_id="100", active_only=False))
    assert {job.job_id for job in listed} == ids
    first = next(job for job in listed if job.step == "train")
    assert first.to_json() == {
        "schema": 1, "executor": "batch", "job_id": first.job_id, "name": mine.job_name,
        "pathspec": "%s/100/train/2" % flow, "flow": flow, "run_id": "100", "step": "train", "task_id": "2",
        "attempt": 0, "user": "alice", "state": "succeeded", "submitted_at": first.submitted_at, "reason": None,
    }
    assert first.submitted_at.endswith("Z") and first.submitted_at[:4].isdigit()
    assert {job.job_id for job in ex.jobs(JobFilter(flow=flow, user="bob", active_only=False))} == {bob}
    assert other_run in {job.job_id for job in ex.jobs(JobFilter(flow=flow, user="alice", active_only=False))}
    # moto ends every job as it is submitted: none is pending or running.
    assert ex.jobs(JobFilter(flow=flow)) == []

    only_default = BatchExecutor(dict(batch_server.env), queues=[batch_server.queue])
    assert len(only_default.jobs(JobFilter(flow=flow, run_id="100", active_only=False))) == 1


# --- checks before a run -----------------------------------------------------------------------


@pytest.fixture
def s3_store(s3_server):
    from mflow.store import open_store

    return open_store(s3_server.url(), environ=dict(os.environ, **s3_server.env))


def check_error(ex, store, options_by_step):
    started = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        ex.check(store, options_by_step)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == ExitCode.EXECUTOR
    return message, time.monotonic() - started


def test_check_passes_for_a_usable_setup(batch_server, s3_store):
    executor(batch_server).check(s3_store, {"start": dict(BATCH_DEFAULTS), "end": dict(
        BATCH_DEFAULTS, queue=batch_server.other_queue, image="example.org/x:1")})


def test_check_refuses_a_local_store(batch_server, tmp_path):
    from mflow.store import open_store

    message, _ = check_error(executor(batch_server), open_store(str(tmp_path / "store")), {"train": BATCH_DEFAULTS})
    assert "local store" in message and "--store s3://" in message and "train" in message


def test_check_refuses_a_missing_queue_or_image(batch_server, s3_store):
    message, _ = check_error(executor(batch_server, MFLOW_BATCH_QUEUE=None), s3_store, {"train": BATCH_DEFAULTS})
    assert "no AWS Batch job queue for step train" in message and "MFLOW_BATCH_QUEUE" in message
    message, _ = check_error(executor(batch_server, MFLOW_BATCH_IMAGE=None), s3_store, {"train": BATCH_DEFAULTS})
    assert "no container image" in message and "MFLOW_BATCH_IMAGE" in message
    message, _ = check_error(executor(batch_server), s3_store, {"train": dict(BATCH_DEFAULTS, queue="nope")})
    assert "job queue nope (step train) does not exist" in message
    message, _ = check_error(executor(batch_server), s3_store,
                             {"train": dict(BATCH_DEFAULTS, queue=batch_server.disabled_queue)})
    assert "is DISABLED" in message


def test_check_refuses_missing_credentials(batch_server, s3_store):
    ex = executor(batch_server, AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    message, _ = check_error(ex, s3_store, {"train": BATCH_DEFAULTS})
    assert "no AWS credentials for AWS Batch" in message and "AWS_ACCESS_KEY_ID" in message


def test_check_refuses_an_unreachable_endpoint_fast(batch_server, s3_store):
    from s3_server import free_ports

    (port,) = free_ports(1)  # nothing listens there
    ex = executor(batch_server, MFLOW_BATCH_ENDPOINT_URL="http://127.0.0.1:%d" % port)
    message, seconds = check_error(ex, s3_store, {"train": BATCH_DEFAULTS})
    assert "cannot reach http://127.0.0.1:%d" % port in message
    assert seconds < 10


def test_no_region_is_one_line(batch_server):
    ex = executor(batch_server, AWS_DEFAULT_REGION=None)
    with pytest.raises(ExecutorError) as caught:
        ex.poll(["x"])
    assert "no AWS region" in str(caught.value)
