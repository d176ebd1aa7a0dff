"""What every production export shares (mflow.deploy): the structure of a flow, @schedule and
@project, the run lock, and the task protocol a scheduler follows, run for real."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from mflow.deploy import ForEach, Input, Parallel, Step, prepare, structure, task_id
from mflow.deploy.schedule import convert_cron, schedule_of
from mflow.errors import DeployError, RunLockedError
from mflow.graph import load_graph
from mflow.meta import MetaStore
from mflow.store import open_store
from mflow.store.pathspec import Pathspec
from scheduler_sim import SchedulerSim, TaskFailed
from test_run import mflow


def write(folder, source, name="flow.py"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


FOREACH = """
import os
from mflow import FlowSpec, step, Parameter, JSONType, current, schedule, project

class ShapeFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    count = Parameter("count", type=int, default=3)
    label = Parameter("label", default="x")
    flag = Parameter("flag", type=bool, default=False)
    config = Parameter("config", type=JSONType, default={"k": 1})

    @step
    def start(self):
        self.items = list(range(self.count))
        self.seen = [self.alpha, self.count, self.label, self.flag, self.config]
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.next(self.mid)

    @step
    def b(self):
        self.x = 2
        self.next(self.mid)

    @step
    def mid(self, inputs):
        self.xs = sorted(i.x for i in inputs)
        self.items = inputs.a.items
        self.next(self.outer, foreach="items")

    @step
    def outer(self):
        self.inner_items = [10 * self.input + j for j in range(2)]
        self.next(self.inner, foreach="inner_items")

    @step
    def inner(self):
        if os.environ.get("FAIL_INNER") == str(self.input):
            raise RuntimeError("inner fails at %d" % self.input)
        self.value = self.input
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all_values = [i.values for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.origin = current.origin_run_id
"""


def test_structure_of_branches_and_nested_foreach(tmp_path):
    graph = load_graph(str(write(tmp_path, FOREACH)))
    shape = structure(graph, "airflow")
    assert [type(n).__name__ for n in shape] == ["Step", "Parallel", "Step", "ForEach", "Step", "Step"]
    start, parallel, mid, outer, outer_join, end = shape
    assert start == Step("start", "split", 0, ())
    assert parallel.join == "mid" and [b[0].name for b in parallel.branches] == ["a", "b"]
    assert parallel.branches[0][0].inputs == (Input("start", "same"),)
    assert mid == Step("mid", "foreach", 0, (Input("a", "same"), Input("b", "same")))
    assert (outer.step, outer.var, outer.join) == ("mid", "items", "outer_join")
    first, inner, inner_join = outer.body
    assert first == Step("outer", "foreach", 1, (Input("mid", "parent"),), split_index=True)
    assert isinstance(inner, ForEach) and inner.body[0] == Step("inner", "linear", 2, (Input("outer", "parent"),), True)
    assert inner_join == Step("inner_join", "join", 1, (Input("inner", "children"),))
    assert outer_join == Step("outer_join", "join", 0, (Input("inner_join", "children"),))
    assert end == Step("end", "end", 0, (Input("outer_join", "same"),))
    assert task_id([]) == "1" and task_id([3, 0]) == "1-3-0"
    assert Input("inner", "children").ref("1-2") == "inner/1-2-*"


def test_a_switch_cannot_be_deployed(tmp_path):
    path = write(tmp_path, """
        from mflow import FlowSpec, step

        class SwitchFlow(FlowSpec):
            @step
            def start(self):
                self.mode = "a"
                self.next({"a": self.a, "b": self.b}, condition="mode")

            @step
            def a(self):
                self.next(self.end)

            @step
            def b(self):
                self.next(self.end)

            @step
            def end(self):
                pass
    """)
    with pytest.raises(DeployError) as caught:
        structure(load_graph(str(path)), "step-functions")
    assert str(caught.value) == (
        "flow SwitchFlow cannot run on Step Functions: step start is a switch (self.next with condition=). "
        "Deploy a flow without conditional steps, or run it with `mflow run`."
    )
    assert caught.value.step == "start" and caught.value.exit_code == 3


@pytest.mark.parametrize("given, cron5, eventbridge", [
    ("0 10 * * *", "0 10 * * *", "cron(0 10 * * ? *)"),
    ("*/15 2-4 1,15 * *", "*/15 2-4 1,15 * *", "cron(*/15 2-4 1,15 * ? *)"),
    ("30 6 * * 1-5", "30 6 * * 1-5", "cron(30 6 ? * 2-6 *)"),
    ("0 0 * * 0", "0 0 * * 0", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 7", "0 0 * * 7", "cron(0 0 ? * 1 *)"),
    ("0 9 ? * MON-FRI *", "0 9 * * MON-FRI", "cron(0 9 ? * MON-FRI *)"),
    ("cron(0 10 * * ? *)", "0 10 * * *", "cron(0 10 * * ? *)"),
    ("15 3 ? * 2 *", "15 3 * * 1", "cron(15 3 ? * 2 *)"),
])
def test_cron_in_both_forms(given, cron5, eventbridge):
    assert convert_cron(given) == (cron5, eventbridge)


@pytest.mark.parametrize("given, message", [
    ("0 10 * *", "has 4 fields"),
    ("61 * * * *", "minute '61' is outside 0-59"),
    ("0 10 1 * 1", "sets both the day of month and the day of week"),
    ("0 10 * * * *", "needs ? in exactly one"),
    ("0 10 * * ? 2027", "limits the year"),
    ("0 x * * *", "hour 'x' is outside 0-23"),
    ("*/0 * * * *", "is not a valid minute step"),
    ("", "must be a non-empty string"),
])
def test_bad_crons_say_what_is_wrong(given, message):
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace("*", r"\*")):
        convert_cron(given)


def test_schedule_shorthands():
    assert schedule_of({"hourly": True}).cron5 == "0 * * * *"
    assert schedule_of({}).cron5 == "0 0 * * *"
    weekly = schedule_of({"weekly": True, "hourly": True, "timezone": "Europe/Berlin"})
    assert (weekly.cron5, weekly.eventbridge, weekly.timezone) == ("0 0 * * 0", "cron(0 0 ? * SUN *)", "Europe/Berlin")


def test_bad_schedule_and_project_are_lint_errors(tmp_path):
    path = write(tmp_path, """
        from mflow import FlowSpec, step, schedule, project

        @schedule(cron="0 25 * * *", timezone="Mars/Olympus")
        @project(name="Bad Name")
        class LintFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
    """)
    result = subprocess.run([mflow(), "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "%s:3: error: @schedule on flow LintFlow: cron '0 25 * * *': hour '25' is outside 0-23" % path in result.stderr
    assert "timezone must be an IANA time zone name such as 'Europe/Berlin', not 'Mars/Olympus'" in result.stderr
    assert "%s:4: error: @project on flow LintFlow: name must be lower-case letters" % path in result.stderr


PROJECT = """
import os, time
from mflow import FlowSpec, step, project, schedule, current

@schedule(cron="0 10 * * 1-5", timezone="Europe/Berlin")
@project(name="fraud")
class ProjFlow(FlowSpec):
    @step
    def start(self):
        self.info = [current.project_name, current.branch_name, current.is_production, current.project_flow_name]
        time.sleep(float(os.environ.get("SLEEP", "0")))
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ProjFlow()
"""


class Local:
    def __init__(self, tmp_path):
        self.dir = tmp_path / "flows"
        self.store_dir = tmp_path / "store"
        self.env = dict(os.environ, MFLOW_STORE=str(self.store_dir), MFLOW_USER="tester")

    def mflow(self, *args, env=None, timeout=120):
        return subprocess.run([mflow(), *map(str, args)], capture_output=True, text=True, cwd=str(self.dir),
                              env=dict(self.env, **(env or {})), timeout=timeout)

    def store(self):
        return open_store(str(self.store_dir), environ={"MFLOW_USER": "tester"})

    def artifact(self, flow, run_id, step, name, task="1"):
        return self.store().artifacts(Pathspec.task(flow, run_id, step, task))[name]


@pytest.fixture
def local(tmp_path):
    return Local(tmp_path)


def test_project_branches_name_and_tag_runs(local):
    path = write(local.dir, PROJECT)
    runs = {}
    for label, args in [("user", []), ("test", ["--branch", "b1"]), ("prod", ["--production"]),
                        ("prodb", ["--production", "--branch", "b1"])]:
        result = local.mflow("run", path, *args)
        assert result.returncode == 0, result.stderr
        runs[label] = result.stdout.strip().split("/")[1]
    info = {label: local.artifact("ProjFlow", run_id, "start", "info") for label, run_id in runs.items()}
    assert info == {
        "user": ["fraud", "user.tester", False, "fraud.user.tester.ProjFlow"],
        "test": ["fraud", "test.b1", False, "fraud.test.b1.ProjFlow"],
        "prod": ["fraud", "prod", True, "fraud.prod.ProjFlow"],
        "prodb": ["fraud", "prod.b1", True, "fraud.prod.b1.ProjFlow"],
    }
    tags = MetaStore(local.store()).run("ProjFlow", runs["test"]).tags
    assert {"project:fraud", "project_branch:test.b1"} <= tags
    # python flow.py takes them before its command, as Metaflow does.
    result = subprocess.run([sys.executable, str(path), "--branch", "b2", "run"], capture_output=True, text=True,
                            cwd=str(local.dir), env=local.env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert local.artifact("ProjFlow", result.stdout.strip().split("/")[1], "start", "info")[1] == "test.b2"
    # Project tags are the system's: nobody removes them.
    result = local.mflow("tag", "remove", "ProjFlow/%s" % runs["test"], "project:fraud")
    assert result.returncode == 2 and "system tag" in result.stderr


def test_branch_options_need_a_project_and_a_good_name(local):
    plain = write(local.dir, """
        from mflow import FlowSpec, step

        class PlainFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
    """, "plain.py")
    result = local.mflow("run", plain, "--branch", "x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: --branch applies to a flow with @project, and flow PlainFlow has none. "
        "Add @project(name=...) above the flow class, or leave --branch out."
    )
    result = local.mflow("run", write(local.dir, PROJECT), "--branch", "no/slash")
    assert result.returncode == 2 and "--branch 'no/slash' is not a branch name" in result.stderr
    assert not local.store_dir.exists() or not (local.store_dir / "data").exists()


def test_the_lock_refuses_or_waits_while_a_run_runs(local):
    path = write(local.dir, PROJECT)
    holder = subprocess.Popen([mflow(), "run", str(path), "--lock", "refuse", "-q"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=str(local.dir), env=dict(local.env, SLEEP="4"))
    meta = MetaStore(local.store())
    deadline = time.time() + 60
    while True:  # until the holder's start task runs
        assert time.time() < deadline and holder.poll() is None
        try:
            running = [r for r in meta.runs("ProjFlow", namespace=None) if r.status == "running"]
        except Exception:
            running = []
        if running:
            break
        time.sleep(0.1)
    refused = local.mflow("run", path, "--lock", "refuse")
    assert refused.returncode == 7
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "Error: run ProjFlow/%s of fraud.user.tester.ProjFlow is still running, so this run does not start." % running[0].run_id)
    # Another branch is another lock.
    assert local.mflow("run", path, "--lock", "refuse", "--branch", "other").returncode == 0
    waited = local.mflow("run", path, "--lock", "wait")
    assert waited.returncode == 0, waited.stderr
    assert "Waiting for run ProjFlow/%s to end (--lock wait)." % running[0].run_id in waited.stderr
    assert holder.wait(timeout=60) == 0
    ended = meta.run("ProjFlow", running[0].run_id).ended_at
    waiter = meta.run("ProjFlow", waited.stdout.strip().split("/")[1])
    assert waiter.started_at >= ended  # it started once the holder had ended


def test_a_dead_holders_lock_is_recovered(local):
    from mflow.meta.lock import RunLock

    meta = MetaStore(local.store(), stale_after=30)
    clock = [1_000_000.0]
    lock = RunLock(meta, "ProjFlow", "fraud.prod.ProjFlow", "refuse", clock=lambda: clock[0])
    assert lock.acquire("111") == 1
    assert lock.acquire("111") == 1  # its own lock
    other = RunLock(meta, "ProjFlow", "fraud.prod.ProjFlow", "refuse", clock=lambda: clock[0])
    with pytest.raises(RunLockedError) as caught:
        other.acquire("222")  # 111 took the lock and has not started yet: it may be starting
    assert caught.value.holder == "ProjFlow/111" and caught.value.exit_code == 7
    clock[0] += 31  # 111 never wrote its run record: its process died
    assert other.acquire("222") == 2
    waits = []
    waiter = RunLock(meta, "ProjFlow", "fraud.prod.ProjFlow", "wait", clock=lambda: clock[0],
                     sleep=lambda seconds: clock.__setitem__(0, clock[0] + 31))
    assert waiter.acquire("333", on_wait=waits.append) == 3 and waits == ["ProjFlow/222"]


def test_mflow_schedule_prints_a_crontab_line(local):
    path = write(local.dir, PROJECT)
    result = local.mflow("schedule", path, "--production")
    assert result.returncode == 0, result.stderr
    tz, line = result.stdout.strip().splitlines()
    assert tz == "CRON_TZ=Europe/Berlin"
    assert line.startswith("0 10 * * 1-5 cd %s && " % local.dir)
    assert line.endswith("run --store %s --flow ProjFlow --lock refuse -q --production %s" % (local.store_dir, path))
    # The line runs the flow, as cron's bare shell would.
    command = line.split(" ", 5)[5]
    ran = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(local.dir), "MFLOW_USER": "tester"})
    assert ran.returncode == 0, ran.stderr
    assert local.artifact("ProjFlow", ran.stdout.strip().split("/")[1], "start", "info")[1] == "prod"
    plain = write(local.dir, FOREACH, "shape.py")
    result = local.mflow("schedule", plain)
    assert result.returncode == 3 and "flow ShapeFlow has no @schedule" in result.stderr


# --- the protocol, run as a scheduler runs it ------------------------------------------------


def deploy(local, source=FOREACH, name="shape.py", **options):
    path = write(local.dir, source, name)
    graph = load_graph(str(path))
    from mflow.task.loader import load_flow_class

    flow_class = load_flow_class(str(path), graph.name)
    return prepare(local.store(), graph, flow_class, str(path), "argo-workflows", **options)


def test_a_scheduled_run_through_the_task_protocol(local):
    deployment = deploy(local)
    params = {"alpha": "0.25", "count": 2, "label": "given", "flag": True, "config": {"k": [1, 2]}}
    sim = SchedulerSim(deployment, "argo-shape-1", local.env, local.dir, params=params)
    commands = sim.run()
    assert [c[7] for c in commands] == [
        "start", "a", "b", "mid", "outer", "inner", "inner", "inner_join", "outer", "inner", "inner", "inner_join",
        "outer_join", "end"]
    assert commands[-2][commands[-2].index("--input") + 1] == "inner_join/1-*"
    meta = MetaStore(local.store())
    info = meta.run("ShapeFlow", "argo-shape-1")
    assert info.status == "successful" and {"scheduler:argo-workflows", "production:ShapeFlow"} <= info.tags
    assert local.artifact("ShapeFlow", "argo-shape-1", "start", "seen") == [0.25, 2, "given", True, {"k": [1, 2]}]
    assert local.artifact("ShapeFlow", "argo-shape-1", "outer_join", "all_values") == [[0, 1], [10, 11]]
    assert local.artifact("ShapeFlow", "argo-shape-1", "inner", "value", task="1-1-1") == 11
    assert meta.latest("ShapeFlow", successful=True, namespace=None).run_id == "argo-shape-1"
    # A retried start task finds the run there.
    again = subprocess.run(commands[0] + ["--attempt", "auto"], capture_output=True, text=True, env=local.env,
                           cwd=str(local.dir))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["attempt"] == 1
    assert MetaStore(local.store()).run("ShapeFlow", "argo-shape-1").status == "successful"
    # Defaults taken at deploy time; the client and mflow dump read it as any run.
    SchedulerSim(deployment, "argo-shape-2", local.env, local.dir).run()
    assert local.artifact("ShapeFlow", "argo-shape-2", "start", "seen") == [0.5, 3, "x", False, {"k": 1}]
    dump = local.mflow("dump", "ShapeFlow/argo-shape-2/outer_join", "--include", "all_values", "--json")
    assert dump.returncode == 0 and json.loads(dump.stdout)["value"] == [[0, 1], [10, 11], [20, 21]]


def test_a_failed_scheduled_run_is_recorded_and_resumes_locally(local):
    deployment = deploy(local)
    sim = SchedulerSim(deployment, "argo-shape-f", dict(local.env, FAIL_INNER="11"), local.dir, params={"count": 2})
    with pytest.raises(TaskFailed) as caught:
        sim.run()
    assert caught.value.step == "inner" and caught.value.result.returncode == 10
    assert sim.commands[-1][:2] == ["mflow-meta", "run-end"]
    meta = MetaStore(local.store())
    assert meta.run("ShapeFlow", "argo-shape-f").status == "failed"
    # mflow-meta run-end again: the first end stays.
    ended = subprocess.run(["mflow-meta", "run-end", "ShapeFlow/argo-shape-f", "--status", "successful", "--json"],
                           capture_output=True, text=True, env=local.env)
    assert ended.returncode == 0 and json.loads(ended.stdout)["status"] == "failed"
    missing = subprocess.run(["mflow-meta", "run-end", "ShapeFlow/argo-nope"], capture_output=True, text=True,
                             env=local.env)
    assert missing.returncode == 4
    # Resumed here, on this machine, from the scheduler's run.
    resumed = local.mflow("resume", local.dir / "shape.py", "--origin-run-id", "argo-shape-f")
    assert resumed.returncode == 0, resumed.stderr
    run_id = resumed.stdout.strip().split("/")[1]
    from mflow.client import Run

    run = Run("ShapeFlow/%s" % run_id, store=local.store(), namespace=None)
    assert run.successful and run.data.origin == "argo-shape-f"
    assert run["start"].task.data.seen[1] == 2  # the scheduled run's parameters, its start cloned
    assert run["start"].task.origin_pathspec == "ShapeFlow/argo-shape-f/start/1"


@pytest.mark.parametrize("params, message", [
    ('{"nope": 1}', "flow ShapeFlow has no parameter 'nope'"),
    ('{"count": "three"}', "parameter 'count' expects"),
    ("[1, 2]", "--params must be a JSON object"),
    ("{bad", "--params is not JSON"),
])
def test_bad_trigger_parameters_fail_the_start_task_for_good(local, params, message):
    deployment = deploy(local)
    command = SchedulerSim(deployment, "r", local.env, local.dir).executable
    from mflow.deploy import task_command

    result = subprocess.run(task_command(deployment, "start", "argo-bad", "1", params=params, executable=command),
                            capture_output=True, text=True, env=local.env, cwd=str(local.dir))
    assert result.returncode in (2, 11), result.stderr
    assert message in result.stderr
    meta = MetaStore(local.store())
    with pytest.raises(Exception):
        meta.run_record("ShapeFlow", "argo-bad")


def test_a_join_before_its_splits_have_finished_fails(local):
    deployment = deploy(local)
    from mflow.deploy import task_command

    sim = SchedulerSim(deployment, "argo-part", local.env, local.dir, params={"count": 1})
    run = lambda *args, **kw: subprocess.run(task_command(deployment, *args, **kw), capture_output=True, text=True,
                                            env=local.env, cwd=str(local.dir))
    assert run("start", "argo-part", "1", params='{"count": 1}').returncode == 0
    assert run("a", "argo-part", "1", inputs=["start/1"]).returncode == 0
    assert run("b", "argo-part", "1", inputs=["start/1"]).returncode == 0
    assert run("mid", "argo-part", "1", inputs=["a/1", "b/1"]).returncode == 0
    assert run("outer", "argo-part", "1-0", inputs=["mid/1"], split_index=0).returncode == 0
    assert run("inner", "argo-part", "1-0-0", inputs=["outer/1-0"], split_index=0).returncode == 0
    early = run("inner_join", "argo-part", "1-0", inputs=["inner/1-0-*"])
    assert early.returncode != 0
    assert "--input inner/1-0-*: 1 of the foreach's 2 splits have finished" in early.stderr
    assert sim  # the simulator is not needed for the hand-run tasks


def test_prepare_refuses_branch_options_without_project(local):
    with pytest.raises(Exception, match="--branch applies to a flow with @project"):
        deploy(local, branch="x")
    project = deploy(local, PROJECT, "proj.py", production=True, lock="refuse")
    assert project.name == "fraud.prod.ProjFlow" and project.lock == "refuse"
    assert project.schedule.cron5 == "0 10 * * 1-5" and project.schedule.timezone == "Europe/Berlin"
    assert "production:fraud.prod.ProjFlow" in project.run_tags and "project_branch:prod" in project.run_tags
    assert project.id.startswith("argo-workflows-fraud-prod-ProjFlow-") and len(project.id) == len("argo-workflows-fraud-prod-ProjFlow-") + 12
