"""What every remote task relies on, whatever the engine: mflow-task --package and
--live-logs, `mflow logs -f` following output while a task runs, job identities, the
--with hand-over, and `mflow batch` refusing what it cannot do."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from mflow.decospec import STEP_DECORATORS
from mflow.runtime.executors.base import JobFilter, JobInfo, job_name, merged_resources, parse_job_name
from mflow.task.decorators import parse_with, with_texts

BIN = os.path.dirname(sys.executable)

SLOW_FLOW = textwrap.dedent(
    """
    import time
    from mflow import FlowSpec, step

    class TickFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.tick)

        @step
        def tick(self):
            if __import__("os").environ.get("TICK_FAIL"):
                raise RuntimeError("told to fail")
            for i in range(int(__import__("os").environ.get("TICKS", "3"))):
                print("tick %d" % i, flush=True)
                time.sleep(float(__import__("os").environ.get("TICK_SECONDS", "0.01")))
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        TickFlow()
    """
)


def command(name, *args, env, cwd=None, **kwargs):
    return subprocess.run(
        [os.path.join(BIN, name), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, **kwargs
    )


@pytest.fixture
def tick_run(tmp_path):
    """A finished run of TickFlow in a folder store; (folder, env, run id)."""
    flow = tmp_path / "code" / "tickflow.py"
    flow.parent.mkdir()
    flow.write_text(SLOW_FLOW)
    (flow.parent / "data.txt").write_text("packaged beside the flow\n")
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"), MFLOW_USER="tester")
    result = command("mflow", "run", flow, "-q", env=env)
    assert result.returncode == 0, result.stderr
    return tmp_path, env, result.stdout.strip().split("/")[1]


def test_task_from_code_package_runs_anywhere(tick_run):
    folder, env, run_id = tick_run
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    result = command(
        "mflow-task", "--package", "--flow", "TickFlow", "tickflow.py", "tick", "--run-id", run_id,
        "--task-id", "50", "--input", "start/1", env=env, cwd=str(elsewhere),
    )
    assert result.returncode == 0, result.stderr
    assert '"status":"successful"' in result.stdout
    logs = command("mflow", "logs", "TickFlow/%s/tick/50" % run_id, "--stdout", env=env)
    assert logs.stdout == "tick 0\ntick 1\ntick 2\n"


LITTER_FLOW = textwrap.dedent(
    """
    import os
    from mflow import FlowSpec, step

    class LitterFlow(FlowSpec):
        @step
        def start(self):
            with open("made.txt", "w") as out:  # into the task's folder: its cwd
                out.write("x")
            os.makedirs("sub/deeper")
            os.symlink(os.environ["OUTSIDE"], "link")
            self.next(self.end)

        @step
        def end(self):
            pass

    if __name__ == "__main__":
        LitterFlow()
    """
)


def test_a_packaged_task_reads_the_graph_and_code_the_driver_kept(tick_run):
    """The run's code package record holds the flow's analyzed graph and compiled code, so a
    packaged task neither parses nor compiles the flow file; a record without them, or with
    ones it cannot use (another mflow's, another Python's, another source's), has the task
    parse and compile the file as before. Either way, a traceback names the unpacked file."""
    import json

    folder, env, run_id = tick_run
    record_path = folder / "store" / "data" / "TickFlow" / run_id / "code.json"
    record = json.loads(record_path.read_text())
    graph = record["graph"]
    assert graph["file"] == "tickflow.py" and graph["format"].startswith("mflow ")
    assert set(graph["bytecode"]) == {"python", "sha256", "code"}
    probe = ("import atexit, builtins, sys\n"
             "compiled = []\n"
             "real_compile = builtins.compile\n"
             "def compile(source, filename, *args, **kwargs):\n"
             "    compiled.append(str(filename).endswith('tickflow.py'))\n"
             "    return real_compile(source, filename, *args, **kwargs)\n"
             "builtins.compile = compile\n"
             "atexit.register(lambda: print('parsed:', 'mflow.graph.parse' in sys.modules, 'compiled:', any(compiled),\n"
             "                              file=sys.stderr))\n"
             "sys.argv[0] = 'mflow-task'\n"
             "from mflow.cli.task import main\n"
             "main()\n")

    def packaged_task(task_id, **more):
        done = subprocess.run(
            [sys.executable, "-c", probe, "--package", "--flow", "TickFlow", "tickflow.py", "tick", "--run-id", run_id,
             "--task-id", task_id, "--input", "start/1"], capture_output=True, text=True, env=dict(env, **more),
            cwd=str(folder),
        )
        return done, done.stderr.strip().splitlines()[-1]

    def with_graph(changed):
        record_path.write_text(json.dumps(dict(record, graph=changed) if changed else
                                          {key: value for key, value in record.items() if key != "graph"}))

    done, said = packaged_task("60")
    assert done.returncode == 0 and '"status":"successful"' in done.stdout, done.stderr
    assert said == "parsed: False compiled: False"
    cases = [
        (dict(graph, bytecode=dict(graph["bytecode"], sha256="0" * 64)), "parsed: False compiled: True"),
        (dict(graph, bytecode=dict(graph["bytecode"], python="0d0d0a0a-0")), "parsed: False compiled: True"),
        (dict(graph, format="mflow 0.0.0 graph 0"), "parsed: True compiled: True"),
        (dict(graph, pickle="bm90IGEgcGlja2xl"), "parsed: True compiled: True"),
        (None, "parsed: True compiled: True"),
    ]
    for task_id, (changed, expected) in enumerate(cases, 61):
        with_graph(changed)
        done, said = packaged_task(str(task_id))
        assert done.returncode == 0 and said == expected, (changed, done.stderr)
    # The step fails (TICK_FAIL): its traceback names the unpacked flow file, compiled code or not.
    for task_id, changed in ((70, graph), (71, None)):
        with_graph(changed)
        done, _ = packaged_task(str(task_id), TICK_FAIL="1")
        assert done.returncode != 0 and "/code/tickflow.py\", line" in done.stderr, done.stderr


@pytest.mark.parametrize("tmpdir", ["given", "missing"])
def test_a_packaged_task_leaves_no_folder_behind(tmp_path, tmpdir):
    """The task's own folder (code, output files, what the step wrote there) is removed at its
    end, links in it removed and not followed; a TMPDIR that does not exist is no error."""
    flow = tmp_path / "code" / "litterflow.py"
    flow.parent.mkdir()
    flow.write_text(LITTER_FLOW)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"), OUTSIDE=str(outside))
    (tmp_path / "run").mkdir()
    run = command("mflow", "run", flow, "-q", env=env, cwd=str(tmp_path / "run"))  # the run's own litter there
    assert run.returncode == 0, run.stderr
    run_id = run.stdout.strip().split("/")[1]
    env["TMPDIR"] = str(temp if tmpdir == "given" else tmp_path / "no-such-folder")
    result = command(
        "mflow-task", "--package", "--flow", "LitterFlow", "litterflow.py", "start", "--run-id", run_id,
        "--task-id", "7", env=env, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert list(temp.iterdir()) == [] and not (tmp_path / "no-such-folder").exists()
    assert (outside / "keep.txt").read_text() == "kept"

@pytest.mark.parametrize(
    "args, code, words",
    [
        (["tickflow.py"], 2, "--package needs --flow"),
        (["--flow", "TickFlow", "other.py"], 3, "holds no other.py"),
    ],
)
def test_task_from_code_package_refuses_bad_input(tick_run, args, code, words):
    folder, env, run_id = tick_run
    result = command(
        "mflow-task", "--package", *args, "tick", "--run-id", run_id, "--task-id", "51", "--input", "start/1", env=env
    )
    assert result.returncode == code
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_live_logs_reach_the_store_while_the_task_runs(tick_run):
    """A task with --live-logs copies its output to the store as it goes; `mflow logs -f`
    prints it before the task ends, each line once, and stops when the run ends."""
    folder, env, run_id = tick_run
    # A run that stays `running` while the task below goes on: a driver with a slower step.
    env = dict(env, TICKS="30", TICK_SECONDS="0.2")
    driver = subprocess.Popen(
        [os.path.join(BIN, "mflow"), "run", str(folder / "code" / "tickflow.py"), "-q", "--run-id-file", "rid"],
        cwd=str(folder), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        task = follower = driver
        deadline = time.time() + 30
        while not (folder / "rid").exists() and time.time() < deadline:
            time.sleep(0.05)
        live_run = (folder / "rid").read_text().strip()
        task = subprocess.Popen(
            [os.path.join(BIN, "mflow-task"), "--package", "--flow", "TickFlow", "tickflow.py", "tick",
             "--run-id", live_run, "--task-id", "90", "--input", "start/1", "--live-logs", "0.2"],
            env=dict(env, TICKS="10"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        follower = subprocess.Popen(
            [os.path.join(BIN, "mflow"), "logs", "-f", "--stdout", "TickFlow/%s/tick/90" % live_run],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        first = follower.stdout.readline()
        assert first == "tick 0\n"
        assert task.poll() is None, "the first line must arrive while the task still runs"
        task.wait(timeout=60)
        assert driver.wait(timeout=60) == 0
        rest = follower.stdout.read()  # to its end: the follower stops when the run ends
        assert follower.wait(timeout=30) == 0
        assert first + rest == "".join("tick %d\n" % i for i in range(10))
    finally:
        for process in (driver, task, follower):
            if process.poll() is None:
                process.kill()


def test_with_decorators_survive_the_hand_over_to_a_command():
    given = {
        "retry": {"times": 2, "minutes_between_retries": 0},
        "slurm": {"partition": "debug", "extra": ["--exclusive", "--nice=5"]},
        "batch": {"queue": "q", "tags": {"team": "ml", "cost": "a,b"}},
        "catch": {},
    }
    assert parse_with(with_texts(given)) == given


def test_job_names_carry_the_task_identity():
    name = job_name("HelloFlow", "1700000000000", "train", "12", 3)
    assert name == "mflow-HelloFlow-1700000000000-train-12-3"
    assert parse_job_name(name) == ("HelloFlow", "1700000000000", "train", "12", 3)
    assert parse_job_name("someone-elses-job") is None
    job = JobInfo("slurm", "7", name, "HelloFlow", "1700000000000", "train", "12", 3, "ann", "running")
    assert job.to_json()["pathspec"] == "HelloFlow/1700000000000/train/12"
    assert JobFilter(run_id="1700000000000", user="ann").matches(job)
    assert not JobFilter(user="bob").matches(job)
    assert not JobFilter().matches(job._replace(state="succeeded"))
    assert JobFilter(active_only=False).matches(job._replace(state="succeeded"))


def test_engine_resources_take_the_larger_of_each():
    merged = merged_resources({"cpu": 4, "memory": 1000, "gpu": None}, {"cpus": 2, "memory": 8000, "gpus": 1})
    assert merged == {"cpu": 4, "memory": 8000, "gpu": 1, "disk": None, "shared_memory": None}


@pytest.mark.parametrize(
    "name, args, words",
    [
        ("batch", {"cpu": 0}, "cpu must be a positive number"),
        ("batch", {"swappiness": 101}, "swappiness must be a whole number from 0 to 100"),
        ("batch", {"queue": ""}, "queue must be text"),
        ("slurm", {"time": -5}, "time must be a positive number of minutes"),
        ("slurm", {"extra": "--exclusive"}, "extra must be a list"),
        ("slurm", {"partitions": "x"}, "has no argument 'partitions'"),
    ],
)
def test_engine_decorators_reject_bad_arguments(name, args, words):
    assert any(words in problem for problem in STEP_DECORATORS[name].problems(args))


def test_batch_kill_needs_a_filter(tmp_path):
    result = command("mflow", "batch", "kill", env=dict(os.environ))
    assert result.returncode == 2
    assert "needs --run-id, --my-runs or --user" in result.stderr


def test_batch_list_without_any_engine_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MFLOW_BATCH_QUEUE"}
    env["PATH"] = BIN  # no squeue here
    result = command("mflow", "batch", "list", env=env)
    assert result.returncode == 6
    assert result.stderr.startswith("Error: no compute engine is configured here")
    assert len(result.stderr.strip().splitlines()) == 1
