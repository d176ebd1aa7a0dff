"""`latest` and `latest_successful` in pathspecs, Flow/run/step/NAME for a step's artifact,
and exit codes that tell "not there" (4) from "typed wrong" (2): against runs made by the
real driver, by the commands in-process and as a Makefile runs them."""

import json
import subprocess

import pytest

from mflow.cli.main import cli as mflow_cli
from mflow.cli.meta import cli as meta_cli
from mflow.cli.store import cli as store_cli
from mflow.errors import NotFoundError, PathspecError
from mflow.meta import MetaStore
from mflow.meta.resolver import PathspecResolver
from mflow.store import open_store
from test_run import HEADER, Runner, mflow

FLOW = HEADER + """
import os

class LatestFlow(FlowSpec):
    scale = Parameter("scale", default=1)

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.train, foreach="items")

    @step
    def train(self):
        self.loss = self.input * 10 * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.loss for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total is", self.total)
        if os.environ.get("FAIL_END"):
            raise RuntimeError("end fails")
        self.label = "scale %d" % self.scale
"""


class Runs:
    """Alice's successful run (total 60), then her failed one (total 180), then Bob's (120)."""

    def __init__(self, folder):
        self.runner = Runner(folder)
        self.path = self.runner.write(FLOW)
        self.ok = self._run("alice", "--scale", "1")
        self.failed = self._run("alice", "--scale", "3", env={"FAIL_END": "1"}, code=1)
        self.bob = self._run("bob", "--scale", "2")
        self.url = str(self.runner.store_dir)

    def _run(self, user, *args, env=None, code=0):
        result = self.runner.run(self.path, *args, env=dict(env or {}, MFLOW_USER=user))
        assert result.returncode == code, result.stderr
        started = [line for line in result.stderr.splitlines() if line.startswith("Run ")][0]
        return started.split()[1].split("/")[1]

    def tasks(self, run_id, step):
        """The task pathspecs of a step of one run, in task id order."""
        meta = MetaStore(open_store(self.url))
        return [t.pathspec for t in meta.tasks("LatestFlow", run_id, step)]

    def command(self, program, *args, user="alice"):
        """`program ARGS` (`mflow` or any on PATH) as `user`, in the flow's folder."""
        return subprocess.run(
            [mflow() if program == "mflow" else program, *map(str, args)],
            capture_output=True, text=True, timeout=120, cwd=str(self.runner.dir),
            env=dict(self.runner.env, MFLOW_USER=user),
        )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("latest"))


@pytest.fixture
def run(runs, cli):
    """Run mflow-store (or `command`) in-process as `user` against the runs' store."""

    def invoke(*args, command=store_cli, user="alice", stdin=""):
        environ = dict(MFLOW_STORE=runs.url, MFLOW_USER=user)
        return cli(command, list(args), stdin=stdin, environ=environ)

    return invoke


def rows(result):
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def one_line_error(result, code, *fragments):
    assert result.code == code, result
    assert result.stdout == "" and result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- 7: latest and latest_successful ------------------------------------------------------------------


def test_cat_and_ls_of_latest_runs(runs, run):
    assert run("cat", "LatestFlow/latest_successful/end/total").stdout == "60\n"
    assert run("cat", "LatestFlow/latest/join/total").stdout == "180\n"  # the failed run is the latest
    (end,) = runs.tasks(runs.ok, "end")
    by_id = run("cat", "LatestFlow/latest_successful/end/%s/label" % end.rsplit("/", 1)[1])
    assert by_id.stdout == '"scale 1"\n'
    piped = run("cat", "-", stdin="LatestFlow/latest_successful/end/total\nLatestFlow/latest/join/total\n")
    assert piped.stdout == "60\n180\n"
    listed = rows(run("ls", "LatestFlow/latest_successful/end/total", "--json"))
    assert [(r["pathspec"], r["name"]) for r in listed] == [(end, "total")]
    assert {r["pathspec"] for r in rows(run("ls", end.replace(runs.ok, "latest_successful")))} == {end}


def test_every_command_takes_latest(runs, run):
    ok, failed = "LatestFlow/" + runs.ok, "LatestFlow/" + runs.failed
    logs = run("logs", "LatestFlow/latest_successful/end", command=mflow_cli)
    assert logs.code == 0 and logs.stdout == "total is 60\n", logs
    dumped = rows(run("dump", "LatestFlow/latest_successful/end", "--json", command=mflow_cli))
    assert {r["name"] for r in dumped} == {"total", "label", "scale"}
    assert all(r["pathspec"].startswith(ok + "/end/") for r in dumped)
    steps = rows(run("steps", "LatestFlow/latest", "--json", command=meta_cli))
    assert [s["pathspec"] for s in steps] == [failed + "/" + s for s in ("start", "train", "join", "end")]
    failing = rows(run("tasks", "LatestFlow/latest/end", "--failed", "--json", command=meta_cli))
    assert [t["pathspec"] for t in failing] == runs.tasks(runs.failed, "end")
    shown = rows(run("show", "LatestFlow/latest_successful", "--json", command=meta_cli))
    assert {r["pathspec"] for r in shown if r["type"] == "run"} == {ok}
    tagged = run("tag", "add", "LatestFlow/latest_successful", "checked", command=meta_cli)
    assert tagged.code == 0 and tagged.stderr == "%s: user tags now checked\n" % ok
    removed = run("tag", "remove", "LatestFlow/latest_successful", "checked", command=mflow_cli)
    assert removed.code == 0 and removed.stderr == "%s: user tags (none)\n" % ok
    tags = rows(run("tag", "list", "LatestFlow/latest", "--json", command=meta_cli))
    assert {t["pathspec"] for t in tags} == {failed}
    usage = rows(run("du", "LatestFlow/latest_successful"))
    assert usage[-1]["scope"] == ok and usage[-1]["total"] is True
    env = rows(run("env", "show", "LatestFlow/latest_successful/end", "--json", command=mflow_cli))
    assert env and {r["pathspec"] for r in env} == {ok + "/end"}


def test_latest_resolves_in_the_namespace(runs, run):
    bob = "LatestFlow/" + runs.bob
    assert run("cat", "LatestFlow/latest/end/total", user="bob").stdout == "120\n"
    assert run("cat", "LatestFlow/latest_successful/end/total").stdout == "60\n"  # alice's, not Bob's newer one
    everyone = rows(run("tag", "list", "LatestFlow/latest", "--all-namespaces", "--json", command=mflow_cli))
    assert {t["pathspec"] for t in everyone} == {bob}
    bobs = rows(run("tag", "list", "LatestFlow/latest_successful", "--namespace", "user:bob", command=mflow_cli))
    assert {t["pathspec"] for t in bobs} == {bob}
    nobody = run("cat", "LatestFlow/latest_successful/end/total", user="carol")
    one_line_error(
        nobody, 4, "flow LatestFlow has no successful run in namespace user:carol in store %s" % runs.url,
        "so LatestFlow/latest_successful names none", "mflow-meta runs LatestFlow --all-namespaces",
    )
    one_line_error(run("logs", "NoFlow/latest", command=mflow_cli), 4, "flow NoFlow has no run in namespace user:alice")


def test_resolved_once_per_command(tmp_path):
    """A run that ends while a command works cannot mix two runs: the resolver keeps what it found."""
    from mflow.client import default_namespace

    default_namespace()  # another test in this process may have set namespace(None)
    store = open_store(str(tmp_path / "store"), environ={"MFLOW_USER": "alice"})
    meta = MetaStore(store)

    def finished_run():
        run_id = meta.allocate_run_id("F")
        meta.start_run("F", run_id, params={})
        meta.end_run("F", run_id, "successful")
        return run_id

    first = finished_run()
    resolver = PathspecResolver(meta)
    assert resolver.namespace == "user:alice"
    assert resolver.parse("F/latest_successful/end/total", 4, 5).run_id == first
    assert str(resolver.parse("F/latest")) == "F/" + first
    second = finished_run()  # both pointers move on between two pathspecs of one command
    assert meta.latest("F", successful=True).run_id == second
    assert resolver.parse("F/latest_successful/end/total", 4, 5).run_id == first
    assert resolver.run_id("F", "latest") == first
    assert PathspecResolver(meta).run_id("F", "latest_successful") == second
    assert resolver.run_id("F", second) == second and resolver.parse("F").flow == "F"
    with pytest.raises(NotFoundError):
        PathspecResolver(meta, namespace="user:bob").run_id("F", "latest")
    assert PathspecResolver(meta, namespace=None).run_id("F", "latest") == second


def test_a_run_cannot_be_called_latest(runs, tmp_path):
    meta = MetaStore(open_store(str(tmp_path / "store")))
    for alias in ("latest", "latest_successful"):
        with pytest.raises(PathspecError, match="a run cannot have the id '%s'" % alias):
            meta.allocate_run_id("F", alias)
    assert not (tmp_path / "store").exists()  # refused before anything was written
    before = len(MetaStore(open_store(runs.url)).runs("LatestFlow", namespace=None))
    refused = runs.command("mflow", "resume", runs.path, "--run-id", "latest", "-q")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("Error: a run cannot have the id 'latest': LatestFlow/latest names")
    assert refused.stderr.count("\n") == 1
    assert len(MetaStore(open_store(runs.url)).runs("LatestFlow", namespace=None)) == before


def test_resume_origin_run_id_latest(runs):
    def origin(*args, user="alice"):
        result = runs.command("mflow", "resume", runs.path, *args, "--dry-run", user=user)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["origin_run_id"]

    assert origin("--origin-run-id", "latest") == runs.failed
    assert origin("end", "--origin-run-id", "latest_successful") == runs.ok
    assert origin("end", "--origin-run-id", "latest", user="bob") == runs.bob
    nobody = runs.command("mflow", "resume", runs.path, "--origin-run-id", "latest", "--dry-run", user="carol")
    assert nobody.returncode == 4 and "flow LatestFlow has no run in namespace user:carol" in nobody.stderr


# --- 8: an artifact by step ---------------------------------------------------------------------------------


def test_a_step_artifact_of_a_foreach(runs, run):
    train = "LatestFlow/%s/train" % runs.ok
    tasks = runs.tasks(runs.ok, "train")
    ambiguous = run("cat", train + "/loss")
    one_line_error(
        ambiguous, 2, "step train of run LatestFlow/%s has 3 tasks" % runs.ok,
        "Name one task (%s/TASK/loss" % train, "or give --all",
    )
    every = rows(run("cat", "LatestFlow/latest_successful/train/loss", "--all"))
    assert [r["pathspec"] for r in every] == tasks
    assert [r["value"] for r in every] == [10, 20, 30]
    assert every[0] == {
        "schema": 1, "pathspec": tasks[0], "attempt": 0, "name": "loss", "type": "int", "value": 10, "encoding": "json"
    }
    named = rows(run("cat", tasks[1] + "/loss", "LatestFlow/latest/join/total", "--all"))  # a task's: one line each
    assert [(r["pathspec"], r["value"]) for r in named] == [(tasks[1], 20), (runs.tasks(runs.failed, "join")[0], 180)]
    assert [r["pathspec"] for r in rows(run("ls", train + "/loss", "--all", "--json"))] == tasks
    one_line_error(run("ls", train + "/loss"), 2, "has 3 tasks")
    one_line_error(run("cat", train + "/loss", "--all", "--raw"), 2, "--raw and --all exclude each other")
    dumped = rows(run("dump", train + "/loss", command=mflow_cli))
    assert [(r["pathspec"], r["name"], r["value"]) for r in dumped] == list(zip(tasks, ["loss"] * 3, [10, 20, 30]))


def test_a_task_id_is_never_an_artifact(runs, run):
    (end,) = runs.tasks(runs.ok, "end")
    one_line_error(run("cat", end), 2, "%s names a task, not an artifact" % end, "%s/NAME" % end)
    assert [r["pathspec"] for r in rows(run("ls", end, "--json"))] == [end] * 3  # a task: its artifacts
    one_line_error(run("cat", "LatestFlow/%s/end/nothing" % runs.ok), 4, "has no artifact 'nothing'")
    one_line_error(
        run("dump", "LatestFlow/%s/end/nothing" % runs.ok, command=mflow_cli), 4,
        "step LatestFlow/%s/end has no task nothing, and none of its tasks has an artifact nothing" % runs.ok,
    )


# --- 9: exit codes for scripts --------------------------------------------------------------------------


MISSING = [
    "LatestFlow/{ok}/end/{end}/nothing",  # an artifact
    "LatestFlow/{ok}/end/nothing",  # an artifact of a step
    "LatestFlow/{ok}/end/999/total",  # a task
    "LatestFlow/{ok}/nostep/1/total",  # a step
    "LatestFlow/{ok}/nostep/total",
    "LatestFlow/123/end/1/total",  # a run
    "LatestFlow/123/end/total",
    "NoFlow/1/end/1/total",  # a flow
    "NoFlow/latest_successful/end/total",
]
MALFORMED = [
    "LatestFlow/{ok}/end", "Latest Flow/{ok}/end/1/total", "LatestFlow/{ok}/end/1/total/more", "LatestFlow//end/x",
]


@pytest.mark.parametrize("pathspec", MISSING + MALFORMED)
def test_cat_exit_codes(runs, run, pathspec):
    (end,) = runs.tasks(runs.ok, "end")
    text = pathspec.format(ok=runs.ok, end=end.rsplit("/", 1)[1])
    one_line_error(run("cat", text), 4 if pathspec in MISSING else 2)


DUMP_MISSING = [
    "LatestFlow/{ok}/end/nothing",  # an artifact of a step
    "LatestFlow/{ok}/end/999",  # a task
    "LatestFlow/{ok}/nostep",  # a step
    "LatestFlow/{ok}/nostep/1",
    "LatestFlow/123/end",  # a run
    "NoFlow/1/end",  # a flow
    "NoFlow/latest/end",
]
DUMP_MALFORMED = ["LatestFlow/{ok}", "LatestFlow/{ok}/end/1/total", "LatestFlow/{ok}/end/.x"]


@pytest.mark.parametrize("pathspec", DUMP_MISSING + DUMP_MALFORMED)
def test_dump_exit_codes(runs, run, pathspec):
    result = run("dump", pathspec.format(ok=runs.ok), command=mflow_cli)
    one_line_error(result, 4 if pathspec in DUMP_MISSING else 2)


def test_a_makefile_tells_missing_from_mistyped(runs):
    (runs.runner.dir / "Makefile").write_text(
        "total.txt:\n\tmflow-store cat LatestFlow/latest_successful/end/total > $@\n"
        "missing:\n\tmflow-store cat LatestFlow/latest_successful/end/nothing\n"
        "mistyped:\n\tmflow-store cat LatestFlow/latest_successful/end\n"
    )
    made = runs.command("make", "total.txt")
    assert made.returncode == 0, made.stderr
    assert (runs.runner.dir / "total.txt").read_text() == "60\n"
    assert "Error 4" in runs.command("make", "missing").stderr
    assert "Error 2" in runs.command("make", "mistyped").stderr
    script = runs.command("sh", "-c", "mflow-store cat LatestFlow/latest_successful/end/nothing; echo $?")
    assert script.stdout == "4\n"


def test_a_task_named_like_an_artifact_is_the_task(tmp_path):
    """Flow/run/step/X is task X when the step has one, though X could be an artifact's name."""
    store = open_store(str(tmp_path / "store"), environ={"MFLOW_USER": "alice"})
    meta = MetaStore(store)
    run_id = meta.allocate_run_id("F")
    meta.start_run("F", run_id, params={})
    for task_id in ("total", "7"):
        meta.start_attempt("F/%s/end/%s" % (run_id, task_id), 0, pid=1, host="box", parent_tasks=[])
    resolver = PathspecResolver(meta)
    step = "F/%s/end" % run_id
    assert resolver.task_ids(resolver.parse(step)) == ["7", "total"]
    assert resolver.step_artifact(resolver.parse(step + "/total")) is None  # the task
    assert resolver.step_artifact(resolver.parse("F/latest/end/loss")) == "loss"
    assert resolver.artifacts(resolver.parse(step + "/total")) == [resolver.parse(step + "/total")]
    assert [str(s) for s in resolver.artifacts(resolver.parse(step + "/loss"), every_task=True)] == [
        step + "/7/loss", step + "/total/loss"
    ]
    with pytest.raises(PathspecError, match="step end of run F/%s has 2 tasks" % run_id):
        resolver.artifacts(resolver.parse(step + "/loss"))
    with pytest.raises(NotFoundError, match="has no tasks of step train"):
        resolver.step_artifact(resolver.parse("F/%s/train/loss" % run_id))
