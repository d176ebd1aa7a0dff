"""`mflow airflow create`: DAG files that Apache Airflow 3 runs for real (`airflow dags
test`, every task a real mflow-task), whose runs are mflow runs like any other."""

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

from airflow_env import MFLOW_BIN, airflow  # noqa: F401  (the session's Airflow)
from mflow.deploy.airflow import mflow_run_id
from test_deploy import PROJECT
from test_step_functions import SWITCH


class Flows:
    """Flow files in a folder, deployed with `mflow airflow create` against a store there."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "flows"
        self.dir.mkdir()
        self.dags = tmp_path / "dags"
        self.dags.mkdir()
        self.store_dir = tmp_path / "store"
        self.env = dict(os.environ, MFLOW_STORE=str(self.store_dir), MFLOW_USER="tester",
                        PATH=os.pathsep.join([MFLOW_BIN, os.environ.get("PATH", "")]))

    def write(self, source, name="flow.py"):
        path = self.dir / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    def mflow(self, *args, program="mflow", env=None):
        return subprocess.run([os.path.join(MFLOW_BIN, program), *map(str, args)], capture_output=True, text=True,
                              cwd=str(self.dir), env=dict(self.env, **(env or {})), timeout=300)

    def create(self, flow, *args):
        """Write the DAG file of `flow` into the dags folder; its path."""
        dag = self.dags / flow.name
        made = self.mflow("airflow", "create", flow, "-o", dag, *args)
        assert made.returncode == 0, made.stderr
        return dag

    def run(self, flow, run_id):
        from mflow.client import Run
        from mflow.store import open_store

        return Run("%s/%s" % (flow, run_id), store=open_store(str(self.store_dir)), namespace=None)


@pytest.fixture
def flows(tmp_path):
    return Flows(tmp_path)


PARAMS = """
from mflow import FlowSpec, step, Parameter, JSONType, retry, timeout

class ParamFlow(FlowSpec):
    \"\"\"Every type of parameter, static branches and a foreach.\"\"\"
    alpha = Parameter("alpha", default=0.5, help="a float")
    count = Parameter("count", type=int, default=3)
    label = Parameter("label", default="x")
    flag = Parameter("flag", type=bool, default=False)
    config = Parameter("config", type=JSONType, default={"k": 1})

    @step
    def start(self):
        self.seen = [self.alpha, self.count, self.label, self.flag, self.config]
        self.items = list(range(self.count))
        self.next(self.a, self.b)

    @retry(times=2, minutes_between_retries=0)
    @step
    def a(self):
        self.x = "a"
        self.next(self.join)

    @timeout(seconds=60)
    @step
    def b(self):
        self.x = "b"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.xs = [i.x for i in inputs]
        self.merge_artifacts(inputs, include=["items", "seen"])
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.square = self.input ** 2
        self.next(self.done)

    @step
    def done(self, inputs):
        self.squares = [i.square for i in inputs]
        self.seen = inputs[0].seen
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ParamFlow()
"""


def test_the_dag_file_imports_only_airflow_and_the_standard_library(flows):
    dag = flows.create(flows.write(PARAMS))
    text = dag.read_text()
    modules = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules - set(sys.stdlib_module_names) == {"airflow"}
    assert "dag_id='ParamFlow'" in text and "'count': Param(3, type='integer')" in text
    assert "retries=2" in text and "execution_timeout=timedelta(seconds=70)" in text


def test_parameters_of_every_type_branches_and_foreach_run_on_airflow(airflow, flows):
    flow = flows.write(PARAMS)
    dag = flows.create(flow)
    conf = {"alpha": 0.25, "count": 4, "label": "it's \"quoted\" $HOME", "flag": True, "config": {"k": [1, 2]}}
    done, airflow_run, state = airflow.dags_test(dag, "ParamFlow", conf)
    assert state == "success" and done.returncode == 0, done.stdout[-3000:]
    run_id = mflow_run_id(airflow_run)
    assert run_id.startswith("airflow-manual__")
    run = flows.run("ParamFlow", run_id)
    assert run.successful and "scheduler:airflow" in run.system_tags
    assert run["end"].task.data.squares == [0, 1, 4, 9]
    assert sorted(run["join"].task.data.xs) == ["a", "b"]
    # The same values given to `mflow run` give the same artifacts.
    local = flows.mflow("run", flow, "--alpha", "0.25", "--count", "4", "--label", conf["label"], "--flag",
                        "--config", json.dumps(conf["config"]))
    assert local.returncode == 0, local.stderr
    local_run = flows.run("ParamFlow", local.stdout.strip().split("/")[1])
    assert run["end"].task.data.seen == local_run["end"].task.data.seen == [0.25, 4, conf["label"], True,
                                                                            {"k": [1, 2]}]
    runs = flows.mflow("runs", "ParamFlow", "--json")
    assert run_id in [json.loads(line)["run_id"] for line in runs.stdout.splitlines()]
    # Without conf, the defaults taken when the flow was deployed.
    _, airflow_run, state = airflow.dags_test(dag, "ParamFlow")
    assert state == "success"
    assert flows.run("ParamFlow", mflow_run_id(airflow_run))["end"].task.data.seen == [0.5, 3, "x", False, {"k": 1}]


WIDE = """
from mflow import FlowSpec, step

class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(100))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.value = self.input * 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.values = [i.value for i in inputs]
        self.rows = [[0, 1], [10, 11, 12], [20]]
        print('{"foreach_splits": 99}')  # the step's output is not the task's result line
        self.next(self.outer, foreach="rows")

    @step
    def outer(self):
        self.row = self.input
        print("row", self.row)
        self.next(self.inner, foreach="row")

    @step
    def inner(self):
        self.cell = self.input + 1
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.cells = [i.cell for i in inputs]
        self.values = inputs[0].values
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.table = [i.cells for i in inputs]
        self.values = inputs[0].values
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_foreach_of_100_and_a_nested_foreach_run_on_airflow(airflow, flows):
    dag = flows.create(flows.write(WIDE))
    assert "task_id='outer-splits'" in dag.read_text()
    done, airflow_run, state = airflow.dags_test(dag, "WideFlow")
    assert state == "success", done.stdout[-3000:]
    run = flows.run("WideFlow", mflow_run_id(airflow_run))
    assert run.successful
    assert run["end"].task.data.values == [2 * i for i in range(100)]
    assert run["end"].task.data.table == [[1, 2], [11, 12, 13], [21]]
    assert sorted(task.id for task in run["inner"]) == ["1-0-0", "1-0-1", "1-1-0", "1-1-1", "1-1-2", "1-2-0"]
    assert len(list(run["each"])) == 100


HELLO = """
from mflow import FlowSpec, step

class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.greeting = "hello"
        self.next(self.end)

    @step
    def end(self):
        self.loud = self.greeting.upper()
"""


def test_a_run_on_an_s3_store_takes_the_workers_credentials(airflow, flows, s3_server):
    url = s3_server.url()
    secret = s3_server.env["AWS_SECRET_ACCESS_KEY"]
    flows.env.update(s3_server.env)
    dag = flows.create(flows.write(HELLO), "--store", url)
    text = dag.read_text()
    assert secret not in text and s3_server.endpoint in text  # the store's settings, never credentials
    credentials = {name: s3_server.env[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    _, airflow_run, state = airflow.dags_test(dag, "HelloFlow", env=credentials)
    assert state == "success"
    from mflow.client import Run
    from mflow.store import open_store

    store = open_store(url, environ=dict(os.environ, **s3_server.env))
    run = Run("HelloFlow/%s" % mflow_run_id(airflow_run), store=store, namespace=None)
    assert run.successful and run["end"].task.data.loud == "HELLO"


FAILING = """
import os
from mflow import FlowSpec, step, retry, catch, current

class FailFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        self.tries = current.retry_count
        if current.retry_count < 1:
            raise RuntimeError("the first attempt fails")
        self.next(self.caught)

    @catch(var="problem")
    @step
    def caught(self):
        raise KeyError("caught and kept")
        self.next(self.bad)

    @step
    def bad(self):
        if not os.environ.get("FIXED"):
            raise ValueError("bad step")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_failing_step_fails_the_run_which_resumes_locally(airflow, flows):
    flow = flows.write(FAILING)
    dag = flows.create(flow)
    done, airflow_run, state = airflow.dags_test(dag, "FailFlow")
    assert state == "failed" and done.returncode != 0
    run_id = mflow_run_id(airflow_run)
    run = flows.run("FailFlow", run_id)
    assert run.state == "failed" and not run.successful
    assert run["flaky"].task.data.tries == 1  # Airflow's second try was mflow's attempt 1
    assert "caught and kept" in str(run["caught"].task.data.problem)
    assert "bad step" in str(run["bad"].task.exception)
    shown = flows.mflow("runs", "FailFlow", "--json")
    assert json.loads(shown.stdout.splitlines()[0])["status"] == "failed"
    resumed = flows.mflow("resume", flow, "--origin-run-id", run_id, env={"FIXED": "1"})
    assert resumed.returncode == 0, resumed.stderr
    again = flows.run("FailFlow", resumed.stdout.strip().split("/")[1])
    assert again.successful
    assert again["flaky"].task.origin_pathspec == "FailFlow/%s/flaky/1" % run_id


LOAD_DAG = """
import runpy, sys
dag = runpy.run_path(sys.argv[1])["dag"]
dag.timetable.validate()
zone = getattr(dag.timetable.timezone, "name", dag.timetable.timezone)
print(dag.dag_id, dag.timetable.expression, zone, sorted(dag.tags), dag.is_paused_upon_creation)
"""


def test_schedule_and_project_name_the_dag_as_airflow_reads_it(airflow, flows):
    flow = flows.write(PROJECT)
    dag = flows.dags / "proj.py"
    made = subprocess.run([sys.executable, str(flow), "airflow", "create", "--production", "--tag", "nightly",
                           "--is-paused-upon-creation", "-o", str(dag)], capture_output=True, text=True,
                          cwd=str(flows.dir), env=flows.env, timeout=120)
    assert made.returncode == 0, made.stderr
    loaded = airflow.python(LOAD_DAG, dag)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == ["fraud.prod.ProjFlow", "0", "10", "*", "*", "1-5", "Europe/Berlin",
                                     "['mflow',", "'nightly']", "True"]


def test_what_airflow_cannot_take_is_one_line_and_an_exit_code(flows):
    switch = flows.mflow("airflow", "create", flows.write(SWITCH, "switch.py"), "-o", flows.dags / "s.py")
    assert switch.returncode == 3 and "step start is a switch" in switch.stderr
    assert switch.stderr.count("\n") == 1 and not (flows.dags / "s.py").exists()
    nowhere = flows.mflow("airflow", "create", flows.write(PARAMS), "-o", flows.dags / "no" / "dag.py")
    assert nowhere.returncode == 2 and nowhere.stderr.startswith("Error: cannot write ")
    assert nowhere.stderr.count("\n") == 1
    bad_cron = flows.mflow("airflow", "create", flows.write(PROJECT.replace("1-5", "1-5 2026"), "cron.py"))
    assert bad_cron.returncode == 1 and "cron '0 10 * * 1-5 2026' needs ?" in bad_cron.stderr
    named = flows.mflow("airflow", "create", flows.write(PROJECT, "proj.py"), "--name", "other")
    assert named.returncode == 2 and "--name" in named.stderr


def test_run_ids_are_made_safe():
    assert mflow_run_id("manual__2026-12-04T21:26:29.798236+00:00") == "airflow-manual__2026-12-04T21-26-29.798236-00-00"
    long = mflow_run_id("x" * 250)
    assert len(long) == 200 and long != mflow_run_id("x" * 249 + "y")
