"""@pypi environments built for real, from the package index: two versions of one package in
two steps of a flow, the cache, the lock with the run and resume, remote-style rebuilds from
the store's wheels, bad input, --environment=local, `mflow env show|diff|build`.

Builds use small pure-Python wheels (six) and one environment cache for the session, so
the whole file costs a few seconds of package index time."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

FLOW = '''
import os
import sys

from mflow import FlowSpec, step, pypi, pypi_base


@pypi_base(packages={"six": "1.16.0"})
class TwoSixFlow(FlowSpec):
    @step
    def start(self):
        import six

        assert six.__version__ == "1.16.0", six.__version__
        self.versions = {"start": six.__version__}
        self.prefix = sys.prefix
        self.next(self.older)

    @pypi(packages={"six": "1.15.0"})
    @step
    def older(self):
        import six

        assert six.__version__ == "1.15.0", six.__version__
        self.versions = dict(self.versions, older=six.__version__)
        self.next(self.end)

    @pypi(packages={"six": ">=1.15,<1.17"})
    @step
    def end(self):
        import six

        if os.path.exists(os.environ.get("FAIL_END", "/nonexistent")):
            raise RuntimeError("asked to fail")
        self.versions = dict(self.versions, end=six.__version__)
'''

BAD = '''
from mflow import FlowSpec, step, pypi


class BadFlow(FlowSpec):
    @pypi(SPEC)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''

MFLOW = os.path.join(os.path.dirname(sys.executable), "mflow")
MFLOW_TASK = os.path.join(os.path.dirname(sys.executable), "mflow-task")


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory):
    """One environment cache for every test here: each spec resolves and builds once."""
    return tmp_path_factory.mktemp("env-cache")


class EnvRunner:
    def __init__(self, tmp_path, cache):
        self.dir = tmp_path
        self.store_dir = tmp_path / "store"
        self.env = dict(os.environ, MFLOW_STORE=str(self.store_dir), MFLOW_USER="tester",
                        MFLOW_ENV_CACHE=str(cache))
        self.env.pop("MFLOW_ENVIRONMENT", None)

    def write(self, source, name="flow.py"):
        path = self.dir / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    def call(self, *args, env=None, command=MFLOW):
        return subprocess.run([command, *map(str, args)], capture_output=True, text=True, timeout=600,
                              cwd=str(self.dir), env=dict(self.env, **(env or {})))

    def ok(self, *args, **kwargs):
        result = self.call(*args, **kwargs)
        assert result.returncode == 0, result.stderr
        return result

    def rows(self, *args, **kwargs):
        return [json.loads(line) for line in self.ok(*args, "--json", **kwargs).stdout.splitlines()]

    def artifact(self, run, step, name):
        from mflow.client import Flow, namespace

        os.environ["MFLOW_STORE"] = str(self.store_dir)
        try:
            namespace(None)
            flow, run_id = run.split("/")
            return Flow(flow)[run_id][step].task.data.__getattr__(name)
        finally:
            os.environ.pop("MFLOW_STORE", None)

    def lock(self, run):
        flow, run_id = run.split("/")
        return json.loads((self.store_dir / "data" / flow / run_id / "environments.json").read_text())


@pytest.fixture
def runner(tmp_path, env_cache):
    return EnvRunner(tmp_path, env_cache)


def test_each_step_sees_its_own_version_and_the_lock_is_recorded(runner, env_cache):
    flow = runner.write(FLOW)
    run = runner.ok("run", flow, "-q").stdout.strip()
    assert runner.artifact(run, "end", "versions") == {"start": "1.16.0", "older": "1.15.0", "end": "1.16.0"}
    assert runner.artifact(run, "start", "prefix").startswith(str(env_cache))
    lock = runner.lock(run)
    assert lock["schema"] == 1 and set(lock["steps"]) == {"start", "older", "end"}
    # start (==1.16.0) and end (>=1.15,<1.17) resolve alike: one environment serves both.
    assert lock["steps"]["start"] == lock["steps"]["end"] != lock["steps"]["older"]
    packages = {env_id: [(p["name"], p["version"]) for p in env["packages"]]
                for env_id, env in lock["environments"].items()}
    assert packages[lock["steps"]["older"]] == [("six", "1.15.0")]
    for env in lock["environments"].values():
        for package in env["packages"]:
            assert runner.store_dir.joinpath("blobs", package["key"][:2], package["key"]).exists()


def test_second_build_builds_nothing(runner):
    flow = runner.write(FLOW)
    runner.ok("run", flow, "-q")
    rows = runner.rows("env", "build", flow)
    assert {row["action"] for row in rows} == {"reused"}
    assert {row["lock"] for row in rows} == {"cached"}
    assert sorted(step for row in rows for step in row["steps"]) == ["end", "older", "start"]
    assert all(row["seconds"] < 5 for row in rows)


def test_show_and_diff(runner):
    flow = runner.write(FLOW)
    run = runner.ok("run", flow, "-q").stdout.strip()
    rows = runner.rows("env", "show", run)
    six = {tuple(row["steps"]): row["version"] for row in rows if row["name"] == "six"}
    assert six == {("start", "end"): "1.16.0", ("older",): "1.15.0"} or six == {("end", "start"): "1.16.0",
                                                                                ("older",): "1.15.0"}
    assert {row["python"] for row in rows} == {"%d.%d.%d" % sys.version_info[:3]}
    assert all(row["env_id"] for row in rows)
    task_rows = runner.rows("env", "show", run + "/older/2")
    assert [row["version"] for row in task_rows if row["name"] == "six"] == ["1.15.0"]
    assert any(row["name"] == "mflow" for row in task_rows)  # mflow is importable in the environment
    table = runner.ok("env", "show", run, env={"COLUMNS": "200"}).stdout
    assert "six" in table

    other = runner.write(FLOW.replace("1.15.0", "1.14.0"), "other.py")
    run_b = runner.ok("run", other, "-q").stdout.strip()
    diff = runner.rows("env", "diff", run, run_b)
    assert diff == [{"schema": 1, "step": "older", "change": "changed", "name": "six", "a": "1.15.0", "b": "1.14.0"}]
    assert runner.rows("env", "diff", run, run) == []


def test_resume_reuses_the_lock_without_an_index(runner, tmp_path):
    flag = tmp_path / "fail"
    flag.write_text("x")
    flow = runner.write(FLOW)
    failed = runner.call("run", flow, "-q", env={"FAIL_END": str(flag)})
    assert failed.returncode == 1, failed.stderr
    origin_run = failed.stderr.split("Error: run ")[1].split(" ")[0]
    flag.unlink()
    # A fresh machine with no package index: resolving anything would fail, so success
    # means the origin run's lock was used and the wheels came from the store.
    offline = {
        "MFLOW_ENV_CACHE": str(tmp_path / "cold-cache"),
        "MFLOW_ENV_INSTALLER": "pip",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": "",
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    run = runner.ok("resume", flow, "--origin-run-id", origin_run.split("/")[1], "-q", env=offline).stdout.strip()
    assert runner.lock(run)["steps"] == runner.lock(origin_run)["steps"]
    assert runner.artifact(run, "end", "versions")["end"] == "1.16.0"
    assert os.path.isdir(tmp_path / "cold-cache" / "envs")


def test_a_worker_builds_from_the_store(runner, tmp_path):
    flow = runner.write(FLOW)
    run = runner.ok("run", flow, "-q").stdout.strip()
    run_id = run.split("/")[1]
    worker = {
        "MFLOW_ENV_CACHE": str(tmp_path / "worker-cache"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "UV_OFFLINE": "1",
    }
    result = runner.ok(flow, "older", "--run-id", run_id, "--task-id", "9", "--input", "start/1", env=worker,
                       command=MFLOW_TASK)
    assert json.loads(result.stdout)["status"] == "successful"
    assert "Built the environment of step older (six==1.15.0)" in result.stderr
    local = runner.call(flow, "older", "--run-id", run_id, "--task-id", "10", "--input", "start/1",
                        "--environment", "local", command=MFLOW_TASK, env={"PYTHONPATH": ""})
    # Here the step runs in the test interpreter, whose six (if any) is not 1.15.0.
    assert local.returncode in (0, 10)
    if local.returncode == 10:
        assert "AssertionError" in json.loads(local.stdout)["error"]


def test_environment_local_ignores_the_decorators(runner, env_cache):
    flow = runner.write(BAD.replace("SPEC", 'packages={"six": "1.15.0"}').replace(
        "self.next(self.end)", "import sys\n        self.prefix = sys.prefix\n        self.next(self.end)"))
    run = runner.ok("run", flow, "-q", "--environment", "local").stdout.strip()
    assert runner.artifact(run, "start", "prefix") == sys.prefix
    assert not (runner.store_dir / "data" / "BadFlow" / run.split("/")[1] / "environments.json").exists()
    assert {row["env_id"] for row in runner.rows("env", "show", run)} == {None}
    run = runner.ok("run", flow, "-q", env={"MFLOW_ENVIRONMENT": "pypi"}).stdout.strip()
    assert runner.artifact(run, "start", "prefix").startswith(str(env_cache))


@pytest.mark.parametrize("installer", ["uv", "pip"])
@pytest.mark.parametrize(
    "spec, message",
    [
        ('packages={"no-such-package-mflow-test": "1.0"}', "package no-such-package-mflow-test==1.0 cannot be installed"),
        ('packages={"six": "99.1"}', "package six==99.1 cannot be installed"),
        ('packages={"requests": "2.31.0", "urllib3": "1.20"}', "packages requests==2.31.0 and urllib3==1.20 conflict"),
    ],
)
def test_bad_packages_fail_before_any_task(runner, spec, message, installer):
    if installer == "uv" and shutil.which("uv", path=os.path.dirname(sys.executable)) is None:
        pytest.fail("uv is not installed in the test venv: install the test extra (`scripts/test` does)")
    flow = runner.write(BAD.replace("SPEC", spec))
    result = runner.call("run", flow, env={"MFLOW_ENV_INSTALLER": installer})
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: step start: @pypi " + message), lines
    assert not (runner.store_dir / "meta" / "BadFlow").exists()  # no run was recorded


def test_unavailable_python_fails_before_any_task(runner):
    flow = runner.write(BAD.replace("SPEC", 'packages={}, python="3.4"'))
    result = runner.call("run", flow)
    assert result.returncode == 3
    assert result.stderr.startswith("Error: step start: @pypi python='3.4' is not available on this machine")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (runner.store_dir / "meta").exists()


def test_pip_builds_the_same_environment(runner, tmp_path):
    flow = runner.write(BAD.replace("SPEC", 'packages={"six": "1.15.0"}'))
    uv_rows = runner.rows("env", "build", flow)
    pip_rows = runner.rows("env", "build", flow, env={"MFLOW_ENV_INSTALLER": "pip",
                                                       "MFLOW_ENV_CACHE": str(tmp_path / "pip-cache")})
    assert pip_rows[0]["action"] == "built" and pip_rows[0]["installer"].startswith("pip ")
    assert pip_rows[0]["env_id"] == uv_rows[0]["env_id"]  # the same files, whoever resolved them
    run = runner.ok("run", flow, "-q", env={"MFLOW_ENV_INSTALLER": "pip", "MFLOW_ENV_CACHE": str(tmp_path / "pip-cache")})
    assert run.returncode == 0


def test_env_build_without_decorators(runner):
    flow = runner.write('''
    from mflow import FlowSpec, step

    class PlainFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass
    ''')
    result = runner.ok("env", "build", flow)
    assert "nothing to build" in result.stderr and result.stdout == ""
