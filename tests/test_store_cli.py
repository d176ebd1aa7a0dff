"""`mflow-store` in-process: output formats, exit codes, store resolution, the man page."""

import hashlib
import json
import os
import pickle
import subprocess

import pytest

from mflow.cli.store import cli as store_cli
from mflow.store import open_store

TASK = "TrainFlow/5/start/1"


@pytest.fixture
def run(cli, store_under_test):
    """Run mflow-store against the store under test (local folder or S3)."""

    def run(*args, stdin="", tty=False, environ=None):
        env = dict(store_under_test.env, MFLOW_STORE=store_under_test.url, **(environ or {}))
        return cli(store_cli, list(args), stdin=stdin, environ=env, tty=tty)

    return run


@pytest.fixture
def task_store(store_under_test):
    store = store_under_test.open()
    writer = store.artifact_writer(TASK, 0)
    writer.save_many({"alpha": 0.5, "names": ["a", "b"], "blob": b"\x00\x01", "fn": len, "long": "w" * 3000})
    writer.commit()
    yield store
    store.close()


def test_put_get_has(run, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"some bytes\n")
    result = run("put", str(path), "-v")
    key = hashlib.sha256(b"some bytes\n").hexdigest()
    assert result.code == 0 and result.stdout == key + "\n"
    assert "Using store" in result.stderr  # -v names the store it writes to
    piped = run("put", "-", stdin="from stdin")
    assert piped.stdout.strip() == hashlib.sha256(b"from stdin").hexdigest()
    got = run("get", key)
    assert got.code == 0 and got.stdout == "some bytes\n"
    assert run("has", key).code == 0
    assert run("has", key, "f" * 64).code == 1
    assert run("has", "-", stdin=key + "\n").code == 0


def test_unknown_and_malformed_input(run, task_store):
    missing = run("get", "0" * 64)
    assert missing.code == 4 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and task_store.url in missing.stderr
    assert run("get", "xyz").code == 2
    assert run("ls", "TrainFlow/5/start/9").code == 4
    assert run("ls", "TrainFlow/5/start").code == 2
    assert run("cat", TASK + "/nope").code == 4
    assert run("cat", "Train Flow/5/start/1/x").code == 2
    assert run("ls", TASK, "--attempt", "3").code == 4
    assert run("put", "/no/such/file").code == 3


def test_ls_json_and_table(run, task_store):
    piped = run("ls", TASK)
    rows = [json.loads(line) for line in piped.stdout.splitlines()]
    assert [r["name"] for r in rows] == ["alpha", "blob", "fn", "long", "names"]
    assert set(rows[0]) == {
        "schema", "pathspec", "attempt", "name", "key", "size", "stored_size", "type", "serializer", "inline"
    }
    assert rows[0]["inline"] is True and rows[3]["inline"] is False
    assert rows[0]["schema"] == 1 and rows[0]["pathspec"] == TASK and rows[0]["type"] == "float"
    table = run("ls", TASK, tty=True)
    assert table.stdout.splitlines()[0].split() == ["name", "key", "size", "stored", "size", "type"]
    assert "alpha" in table.stdout and not table.stdout.startswith("{")
    assert run("ls", TASK, "--json", tty=True).stdout == piped.stdout
    one = run("ls", "-", stdin=TASK + "/names\n")
    assert [json.loads(line)["name"] for line in one.stdout.splitlines()] == ["names"]


def test_cat(run, task_store):
    assert run("cat", TASK + "/alpha").stdout == "0.5\n"
    assert run("cat", TASK + "/names", TASK + "/alpha").stdout == '["a", "b"]\n0.5\n'
    assert run("cat", TASK + "/blob").stdout == "b'\\x00\\x01'\n"  # not JSON: its repr
    assert run("cat", TASK + "/fn").stdout == "<built-in function len>\n"


def test_cat_raw_is_the_stored_pickle(run, task_store, store_under_test, tmp_path):
    out = tmp_path / "raw.pickle"
    env = store_under_test.process_env(MFLOW_STORE=store_under_test.url)
    with open(out, "wb") as stream:
        subprocess.run(["mflow-store", "cat", "--raw", TASK + "/names"], stdout=stream, env=env, check=True)
    assert pickle.loads(out.read_bytes()) == ["a", "b"]


def test_corrupt_blob_is_exit_5(run, task_store):
    key = task_store.artifacts(TASK).record("long").key
    task_store.backend.put("blobs/%s/%s" % (key[:2], key), b"MFB1r\x00\x00\x00\x01\x00\x00\x00\x01x")
    result = run("cat", TASK + "/long")
    assert result.code == 5 and "corrupt" in result.stderr and result.stdout == ""
    assert run("get", key).code == 5


def test_du_and_gc(run, task_store):
    du = [json.loads(line) for line in run("du").stdout.splitlines()]
    assert [r["scope"] for r in du] == ["TrainFlow", "total"] and du[0]["references"] == 5
    table = run("du", "TrainFlow", tty=True)
    assert "TrainFlow/5" in table.stdout and "logical bytes" in table.stdout
    assert run("du", "TrainFlow/5/start").code == 2
    orphan = run("put", "-", stdin="orphan").stdout.strip()
    assert run("gc", "--dry-run").code == 0  # everything is younger than a day
    dry = run("gc", "--dry-run", "--grace", "0")
    assert dry.code == 1 and json.loads(dry.stdout)["key"] == orphan
    assert "would delete 1 blobs" in dry.stderr
    done = run("gc", "--grace", "0s")
    assert done.code == 0 and json.loads(done.stdout)["action"] == "deleted"
    assert run("has", orphan).code == 1
    assert run("cat", TASK + "/alpha").stdout == "0.5\n"
    assert run("gc", "--grace", "0", environ={"MFLOW_GC_GRACE": "bad"}).code == 0
    assert run("gc", environ={"MFLOW_GC_GRACE": "bad"}).code == 2


def test_cp_command(cli, tmp_path):
    source = open_store(str(tmp_path / "a"))
    writer = source.artifact_writer(TASK, 0)
    writer.save("x", {"k": 1})
    writer.commit()
    result = cli(store_cli, ["cp", str(tmp_path / "a"), str(tmp_path / "b"), "TrainFlow/5", "-v"])
    assert result.code == 0 and result.stdout == ""
    assert "copied 1 objects" in result.stderr  # the manifest; the small value lives in it
    assert open_store(str(tmp_path / "b")).artifacts(TASK)["x"] == {"k": 1}
    assert cli(store_cli, ["cp", str(tmp_path / "a"), str(tmp_path / "b"), "Nope"]).code == 4


def test_store_resolution(cli, tmp_path, monkeypatch):
    from mflow.store import resolve_store_url

    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "MFLOW_STORE"}
    # A .mflow folder above the test's temporary folder (not ours to remove) would be found.
    above = [p / ".mflow" for p in tmp_path.parents if (p / ".mflow").is_dir()]
    expected = (str(above[0]), "found") if above else (str(deep / ".mflow"), "new")
    assert resolve_store_url(None, env, str(deep)) == expected
    (project / ".mflow").mkdir()
    assert resolve_store_url(None, env, str(deep)) == (str(project / ".mflow"), "found")
    assert resolve_store_url(None, dict(env, MFLOW_STORE="s3://b/p/"), str(deep)) == ("s3://b/p", "env")
    assert resolve_store_url("rel", dict(env, MFLOW_STORE="s3://b/p"), str(deep)) == (str(deep / "rel"), "flag")
    monkeypatch.chdir(deep)
    monkeypatch.delenv("MFLOW_STORE", raising=False)
    key = cli(store_cli, ["put", "-"], stdin="x").stdout.strip()
    assert os.path.exists(project / ".mflow" / "blobs" / key[:2] / key)
    flagged = cli(store_cli, ["put", "-", "--store", str(tmp_path / "flagged"), "-v"], stdin="x")
    assert str(tmp_path / "flagged") in flagged.stderr and os.path.isdir(tmp_path / "flagged" / "blobs")
    assert cli(store_cli, ["has", key, "--store", "ftp://nowhere"]).code == 5


def test_reads_never_create_a_store(cli, tmp_path):
    store = tmp_path / "absent"
    assert cli(store_cli, ["has", "a" * 64, "--store", str(store)]).code == 1
    assert cli(store_cli, ["ls", TASK, "--store", str(store)]).code == 4
    assert not store.exists()


def test_man_page_renders(repo):
    page = repo / "man" / "mflow-store.1"
    env = dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat")
    shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    for heading in ("LAYOUT", "EXIT STATUS", "ENVIRONMENT", "JSON OUTPUT"):
        assert heading in shown.stdout
    warnings = subprocess.run(
        ["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True, env=env
    )
    assert warnings.stderr == ""
