"""An AWS Batch API emulator for the tests: moto's standalone server on a free 127.0.0.1 port.

Started once per test run and stopped by its PID; set up like a real account (an IAM role,
a compute environment, two job queues). moto answers the Batch API but runs no container:
with its batch config `use_docker: false` it marks every job SUCCEEDED as it is submitted
(FAILED on a server started with MOTO_SIMPLE_BATCH_FAIL_AFTER=0). tests/batch_worker.py plays
the container. If the server does not start, every test that needs it fails (never skips).
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from s3_server import ISOLATED_AWS, S3Server, _die_with_parent, free_ports

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
QUEUE = "mflow-test-queue"
OTHER_QUEUE = "mflow-test-queue-2"
DISABLED_QUEUE = "mflow-test-queue-off"
IMAGE = "example.org/mflow:test"
JOB_ROLE = "arn:aws:iam::%s:role/mflow-test-job" % ACCOUNT
START_TIMEOUT = 30.0
# moto accepts any key; these only have to look like keys.
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIAMFLOWTESTKEY", "AWS_SECRET_ACCESS_KEY": "mflow-test-secret"}


class BatchServer:
    """A running moto server: its endpoint and the environment that reaches it."""

    def __init__(self, process, endpoint, log_path):
        self.process = process
        self.pid = process.pid
        self.endpoint = endpoint
        self.log_path = log_path
        self.queue, self.other_queue, self.disabled_queue = QUEUE, OTHER_QUEUE, DISABLED_QUEUE
        self.image, self.job_role = IMAGE, JOB_ROLE
        #: What a user of mflow on AWS Batch would have set, pointed at the emulator.
        self.env = dict(
            ISOLATED_AWS,
            AWS_DEFAULT_REGION=REGION,
            MFLOW_BATCH_ENDPOINT_URL=endpoint,
            MFLOW_BATCH_QUEUE=QUEUE,
            MFLOW_BATCH_IMAGE=IMAGE,
            MFLOW_BATCH_POLL_SECONDS="0.2",
            MFLOW_BATCH_RETRIES="2",
            **FAKE_KEYS,
        )

    def client(self, service="batch"):
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_KEYS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"total_max_attempts": 2}, connect_timeout=2, read_timeout=30),
        )

    # Both servers are a subprocess with a log file: the S3 server's ways serve here too.
    log_tail = S3Server.log_tail
    stop = S3Server.stop


def moto_server_command():
    program = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.access(program, os.X_OK):
        pytest.fail("moto's server is not installed: install the test extra (`scripts/test` does)")
    return [program]


def start_server(work_dir, fail_jobs=False):
    """Start moto's server with its log in `work_dir`; a BatchServer once it is set up."""
    os.makedirs(work_dir, exist_ok=True)
    (port,) = free_ports(1)
    log_path = os.path.join(work_dir, "moto.log")
    env = dict(os.environ, **ISOLATED_AWS)
    env.pop("MOTO_SIMPLE_BATCH_FAIL_AFTER", None)
    if fail_jobs:
        env["MOTO_SIMPLE_BATCH_FAIL_AFTER"] = "0"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            moto_server_command() + ["-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work_dir, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = BatchServer(process, "http://127.0.0.1:%d" % port, log_path)
    try:
        _wait_until_ready(server)
        _configure(server)
        _create_account(server)
    except BaseException:
        server.stop()
        raise
    return server


def _moto_api(server, path, body=None):
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(server.endpoint + path, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read() or b"null")


def _wait_until_ready(server):
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail("moto_server exited with %s before it was ready:\n%s"
                        % (server.process.returncode, server.log_tail()))
        try:
            _moto_api(server, "/moto-api/config")
            return
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.1)
    pytest.fail("moto_server did not answer within %.0f s (%s):\n%s" % (START_TIMEOUT, last, server.log_tail()))


def _configure(server):
    # No container runtime here: moto's "simple" Batch marks jobs finished at submission.
    config = _moto_api(server, "/moto-api/config", {"batch": {"use_docker": False}})
    if config.get("batch", {}).get("use_docker") is not False:
        pytest.fail("moto_server did not take the batch config use_docker=false: %r" % (config,))


def _create_account(server):
    """What a real account would have: a service role, a compute environment, job queues."""
    iam = server.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    service_role = iam.create_role(RoleName="mflow-test-batch-service", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.create_role(RoleName="mflow-test-job", AssumeRolePolicyDocument=trust)
    batch = server.client()
    environment = batch.create_compute_environment(
        computeEnvironmentName="mflow-test-compute", type="UNMANAGED", state="ENABLED", serviceRole=service_role,
    )["computeEnvironmentArn"]
    for name, state in ((QUEUE, "ENABLED"), (OTHER_QUEUE, "ENABLED"), (DISABLED_QUEUE, "DISABLED")):
        batch.create_job_queue(jobQueueName=name, state=state, priority=1,
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}])


@pytest.fixture(scope="session")
def batch_server(tmp_path_factory):
    """The moto server shared by the whole test run (started on first use)."""
    server = start_server(str(tmp_path_factory.mktemp("moto")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def failing_batch_server(tmp_path_factory):
    """A second moto server on which every submitted job ends FAILED."""
    server = start_server(str(tmp_path_factory.mktemp("moto-failing")), fail_jobs=True)
    try:
        yield server
    finally:
        server.stop()
