"""`mflow run` end to end: real processes, a real store, every graph shape and failure."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mflow.store import open_store
from mflow.store.pathspec import Pathspec


def mflow():
    path = shutil.which("mflow")
    assert path, "mflow is not on PATH; run the tests through scripts/test"
    return path


class Runner:
    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.store_dir = tmp_path / "store"
        self.env = dict(os.environ, MFLOW_STORE=str(self.store_dir), MFLOW_USER="tester")

    def write(self, source, name="flow.py"):
        header = HEADER if source.startswith(HEADER) else ""
        path = self.dir / name
        path.write_text(header + textwrap.dedent(source[len(header):]).lstrip())
        return path

    def run(self, path, *args, timeout=120, env=None):
        return subprocess.run(
            [mflow(), "run", str(path), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(self.dir),
            env=dict(self.env, **(env or {})),
        )

    def ok(self, path, *args, **kwargs):
        result = self.run(path, *args, **kwargs)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def store(self):
        return open_store(str(self.store_dir), environ={"MFLOW_USER": "tester"})

    def artifacts(self, run_pathspec, step):
        """{task_id: {name: value}} of every task of `step` in the run."""
        store = self.store()
        flow, run_id = run_pathspec.split("/")
        folder = self.store_dir / "data" / flow / run_id / step
        out = {}
        for task_dir in sorted(folder.iterdir(), key=lambda p: int(p.name)):
            loader = store.artifacts(Pathspec.task(flow, run_id, step, task_dir.name))
            out[task_dir.name] = {name: loader[name] for name in loader if not name.startswith("_")}
        return out

    def only(self, run_pathspec, step):
        (values,) = self.artifacts(run_pathspec, step).values()
        return values


@pytest.fixture
def runner(tmp_path):
    return Runner(tmp_path)


HEADER = "from mflow import FlowSpec, step, Parameter, JSONType, IncludeFile, current\n\n"


def test_linear_flow_inherits_artifacts(runner):
    path = runner.write(
        HEADER
        + """
        class LinearFlow(FlowSpec):
            @step
            def start(self):
                self.x = 1
                self.big = list(range(1000))
                self.next(self.middle)

            @step
            def middle(self):
                self.y = self.x + 1
                self.next(self.end)

            @step
            def end(self):
                print("x=%d y=%d" % (self.x, self.y))
        """
    )
    result = runner.run(path)
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    assert run.startswith("LinearFlow/")
    run_id = run.split("/")[1]
    assert "[%s/end/3] x=1 y=2\n" % run_id in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "Run %s succeeded: 3 tasks in %s" % (
        run,
        result.stderr.strip().splitlines()[-1].split(" in ")[1],
    )
    end = runner.only(run, "end")
    assert end == {"x": 1, "y": 2, "big": list(range(1000))}
    # Inherited by reference: the end task's manifest points at start's blob.
    store = runner.store()
    flow, run_id = run.split("/")
    start_key = store.artifacts(Pathspec.task(flow, run_id, "start", "1")).record("big").key
    end_key = store.artifacts(Pathspec.task(flow, run_id, "end", "3")).record("big").key
    assert start_key == end_key


BRANCHES = HEADER + """
class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.shared = "same"
        self.next(self.a, self.b)

    @step
    def a(self):
        self.value = "from a"
        self.only_a = 1
        self.next(self.join)

    @step
    def b(self):
        self.value = "from b"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.via_name = inputs.a.value
        self.merge_artifacts(inputs, exclude=["value"])
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_static_split_and_join(runner):
    run = runner.ok(runner.write(BRANCHES))
    join = runner.only(run, "join")
    assert join == {"values": ["from a", "from b"], "via_name": "from a", "shared": "same", "only_a": 1}
    assert "value" not in runner.only(run, "end")


def test_join_inherits_only_parameters(runner):
    path = runner.write(BRANCHES.replace("        self.merge_artifacts(inputs, exclude=[\"value\"])\n", ""))
    run = runner.ok(path)
    assert runner.only(run, "join") == {"values": ["from a", "from b"], "via_name": "from a"}


def test_nested_foreach_order_index_and_stack(runner):
    path = runner.write(
        HEADER
        + """
        class NestedFlow(FlowSpec):
            @step
            def start(self):
                self.letters = ["a", "b"]
                self.next(self.outer, foreach="letters")

            @step
            def outer(self):
                self.letter = self.input
                self.numbers = [1, 2, 3]
                self.next(self.inner, foreach="numbers")

            @step
            def inner(self):
                self.pair = "%s%d" % (self.letter, self.input)
                self.where = (self.index, [frame[0] for frame in self.foreach_stack()])
                self.next(self.inner_join)

            @step
            def inner_join(self, inputs):
                self.pairs = [i.pair for i in inputs]
                self.next(self.outer_join)

            @step
            def outer_join(self, inputs):
                self.all = [p for i in inputs for p in i.pairs]
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path)
    assert runner.only(run, "end")["all"] == ["a1", "a2", "a3", "b1", "b2", "b3"]
    wheres = sorted(v["where"] for v in runner.artifacts(run, "inner").values())
    assert wheres == sorted((i, [o, i]) for o in range(2) for i in range(3))


def test_foreach_in_branch_and_branch_in_foreach(runner):
    path = runner.write(
        HEADER
        + """
        class MixedFlow(FlowSpec):
            @step
            def start(self):
                self.items = [1, 2]
                self.next(self.fan, self.plain)

            @step
            def fan(self):
                self.next(self.each, foreach="items")

            @step
            def each(self):
                self.n = self.input
                self.next(self.left, self.right)

            @step
            def left(self):
                self.side = self.n * 10
                self.next(self.meet)

            @step
            def right(self):
                self.side = self.n * 100
                self.next(self.meet)

            @step
            def meet(self, inputs):
                self.total = sum(i.side for i in inputs)
                self.n = inputs[0].n
                self.next(self.fan_join)

            @step
            def fan_join(self, inputs):
                self.totals = [i.total for i in inputs]
                self.next(self.join)

            @step
            def plain(self):
                self.other = "plain"
                self.next(self.join)

            @step
            def join(self, inputs):
                self.totals = inputs.fan_join.totals
                self.other = inputs.plain.other
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path)
    assert runner.only(run, "end") == {"totals": [110, 220], "other": "plain"}


def test_switch_and_a_step_looping_to_itself(runner):
    path = runner.write(
        HEADER
        + """
        class SwitchFlow(FlowSpec):
            mode = Parameter("mode", default="loop")

            @step
            def start(self):
                self.count = 0
                self.next({"loop": self.poll, "skip": self.done}, condition="mode")

            @step
            def poll(self):
                self.count += 1
                self.state = "again" if self.count < 3 else "done"
                self.next({"again": self.poll, "done": self.done}, condition="state")

            @step
            def done(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path)
    assert runner.only(run, "end")["count"] == 3
    assert len(runner.artifacts(run, "poll")) == 3
    run = runner.ok(path, "--mode", "skip")
    assert runner.only(run, "end")["count"] == 0
    assert not (runner.store_dir / "data" / "SwitchFlow" / run.split("/")[1] / "poll").exists()


def test_parameters_of_every_type(runner):
    (runner.dir / "notes.txt").write_text("line one\n  indented\n")
    path = runner.write(
        HEADER
        + """
        class ParamFlow(FlowSpec):
            text = Parameter("text", default="hi", help="Some text")
            count = Parameter("count", default=3)
            rate = Parameter("rate", type=float, default=0.5)
            flag = Parameter("flag", type=bool, default=False)
            config = Parameter("config", type=JSONType, default='{"a": 1}')
            names = Parameter("names", separator=",", default="x,y")
            needed = Parameter("needed-value", required=True, type=int)
            notes = IncludeFile("notes", default="notes.txt")

            @step
            def start(self):
                self.seen = dict(text=self.text, count=self.count, rate=self.rate, flag=self.flag,
                                 config=self.config, names=self.names, needed=self.needed, notes=self.notes,
                                 parameter_names=sorted(current.parameter_names))
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path, "--count", "7", "--flag", "--config", '{"b": [1, 2]}', "--needed-value", "5",
                    env={"MFLOW_PARAM_RATE": "2.5"})
    seen = runner.only(run, "start")["seen"]
    assert seen == {
        "text": "hi", "count": 7, "rate": 2.5, "flag": True, "config": {"b": [1, 2]}, "names": ["x", "y"],
        "needed": 5, "notes": "line one\n  indented\n",
        "parameter_names": sorted(["text", "count", "rate", "flag", "config", "names", "needed-value", "notes"]),
    }
    # Parameters are artifacts of every task, readable downstream.
    assert runner.only(run, "end")["count"] == 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count", "many"], "Error: parameter 'count' expects a whole number, not 'many'. Give a whole number such as 10.\n"),
        ([], "Error: parameter 'count' is required and has no value. Give --count VALUE or set MFLOW_PARAM_COUNT.\n"),
        (["--count", "1", "--bogus", "2"], "Error: No such option '--bogus'"),
    ],
)
def test_bad_parameters_fail_before_any_task(runner, args, message):
    path = runner.write(
        HEADER
        + """
        class StrictFlow(FlowSpec):
            count = Parameter("count", type=int, required=True)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    result = runner.run(path, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert not (runner.store_dir / "meta").exists()


def test_help_lists_the_flow_parameters(runner):
    path = runner.write(
        HEADER
        + """
        class HelpFlow(FlowSpec):
            alpha = Parameter("alpha", default=0.5, help="Learning rate")
            verbose_mode = Parameter("verbose-mode", type=bool, default=False)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    result = runner.run(path, "--help")
    assert result.returncode == 0
    assert "--alpha FLOAT" in result.stdout and "Learning rate [env MFLOW_PARAM_ALPHA]" in result.stdout
    assert "--verbose-mode / --no-verbose-mode" in result.stdout


def test_a_bad_graph_fails_before_running(runner):
    path = runner.write(
        HEADER
        + """
        class BadFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.nowhere)

            @step
            def end(self):
                pass
        """
    )
    result = runner.run(path)
    assert result.returncode == 1
    # Every problem as `mflow check` prints it, then the one-line error: no second command needed.
    lines = result.stderr.splitlines()
    assert lines[-3:] == [
        "%s:6: error: step start goes to unknown step nowhere; define it or fix the name" % path,
        "%s:9: error: step end cannot be reached from start; connect it or remove it" % path,
        "Error: the flow's graph has 2 problems (above). Fix them and run again; "
        "`mflow check FLOW.py` checks a flow without running it.",
    ]
    assert not (runner.store_dir / "meta").exists()
    check = subprocess.run([mflow(), "check", str(path)], capture_output=True, text=True, env=runner.env)
    assert check.returncode == result.returncode
    assert check.stderr.splitlines()[:2] == lines[-3:-1]


FAILING = HEADER + """
import time

class FailFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 2:
            raise ValueError("bad item %d" % self.input)
        if self.input == 3:
            time.sleep(60)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_failed_task_fails_the_run_and_stops_the_others(runner):
    path = runner.write(FAILING)
    started = time.time()
    result = runner.run(path)
    assert time.time() - started < 50  # the sleeping sibling was stopped, not waited for
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    failed = [line for line in lines if line.startswith("Error: run FailFlow/")]
    assert len(failed) == 1
    assert "failed: task FailFlow/" in failed[0] and "/work/" in failed[0]
    assert failed[0].endswith("(attempt 0) failed: ValueError: bad item 2.")
    assert lines[-2].startswith("See its output with: mflow logs FailFlow/")
    assert lines[-1].startswith("Resume it with: mflow resume %s --origin-run-id " % path)
    assert "ValueError: bad item 2" in result.stderr  # the traceback, streamed
    assert "Traceback (most recent call last)" in result.stderr
    # Nothing of the run is left running.
    out = subprocess.run(["pgrep", "-f", "FailFlow"], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_max_num_splits(runner):
    path = runner.write(FAILING.replace("range(4)", "range(5)"))
    result = runner.run(path, "--max-num-splits", "3")
    assert result.returncode == 1
    assert "foreach step start has 5 splits, more than --max-num-splits 3; raise --max-num-splits to allow it" in result.stderr
    assert not (runner.store_dir / "data" / "FailFlow" / result.stderr.split("FailFlow/")[1].split("/")[0] / "work").exists()


def test_ctrl_c_stops_everything_and_exits_130(runner):
    path = runner.write(
        HEADER
        + """
        import time

        class SlowFlow(FlowSpec):
            @step
            def start(self):
                self.items = [1, 2, 3]
                self.next(self.nap, foreach="items")

            @step
            def nap(self):
                print("napping", flush=True)
                time.sleep(60)
                self.next(self.join)

            @step
            def join(self, inputs):
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    proc = subprocess.Popen(
        [mflow(), "run", str(path), "--run-id-file", str(runner.dir / "run_id")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(runner.dir), env=runner.env,
    )
    deadline = time.time() + 60
    napping = 0
    lines = []
    while napping < 3 and time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        napping += "napping" in line
    assert napping == 3, lines
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "was interrupted; its running tasks were stopped" in stderr
    run_id = (runner.dir / "run_id").read_text().strip()
    out = subprocess.run(["pgrep", "-f", "SlowFlow"], capture_output=True, text=True)
    assert out.stdout.strip() == ""
    from mflow.meta import MetaStore

    assert MetaStore(runner.store()).run("SlowFlow", run_id).status == "interrupted"


def test_python_flow_py_run(runner):
    path = runner.write(
        HEADER
        + """
        class DirectFlow(FlowSpec):
            who = Parameter("who", default="world")

            @step
            def start(self):
                print("hello", self.who)
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            DirectFlow()
        """
    )
    result = subprocess.run(
        [sys.executable, str(path), "run", "--who", "there"], capture_output=True, text=True, cwd=str(runner.dir),
        env=runner.env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("DirectFlow/")
    assert "hello there" in result.stderr


SHADOWING = HEADER + """
class ShadowFlow(FlowSpec):
    verbose = Parameter("verbose", type=int, default=0, help="How chatty")
    store = Parameter("store", default="here")
    flow = Parameter("flow", default="f")
    help = Parameter("help", default="h")
    quiet = Parameter("quiet", type=bool, default=False)
    environment = Parameter("environment", default="dev")

    @step
    def start(self):
        self.seen = [self.verbose, self.store, self.flow, self.help, self.quiet, self.environment]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ShadowFlow()
"""


def test_parameters_named_like_driver_options_win_after_the_flow_file(runner):
    path = runner.write(SHADOWING)
    other = runner.dir / "other-store"
    # After FLOW.py the options are the flow's; the driver's --store goes before it.
    args = ["--verbose", "3", "--store", "mine", "--flow", "x", "--help", "y", "--quiet", "--environment", "prod"]
    result = subprocess.run(
        [mflow(), "run", "--store", str(other), str(path), *args],
        capture_output=True, text=True, cwd=str(runner.dir), env=runner.env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().split("/")[1]
    assert (other / "meta" / "ShadowFlow").is_dir() and not runner.store_dir.exists()
    store = open_store(str(other), environ={"MFLOW_USER": "tester"})
    seen = store.artifacts(Pathspec.task("ShadowFlow", run_id, "start", "1"))["seen"]
    assert seen == [3, "mine", "x", "y", True, "prod"]

    # python flow.py: options before the command are the driver's, as in Metaflow; -q is too.
    result = subprocess.run(
        [sys.executable, str(path), "--store", str(other), "-q", "run", "--store", "theirs", "--no-quiet"],
        capture_output=True, text=True, cwd=str(runner.dir), env=runner.env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # -q: the driver's quiet
    run_id = result.stdout.strip().split("/")[1]
    seen = store.artifacts(Pathspec.task("ShadowFlow", run_id, "start", "1"))["seen"]
    assert seen == [0, "theirs", "f", "h", False, "dev"]

    # --mflow-NAME reaches the driver's option anywhere; the defaults stay the flow's.
    result = subprocess.run(
        [mflow(), "run", str(path), "--mflow-store", str(other), "--verbose", "1"],
        capture_output=True, text=True, cwd=str(runner.dir), env=runner.env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = store.artifacts(Pathspec.task("ShadowFlow", result.stdout.strip().split("/")[1], "start", "1"))["seen"]
    assert seen == [1, "here", "f", "h", False, "dev"]

    # Help (-h stays the driver's) lists the parameters and the driver options' other names.
    result = subprocess.run([mflow(), "run", str(path), "-h"], capture_output=True, text=True, env=runner.env)
    assert result.returncode == 0, result.stderr
    assert "--verbose INT" in result.stdout and "How chatty" in result.stdout
    assert "--mflow-store URL" in result.stdout and "-v, --mflow-verbose" in result.stdout


def test_a_driver_option_without_a_clash_works_after_the_flow_file(runner):
    path = runner.write(
        HEADER
        + """
        class PlainFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    other = runner.dir / "elsewhere"
    assert runner.ok(path, "--store", other, "--max-workers", "2", "-q").startswith("PlainFlow/")
    assert (other / "meta" / "PlainFlow").is_dir()


@pytest.mark.parametrize("name", ["tag", "max_workers", "user-namespace", "runner-attribute-file", "obj"])
def test_a_parameter_with_a_name_metaflow_reserves_is_one_line_error(runner, name):
    path = runner.write(
        HEADER
        + """
        class ReservedFlow(FlowSpec):
            p = Parameter("%s", default=1)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """ % name
    )
    result = runner.run(path)
    assert result.returncode == 1, result.stderr
    assert "%s:4: error: parameter name %r is reserved, as in Metaflow; rename it" % (path, name) in result.stderr
    assert result.stderr.count("Error:") == 1 and not runner.store_dir.exists()


TRACEBACK_FLOW = HEADER + """
def helper(x):
    return 1 / x

class TraceFlow(FlowSpec):
    @step
    def start(self):
        helper(0)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("debug", [None, "--debug", "MFLOW_DEBUG"])
def test_a_failed_steps_traceback_starts_at_the_users_code(runner, debug):
    path = runner.write(TRACEBACK_FLOW)
    args = ["--debug"] if debug == "--debug" else []
    result = runner.run(path, *args, env={"MFLOW_DEBUG": "1"} if debug == "MFLOW_DEBUG" else None)
    assert result.returncode == 1
    console = [line.split("] ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[")]
    run = [line for line in result.stderr.splitlines() if line.startswith("Run ")][0].split()[1]
    logged = runner.store().load_log(Pathspec.parse(run + "/start/1"), 0, "stderr").decode().splitlines()
    from mflow.client import Task

    stored = Task(run + "/start/1", store=runner.store(), namespace=None).exception.traceback.splitlines()
    for lines in (console, logged, stored):
        assert lines[0] == "Traceback (most recent call last):"
        assert lines[-1] == "ZeroDivisionError: division by zero"
        if debug is None:
            assert lines[1] == '  File "%s", line 9, in start' % path, lines
            assert not any("mflow" + os.sep in line for line in lines)
        else:
            assert lines[1].startswith('  File "%s' % os.path.join(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))), "mflow", "task", "runner.py")), lines
            assert '  File "%s", line 9, in start' % path in lines


def test_logs_are_kept_verbatim(runner):
    path = runner.write(
        HEADER
        + """
        import sys

        class LogFlow(FlowSpec):
            @step
            def start(self):
                print("line one")
                print("    indented four")
                print("")
                print("after a blank")
                print("to stderr", file=sys.stderr)
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path)
    result = subprocess.run(
        [mflow(), "logs", run + "/start/1", "--stdout"], capture_output=True, text=True, env=runner.env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "line one\n    indented four\n\nafter a blank\n"
    result = subprocess.run([mflow(), "logs", run + "/start/1", "--stderr"], capture_output=True, text=True, env=runner.env)
    assert result.stdout == "to stderr\n"


def test_log_format_json_and_quiet(runner):
    path = runner.write(BRANCHES.replace('self.value = "from a"', 'print("in a"); self.value = "from a"'))
    result = runner.run(path, "--log-format", "json")
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"step": "a", "stream": "stdout", "line": "in a"}.items() <= records[0].items()
    quiet = runner.run(path, "-q")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.startswith("BranchFlow/")


@pytest.mark.parametrize("tutorial", ["helloworld.py", "playlist.py", "moviestats.py"])
def test_tutorials_run(runner, repo, tutorial):
    run = runner.ok(repo / "mflow" / "tutorials" / tutorial)
    end = runner.only(run, "end")
    if tutorial == "playlist.py":
        assert len(end["playlist"]) >= 1 and end["bonus"]
    if tutorial == "moviestats.py":
        assert set(end["genre_stats"]) == {"Animation", "Comedy", "Documentary", "Drama", "Sci-Fi", "Thriller"}


def test_mflow_task_runs_one_attempt_on_its_own(runner):
    path = runner.write(
        HEADER
        + """
        import os

        class TaskFlow(FlowSpec):
            @step
            def start(self):
                self.items = [10, 20, 30]
                self.next(self.each, foreach="items")

            @step
            def each(self):
                print("item", self.input)
                if os.environ.get("FAIL_ITEM") == str(self.input):
                    raise RuntimeError("asked to fail")
                self.doubled = self.input * 2
                self.next(self.join)

            @step
            def join(self, inputs):
                self.total = sum(i.doubled for i in inputs)
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path)
    run_id = run.split("/")[1]
    task = shutil.which("mflow-task")

    def mflow_task(*args, env=None):
        return subprocess.run(
            [task, str(path), *args], capture_output=True, text=True, cwd=str(runner.dir),
            env=dict(runner.env, **(env or {})), timeout=60,
        )

    result = mflow_task("each", "--run-id", run_id, "--task-id", "50", "--input", "start/1", "--split-index", "2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "schema": 1, "pathspec": "TaskFlow/%s/each/50" % run_id, "attempt": 0, "status": "successful",
        "next": ["join"], "transition": "linear", "foreach_splits": None, "exit_code": 0, "error": None,
        "exception": None,
    }
    assert result.stderr == "item 30\n"  # the step's output, live on stderr
    assert runner.store().load_log(Pathspec.parse("TaskFlow/%s/each/50" % run_id), 0, "stdout") == b"item 30\n"
    # A join over chosen inputs, given in order.
    result = mflow_task("join", "--run-id", run_id, "--task-id", "51",
                        "--input", "TaskFlow/%s/each/50" % run_id, "--input", "each/2")
    assert result.returncode == 0, result.stderr
    assert runner.store().artifacts(Pathspec.parse("TaskFlow/%s/join/51" % run_id))["total"] == 60 + 20
    # A failing step: exit 10, a retry may succeed; the attempt and its error are recorded.
    result = mflow_task("each", "--run-id", run_id, "--task-id", "52", "--input", "start/1", "--split-index", "0",
                        env={"FAIL_ITEM": "10"})
    assert result.returncode == 10
    record = json.loads(result.stdout)
    assert (record["status"], record["error"]) == ("failed", "RuntimeError: asked to fail")
    assert "Traceback (most recent call last)" in result.stderr
    result = mflow_task("each", "--run-id", run_id, "--task-id", "52", "--input", "start/1", "--split-index", "0",
                        "--attempt", "1")
    assert result.returncode == 0 and json.loads(result.stdout)["attempt"] == 1
    # Bad invocations: an input of another run, a missing input, a split index out of range.
    result = mflow_task("each", "--run-id", run_id, "--task-id", "53", "--input", "Other/1/start/1")
    assert result.returncode == 2 and "is not a task of run TaskFlow/%s" % run_id in result.stderr
    result = mflow_task("each", "--run-id", run_id, "--task-id", "54")
    assert result.returncode == 2 and "step each needs --input" in result.stderr
    result = mflow_task("each", "--run-id", run_id, "--task-id", "55", "--input", "start/1", "--split-index", "7")
    assert result.returncode == 11
    assert json.loads(result.stdout)["error"] == "split index 7 is outside the foreach over items (3 items)"


def test_current_inside_a_task(runner):
    path = runner.write(
        HEADER
        + """
        class CurrentFlow(FlowSpec):
            @step
            def start(self):
                self.seen = dict(flow=current.flow_name, run=current.run_id, step=current.step_name,
                                 task=current.task_id, retry=current.retry_count, user=current.username,
                                 namespace=current.namespace, pathspec=current.pathspec,
                                 tags=sorted(current.tags), running=current.is_running_flow)
                self.next(self.end)

            @step
            def end(self):
                pass
        """
    )
    run = runner.ok(path, "--tag", "nightly")
    run_id = run.split("/")[1]
    assert runner.only(run, "start")["seen"] == {
        "flow": "CurrentFlow", "run": run_id, "step": "start", "task": "1", "retry": 0, "user": "tester",
        "namespace": "user:tester", "pathspec": "CurrentFlow/%s/start/1" % run_id, "tags": ["nightly"],
        "running": True,
    }
