"""Failure handling end to end: @retry, @catch, @timeout, @environment, @resources, --with."""

import json
import os
import subprocess
import time

import pytest

from mflow.meta import MetaStore
from mflow.store.pathspec import Pathspec
from test_run import HEADER, Runner, mflow


@pytest.fixture
def runner(tmp_path):
    return Runner(tmp_path)


def meta_of(runner):
    return MetaStore(runner.store())


def attempts(runner, run, step):
    flow, run_id = run.split("/")
    (task,) = [t for t in meta_of(runner).tasks(flow, run_id, step)]
    return task.attempts


RETRY = HEADER + """
import os
from mflow import retry

class RetryFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        marker = os.path.join(os.environ["MARKERS"], "try")
        tries = len(os.listdir(os.environ["MARKERS"]))
        open(marker + str(tries), "w").close()
        self.seen_retry_count = current.retry_count
        if tries < 2:
            raise RuntimeError("flaky %d" % tries)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_retry_until_success_exits_0_and_keeps_every_attempt(runner):
    markers = runner.dir / "markers"
    markers.mkdir()
    result = runner.run(runner.write(RETRY), env={"MARKERS": str(markers)})
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    assert "(attempt 0) failed: RuntimeError: flaky 0; retrying at once" in result.stderr
    assert "(attempt 1) failed: RuntimeError: flaky 1; retrying at once" in result.stderr
    assert runner.only(run, "start")["seen_retry_count"] == 2  # readers see the successful attempt
    tries = attempts(runner, run, "start")
    assert [(a.attempt, a.status) for a in tries] == [(0, "failed"), (1, "failed"), (2, "successful")]
    assert tries[0].end.exception["type"] == "RuntimeError" and "flaky 0" in tries[0].end.exception["traceback"]
    store = runner.store()
    task = Pathspec.parse(run + "/start/1")
    assert b"flaky 1" in store.load_log(task, 1, "stderr")  # every attempt's logs stay readable
    flow, run_id = run.split("/")
    end = meta_of(runner).run(flow, run_id).end
    assert end.status == "successful" and end.first_failure["attempt"] == 0


def test_retries_run_out_and_the_run_fails(runner):
    markers = runner.dir / "markers"
    markers.mkdir()
    result = runner.run(runner.write(RETRY.replace("times=2", "times=1")), env={"MARKERS": str(markers)})
    assert result.returncode == 1
    assert "(attempt 1) failed: RuntimeError: flaky 1." in result.stderr


def test_retry_honours_the_delay_and_backoff(runner):
    markers = runner.dir / "markers"
    markers.mkdir()
    source = RETRY.replace("minutes_between_retries=0", "minutes_between_retries=0.01, backoff=2")
    started = time.time()
    result = runner.run(runner.write(source), env={"MARKERS": str(markers)})
    assert result.returncode == 0, result.stderr
    # 0.6 s before the first retry, 1.2 s before the second.
    assert time.time() - started >= 1.8
    assert "retrying in 1 s" in result.stderr


def test_a_retry_without_a_delay_starts_at_once_locally_as_in_metaflow(runner):
    markers = runner.dir / "markers"
    markers.mkdir()
    source = RETRY.replace("@retry(times=2, minutes_between_retries=0)", "@retry(times=2)")
    result = runner.run(runner.write(source), env={"MARKERS": str(markers)})
    assert result.returncode == 0, result.stderr
    assert "(attempt 0) failed: RuntimeError: flaky 0; retrying at once" in result.stderr
    assert "(attempt 1) failed: RuntimeError: flaky 1; retrying at once" in result.stderr
    # So does --with retry, which gives no delay either.
    for marker in markers.iterdir():
        marker.unlink()
    bare = RETRY.replace("    @retry(times=2, minutes_between_retries=0)\n", "")
    result = runner.run(runner.write(bare), "--with", "retry:times=2", env={"MARKERS": str(markers)})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("retrying at once") == 2


DELAY_FLOW = """
from mflow import FlowSpec, retry, step

class DelayFlow(FlowSpec):
    @retry
    @step
    def start(self):
        self.next(self.middle)

    @retry(minutes_between_retries=1, backoff=3, jitter=0.5)
    @step
    def middle(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_retry_delays_given_and_not_given(tmp_path):
    from mflow.cli.run import load_flow
    from mflow.decospec import retry_delay
    from mflow.task.decorators import parse_with, task_decorators

    path = tmp_path / "delay_flow.py"
    path.write_text(DELAY_FLOW)
    graph, flow_class = load_flow(str(path), None)
    start = task_decorators(flow_class, graph, "start")["retry"]
    middle = task_decorators(flow_class, graph, "middle")["retry"]
    assert start["minutes_between_retries"] is None and middle["minutes_between_retries"] == 1
    # Not given: at once locally, Metaflow's 2 minutes as a remote job.
    assert retry_delay(start, 1) == 0 and retry_delay(start, 3, 0.9) == 0
    assert retry_delay(start, 1, remote=True) == 120
    # Given: honoured locally and remotely, with backoff and jitter.
    assert retry_delay(middle, 1) == 60 and retry_delay(middle, 2) == 180 and retry_delay(middle, 2, 0.5) == 225
    assert retry_delay(middle, 1, remote=True) == 60
    # --with retry: the same rule.
    bare = task_decorators(flow_class, graph, "end", parse_with(["retry:times=1"]))
    assert bare["retry"]["minutes_between_retries"] is None
    given = task_decorators(flow_class, graph, "end", parse_with(["retry:minutes_between_retries=0.5"]))
    assert retry_delay(given["retry"], 1) == 30


def test_with_retry_applies_to_steps_without_it(runner):
    markers = runner.dir / "markers"
    markers.mkdir()
    source = RETRY.replace("    @retry(times=2, minutes_between_retries=0)\n", "")
    result = runner.run(runner.write(source), "--with", "retry:times=2,minutes_between_retries=0",
                        env={"MARKERS": str(markers)})
    assert result.returncode == 0, result.stderr
    result = runner.run(runner.write(source), "--with", "retry:times=-1")
    assert result.returncode == 2
    assert "Error: --with retry:times=-1: times must be a whole number of 0 or more, not -1. Fix the argument." in result.stderr
    result = runner.run(runner.write(source), "--with", "frobnicate")
    assert result.returncode == 2 and "--with frobnicate names no decorator mflow knows" in result.stderr


CATCH = HEADER + """
import ctypes
from mflow import catch, retry

class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.before = "kept"
        self.next(self.risky, self.crashy)

    @catch(var="failure")
    @retry(times=1, minutes_between_retries=0)
    @step
    def risky(self):
        self.partial = "lost"
        raise ValueError("expected trouble")
        self.next(self.join)

    @catch(var="crash", print_exception=False)
    @step
    def crashy(self):
        ctypes.string_at(0)  # segfaults the process
        self.next(self.join)

    @step
    def join(self, inputs):
        self.failure = inputs.risky.failure
        self.crash = inputs.crashy.crash
        self.before = inputs.risky.before
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_catch_stores_the_failure_and_the_flow_goes_on(runner):
    result = runner.run(runner.write(CATCH))
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    join = runner.only(run, "join")
    assert join["before"] == "kept"
    failure, crash = join["failure"], join["crash"]
    assert (failure.type, failure.message) == ("ValueError", "expected trouble")
    assert "raise ValueError" in failure.traceback
    assert crash.type == "TaskKilled" and crash.message == "killed by signal 11 (SIGSEGV)"
    risky = runner.only(run, "risky")
    assert "partial" not in risky  # the failed attempt's artifacts are not what readers see
    tries = attempts(runner, run, "risky")
    assert [(a.attempt, a.status) for a in tries] == [(0, "failed"), (1, "failed"), (2, "successful")]
    assert tries[2].start.fallback is True
    crashed = attempts(runner, run, "crashy")
    assert crashed[0].end.reason == "killed by signal 11 (SIGSEGV)"
    assert "@catch caught the failure of step risky: ValueError: expected trouble" in result.stderr


TIMEOUT = HEADER + """
import signal
import time
from mflow import catch, timeout

class TimeoutFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.polite, self.stubborn)

    @catch(var="late")
    @timeout(seconds=1)
    @step
    def polite(self):
        time.sleep(30)
        self.next(self.join)

    @catch(var="late")
    @timeout(seconds=1)
    @step
    def stubborn(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # never sees the timeout
        time.sleep(60)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.polite_late = inputs.polite.late
        self.stubborn_late = inputs.stubborn.late
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_timeout_raises_in_the_step_and_kills_what_ignores_it(runner):
    started = time.time()
    result = runner.run(runner.write(TIMEOUT), env={"MFLOW_TIMEOUT_GRACE": "1"})
    assert result.returncode == 0, result.stderr
    assert time.time() - started < 25
    join = runner.only(result.stdout.strip(), "join")
    assert join["polite_late"].type == "mflow.flow.exceptions.TimeoutException"
    assert join["polite_late"].message == "step polite ran past its timeout of 1 s"
    assert (join["stubborn_late"].type, join["stubborn_late"].message) == ("TimeoutKilled", "killed after timeout of 1 s")


def test_environment_and_resources(runner):
    path = runner.write(
        HEADER
        + """
        import os
        from mflow import environment, resources

        class EnvFlow(FlowSpec):
            @resources(cpu=2, memory=2048)
            @environment(vars={"GREETING": "hello", "COUNT": 3})
            @step
            def start(self):
                self.greeting = os.environ["GREETING"]
                self.count = os.environ["COUNT"]
                self.next(self.end)

            @step
            def end(self):
                self.leaked = os.environ.get("GREETING")
        """
    )
    run = runner.ok(path)
    assert runner.only(run, "start") | {} == {"greeting": "hello", "count": "3"}
    assert runner.only(run, "end")["leaked"] is None  # each task its own process
    (start,) = attempts(runner, run, "start")
    assert start.start.resources == {"cpu": 2, "memory": 2048, "gpu": None, "disk": None, "shared_memory": None}


def test_mflow_task_fallback_and_exit_codes(runner):
    path = runner.write(CATCH.replace("ctypes.string_at(0)  # segfaults the process", "pass"))
    run = runner.ok(path)
    run_id = run.split("/")[1]
    task = subprocess.run(
        [os.path.join(os.path.dirname(mflow()), "mflow-task"), str(path), "risky", "--run-id", run_id,
         "--task-id", "40", "--input", "start/1"],
        capture_output=True, text=True, env=runner.env, cwd=str(runner.dir), timeout=60,
    )
    assert task.returncode == 10 and json.loads(task.stdout)["exception"]["type"] == "ValueError"
    fallback = subprocess.run(
        [os.path.join(os.path.dirname(mflow()), "mflow-task"), str(path), "risky", "--run-id", run_id,
         "--task-id", "40", "--input", "start/1", "--attempt", "1", "--fallback"],
        capture_output=True, text=True, env=runner.env, cwd=str(runner.dir), timeout=60,
    )
    assert fallback.returncode == 0, fallback.stderr
    loader = runner.store().artifacts(Pathspec.parse("%s/risky/40" % run))
    assert loader["failure"].message == "expected trouble"
