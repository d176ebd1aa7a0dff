"""What runs between `mflow run` and its first Slurm job, and what each job starts with, held
to the originals it replaces: the code package's tar against tarfile, the job script's quoting
against shlex, the sbatch test against shutil.which, the
concurrent scontrol ping and sinfo against their order of errors, and the job's program
against `python -m mflow.cli.task`. None of these needs the test cluster: fake Slurm commands
stand in for it."""

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest
from graph_flows import LINEAR, write_flow

from mflow.errors import ExecutorError, ParameterError
from mflow.runtime.executors import make_executor
from mflow.runtime.executors import slurm as slurm_module
from mflow.runtime.executors.base import RemoteTask
from mflow.store import code as code_module

BIN = os.path.dirname(sys.executable)

# --- the code package ---------------------------------------------------------------------------


def tarfile_package(directory, files):
    """The code package as build_code_package wrote it with tarfile."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for rel in files:
            full = os.path.join(directory, rel)
            with open(full, "rb") as stream:
                data = stream.read()
            entry = tarfile.TarInfo(rel)
            entry.size = len(data)
            entry.mtime = 0
            entry.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            entry.uid = entry.gid = 0
            entry.uname = entry.gname = ""
            archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("names", [
    ["flow.py"],
    ["flow.py", "lib/util.py", "empty.py", "run.py", "block.py"],
    # 99, 100 and 101 bytes: the header holds 100, a longer name goes first as a GNU 'L' entry
    ["a" * 96 + ".py", "b" * 97 + ".py", "c" * 98 + ".py", "d/" + "e" * 150 + ".py", "f/" * 70 + "deep.py"],
    ["\u00fc" * 49 + ".py", "\u00fc" * 50 + ".py", "\u4e2d" * 40 + ".py"],  # bytes, not characters, count
])
def test_code_package_is_byte_for_byte_what_tarfile_wrote(tmp_path, names):
    for index, name in enumerate(names):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = {"empty.py": b"", "block.py": b"#" * 512}.get(name, b"print(%d)\n" % index * (index * 37 + 1))
        path.write_bytes(content)
    if "run.py" in names:
        (tmp_path / "run.py").chmod(0o755)
    files = code_module.package_files(str(tmp_path))
    data, count = code_module.build_code_package(str(tmp_path))
    assert count == len(names) and data == tarfile_package(str(tmp_path), files)
    assert len(data) % (20 * 512) == 0
    assert code_module.extract_code_package(data, str(tmp_path / "out")) == files


@pytest.mark.parametrize("size", [0, 1, 8 ** 11 - 1, 8 ** 11, 256 ** 11 - 1])
def test_a_header_is_tarfile_s_for_any_size(size):
    entry = tarfile.TarInfo("x.py")
    entry.size, entry.mode, entry.mtime = size, 0o755, 0
    assert code_module._tar_header(b"x.py", 0o755, size, b"0") == entry.tobuf(tarfile.GNU_FORMAT, "utf-8")


# --- the Slurm executor's small stand-ins --------------------------------------------------------


WORDS = ["", "plain", "a b", "it's", "$HOME", "a'b\"c", "\u00e9", "@%+=:,./-_", "tab\there", "new\nline", "*", "~",
         "--comment=flow=F&run=1", "'", "''", "!"]


def test_the_job_script_quotes_as_shlex():
    assert slurm_module._shell_join(WORDS) == shlex.join(WORDS)
    for word in WORDS:
        assert slurm_module._shell_join([word]) == shlex.quote(word)
    for text in ("", "   ", "--qos=high --exclusive", "--comment='a b' -x \"y z\""):
        assert slurm_module._split(text) == shlex.split(text)


def test_sbatch_is_found_as_shutil_which_finds_it(tmp_path, monkeypatch):
    good, plain, folder = tmp_path / "good", tmp_path / "plain", tmp_path / "folder"
    for made in (good, plain, folder / "sbatch"):
        made.mkdir(parents=True)
    (good / "sbatch").write_text("#!/bin/sh\n")
    (good / "sbatch").chmod(0o755)
    (plain / "sbatch").write_text("not executable\n")
    paths = [str(good), str(plain), str(folder), "", os.pathsep.join([str(plain), str(folder), str(good)]),
             os.pathsep.join([str(tmp_path / "missing"), str(plain)]), None]
    for path in paths:
        assert slurm_module._installed("sbatch", path) == (shutil.which("sbatch", path=path) is not None), path
    monkeypatch.setenv("PATH", str(good))  # no PATH of the executor's own: the process's
    assert slurm_module._installed("sbatch", None) and shutil.which("sbatch", path=None)
    monkeypatch.delenv("PATH")
    assert slurm_module._installed("sbatch", None) == (shutil.which("sbatch", path=None) is not None)


def test_positive_float_is_one_function_for_executors_and_s3():
    from mflow.runtime.executors import positive_float
    from mflow.store.s3 import positive_float as from_s3

    assert from_s3 is positive_float
    assert positive_float({}, "X", 2.5) == 2.5 and positive_float({"X": "0.2"}, "X", 1) == 0.2
    with pytest.raises(ParameterError, match="X='-1' is not a positive number"):
        positive_float({"X": "-1"}, "X", 1)


# --- check(): scontrol ping and sinfo at once, errors in the order they had ----------------------


def fake_slurm(folder, scontrol=None, sinfo=None):
    """A PATH folder with fake sbatch, and scontrol and sinfo when given (shell script bodies)."""
    folder.mkdir(exist_ok=True)
    for name, body in (("sbatch", "exit 0"), ("scontrol", scontrol), ("sinfo", sinfo)):
        if body is not None:
            (folder / name).write_text("#!/bin/sh\n%s\n" % body)
            (folder / name).chmod(0o755)
    return make_executor("slurm", {"PATH": str(folder), "MFLOW_SLURM_OUTPUT": os.devnull})


LISTED = "echo 'debug*|up'; echo 'other|up'"
PING_FAILS = "echo 'Slurmctld(primary) at x is DOWN' >&2; exit 1"
SINFO_FAILS = "echo 'sinfo: error: something broke' >&2; exit 1"
PING_ERROR = ("cannot reach the Slurm controller: scontrol said: Slurmctld(primary) at x is DOWN. Check that slurmctld "
              "is running and that SLURM_CONF (or /etc/slurm/slurm.conf) names it: scontrol ping.")
SINFO_ERROR = ("cannot list the Slurm partitions: sinfo said: sinfo: error: something broke. Check the @slurm "
               "settings and the cluster (sinfo, squeue).")
NOT_INSTALLED = ("cannot %s: Slurm's %s is not installed here (not on PATH). Run where Slurm's client commands are "
                 "installed (Debian: slurm-client), or add them to PATH.")


@pytest.mark.parametrize("scontrol, sinfo, expected", [
    ("exit 0", LISTED, None),
    (PING_FAILS, SINFO_FAILS, PING_ERROR),  # the ping's failure first, as when it ran first
    ("exit 0", SINFO_FAILS, SINFO_ERROR),
    (None, LISTED, NOT_INSTALLED % ("reach the Slurm controller", "scontrol")),
    (None, None, NOT_INSTALLED % ("reach the Slurm controller", "scontrol")),
    (PING_FAILS, None, PING_ERROR),
    ("exit 0", None, NOT_INSTALLED % ("list the Slurm partitions", "sinfo")),
    ("exit 0", "exit 0", "step start names no Slurm partition and the cluster has no default one. Give "
                         "@slurm(partition=...) or set MFLOW_SLURM_PARTITION (partitions: )."),
])
def test_check_reports_the_first_failure_as_before(tmp_path, scontrol, sinfo, expected):
    executor = fake_slurm(tmp_path / "bin", scontrol, sinfo)
    if expected is None:
        executor.check(None, {"start": {}, "train": {"partition": "other"}})
        return
    with pytest.raises(ExecutorError) as caught:
        executor.check(None, {"start": {}})
    assert str(caught.value) == expected


def test_check_asks_scontrol_and_sinfo_at_once(tmp_path):
    started = tmp_path / "sinfo-started"
    # The ping answers only once sinfo has started: one after the other, it would fail.
    ping = ("i=0; while [ ! -e %s ] && [ $i -lt 200 ]; do %s 0.05; i=$((i+1)); done; [ -e %s ] || "
            "{ echo 'sinfo did not start meanwhile' >&2; exit 1; }" % (started, shutil.which("sleep"), started))
    executor = fake_slurm(tmp_path / "bin", ping, ": > %s; %s" % (started, LISTED))
    executor.check(None, {"start": {}})


def test_check_gives_up_on_a_silent_controller_and_stops_sinfo(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm_module, "COMMAND_TIMEOUT", 1.0)
    sleep = shutil.which("sleep")
    executor = fake_slurm(tmp_path / "bin", "exec %s 60" % sleep, "exec %s 60" % sleep)
    begun = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        executor.check(None, {"start": {}})
    assert str(caught.value) == ("cannot reach the Slurm controller: Slurm's scontrol did not answer within 1 s. "
                                 "Check that the Slurm controller is up (scontrol ping).")
    assert time.monotonic() - begun < 30  # sinfo was stopped, not waited for


# --- what the driver imports before its first job ------------------------------------------------


def test_the_executor_builds_a_job_without_heavy_imports(tmp_path):
    code = textwrap.dedent("""
        import sys
        from mflow.runtime.executors import make_executor
        from mflow.runtime.executors.base import RemoteTask
        executor = make_executor("slurm", {"PATH": sys.argv[1], "MFLOW_SLURM_OUTPUT": "/dev/null"})
        task = RemoteTask("F", "1", "work", "2", 0, "me", ("--package", "flow.py"), {"MFLOW_STORE": "/s"}, {}, {})
        executor.sbatch_options(task)
        executor.job_environment(task)
        from mflow.runtime.executors.slurm import _shell_join, job_command
        _shell_join(job_command(task, executor.environ))
        print(sorted(m for m in ("mflow.store.s3", "concurrent.futures", "shlex", "shutil", "tempfile",
                                 "runpy") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_imports_no_tarfile_tempfile_or_environment_machinery(tmp_path):
    flow = write_flow(tmp_path, LINEAR)
    code = textwrap.dedent("""
        import sys
        from mflow.cli.boundary import run_cli
        from mflow.cli.main import cli
        code = run_cli(cli, ["run", sys.argv[1], "-q"])
        print(sorted(m for m in ("tarfile", "tempfile", "mflow.env.plan") if m in sys.modules))
        sys.exit(code)
    """)
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code, str(flow)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("mflow-")] == []  # its log folder removed


# --- the job's program --------------------------------------------------------------------------

PATH_FLOW = textwrap.dedent("""
    import json, os, sys
    from mflow import FlowSpec, step
    import helper

    class PathFlow(FlowSpec):
        @step
        def start(self):
            code = os.path.dirname(os.path.abspath(__file__))
            seen = {"path": [p.replace(code, "<code>") for p in sys.path], "cwd": os.getcwd().replace(code, "<code>"),
                    "helper": helper.__file__.replace(code, "<code>")}
            with open(os.environ["SEEN"], "w") as out:
                json.dump(seen, out)
            self.next(self.end)

        @step
        def end(self):
            pass
""")


def test_a_job_imports_as_python_m_mflow_cli_task_did(tmp_path):
    """The job's `python -c` program sees the sys.path `-m mflow.cli.task` gave: the flow's
    folder (the unpacked package) first, then the folder the job started in, never ''."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "pathflow.py").write_text(PATH_FLOW)
    (code / "helper.py").write_text("X = 1\n")
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"), SEEN=str(tmp_path / "local.json"))
    run = subprocess.run([os.path.join(BIN, "mflow"), "run", str(code / "pathflow.py"), "-q"], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0, run.stderr
    run_id = run.stdout.strip().split("/")[1]
    started_in = tmp_path / "started-in"
    started_in.mkdir()
    arguments = ("--package", "pathflow.py", "start", "--flow", "PathFlow", "--run-id", run_id, "--attempt", "0")
    seen = {}
    for way, task_id in (("-m", "50"), ("-c", "51")):
        if way == "-m":
            argv = [sys.executable, "-m", "mflow.cli.task"] + list(arguments)
        else:
            task = RemoteTask("PathFlow", run_id, "start", task_id, 0, "", arguments, {}, {}, {})
            argv = slurm_module.job_command(task, {})
        env["SEEN"] = str(tmp_path / ("%s.json" % task_id))
        result = subprocess.run(argv + ["--task-id", task_id], capture_output=True, text=True, env=env,
                                cwd=str(started_in))
        assert result.returncode == 0, result.stderr
        seen[way] = json.loads((tmp_path / ("%s.json" % task_id)).read_text())
    assert seen["-c"]["path"] == seen["-m"]["path"]
    assert seen["-c"]["path"][:2] == ["<code>", str(started_in)] and "" not in seen["-c"]["path"]
    assert seen["-c"]["helper"] == seen["-m"]["helper"] == os.path.join("<code>", "helper.py")
    assert seen["-c"]["cwd"] == seen["-m"]["cwd"] == "<code>"
