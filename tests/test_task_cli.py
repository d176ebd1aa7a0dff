"""mflow-task's two readers of a command line: the small one its start-up uses and click's.

They must agree on every well-formed command line; anything else the small one hands to
click, which prints the usage error (or the help).
"""

import os

import click
import pytest

from mflow.cli.console import Console
from mflow.cli.task import COUNT, FLAG, MANY, ONE, PAIR, TASK_OPTIONS, parse_fast
from mflow.cli.task_command import cli

BASE = ["flow.py", "work", "--run-id", "17", "--task-id", "3"]

WELL_FORMED = [
    BASE,
    ["--run-id", "17", "flow.py", "--task-id", "3", "work"],
    BASE + ["--input", "start/1", "--split-index", "4", "--attempt", "2"],
    BASE + ["--input", "a/2", "--input", "Flow/17/b/3", "--tag", "x", "--tag", "y:z"],
    BASE + ["--with", "retry:times=2", "--with", "batch:tags={'a':'x','b':'y'}", "--fallback", "--package"],
    BASE + ["--live-logs", "5", "--log-files", "out.txt", "err.txt", "--environment", "local"],
    BASE + ["--flow", "HelloFlow", "--store", "s3://bucket/prefix", "-q", "--quiet", "-v", "--traceback"],
    BASE + ["--split-index=0", "--attempt=0", "--live-logs=0.1", "--store=/some/where", "--input=start/1"],
    BASE + ["--run-id", "99", "--attempt", "1", "--attempt", "3"],
]

#: Command lines click reads (or rejects) that the small reader leaves to it.
UNUSUAL = [
    BASE + ["-qv"],
    BASE + ["--input", "--tag"],
    BASE + ["--live-logs", "nan"],
    ["-", "work", "--run-id", "17", "--task-id", "3"],
]
MALFORMED = [
    BASE + ["--help"],
    BASE + ["-h"],
    ["flow.py", "--run-id", "17", "--task-id", "3"],  # no STEP
    BASE + ["extra"],
    ["flow.py", "work", "--task-id", "3"],  # no --run-id
    BASE + ["--attempt", "-1"],
    BASE + ["--attempt", "one"],
    BASE + ["--split-index", "²"],
    BASE + ["--live-logs", "0.05"],
    BASE + ["--environment", "conda"],
    BASE + ["--log-files", "out.txt"],
    BASE + ["--no-such-option"],
    BASE + ["--fallback=yes"],
    BASE + ["--", "--attempt"],
]


@pytest.fixture(autouse=True)
def no_environment_setting(monkeypatch):
    monkeypatch.delenv("MFLOW_ENVIRONMENT", raising=False)


def click_reading(argv, environ=None):
    """(params, verbosity) as click reads `argv` (its envvar from os.environ, as in mflow-task)."""
    console = Console(environ=dict(environ or {}))
    saved = dict(os.environ)
    os.environ.update(environ or {})
    try:
        with cli.make_context("mflow-task", list(argv), obj=console) as ctx:
            return dict(ctx.params), console.verbosity
    finally:
        os.environ.clear()
        os.environ.update(saved)


def fast_reading(argv, environ=None):
    params = parse_fast(argv, environ or {})
    assert params is not None, "the small reader refused a well-formed command line: %r" % (argv,)
    verbosity = params.pop("verbose") - params.pop("quiet")
    params.pop("traceback")
    return params, verbosity


@pytest.mark.parametrize("argv", WELL_FORMED, ids=lambda argv: " ".join(argv[6:]) or "base")
def test_both_readers_agree(argv):
    assert fast_reading(argv) == click_reading(argv)


@pytest.mark.parametrize("value", ["local", "pypi"])
def test_the_environment_variable_is_read_alike(value):
    environ = {"MFLOW_ENVIRONMENT": value}
    assert fast_reading(BASE, environ) == click_reading(BASE, environ)
    assert fast_reading(BASE + ["--environment", "pypi"], environ)[0]["environment"] == "pypi"


@pytest.mark.parametrize("argv", UNUSUAL + MALFORMED, ids=lambda argv: " ".join(argv))
def test_anything_else_goes_to_click(argv):
    assert parse_fast(argv, {}) is None


@pytest.mark.parametrize("argv", MALFORMED, ids=lambda argv: " ".join(argv))
def test_click_says_what_is_wrong(argv):
    with pytest.raises((click.exceptions.UsageError, click.exceptions.Exit)):
        click_reading(argv)


def test_a_usage_error_still_reads_as_one(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mflow.cli.task"] + BASE + ["--attempt", "-1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "Invalid value for '--attempt'" in done.stderr


def test_a_bad_environment_variable_goes_to_click():
    assert parse_fast(BASE, {"MFLOW_ENVIRONMENT": "conda"}) is None
    with pytest.raises(click.exceptions.BadParameter):
        click_reading(BASE, {"MFLOW_ENVIRONMENT": "conda"})


def test_a_folder_as_flow_file_goes_to_click(tmp_path):
    argv = [str(tmp_path)] + BASE[1:]
    assert parse_fast(argv, {}) is None
    assert parse_fast(BASE + ["--log-files", str(tmp_path), "err.txt"], {}) is None
    with pytest.raises(click.exceptions.BadParameter):
        click_reading(argv)


def test_the_table_covers_every_option_of_the_click_command():
    kinds = {}
    for param in cli.params:
        if not isinstance(param, click.Option):
            continue
        kind = (COUNT if param.count else FLAG if param.is_flag else MANY if param.multiple
                else PAIR if param.nargs == 2 else ONE)
        for name in param.opts + param.secondary_opts:
            if name in ("-h", "--help"):
                continue
            kinds[name] = (param.name, kind)
    assert {name: entry[:2] for name, entry in TASK_OPTIONS.items()} == kinds


def test_a_task_runs_without_loading_click_or_other_heavy_modules(tmp_path):
    """The point of the small reader: a task started by a compute engine never imports click.
    Nor, in a plain task, the standard modules that cost every task start-up milliseconds
    (json, re and enum; ast, threading, contextlib, importlib.util, pure-Python pickle)."""
    import json
    import subprocess
    import sys

    from flow_runs import FlowRuns

    runs = FlowRuns(tmp_path, os.environ, str(tmp_path / "store"))
    path = runs.write("""
        class TinyFlow(FlowSpec):
            @step
            def start(self):
                self.x = 1
                self.next(self.end)

            @step
            def end(self):
                print("x is", self.x)
    """)
    ran = runs.command("run", path, "-q", "--run-id-file", tmp_path / "run-id")
    assert ran.returncode == 0, ran.stderr
    run_id = (tmp_path / "run-id").read_text().strip()
    heavy = ("click", "json", "re", "enum", "ast", "threading", "contextlib", "importlib.util", "pickle", "typing",
             "tarfile", "tempfile", "shutil", "hashlib", "inspect", "dataclasses", "orjson")
    probe = ("import atexit, sys\n"
             "sys.argv[0] = 'mflow-task'\n"
             "atexit.register(lambda: print('loaded:', [m for m in %r if m in sys.modules], file=sys.stderr))\n"
             "from mflow.cli.task import main\n"
             "main()\n" % (heavy,))
    # The first task of an interpreter lists its distributions (importlib.metadata: heavy, once
    # per installation); each task after it on a store new to the cache adds the store to it.
    env = dict(runs.env, MFLOW_ENV_CACHE=str(tmp_path / "env-cache"))

    def probe_task(task_id):
        done = subprocess.run([sys.executable, "-c", probe, str(path), "end", "--run-id", run_id, "--task-id", task_id,
                               "--input", "start/1"], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert '"status":"successful"' in done.stdout
        return done.stderr.splitlines()

    assert probe_task("9")[0] == "x is 1"
    for cached in (tmp_path / "env-cache").rglob("*.json"):
        entry = json.loads(cached.read_text())
        cached.write_text(json.dumps(dict(entry, stores=["elsewhere"])))
    assert probe_task("10") == ["x is 1", "loaded: []"]  # the store added to the cache
    assert probe_task("11") == ["x is 1", "loaded: []"]  # the store found in the cache
