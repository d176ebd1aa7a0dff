"""Shared fixtures: run a command in-process against a fake console, and find the repo."""

import io
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


class Result:
    def __init__(self, code, stdout, stderr):
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return "Result(code=%r, stdout=%r, stderr=%r)" % (self.code, self.stdout, self.stderr)


class _TextOut(io.TextIOWrapper):
    def __init__(self):
        super().__init__(io.BytesIO(), encoding="utf-8", newline="")

    def value(self):
        self.flush()
        return self.buffer.getvalue().decode("utf-8")


def invoke(command, args, stdin="", environ=None, tty=False):
    """Run a click command through mflow's error boundary with captured streams."""
    from mflow.cli.boundary import run_cli
    from mflow.cli.console import Console

    out, err = _TextOut(), _TextOut()
    env = dict(os.environ)
    env.update(environ or {})
    console = Console(
        stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=env, stdout_isatty=tty, stderr_isatty=tty
    )
    code = run_cli(command, [str(a) for a in args], console, prog_name=command.name)
    return Result(code, out.value(), err.value())


@pytest.fixture
def cli():
    return invoke


@pytest.fixture
def repo():
    return REPO


# --- store fixtures ---
from s3_server import s3_server, store_under_test  # noqa: E402,F401  (SeaweedFS on 127.0.0.1)
from batch_server import batch_server, failing_batch_server  # noqa: E402,F401  (moto's AWS Batch on 127.0.0.1)
from slurm_cluster import slurm_cluster  # noqa: E402,F401  (munged, slurmctld and slurmd on 127.0.0.1)
# One Docker daemon and one job image for every module that runs containers (Step Functions'
# Batch jobs, Argo's pods), and moto's Step Functions server.
from docker_env import docker_daemon, mflow_image  # noqa: E402,F401
from sfn_server import sfn_server  # noqa: E402,F401
