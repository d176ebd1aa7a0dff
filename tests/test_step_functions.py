"""`mflow step-functions`: the state machine it writes, and runs of it on real parts: moto's
Step Functions interpreter executing it, moto's AWS Batch running every task as a container
of a Docker daemon of the test run's own, the tasks reading and writing the SeaweedFS store."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from test_run import mflow

EXECUTION_TIMEOUT = 300.0

HELLO = """
from mflow import FlowSpec, step


class HelloFlow(FlowSpec):
    @step
    def start(self):
        self.greeting = "hi"
        self.next(self.hello)

    @step
    def hello(self):
        self.message = self.greeting + " from " + os.environ.get("MANAGED_BY_AWS", "?")
        print(self.message)
        self.next(self.end)

    @step
    def end(self):
        self.done = True


if __name__ == "__main__":
    HelloFlow()
"""

SHAPES = """
from mflow import FlowSpec, step, Parameter, JSONType, retry, resources, timeout, schedule


@schedule(cron="30 6 * * 1-5")
class ShapeFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    count = Parameter("count", type=int, default=3)
    label = Parameter("label", default="x")
    flag = Parameter("flag", type=bool, default=False)
    config = Parameter("config", type=JSONType, default={"k": 1})

    @step
    def start(self):
        self.items = list(range(self.count))
        self.seen = [self.alpha, self.count, self.label, self.flag, self.config]
        self.next(self.a, self.b)

    @resources(cpu=2, memory=2048)
    @step
    def a(self):
        self.x = 1
        self.next(self.mid)

    @timeout(minutes=5)
    @step
    def b(self):
        self.x = 2
        self.next(self.mid)

    @step
    def mid(self, inputs):
        self.xs = sorted(i.x for i in inputs)
        self.merge_artifacts(inputs, include=["items", "seen"])
        self.next(self.outer, foreach="items")

    @step
    def outer(self):
        self.i = self.input
        self.letters = ["p", "q"]
        self.next(self.inner, foreach="letters")

    @retry(times=2, minutes_between_retries=0)
    @step
    def inner(self):
        self.pair = "%d%s" % (self.i, self.input)
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.pairs = [i.pair for i in inputs]
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.pairs = [p for i in inputs for p in i.pairs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""

FAN = """
from mflow import FlowSpec, step


class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(100))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""

FAILING = """
from mflow import FlowSpec, step, retry


class FailFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.boom)

    @retry(times=1, minutes_between_retries=0)
    @step
    def boom(self):
        raise ValueError("no good")
        self.next(self.end)

    @step
    def end(self):
        pass
"""

CATCHING = """
from mflow import FlowSpec, step, catch, retry


class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.risky)

    @catch(var="problem")
    @retry(times=1, minutes_between_retries=0)
    @step
    def risky(self):
        raise RuntimeError("bad luck")
        self.next(self.end)

    @step
    def end(self):
        self.seen = str(self.problem)
"""

SWITCH = """
from mflow import FlowSpec, step


class SwitchFlow(FlowSpec):
    @step
    def start(self):
        self.mode = "a"
        self.next({"a": self.a, "b": self.b}, condition="mode")

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def write(folder, source, name="flow.py"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("import os\n" + textwrap.dedent(source).lstrip())
    return path


def sfn(env, *args, timeout=120, cwd=None):
    return subprocess.run([mflow(), "step-functions", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Deployed:
    """A flow file deployed to the emulator, with its own store."""

    def __init__(self, server, s3_server, folder, source, *create_args):
        self.server = server
        self.store = s3_server.url()
        self.env = dict(os.environ, **server.env, MFLOW_STORE=self.store, MFLOW_USER="tester")
        self.path = write(folder, source)
        self.arn = ok(sfn(self.env, "create", self.path, "--max-workers", 8, *create_args))

    def trigger(self, *args):
        return ok(sfn(self.env, "trigger", self.path, *args))

    def wait(self, pathspec):
        """The execution of run `pathspec` once it has ended (describe_execution's answer)."""
        client = self.server.client("stepfunctions")
        name = pathspec.split("/")[1][len("sfn-"):]
        arn = self.arn.replace(":stateMachine:", ":execution:") + ":" + name
        deadline = time.monotonic() + EXECUTION_TIMEOUT
        while time.monotonic() < deadline:
            execution = client.describe_execution(executionArn=arn)
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.5)
        pytest.fail("execution %s did not end within %.0f s" % (arn, EXECUTION_TIMEOUT))

    def client_run(self, pathspec):
        from mflow import Run
        from mflow.store import open_store

        return Run(pathspec, store=open_store(self.store, environ=self.env), namespace=None)

    def mflow(self, *args):
        return subprocess.run([mflow(), *map(str, args)], capture_output=True, text=True, env=self.env, timeout=60)


# --- the state machine, without running it -------------------------------------------------


def only_json(env, path, *args):
    return json.loads(ok(sfn(env, "create", path, "--only-json", *args)))


def test_the_state_machine_of_branches_nested_foreach_retry_timeout_and_resources(tmp_path, s3_server):
    env = dict(os.environ, **s3_server.env, MFLOW_STORE=s3_server.url(), MFLOW_BATCH_QUEUE="q",
               MFLOW_BATCH_IMAGE="example.org/mflow:1", MFLOW_SFN_DYNAMO_DB_TABLE="splits", MFLOW_USER="tester")
    machine = only_json(env, write(tmp_path, SHAPES), "--max-workers", 7, "--workflow-timeout", 3600)
    states = machine["States"]
    assert machine["StartAt"] == "mflow: run" and machine["TimeoutSeconds"] == 3600
    assert states["mflow: run"]["Next"] == "start"
    start = states["start"]
    assert start["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    command = start["Parameters"]["ContainerOverrides"]["Command.$"]
    assert command.startswith("States.Array('mflow-task', '--package', '--flow', 'ShapeFlow'")
    assert "'--run-id', $.run_id, '--task-id', $.task_id" in command and "'--params', $.params" in command
    assert "'--init-run', 'step-functions-ShapeFlow-" in command
    assert [c["Next"] for c in start["Catch"]] == ["mflow: failed start"]
    # Static branches: a Parallel state whose branches each hold one step; then the join.
    assert start["Next"] == "mid: branches"
    parallel = states["mid: branches"]
    assert parallel["Type"] == "Parallel" and parallel["Next"] == "mid"
    a, b = (branch["States"][name] for branch, name in zip(parallel["Branches"], "ab"))
    assert {"Type": "VCPU", "Value": "2"} in a["Parameters"]["ContainerOverrides"]["ResourceRequirements"]
    assert {"Type": "MEMORY", "Value": "2048"} in a["Parameters"]["ContainerOverrides"]["ResourceRequirements"]
    assert b["Parameters"]["Timeout"] == {"AttemptDurationSeconds": 300}
    assert "Catch" not in a  # a failure inside the branches is caught by the Parallel state
    # The foreach: its task puts the split indices in DynamoDB, a getItem state reads them.
    mid = states["mid"]
    assert mid["Parameters"]["ContainerOverrides"]["Command.$"].startswith(
        "States.Array('python3', '-m', 'mflow.cli.stepfunctions', '--table', 'splits', '--key', "
        "States.Format('ShapeFlow/{}/mid/{}', $.run_id, $.task_id), '--', 'mflow-task'")
    assert mid["Next"] == "mid: splits"
    read = states["mid: splits"]
    assert read["Resource"] == "arn:aws:states:::dynamodb:getItem"
    assert read["Parameters"]["Key"] == {"pathspec": {"S.$": "States.Format('ShapeFlow/{}/mid/{}', $.run_id, $.task_id)"}}
    outer_map = states[read["Next"]]
    assert outer_map["Type"] == "Map" and outer_map["MaxConcurrency"] == 7 and outer_map["ItemsPath"] == "$.splits.indices"
    assert outer_map["ItemSelector"]["task_id.$"] == "States.Format('{}-{}', $.task_id, $$.Map.Item.Index)"
    assert outer_map["Next"] == "outer_join"
    body = outer_map["ItemProcessor"]["States"]
    outer = body["outer"]["Parameters"]["ContainerOverrides"]["Command.$"]
    assert "'--input', States.Format('mid/{}', $.parent_id), '--split-index', $.split_index" in outer
    inner_map = body[body["outer: splits"]["Next"]]
    inner = inner_map["ItemProcessor"]["States"]["inner"]
    assert inner["Retry"] == [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 2,
                               "BackoffRate": 1.0}]
    assert "'--attempt', States.Format('{}', $$.State.RetryCount)" in inner["Parameters"]["ContainerOverrides"]["Command.$"]
    assert inner_map["Next"] == "inner_join" and body["inner_join"]["End"]
    join = body["inner_join"]["Parameters"]["ContainerOverrides"]["Command.$"]
    assert "'--input', States.Format('inner/{}-*', $.task_id)" in join  # every split of this outer split
    assert "'--input', States.Format('inner_join/{}-*', $.task_id)" in states["outer_join"]["Parameters"]["ContainerOverrides"]["Command.$"]
    assert "'--end-run'" in states["end"]["Parameters"]["ContainerOverrides"]["Command.$"] and states["end"]["End"]
    # The failure path: record the run failed, then fail.
    failed = states["mflow: record failure"]
    assert "'run-end', States.Format('ShapeFlow/{}', $.run_id), '--status', 'failed'" in \
        failed["Parameters"]["ContainerOverrides"]["Command.$"]
    assert failed["Next"] == "mflow: failed" and states["mflow: failed"]["Type"] == "Fail"
    assert states["mflow: failed start"]["Next"] == "mflow: record failure"


def test_intrinsic_literals_are_escaped():
    from mflow.deploy.stepfunctions import _argument, _expression, slot

    assert _argument("it's {x} \\") == "'it\\'s \\{x\\} \\\\'"
    assert _expression("a'b/%s" % slot("run")) == "States.Format('a\\'b/{}', $.run_id)"
    assert _expression(slot("task")) == "$.task_id"


def test_a_switch_is_refused_naming_the_step(tmp_path):
    started = time.monotonic()
    result = sfn(dict(os.environ, MFLOW_STORE=str(tmp_path / "store")), "create", write(tmp_path, SWITCH))
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        "Error: flow SwitchFlow cannot run on Step Functions: step start is a switch (self.next with condition=). "
        "Deploy a flow without conditional steps, or run it with `mflow run`.\n"
    )
    assert time.monotonic() - started < 10


def test_a_local_store_and_a_foreach_without_table_are_refused(tmp_path, s3_server):
    path = write(tmp_path, FAN)
    result = sfn(dict(os.environ, MFLOW_STORE=str(tmp_path / "store")), "create", path, "--only-json")
    assert result.returncode == 6 and "cannot reach the local store" in result.stderr, result.stderr
    env = dict(os.environ, **s3_server.env, MFLOW_STORE=s3_server.url(), MFLOW_BATCH_QUEUE="q",
               MFLOW_BATCH_IMAGE="img")
    env.pop("MFLOW_SFN_DYNAMO_DB_TABLE", None)
    result = sfn(env, "create", path, "--only-json")
    assert result.returncode == 6 and result.stderr.count("\n") == 1, result.stderr
    assert "step start is a foreach" in result.stderr and "MFLOW_SFN_DYNAMO_DB_TABLE" in result.stderr


def _silent_endpoint():
    """A 127.0.0.1 port whose listen queue is full: connections to it time out, as to a host
    that does not answer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    return server, fillers


@pytest.mark.parametrize("endpoint, command", [("refused", "create"), ("silent", "create"), ("silent", "trigger")])
def test_an_unreachable_endpoint_fails_within_seconds(tmp_path, s3_server, endpoint, command):
    from s3_server import free_ports

    held = _silent_endpoint() if endpoint == "silent" else None
    port = held[0].getsockname()[1] if held else free_ports(1)[0]
    url = "http://127.0.0.1:%d" % port
    env = dict(os.environ, **s3_server.env, MFLOW_STORE=s3_server.url(), MFLOW_BATCH_QUEUE="q",
               MFLOW_BATCH_IMAGE="img", MFLOW_SFN_ENDPOINT_URL=url, MFLOW_BATCH_ENDPOINT_URL=url,
               MFLOW_BATCH_RETRIES="2", MFLOW_SFN_IAM_ROLE="arn:aws:iam::1:role/r")
    started = time.monotonic()
    try:
        result = sfn(env, command, write(tmp_path, HELLO), timeout=60)
    finally:
        for sock in (held[1] + [held[0]]) if held else ():
            sock.close()
    assert time.monotonic() - started < 20
    assert result.returncode == 6, result.stderr
    assert result.stderr.startswith("Error: cannot reach %s" % url) and result.stderr.count("\n") == 1, result.stderr


def test_missing_credentials_are_one_line(tmp_path, s3_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
               AWS_DEFAULT_REGION="us-east-1")
    result = sfn(env, "trigger", write(tmp_path, HELLO))
    assert result.returncode == 6, result.stderr
    assert result.stderr == ("Error: no AWS credentials for Step Functions. Set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.\n")


def test_python_flow_py_step_functions_is_the_same_command(tmp_path, s3_server):
    env = dict(os.environ, **s3_server.env, MFLOW_STORE=s3_server.url(), MFLOW_BATCH_QUEUE="q",
               MFLOW_BATCH_IMAGE="img")
    path = write(tmp_path, HELLO)
    result = subprocess.run([sys.executable, str(path), "step-functions", "create", "--only-json"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["States"]) >= {"start", "hello", "end"}
    result = subprocess.run([sys.executable, str(path), "step-functions", "--help"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0 and "list-runs" in result.stdout, result.stderr


# --- runs on the emulator ------------------------------------------------------------------


def test_hello_runs_on_step_functions_and_reads_back_like_any_run(tmp_path, s3_server, sfn_server):
    deployed = Deployed(sfn_server, s3_server, tmp_path, HELLO)
    assert deployed.arn == "arn:aws:states:us-east-1:123456789012:stateMachine:HelloFlow"
    pathspec = deployed.trigger()
    assert pathspec.startswith("HelloFlow/sfn-")
    execution = deployed.wait(pathspec)
    assert execution["status"] == "SUCCEEDED", execution
    run = deployed.client_run(pathspec)
    assert run.successful and run.finished
    assert run["hello"].task.data.message == "hi from STARTED_BY_STEP_FUNCTIONS"  # ran as a Batch job of SFN
    assert run.data.done is True
    assert "scheduler:step-functions" in run.system_tags
    runs = deployed.mflow("runs", "HelloFlow", "--json")
    assert runs.returncode == 0, runs.stderr
    assert [json.loads(line)["status"] for line in runs.stdout.splitlines()
            if json.loads(line)["pathspec"] == pathspec] == ["successful"]
    dump = deployed.mflow("dump", pathspec + "/hello/1")
    assert dump.returncode == 0 and "hi from STARTED_BY_STEP_FUNCTIONS" in dump.stdout, dump.stderr
    listed = [json.loads(line) for line in ok(sfn(deployed.env, "list-runs", deployed.path, "--json")).splitlines()]
    assert [(row["pathspec"], row["status"]) for row in listed] == [(pathspec, "SUCCEEDED")]
    assert ok(sfn(deployed.env, "list-runs", deployed.path, "--running", "--json")) == ""
    # Deploying again updates the same state machine.
    assert ok(sfn(deployed.env, "create", deployed.path)) == deployed.arn
    result = sfn(deployed.env, "delete", deployed.path)
    assert result.returncode == 0, result.stderr
    result = sfn(deployed.env, "trigger", deployed.path)
    assert result.returncode == 4 and "no state machine HelloFlow" in result.stderr, result.stderr


def test_parameters_of_every_type_branches_and_a_nested_foreach(tmp_path, s3_server, sfn_server):
    deployed = Deployed(sfn_server, s3_server, tmp_path, SHAPES)
    rule = sfn_server.client("events").describe_rule(Name="ShapeFlow")
    assert rule["ScheduleExpression"] == "cron(30 6 ? * 2-6 *)" and rule["State"] == "ENABLED"
    targets = sfn_server.client("events").list_targets_by_rule(Rule="ShapeFlow")["Targets"]
    assert [t["Arn"] for t in targets] == [deployed.arn]
    pathspec = deployed.trigger("--alpha", "0.25", "--count", "3", "--label", "it's {x}", "--flag", "--config",
                                '{"k": [1, 2]}')
    execution = deployed.wait(pathspec)
    assert execution["status"] == "SUCCEEDED", execution
    run = deployed.client_run(pathspec)
    assert run["start"].task.data.seen == [0.25, 3, "it's {x}", True, {"k": [1, 2]}]
    assert run["mid"].task.data.xs == [1, 2]
    assert run.data.pairs == ["0p", "0q", "1p", "1q", "2p", "2q"]
    assert sorted(t.id for t in run["inner"]) == ["1-%d-%d" % (i, j) for i in range(3) for j in range(2)]
    # Without parameters, the defaults taken at deploy time.
    pathspec = deployed.trigger()
    assert deployed.wait(pathspec)["status"] == "SUCCEEDED"
    assert deployed.client_run(pathspec)["start"].task.data.seen == [0.5, 3, "x", False, {"k": 1}]


def test_bad_trigger_parameters_fail_before_anything_starts(tmp_path, s3_server, sfn_server):
    deployed = Deployed(sfn_server, s3_server, tmp_path, SHAPES, "--only-json")
    result = sfn(deployed.env, "trigger", deployed.path, "--count", "many")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "count" in result.stderr


def test_a_foreach_of_100_runs_on_step_functions(tmp_path, s3_server, sfn_server):
    deployed = Deployed(sfn_server, s3_server, tmp_path, FAN)
    pathspec = deployed.trigger()
    execution = deployed.wait(pathspec)
    assert execution["status"] == "SUCCEEDED", execution
    run = deployed.client_run(pathspec)
    assert run["join"].task.data.values == [i * i for i in range(100)]
    assert len(list(run["square"])) == 100


def test_a_failed_step_is_retried_then_the_run_is_recorded_failed(tmp_path, s3_server, sfn_server):
    deployed = Deployed(sfn_server, s3_server, tmp_path, FAILING)
    pathspec = deployed.trigger()
    execution = deployed.wait(pathspec)
    assert execution["status"] == "FAILED" and execution["error"] == "mflow.RunFailed", execution
    history = sfn_server.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    assert [e["type"] for e in history["events"]].count("TaskFailed") == 2  # boom, and its retry
    run = deployed.client_run(pathspec)
    assert run.state == "failed" and not run.successful
    boom = run["boom"].task
    assert [a.current_attempt for a in boom.attempts] == [0, 1]  # @retry: Step Functions' Retry
    assert "no good" in str(boom.exception)
    runs = deployed.mflow("runs", "FailFlow", "--json")
    assert [json.loads(line)["status"] for line in runs.stdout.splitlines()] == ["failed"], runs.stderr


def test_catch_stands_in_after_the_retries_and_the_run_goes_on(tmp_path, s3_server, sfn_server):
    deployed = Deployed(sfn_server, s3_server, tmp_path, CATCHING)
    pathspec = deployed.trigger()
    execution = deployed.wait(pathspec)
    assert execution["status"] == "SUCCEEDED", execution
    history = sfn_server.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    assert "TaskTimedOut" not in [event["type"] for event in history["events"]]
    run = deployed.client_run(pathspec)
    assert [(a.current_attempt, a.status) for a in run["risky"].task.attempts] == [
        (0, "failed"), (1, "failed"), (2, "successful")]
    assert "bad luck" in run.data.seen
