"""`mflow-meta` in-process: every subcommand's table and JSON Lines, stdin pathspecs, bad
input with its exact message and exit code, on a local folder and on the S3 test server."""

import json
import time

import pytest

from mflow.cli.meta import cli as meta_cli
from mflow.cli.store import cli as store_cli
from mflow.meta import MetaStore

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: long ago, so a run left open then is stale now
RUN_KEYS = {
    "schema", "pathspec", "flow", "run_id", "status", "user", "host", "started_at", "ended_at", "duration_s",
    "heartbeat_at", "tags", "user_tags", "system_tags", "params", "code_key", "origin_run_id",
}  # fmt: skip
TASK_KEYS = {
    "schema", "pathspec", "flow", "run_id", "step", "task_id", "status", "attempts", "attempt", "started_at",
    "ended_at", "duration_s", "exit_code", "signal", "reason", "pid", "host", "foreach_index", "foreach_stack",
    "parent_tasks", "origin_pathspec",
}  # fmt: skip


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class History:
    """Four runs of TrainFlow: failed (alice), successful (bob), stale (alice), running (alice)."""

    def __init__(self, store):
        clock = Clock(T0)
        meta = MetaStore(store, clock=clock)
        self.failed = meta.allocate_run_id("TrainFlow")
        meta.start_run("TrainFlow", self.failed, params={"alpha": 0.5}, user_tags=["exp"], host="box1")
        start, train2, train3 = ("TrainFlow/%s/%s" % (self.failed, t) for t in ("start/1", "train/2", "train/3"))
        meta.start_attempt(start, 0, pid=100, host="box1", parent_tasks=[])
        clock.now += 2
        meta.end_attempt(start, 0, "successful", exit_code=0)
        for task, index in ((train2, 0), (train3, 1)):
            meta.start_attempt(task, 0, pid=101 + index, host="box1", foreach_stack=[index], parent_tasks=[start])
        clock.now += 3
        meta.end_attempt(train2, 0, "successful", exit_code=0)
        meta.end_attempt(train3, 0, "failed", exit_code=10, reason="ValueError: boom")
        meta.start_attempt(train3, 1, pid=103, host="box1", foreach_stack=[1], parent_tasks=[start])
        clock.now += 4
        meta.end_attempt(train3, 1, "failed", signal=9, reason="killed after timeout of 4 s")
        meta.end_run("TrainFlow", self.failed, "failed")
        self.train3 = train3
        writer = store.artifact_writer(train3, 1)
        writer.save("partial", [1, 2, 3])
        writer.commit()

        clock.now = T0 + 10
        self.bob = meta.allocate_run_id("TrainFlow")
        meta.start_run("TrainFlow", self.bob, params={}, user="bob", user_tags=["shipped"])
        clock.now = T0 + 70
        meta.end_run("TrainFlow", self.bob, "successful")

        clock.now = T0 + 20
        self.stale = meta.allocate_run_id("TrainFlow")
        meta.start_run("TrainFlow", self.stale, params={})

        live = MetaStore(store)
        self.running = live.allocate_run_id("TrainFlow")
        live.start_run("TrainFlow", self.running, params={"alpha": 1})
        live.heartbeat_run("TrainFlow", self.running)

        clock.now = T0 + 30
        self.other = meta.allocate_run_id("OtherFlow")
        meta.start_run("OtherFlow", self.other, params={})
        meta.end_run("OtherFlow", self.other, "successful")


@pytest.fixture
def history(store_under_test):
    store = store_under_test.open(MFLOW_USER="alice")
    yield History(store)
    store.close()


def runner(cli, target):
    def run(*args, stdin="", tty=False, environ=None, command=meta_cli):
        env = dict(target.env, MFLOW_STORE=target.url, MFLOW_USER="alice")
        env.update(environ or {})
        return cli(command, list(args), stdin=stdin, environ=env, tty=tty)

    return run


@pytest.fixture
def run(cli, store_under_test):
    """mflow-meta on the store under test: a local folder, then the S3 test server."""
    return runner(cli, store_under_test)


@pytest.fixture
def local(tmp_path):
    from s3_server import StoreUnderTest

    return StoreUnderTest("local", str(tmp_path / "store"), {})


@pytest.fixture
def local_history(local):
    store = local.open(MFLOW_USER="alice")
    yield History(store)
    store.close()


@pytest.fixture
def run_local(cli, local):
    """mflow-meta on a local folder only: for what does not depend on the backend."""
    return runner(cli, local)


def rows(result):
    assert result.code == 0, result
    return [json.loads(line) for line in result.stdout.splitlines()]


def table(result):
    assert result.code == 0, result
    assert not result.stdout.startswith("{")
    return [line.split() for line in result.stdout.splitlines()]


def test_flows(run, history):
    listed = rows(run("flows"))
    assert listed == [
        {"schema": 1, "flow": "OtherFlow", "latest_run": history.other, "latest_successful_run": history.other},
        {"schema": 1, "flow": "TrainFlow", "latest_run": history.running, "latest_successful_run": history.bob},
    ]
    lines = table(run("flows", tty=True))
    assert lines[0] == ["flow", "latest", "run", "latest", "successful", "run"]
    assert lines[2:] == [["OtherFlow", history.other, history.other], ["TrainFlow", history.running, history.bob]]


def test_runs_json_and_table(run, history):
    listed = rows(run("runs", "TrainFlow"))
    assert [r["run_id"] for r in listed] == [history.running, history.stale, history.failed]  # user:alice
    assert [r["status"] for r in listed] == ["running", "stale", "failed"]
    failed = listed[2]
    assert set(failed) == RUN_KEYS and failed["schema"] == 1
    assert failed["pathspec"] == "TrainFlow/" + history.failed and failed["user"] == "alice"
    assert failed["started_at"] == "2023-11-14T22:13:20.000Z" and failed["duration_s"] == 9.0
    assert failed["user_tags"] == ["exp"] and "user:alice" in failed["system_tags"] and "exp" in failed["tags"]
    assert failed["params"] == {"alpha": 0.5} and failed["host"] == "box1"
    lines = table(run("runs", "TrainFlow", tty=True))
    assert lines[0] == ["run", "id", "status", "user", "started", "at", "duration", "user", "tags"]
    assert lines[4] == [history.failed, "failed", "alice", "2023-11-14T22:13:20Z", "9.0s", "exp"]
    assert lines[3][:2] == [history.stale, "stale"] and len(lines) == 5
    assert run("runs", "TrainFlow", "--json", tty=True).stdout == run("runs", "TrainFlow").stdout
    ids = lambda *args: [r["run_id"] for r in rows(run("runs", "TrainFlow", *args))]  # noqa: E731
    assert ids("-A") == [history.running, history.stale, history.bob, history.failed]
    assert ids("--namespace", "user:bob") == [history.bob]
    assert ids("-A", "--tag", "shipped", "--status", "successful") == [history.bob]


def test_runs_filters(run_local, local_history):
    run, history = run_local, local_history
    ids = lambda *args: [r["run_id"] for r in rows(run("runs", "TrainFlow", *args))]  # noqa: E731
    everyone = [history.running, history.stale, history.bob, history.failed]
    assert ids("--all-namespaces") == everyone and ids("-A") == everyone
    assert ids("--namespace", "user:bob") == [history.bob]
    assert ids("-A", "--tag", "shipped") == [history.bob]
    assert ids("-A", "--tag", "exp", "--tag", "user:alice") == [history.failed]
    assert ids("-A", "--status", "successful") == [history.bob]
    assert ids("-A", "--status", "stale") == [history.stale]
    assert ids("-A", "--status", "running") == [history.running]
    assert ids("-A", "--since", "2023-11-14T22:13:25Z") == [history.running, history.stale, history.bob]
    assert ids("-A", "--since", "1d") == [history.running]
    assert ids("-A", "--limit", "2") == [history.running, history.stale]
    assert ids("-A", "--stale-after", "100000d", "--status", "running") == [history.running, history.stale]
    env = {"MFLOW_STALE_AFTER": "100000d"}
    assert [r["status"] for r in rows(run("runs", "TrainFlow", "-A", environ=env))][:2] == ["running", "running"]
    both = rows(run("runs", "-", "-A", "--limit", "1", stdin="TrainFlow\nOtherFlow\n"))
    assert [r["pathspec"] for r in both] == ["TrainFlow/" + history.running, "OtherFlow/" + history.other]


def test_steps(run, history):
    listed = rows(run("steps", "TrainFlow/" + history.failed))
    assert [(s["step"], s["status"], s["tasks"]) for s in listed] == [("start", "successful", 1), ("train", "failed", 2)]
    assert listed[1]["task_statuses"] == {"successful": 1, "failed": 1} and listed[1]["duration_s"] == 7.0
    assert set(listed[0]) == {
        "schema", "pathspec", "flow", "run_id", "step", "status", "tasks", "task_statuses", "started_at", "ended_at",
        "duration_s",
    }  # fmt: skip
    lines = table(run("steps", "-", stdin="TrainFlow/%s\n" % history.failed, tty=True))
    assert lines[0] == ["step", "status", "tasks", "started", "at", "duration"]
    assert lines[2:] == [
        ["start", "successful", "1", "2023-11-14T22:13:20Z", "2.0s"],
        ["train", "failed", "2", "2023-11-14T22:13:22Z", "7.0s"],
    ]


def test_tasks(run, history):
    listed = rows(run("tasks", "TrainFlow/" + history.failed))
    assert [t["pathspec"].split("/", 2)[2] for t in listed] == ["start/1", "train/2", "train/3"]
    three = listed[2]
    assert set(three) == TASK_KEYS
    assert (three["status"], three["attempts"], three["attempt"], three["signal"]) == ("failed", 2, 1, 9)
    assert three["reason"] == "killed after timeout of 4 s" and three["foreach_index"] == 1
    assert three["parent_tasks"] == ["TrainFlow/%s/start/1" % history.failed]
    assert [t["task_id"] for t in rows(run("tasks", "TrainFlow/%s/train" % history.failed))] == ["2", "3"]
    assert [t["pathspec"] for t in rows(run("tasks", "TrainFlow/" + history.failed, "--failed"))] == [history.train3]
    lines = run("tasks", "TrainFlow/" + history.failed, tty=True).stdout.splitlines()
    assert lines[0].split() == ["pathspec", "status", "attempts", "foreach", "index", "started", "at", "duration", "exit"]
    assert lines[4].split() == [
        history.train3, "failed", "2", "1", "2023-11-14T22:13:22Z", "7.0s", "signal", "9:", "killed", "after",
        "timeout", "of", "4", "s",
    ]  # fmt: skip


def test_failed_tasks_pipe_into_mflow_store(run, history):
    """mflow-meta tasks RUN --failed --json | jq -r .pathspec | mflow-store ls -"""
    listed = run("tasks", "TrainFlow/" + history.failed, "--failed", "--json")
    pathspecs = "".join(json.loads(line)["pathspec"] + "\n" for line in listed.stdout.splitlines())  # jq -r .pathspec
    artifacts = rows(run("ls", "-", stdin=pathspecs, command=store_cli))
    assert [(a["pathspec"], a["attempt"], a["name"]) for a in artifacts] == [(history.train3, 1, "partial")]


def test_show(run, history):
    run_records = rows(run("show", "TrainFlow/" + history.failed))
    assert [r["type"] for r in run_records] == ["run-claim", "run", "run-end"]
    assert run_records[1]["path"] == "meta/TrainFlow/%s/run.json" % history.failed
    task_records = rows(run("show", history.train3))
    assert [(r["type"], r.get("attempt")) for r in task_records] == [
        ("attempt-start", 0), ("attempt-end", 0), ("attempt-start", 1), ("attempt-end", 1),
    ]  # fmt: skip
    assert task_records[3]["signal"] == 9 and task_records[0]["task"]["foreach_stack"] == [1]
    assert [r["type"] for r in rows(run("show", "TrainFlow"))] == ["flow", "pointer", "pointer"]
    assert len(rows(run("show", "-", stdin="TrainFlow/%s/train\n" % history.failed))) == 6
    shown = run("show", "TrainFlow/" + history.failed, tty=True)
    assert shown.code == 0
    assert "meta/TrainFlow/%s/run.json  (run, schema 1)" % history.failed in shown.stdout
    assert any(line.split() == ["status", "failed"] for line in shown.stdout.splitlines())


def test_tags(run, history):
    spec = "TrainFlow/" + history.failed
    added = run("tag", "add", spec, "ready", "日本語 ✓")
    assert added.code == 0 and added.stdout == ""
    assert added.stderr == "%s: user tags now exp, ready, 日本語 ✓\n" % spec
    assert run("tag", "remove", spec, "exp").code == 0
    assert run("tag", "replace", spec, "ready", "shipped").code == 0
    listed = rows(run("tag", "list", spec))
    assert [(t["tag"], t["kind"]) for t in listed][:2] == [("日本語 ✓", "user"), ("shipped", "user")]
    assert {t["kind"] for t in listed[2:]} == {"system"} and listed[0] == {
        "schema": 1, "pathspec": spec, "tag": "日本語 ✓", "kind": "user",
    }  # fmt: skip
    lines = table(run("tag", "list", spec, tty=True))
    assert lines[0] == ["pathspec", "tag", "kind"] and lines[3] == [spec, "shipped", "user"]
    # Runs from stdin: tag every failed run.
    failed = run("runs", "TrainFlow", "-A", "--status", "failed", "--json").stdout
    piped = "".join(json.loads(line)["pathspec"] + "\n" for line in failed.splitlines())
    assert run("tag", "add", "-", "needs-look", stdin=piped, environ={"MFLOW_TRACEBACK": ""}).code == 0
    assert [r["run_id"] for r in rows(run("runs", "TrainFlow", "-A", "--tag", "needs-look"))] == [history.failed]
    assert run("tag", "add", spec, "quiet", "-q").stderr == ""


def test_tag_errors_change_nothing(run, history):
    spec = "TrainFlow/" + history.failed
    before = run("tag", "list", spec).stdout
    removed = run("tag", "remove", spec, "exp", "user:alice")
    assert removed.code == 2 and removed.stdout == ""
    assert removed.stderr == (
        "Error: cannot remove 'user:alice': it is a system tag. Tags beginning with user:, runtime:, "
        "python_version:, mflow_version:, date:, project:, project_branch:, scheduler:, production: belong to "
        "mflow; nothing was changed.\n"
    )
    empty = run("tag", "add", spec, "")
    assert (empty.code, empty.stderr) == (2, "Error: a tag cannot be empty. Give a tag of 1 to 500 characters.\n")
    long = run("tag", "add", spec, "x" * 501)
    assert long.code == 2 and "is 501 characters long, more than 500" in long.stderr
    assert run("tag", "replace", spec, "runtime:mflow", "x").code == 2
    assert run("tag", "list", spec).stdout == before
    missing = run("tag", "add", "TrainFlow/42", "x")
    assert missing.code == 4 and missing.stderr.startswith("Error: store ") and "has no run TrainFlow/42." in missing.stderr


def test_latest(run, history):
    assert [r["run_id"] for r in rows(run("latest", "TrainFlow"))] == [history.running]
    assert [r["run_id"] for r in rows(run("latest", "TrainFlow", "--successful", "-A"))] == [history.bob]
    none = run("latest", "TrainFlow", "--successful")
    assert none.code == 4 and none.stdout == ""
    assert none.stderr.startswith("Error: flow TrainFlow has no successful run in namespace user:alice in store ")
    assert none.stderr.endswith(". Use --all-namespaces to look at everyone's runs.\n")
    lines = table(run("latest", "TrainFlow", "--namespace", "user:bob", tty=True))
    assert lines[0] == ["flow", "run", "id", "status", "user", "started", "at", "duration", "user", "tags"]
    assert lines[2] == ["TrainFlow", history.bob, "successful", "bob", "2023-11-14T22:13:30Z", "1m", "00s", "shipped"]
    assert rows(run("latest", "-", "-A", stdin="OtherFlow\n"))[0]["run_id"] == history.other


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["runs", "NoFlow"], 4, "Error: store {url} has no flow NoFlow. `mflow-meta flows` lists the flows it has.\n"),
        (
            ["steps", "TrainFlow/123"],
            4,
            "Error: store {url} has no run TrainFlow/123. `mflow-meta runs TrainFlow --all-namespaces` lists its runs.\n",
        ),
        (
            ["tasks", "TrainFlow"],
            2,
            "Error: 'TrainFlow' is not a pathspec of the form Flow/run_id to Flow/run_id/step. "
            "Check the number of '/' parts.\n",
        ),
        (
            ["show", "Train Flow/1"],
            2,
            "Error: 'Train Flow/1' is not a valid pathspec: 'Train Flow' is not a valid flow. Write it as Flow to "
            "Flow/run_id/step/task_id.\n",
        ),
        (["runs", "TrainFlow", "--since", "yesterday"], 2, None),
        (["runs", "TrainFlow", "--stale-after", "0s"], 2, None),
        (["runs", "TrainFlow", "--namespace", "user:bob", "-A"], 2, None),
        (["runs", "TrainFlow", "--tag", ""], 2, None),
        (["runs", "TrainFlow", "--status", "done"], 2, None),
        (["show", "TrainFlow/{run}/nostep"], 4, None),
        (["show", "TrainFlow/{run}/start/9"], 4, None),
        (["latest", "NoFlow"], 4, None),
    ],
)
def test_bad_input(run_local, local_history, local, args, code, message):
    result = run_local(*[a.format(run=local_history.failed) for a in args])
    assert result.code == code and result.stdout == ""
    assert result.stderr.count("\n") == 1 or code == 2 and result.stderr.startswith("Usage:")
    if message is not None:
        assert result.stderr == message.format(url=local.url)


def test_stale_after_a_while(run, store_under_test):
    store = store_under_test.open(MFLOW_USER="alice")
    meta = MetaStore(store)
    run_id = meta.allocate_run_id("TrainFlow")
    meta.start_run("TrainFlow", run_id, params={})
    time.sleep(1.1)
    assert rows(run("runs", "TrainFlow", "--stale-after", "1s"))[0]["status"] == "stale"
    assert rows(run("runs", "TrainFlow"))[0]["status"] == "running"
