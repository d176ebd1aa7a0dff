"""mflow resume: clone what finished, run the rest, by reference; refuse what cannot work."""

import json
import os
import subprocess

import pytest

from mflow.meta import MetaStore
from mflow.store.pathspec import Pathspec
from test_run import HEADER, Runner, mflow


@pytest.fixture
def runner(tmp_path):
    return Runner(tmp_path)


FLOW = HEADER + """
import os

def fail_at(where):
    if os.environ.get("FAIL_AT") == where:
        raise RuntimeError("failing at " + where)

class ResumeFlow(FlowSpec):
    scale = Parameter("scale", default=1)

    @step
    def start(self):
        fail_at("start")
        self.items = list(range(int(os.environ.get("WIDTH", "10"))))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        fail_at("work-%d" % self.input)
        self.out = self.input * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        fail_at("join")
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        fail_at("end")
        self.final = self.total + 1
"""


def resume(runner, path, *args, env=None):
    return subprocess.run(
        [mflow(), "resume", str(path), *map(str, args)], capture_output=True, text=True, timeout=120,
        cwd=str(runner.dir), env=dict(runner.env, **(env or {})),
    )


def failed_run(runner, path, where, *args):
    result = runner.run(path, *args, env={"FAIL_AT": where})
    assert result.returncode == 1, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("Run ")][0].split()[1]


def meta(runner):
    return MetaStore(runner.store())


def ran_and_cloned(runner, run, step):
    flow, run_id = run.split("/")
    tasks = meta(runner).tasks(flow, run_id, step)
    cloned = [t for t in tasks if t.record and t.record.origin_pathspec]
    return len(tasks) - len(cloned), len(cloned)


def test_resume_a_foreach_with_one_failed_item(runner):
    path = runner.write(FLOW)
    origin = failed_run(runner, path, "work-7", "--scale", "3")
    flow, origin_id = origin.split("/")
    # Item 7 failed; siblings still running then were stopped: those run again too.
    done = [t for t in meta(runner).tasks(flow, origin_id, "work") if t.status == "successful"]
    assert 1 <= len(done) <= 9
    result = resume(runner, path)
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    assert "Resuming %s: cloning tasks of start, work (%d tasks); running again work, join, end." % (
        origin, len(done) + 1) in result.stderr
    assert runner.only(run, "end")["final"] == 3 * sum(range(10)) + 1  # the origin's parameter
    assert ran_and_cloned(runner, run, "start") == (0, 1)
    assert ran_and_cloned(runner, run, "work") == (10 - len(done), len(done))
    assert ran_and_cloned(runner, run, "join") == (1, 0)
    flow, run_id = run.split("/")
    info = meta(runner).run(flow, run_id)
    assert info.status == "successful" and info.record.origin_run_id == origin.split("/")[1]
    assert meta(runner).latest(flow, successful=True).run_id == run_id  # the pointer moved
    # Cloned by reference: the clone's manifest points at the origin's blobs.
    store = runner.store()
    from mflow.store.pathspec import Pathspec

    (clone,) = [t for t in meta(runner).tasks(flow, run_id, "work") if t.record.origin_pathspec][:1]
    source = Pathspec.parse(clone.record.origin_pathspec)
    assert store.artifacts(Pathspec.parse(clone.pathspec)).record("out") == store.artifacts(source).record("out")


@pytest.mark.parametrize("where, reran", [("start", "start"), ("join", "join"), ("end", "end")])
def test_resume_from_a_failed_start_join_and_end(runner, where, reran):
    path = runner.write(FLOW)
    failed_run(runner, path, where)
    result = resume(runner, path)
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    assert runner.only(run, "end")["final"] == sum(range(10)) + 1
    assert ran_and_cloned(runner, run, reran)[0] == 1


def test_resume_from_a_named_step_and_resume_of_resume(runner):
    path = runner.write(FLOW)
    origin = runner.ok(path)
    result = resume(runner, path, "work", "--origin-run-id", origin.split("/")[1])
    assert result.returncode == 0, result.stderr
    second = result.stdout.strip()
    assert ran_and_cloned(runner, second, "work") == (10, 0)  # a named step runs again whole
    assert ran_and_cloned(runner, second, "start") == (0, 1)
    result = resume(runner, path, "end", "--origin-run-id", second.split("/")[1])
    assert result.returncode == 0, result.stderr
    third = result.stdout.strip()
    assert ran_and_cloned(runner, third, "work") == (0, 10)  # clones of clones
    assert runner.only(third, "end")["final"] == sum(range(10)) + 1


def test_dry_run_prints_the_plan_and_runs_nothing(runner):
    path = runner.write(FLOW)
    origin = failed_run(runner, path, "join")
    before = sorted(os.listdir(runner.store_dir / "meta" / "ResumeFlow"))
    result = resume(runner, path, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "schema": 1, "flow": "ResumeFlow", "origin_run_id": origin.split("/")[1],
        "clone_steps": ["start", "work"], "rerun_steps": ["join", "end"], "clone_tasks": 11,
    }
    assert sorted(os.listdir(runner.store_dir / "meta" / "ResumeFlow")) == before


def test_what_resume_refuses(runner):
    path = runner.write(FLOW)
    origin = runner.ok(path)
    result = resume(runner, path)
    assert result.returncode == 1
    assert "Error: run %s succeeded; there is nothing to resume. Name a STEP" % origin in result.stderr
    result = resume(runner, path, "end", "--run-id", origin.split("/")[1])
    assert result.returncode == 2 and "already exists" in result.stderr
    result = resume(runner, path, "nowhere")
    assert result.returncode == 1 and "flow ResumeFlow has no step nowhere" in result.stderr
    path.write_text(path.read_text().replace("self.next(self.join)", "self.next(self.extra)").replace(
        "    @step\n    def join", "    @step\n    def extra(self):\n        self.next(self.join)\n\n    @step\n    def join"))
    result = resume(runner, path, "end")
    assert result.returncode == 1
    assert "the flow's graph differs from run %s's: step extra is new; step work is now linear -> extra (was linear -> join)" % origin in result.stderr
    result = resume(runner, path, "--origin-run-id", "999")
    assert result.returncode == 4


def test_two_runs_at_once_in_one_store(runner):
    path = runner.write(FLOW)
    procs = [
        subprocess.Popen([mflow(), "run", str(path), "-q", "--scale", str(scale)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=str(runner.dir), env=runner.env)
        for scale in (2, 5)
    ]
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        runs.append(out.strip())
    assert runs[0] != runs[1]
    assert sorted(runner.only(run, "end")["final"] for run in runs) == [2 * 45 + 1, 5 * 45 + 1]


ORIGIN_FLOW = HEADER + """
import os

class OriginFlow(FlowSpec):
    @step
    def start(self):
        self.start_origin = current.origin_run_id
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.each_origin = current.origin_run_id
        self.next(self.join)

    @step
    def join(self, inputs):
        self.each_origins = [i.each_origin for i in inputs]
        if os.environ.get("FAIL_JOIN"):
            raise RuntimeError("join fails")
        self.join_origin = current.origin_run_id
        self.next(self.end)

    @step
    def end(self):
        self.end_origin = current.origin_run_id
"""


def test_current_origin_run_id_in_every_re_executed_task(runner):
    path = runner.write(ORIGIN_FLOW)
    fresh = runner.ok(path)
    assert runner.only(fresh, "end")["end_origin"] is None  # a fresh run has no origin
    result = runner.run(path, env={"FAIL_JOIN": "1"})
    assert result.returncode == 1, result.stderr
    origin_id = [line for line in result.stderr.splitlines() if line.startswith("Run ")][0].split()[1].split("/")[1]
    # Resumed from each: start is cloned, each, join and end run again and see the origin.
    resumed = resume(runner, path, "each")
    assert resumed.returncode == 0, resumed.stderr
    run = resumed.stdout.strip()
    assert runner.only(run, "start")["start_origin"] is None  # cloned: the origin run's own value
    assert runner.only(run, "join")["each_origins"] == [origin_id, origin_id]
    assert runner.only(run, "join")["join_origin"] == origin_id
    assert runner.only(run, "end")["end_origin"] == origin_id
    # mflow-task takes it as --origin-run-id, as the driver passes it to spawned tasks and jobs.
    flow, run_id = run.split("/")
    task = subprocess.run(
        ["mflow-task", str(path), "end", "--run-id", run_id, "--task-id", "90", "--input", "join/%s" %
         meta(runner).tasks(flow, run_id, "join")[0].task_id, "--origin-run-id", origin_id],
        capture_output=True, text=True, cwd=str(runner.dir), env=runner.env, timeout=60,
    )
    assert task.returncode == 0, task.stderr
    assert runner.store().artifacts(Pathspec.task(flow, run_id, "end", "90"))["end_origin"] == origin_id


def test_task_arguments_carry_the_origin_run_id():
    from mflow.runtime.planner import TaskSpec
    from mflow.runtime.remote import task_arguments

    spec = TaskSpec("end", "4", ("join/3",), None, ())
    arguments = task_arguments("F", "/s", "flow.py", "9", spec, 0, None, (), (), "7")
    assert arguments[-2:] == ["--origin-run-id", "7"]
    assert "--origin-run-id" not in task_arguments("F", "/s", "flow.py", "9", spec, 0, None, (), ())
