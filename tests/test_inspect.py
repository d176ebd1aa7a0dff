"""`mflow dump`, `mflow tag` and `mflow runs` in-process, against runs made by the real
driver on a local folder and on the S3 test server."""

import json
import pickle

import pytest

from mflow.cli.main import cli as mflow_cli
from mflow.cli.meta import cli as meta_cli
from mflow.client import Run
from test_client import CLIENT_FLOW, FAIL_FLOW, Results


@pytest.fixture(scope="module", params=["local", "s3"])
def runs(request, tmp_path_factory):
    """ClientFlow by alice (tagged exp) and by bob, and a failed FailFlow by alice."""
    folder = tmp_path_factory.mktemp("inspect-%s" % request.param)
    if request.param == "local":
        results = Results("local", str(folder / "store"), {}, folder)
    else:
        server = request.getfixturevalue("s3_server")
        results = Results("s3", server.url(), server.env, folder)
    client = results.write("client_flow.py", CLIENT_FLOW)
    started = {
        "first": results.start(client, "--tag", "exp"),
        "failed": results.start(results.write("fail_flow.py", FAIL_FLOW), env={"FAIL_ITEM": "0"}),
        "bob": results.start(client, user="bob"),
    }
    for name, process in started.items():
        results.finish(name, process, ok=name != "failed")
    return results.publish()


@pytest.fixture
def mflow(runs, cli):
    """Run `mflow ARGS` in-process as alice against the runs' store."""
    environ = dict(runs.env, MFLOW_STORE=runs.url, MFLOW_USER="alice", COLUMNS="60")

    def invoke(*args, stdin="", tty=False):
        return cli(mflow_cli, list(args), stdin=stdin, environ=environ, tty=tty)

    invoke.environ = environ
    return invoke


def task_of(runs, name, step, index=None):
    run = Run(runs.runs[name], store=runs.store, namespace=None)
    tasks = list(run[step])
    return tasks[0] if index is None else next(t for t in tasks if t.index == index)


def rows(result):
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


# --- dump ---------------------------------------------------------------------------------------------


def test_dump_a_task_for_a_terminal(runs, mflow):
    start = task_of(runs, "first", "start")
    result = mflow("dump", start.pathspec, tty=True)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "%s (attempt 0, successful)" % start.pathspec
    assert (lines[1], lines[3]) == ("  alpha  float  0.5", "  items  list   [1, 2, 3]")
    assert lines[2].startswith("  blob   bytes  b'xxxx") and "..." in lines[2] and len(lines[2]) <= 60
    assert "_foreach_stack" not in result.stdout and lines[-1] == ""


def test_dump_json_holds_whole_values(runs, mflow):
    start = task_of(runs, "first", "start")
    found = {row["name"]: row for row in rows(mflow("dump", start.pathspec, "--json"))}
    assert set(found) == {"alpha", "blob", "items"}
    assert found["items"]["value"] == [1, 2, 3] and found["items"]["encoding"] == "json"
    assert found["blob"]["value"] == repr(b"x" * 5000) and found["blob"]["encoding"] == "repr"
    assert found["blob"]["sha"] == runs.store.artifacts(start.pathspec).record("blob").key
    assert {"schema", "pathspec", "attempt", "name", "type", "size", "sha", "value", "encoding"} == set(found["alpha"])


def test_dump_a_step_in_task_order_with_include(runs, mflow):
    step = runs.runs["first"] + "/work"
    squares = rows(mflow("dump", step, "--include", "square"))  # piped: JSON lines
    assert [row["value"] for row in squares] == [1, 4, 9]
    assert [row["attempt"] for row in squares] == [0, 1, 0]  # the second item needed a retry
    internal = rows(mflow("dump", step, "--include", "square,_foreach_stack"))
    assert [row["name"] for row in internal] == ["square", "_foreach_stack"] * 3
    missing = mflow("dump", step, "--include", "square,nothing")
    assert missing.code == 4 and "no task of %s has artifact nothing" % step in missing.stderr
    by_stdin = rows(mflow("dump", "-", "--include", "square", stdin=step + "\n"))
    assert by_stdin == squares


def test_dump_to_a_pickle_file(runs, mflow, tmp_path):
    target = tmp_path / "squares.pkl"
    step = runs.runs["first"] + "/work"
    result = mflow("dump", step, "--include", "square", "--file", str(target))
    assert result.code == 0 and result.stdout == ""
    assert "Wrote 3 artifacts of 3 tasks to %s." % target in result.stderr
    values = pickle.loads(target.read_bytes())
    assert sorted(v["square"] for v in values.values()) == [1, 4, 9]
    assert all(key.startswith(step + "/") for key in values)


def test_dump_a_failed_task_and_bad_pathspecs(runs, mflow):
    failed = task_of(runs, "failed", "work", index=0)
    result = mflow("dump", failed.pathspec, tty=True)
    assert result.code == 0
    assert result.stdout.splitlines()[:2] == [
        "%s (attempt 0, failed)" % failed.pathspec,
        "  (no artifacts: the attempt failed before saving any)",
    ]
    malformed = mflow("dump", "ClientFlow")
    assert malformed.code == 2 and "is not a pathspec of the form Flow/run_id/step to" in malformed.stderr
    unknown = mflow("dump", "ClientFlow/12345/end/1")
    assert unknown.code == 4 and "flow ClientFlow has no run 12345" in unknown.stderr


# --- tag ---------------------------------------------------------------------------------------------------


def test_tags_change_for_the_client_and_mflow_meta(runs, mflow, cli):
    run = runs.runs["first"]
    added = mflow("tag", "add", run, "shipped", "v1")
    assert added.code == 0 and added.stderr == "%s: user tags exp, shipped, v1\n" % run
    assert Run(run, store=runs.store, namespace=None).user_tags == {"exp", "shipped", "v1"}
    assert mflow("tag", "remove", run, "v1").code == 0
    assert mflow("tag", "replace", run, "shipped", "prod").code == 0
    meta = cli(meta_cli, ["tag", "list", run, "--json"], environ=mflow.environ)
    assert sorted(r["tag"] for r in rows(meta) if r["kind"] == "user") == ["exp", "prod"]
    (listed,) = rows(mflow("tag", "list", run))
    assert listed["user_tags"] == ["exp", "prod"] and "user:alice" in listed["system_tags"]
    system = mflow("tag", "add", run, "user:mallory")
    assert system.code == 2 and "it is a system tag" in system.stderr
    assert [r["pathspec"] for r in rows(mflow("tag", "list", "ClientFlow"))] == [run]
    assert len(rows(mflow("tag", "list", "ClientFlow", "-A"))) == 2
    table = mflow("tag", "list", run, tty=True)
    assert "user tags" in table.stdout and "exp, prod" in table.stdout
    assert mflow("tag", "replace", run, "prod", "exp").code == 0
    assert mflow("tag", "remove", run, "exp").code == 0 and mflow("tag", "add", run, "exp").code == 0


# --- runs --------------------------------------------------------------------------------------------------


def test_runs_lists_for_people_and_for_pipes(runs, mflow):
    first, bob = runs.runs["first"], runs.runs["bob"]
    table = mflow("runs", "ClientFlow", tty=True)
    assert table.code == 0
    header, rule, row = table.stdout.splitlines()
    assert header.split() == ["id", "status", "started", "duration", "tags"]
    assert row.startswith(first.split("/")[1]) and "successful" in row and row.rstrip().endswith("exp")
    (listed,) = rows(mflow("runs", "ClientFlow"))
    assert listed["pathspec"] == first and listed["status"] == "successful" and listed["user"] == "alice"
    assert listed["duration_s"] > 0 and listed["user_tags"] == ["exp"]
    everyone = rows(mflow("runs", "ClientFlow", "--all-namespaces"))
    assert {r["pathspec"] for r in everyone} == {first, bob}
    assert rows(mflow("runs", "ClientFlow", "-A", "--limit", "1"))[0]["pathspec"] == everyone[0]["pathspec"]
    assert [r["pathspec"] for r in rows(mflow("runs", "ClientFlow", "-A", "--tag", "exp"))] == [first]
    (failed,) = rows(mflow("runs", "FailFlow", "--status", "failed"))
    assert failed["pathspec"] == runs.runs["failed"]
    both = mflow("runs", "ClientFlow", "FailFlow", tty=True)
    assert first in both.stdout and runs.runs["failed"] in both.stdout  # several flows: full pathspecs
    nobody = mflow("runs", "ClientFlow", "--namespace", "user:carol")
    assert nobody.code == 0 and nobody.stdout == ""
    assert "No runs of ClientFlow in namespace user:carol." in nobody.stderr
    unknown = mflow("runs", "NoSuchFlow")
    assert unknown.code == 4 and "has no flow NoSuchFlow" in unknown.stderr
    bad = mflow("runs", "ClientFlow", "--status", "lost")
    assert bad.code == 2


def test_the_commands_are_listed(mflow):
    result = mflow("--help")
    assert result.code == 0
    for name in ("dump", "runs", "tag"):
        assert "\n  %s " % name in result.stdout
