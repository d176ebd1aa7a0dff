"""The installed executables as a shell user meets them: real processes, real pipes."""

import os
import shutil
import subprocess
import sys

import pytest

from graph_flows import LINEAR, write_flow


def executable(name):
    path = shutil.which(name)
    assert path, "%s is not on PATH; run the tests through scripts/test" % name
    return path


def run(args, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run(args, **kwargs)


@pytest.fixture
def flow(tmp_path):
    path = write_flow(tmp_path, LINEAR)
    with path.open("a") as handle:
        handle.write('\n\nif __name__ == "__main__":\n    TestFlow()\n')
    return path


def test_graph_check_clean_and_broken(flow):
    result = run([executable("mflow-graph"), "--check", str(flow)])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    flow.write_text(flow.read_text().replace("self.next(self.end)", "self.next(self.nowhere)"))
    result = run([executable("mflow-graph"), "--check", str(flow)])
    assert result.returncode == 1 and result.stdout == ""
    assert "error: step middle goes to unknown step nowhere" in result.stderr


def test_graph_json_on_stdout(flow):
    import json

    result = run([executable("mflow-graph"), str(flow)])
    assert result.returncode == 0 and result.stderr == ""
    assert [s["name"] for s in json.loads(result.stdout)["steps"]] == ["start", "middle", "end"]


def test_porcelain_check_and_show(flow):
    result = run([executable("mflow"), "check", str(flow)])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "The graph looks good.\n")
    result = run([executable("mflow"), "show", str(flow)])
    assert result.returncode == 0 and result.stdout.startswith("Step start\n")
    flow.write_text(flow.read_text().replace("def middle(self)", "def Middle(self)"))
    result = run([executable("mflow"), "check", str(flow)])
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "4 problems in flow TestFlow."


def test_python_flow_py_does_what_mflow_does(flow):
    via_python = run([sys.executable, str(flow), "check"])
    via_mflow = run([executable("mflow"), "check", str(flow)])
    assert (via_python.returncode, via_python.stderr) == (via_mflow.returncode, via_mflow.stderr) == (0, "The graph looks good.\n")
    show = run([sys.executable, str(flow), "show"])
    assert show.stdout == run([executable("mflow"), "show", str(flow)]).stdout


def test_python_flow_py_without_a_command_lists_commands(flow):
    result = run([sys.executable, str(flow)])
    assert result.returncode == 0 and "Commands:\n  check\n  show\n" in result.stdout
    result = run([sys.executable, str(flow), "frobnicate"])
    assert result.returncode == 2 and result.stderr.startswith("Error: unknown command 'frobnicate'.")


def test_missing_file_and_bad_option_exit_codes(tmp_path):
    result = run([executable("mflow-graph"), str(tmp_path / "nope.py")])
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == "Error: flow file %s does not exist. Check the path and try again.\n" % (tmp_path / "nope.py")
    result = run([executable("mflow-graph"), "--format", "yaml", "x.py"])
    assert result.returncode == 2 and "Invalid value for '--format'" in result.stderr


def test_traceback_flag_and_variable(tmp_path):
    target = str(tmp_path / "nope.py")
    quiet = run([executable("mflow-graph"), target])
    assert "Traceback" not in quiet.stderr
    loud = run([executable("mflow-graph"), "--traceback", target])
    assert "Traceback (most recent call last)" in loud.stderr and loud.returncode == 3
    env = dict(os.environ, MFLOW_TRACEBACK="1")
    assert "Traceback (most recent call last)" in run([executable("mflow-graph"), target], env=env).stderr


def test_broken_pipe_exits_quietly(tmp_path):
    # Pipes here may buffer up to 1 MiB: print well over that so the writer meets the closed end.
    count = 6000
    steps = "".join("@step\ndef s%d(self):\n    self.next(self.s%d)\n\n" % (i, i + 1) for i in range(count))
    body = "@step\ndef start(self):\n    self.next(self.s0)\n\n" + steps
    body += "@step\ndef s%d(self):\n    self.next(self.end)\n\n@step\ndef end(self):\n    pass\n" % count
    path = write_flow(tmp_path, body)
    proc = subprocess.Popen([executable("mflow-graph"), str(path), "--pretty"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    # 141 when the write meets the closed pipe; 0 when the kernel took it all before the close.
    assert proc.wait(timeout=60) in (0, 141)
    assert stderr == ""


def test_broken_pipe_in_the_boundary(tmp_path):
    import io

    from mflow.cli.boundary import run_cli
    from mflow.cli.console import Console
    from mflow.cli.graph import cli

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("no fd")

    err = io.StringIO()
    path = write_flow(tmp_path, LINEAR)
    console = Console(stdin=io.StringIO(), stdout=ClosedPipe(), stderr=err, environ={})
    assert run_cli(cli, [str(path)], console) == 141
    assert err.getvalue() == ""


def test_version_and_help():
    result = run([executable("mflow"), "--version"])
    assert result.returncode == 0 and result.stdout.startswith("mflow ")
    for name in ("mflow", "mflow-graph"):
        result = run([executable(name), "--help"])
        assert result.returncode == 0 and "Examples:" in result.stdout and result.stderr == ""
