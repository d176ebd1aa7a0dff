"""`mflow argo-workflows`: the manifests it writes, validated strictly against Argo Workflows'
schema (hera's models) and Kubernetes 1.37's (kubernetes-validate), then run from the
manifests alone by tests/argo_sim.py, every container in a Docker daemon of the test run's own
(tests/docker_env.py) against a folder store and against S3; and its HTTP calls against a
stand-in Kubernetes API and Argo Server on 127.0.0.1."""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from argo_sim import ArgoSim, DockerRunner, read_manifests
from test_deploy import Local as DeployLocal
from test_deploy import write
from test_run import mflow
from test_step_functions import FAN  # FanFlow: a foreach of 100

SHAPES = """
import os
from mflow import FlowSpec, step, Parameter, JSONType, retry, resources, timeout, catch, schedule


@schedule(cron="30 6 * * 1-5", timezone="Europe/Berlin")
class ShapeFlow(FlowSpec):
    \"\"\"Every shape Argo has to carry.\"\"\"

    alpha = Parameter("alpha", default=0.5, help="a float")
    count = Parameter("count", type=int, default=2)
    label = Parameter("label", default="x")
    flag = Parameter("flag", type=bool, default=False)
    config = Parameter("config", type=JSONType, default={"k": 1})
    dashed_name = Parameter("dashed-name", default="d")

    @step
    def start(self):
        self.items = list(range(self.count))
        self.seen = [self.alpha, self.count, self.label, self.flag, self.config, self.dashed_name]
        self.next(self.a, self.b)

    @resources(cpu=0.5, memory=512, disk=1024, shared_memory=64)
    @step
    def a(self):
        self.x = 1
        self.next(self.join)

    @timeout(minutes=5)
    @step
    def b(self):
        self.x = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.xs = sorted(i.x for i in inputs)
        self.merge_artifacts(inputs, include=["items", "seen"])
        self.next(self.outer, foreach="items")

    @step
    def outer(self):
        self.i = self.input
        self.letters = ["p", "q"]
        self.next(self.inner, foreach="letters")

    @catch(var="oops")
    @retry(times=2, minutes_between_retries=0)
    @step
    def inner(self):
        if os.environ.get("FLAKY") and self.i == 1 and self.input == "q" and current_attempt() == 0:
            raise RuntimeError("flaky once")
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
        from mflow import current

        self.origin = current.origin_run_id


def current_attempt():
    from mflow import current

    return current.retry_count


if __name__ == "__main__":
    ShapeFlow()
"""

FAILING = """
import os
from mflow import FlowSpec, step, retry, Parameter


class FailFlow(FlowSpec):
    count = Parameter("count", type=int, default=1)

    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        self.next(self.boom)

    @retry(times=1, minutes_between_retries=0)
    @step
    def boom(self):
        if not os.environ.get("FIXED"):
            raise ValueError("no good")
        self.fine = True
        self.next(self.end)

    @step
    def end(self):
        pass
"""

PROJECT = """
from mflow import FlowSpec, step, project, schedule


@schedule(daily=True)
@project(name="fraud")
class ProjFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProjFlow()
"""


class Local(DeployLocal):
    """A flow folder and a folder store (test_deploy's), no Argo settings of this machine's;
    `create` runs the real command line."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path)
        self.dir.mkdir()
        for name in ("MFLOW_ARGO_SERVER", "MFLOW_KUBERNETES_API", "MFLOW_ARGO_TOKEN", "MFLOW_ARGO_IMAGE",
                     "MFLOW_KUBERNETES_SECRETS", "MFLOW_KUBERNETES_NAMESPACE"):
            self.env.pop(name, None)

    def write(self, source, name="flow.py"):
        return write(self.dir, source, name)

    def create(self, path, *args, image="mflow-test:local", env=None):
        result = self.mflow("argo-workflows", "create", path, "--image", image, "--only-json", *args, env=env)
        assert result.returncode == 0, result.stderr
        return read_manifests(result.stdout)


@pytest.fixture
def local(tmp_path):
    return Local(tmp_path)


# The test image (tests/docker_env.py) holds no time zone database, which @schedule(timezone=)
# is checked against when the flow loads; a real image has one (Debian's tzdata, or the tzdata
# package): the pods get this machine's.
ZONEINFO = {"/usr/share/zoneinfo": "/usr/share/zoneinfo"}


def docker_runner(daemon, local=None, secrets=None):
    mounts = dict(ZONEINFO)
    if local is not None:
        mounts[str(local.store_dir)] = str(local.store_dir)
    return DockerRunner(daemon, mounts=mounts, secrets=secrets)


# --- the manifests, against the schemas -------------------------------------------------------


def validate_argo(manifest):
    """Strict: hera's pydantic models of Argo Workflows 4.0.5, no field they do not know, and
    nothing changed on the way through (a coerced or dropped value shows as a difference)."""
    from hera.workflows.models import CronWorkflow, WorkflowTemplate

    model = {"WorkflowTemplate": WorkflowTemplate, "CronWorkflow": CronWorkflow}[manifest["kind"]]
    parsed = model.model_validate(manifest, extra="forbid")
    assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == manifest


def pods_of(template):
    """The pod the controller makes of each container template (its container named main),
    with the pod-level fields the template sets."""
    spec = template["spec"]
    for entry in spec["templates"]:
        if "container" not in entry:
            continue
        pod_spec = {"containers": [dict(entry["container"], name="main")], "restartPolicy": "Never"}
        if "volumes" in entry:
            pod_spec["volumes"] = entry["volumes"]
        if "activeDeadlineSeconds" in entry:
            pod_spec["activeDeadlineSeconds"] = entry["activeDeadlineSeconds"]
        if "serviceAccountName" in spec:
            pod_spec["serviceAccountName"] = spec["serviceAccountName"]
        yield entry["name"], {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p-" + entry["name"]},
                              "spec": pod_spec}


def validate_pods(template):
    import kubernetes_validate

    names = []
    for name, pod in pods_of(template):
        kubernetes_validate.validate(pod, "1.37.0", strict=True)
        names.append(name)
    return names


def by_name(template):
    return {t["name"]: t for t in template["spec"]["templates"]}


def test_the_manifests_are_valid_argo_and_kubernetes(local):
    template, cron = local.create(local.write(SHAPES), "--secret", "mflow-s3", "--service-account", "argo-wf",
                                  "--workflow-timeout", "3600", "--workflow-priority", "5", "--tag", "nightly")
    validate_argo(template)
    validate_argo(cron)
    assert sorted(validate_pods(template)) == sorted([
        "step-start", "step-a", "step-b", "step-join", "step-outer", "step-inner", "fallback-inner",
        "step-inner-join", "step-outer-join", "step-end", "run-failed"])
    import kubernetes_validate

    broken = next(pod for _, pod in pods_of(template))
    broken["spec"]["containers"][0]["bogus"] = 1  # the validation is strict
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)

    spec, templates = template["spec"], by_name(template)
    assert template["metadata"]["name"] == "shapeflow" and spec["entrypoint"] == "main"
    assert spec["serviceAccountName"] == "argo-wf" and spec["activeDeadlineSeconds"] == 3600
    assert spec["priority"] == 5 and spec["parallelism"] == 100 and spec["onExit"] == "exit-handler"
    # Every parameter of every type, its default as the text one would type, its help kept.
    assert spec["arguments"]["parameters"] == [
        {"name": "alpha", "value": "0.5", "description": "a float"}, {"name": "count", "value": "2"},
        {"name": "label", "value": "x"}, {"name": "flag", "value": "false"},
        {"name": "config", "value": '{"k": 1}'}, {"name": "dashed-name", "value": "d"}]
    start = templates["step-start"]["container"]
    assert start["command"] == ["mflow-task"] and start["envFrom"] == [{"secretRef": {"name": "mflow-s3"}}]
    params = start["args"][start["args"].index("--params") + 1]
    assert params.startswith("{{=toJson({'alpha': workflow.parameters['alpha'], ")
    assert "'dashed-name': workflow.parameters['dashed-name']})}}" in params
    # Branches in parallel, the join after both; `join` is an expression word, so a prefix.
    main = {t["name"]: t for t in templates["main"]["dag"]["tasks"]}
    assert main["a"]["depends"] == main["b"]["depends"] == "start"
    assert main["step-join"]["depends"] == "a && b"
    fan = main["step-join-foreach"]
    assert fan["withParam"] == "{{tasks.step-join.outputs.parameters.splits}}"
    assert fan["template"] == "foreach-join" and fan["depends"] == "step-join"
    assert fan["arguments"]["parameters"] == [{"name": "parent-id", "value": "1"},
                                              {"name": "split-index", "value": "{{item}}"}]
    assert main["outer-join"]["depends"] == "step-join-foreach"
    assert templates["step-join"]["outputs"] == {"parameters": [{"name": "splits",
                                                                 "valueFrom": {"path": "/tmp/mflow-splits.json"}}]}
    # The nested foreach: a DAG template per body, taking the split index and the parent's id.
    body = {t["name"]: t for t in templates["foreach-join"]["dag"]["tasks"]}
    assert templates["foreach-join"]["inputs"] == {"parameters": [{"name": "parent-id"}, {"name": "split-index"}]}
    me = "{{inputs.parameters.parent-id}}-{{inputs.parameters.split-index}}"
    assert body["outer-foreach"]["arguments"]["parameters"] == [{"name": "parent-id", "value": me},
                                                                {"name": "split-index", "value": "{{item}}"}]
    inner_body = {t["name"]: t for t in templates["foreach-outer"]["dag"]["tasks"]}
    assert body["inner-join"]["depends"] == "outer-foreach"
    assert sorted(inner_body) == ["inner", "inner-fallback"]  # the body of the inner foreach
    assert inner_body["inner"]["continueOn"] == {"failed": True, "error": True}
    assert inner_body["inner-fallback"]["depends"] == "inner.Failed || inner.Errored"
    inner = templates["step-inner"]
    assert inner["retryStrategy"] == {"limit": 2, "retryPolicy": "Always", "expression": "lastRetry.exitCode not in ['2', '3', '11']"}
    assert inner["container"]["args"][-2:] == ["--attempt", "{{retries}}"]
    assert templates["fallback-inner"]["container"]["args"][-3:] == ["--attempt", "auto", "--fallback"]
    assert templates["step-inner-join"]["container"]["args"][-2:] == ["--input", "inner/{{inputs.parameters.task-id}}-*"]
    assert templates["step-b"]["activeDeadlineSeconds"] == 310
    assert templates["step-a"]["container"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1024Mi"}}
    assert templates["step-a"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    failed = templates["run-failed"]["container"]
    assert failed["command"] == ["mflow-meta"] and failed["args"][:4] == ["run-end", "ShapeFlow/argo-{{workflow.name}}",
                                                                          "--status", "failed"]
    assert templates["exit-handler"]["dag"]["tasks"][0]["when"] == "{{workflow.status}} != Succeeded"
    # The CronWorkflow runs the template on the schedule, in its timezone.
    assert cron["kind"] == "CronWorkflow" and cron["metadata"]["name"] == "shapeflow"
    assert cron["spec"]["schedules"] == ["30 6 * * 1-5"] and cron["spec"]["timezone"] == "Europe/Berlin"
    assert cron["spec"]["workflowSpec"] == {"workflowTemplateRef": {"name": "shapeflow"}}


def test_a_foreach_of_100_and_gpus_validate(local):
    source = FAN.replace("    @step\n    def square", "    @resources(gpu=1, memory=1024)\n    @step\n    def square")
    source = "from mflow import resources\n" + source
    (template,) = local.create(local.write(source))
    validate_argo(template)
    validate_pods(template)
    square = by_name(template)["step-square"]["container"]["resources"]
    assert square == {"requests": {"cpu": "1", "memory": "1024Mi"}, "limits": {"nvidia.com/gpu": "1"}}


def test_project_names_the_template_kubernetes_safe(local):
    path = local.write(PROJECT)
    template, cron = local.create(path, "--production")
    validate_argo(template)
    validate_argo(cron)
    assert template["metadata"]["name"] == "fraud-prod-projflow" == cron["metadata"]["name"]
    assert template["metadata"]["annotations"]["mflow/deployed-name"] == "fraud.prod.ProjFlow"
    assert cron["spec"]["schedules"] == ["0 0 * * *"] and "timezone" not in cron["spec"]
    (branch, _) = local.create(path, "--branch", "My_Exp.1")
    assert branch["metadata"]["name"] == "fraud-test-my-exp-1-projflow"
    (user, _) = local.create(path)
    assert user["metadata"]["name"] == "fraud-user-tester-projflow"
    # python flow.py argo-workflows create does the same.
    result = subprocess.run([sys.executable, str(path), "argo-workflows", "create", "--production", "--only-json",
                             "--image", "x:1"], capture_output=True, text=True, cwd=str(local.dir),
                            env=dict(local.env, PATH=os.path.dirname(mflow()) + os.pathsep + os.environ["PATH"]))
    assert result.returncode == 0, result.stderr
    assert read_manifests(result.stdout)[0]["metadata"] == template["metadata"]


# --- the commands run, from the manifests alone ---------------------------------------------


def test_a_run_in_containers_reads_back_as_any_run(local, docker_daemon, mflow_image):
    template, cron = local.create(local.write(SHAPES), image=mflow_image)
    sim = ArgoSim(template, docker_runner(docker_daemon, local))
    given = {"alpha": "0.25", "count": "2", "label": 'say "hi" {{not a tag}}', "flag": "true",
             "config": '{"k": [1, 2]}', "dashed-name": "e"}
    workflow = sim.submit(given, name="shapeflow-abcde")
    assert workflow.phase == "Succeeded", [(p.template, p.returncode, p.stderr[-800:]) for p in workflow.pods
                                           if p.returncode]
    steps = [(argv[7], argv[argv.index("--task-id") + 1]) for argv in workflow.commands()]
    assert steps[:4] == [("start", "1"), ("a", "1"), ("b", "1"), ("join", "1")] or \
        steps[:4] == [("start", "1"), ("b", "1"), ("a", "1"), ("join", "1")]
    assert sorted(steps[4:6]) == [("outer", "1-0"), ("outer", "1-1")]
    assert sorted(s for s in steps if s[0] == "inner") == [("inner", "1-0-0"), ("inner", "1-0-1"), ("inner", "1-1-0"),
                                                           ("inner", "1-1-1")]
    assert steps[-2:] == [("outer_join", "1"), ("end", "1")]
    assert not workflow.commands("run-failed")  # the exit handler had nothing to record
    run = _run(local, "ShapeFlow", "argo-shapeflow-abcde")
    assert run.successful
    assert run["start"].task.data.seen == [0.25, 2, 'say "hi" {{not a tag}}', True, {"k": [1, 2]}, "e"]
    assert run.data.pairs == ["0p", "0q", "1p", "1q"]
    assert run["inner"]["1-1-0"].data.pair == "1p"
    assert {"scheduler:argo-workflows", "production:ShapeFlow"} <= set(run.system_tags)
    listed = local.mflow("runs", "ShapeFlow", "--all-namespaces", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["run_id"], r["status"]) for r in rows] == [("argo-shapeflow-abcde", "successful")]
    # The CronWorkflow starts the template with the deploy-time defaults.
    scheduled = sim.fire(cron)
    assert scheduled.phase == "Succeeded"
    assert _run(local, "ShapeFlow", "argo-shapeflow-1700000000")["start"].task.data.seen == [
        0.5, 2, "x", False, {"k": 1}, "d"]


def _run(local, flow, run_id):
    from mflow.client import Run
    from mflow.store import open_store

    return Run("%s/%s" % (flow, run_id), store=open_store(str(local.store_dir), environ={"MFLOW_USER": "tester"}),
               namespace=None)


def test_retries_and_the_catch_stand_in(local, docker_daemon, mflow_image):
    # What a step reads from its environment comes from a Secret, as on a cluster.
    template, _ = local.create(local.write(SHAPES), "--secret", "test-env", image=mflow_image)
    sim = ArgoSim(template, docker_runner(docker_daemon, local, secrets={"test-env": {"FLAKY": "1"}}))
    workflow = sim.submit(name="shapeflow-flaky")
    assert workflow.phase == "Succeeded"
    flaky = [p for p in workflow.pods if p.template == "step-inner" and "1-1-1" in p.argv]
    assert [(p.retry, p.argv[-1], p.returncode) for p in flaky] == [(0, "0", 10), (1, "1", 0)]
    assert _run(local, "ShapeFlow", "argo-shapeflow-flaky")["inner"]["1-1-1"].data.pair == "1q"
    # A step that fails every try: its stand-in runs after the last, and the run goes on.
    catching = local.write(SHAPES.replace('os.environ.get("FLAKY") and', 'os.environ.get("FLAKY") == "always" or')
                           .replace("[i.pair for i in inputs]", '[getattr(i, "pair", "caught") for i in inputs]'),
                           "catching.py")
    template, _ = local.create(catching, "--secret", "test-env", image=mflow_image)
    runner = docker_runner(docker_daemon, local, secrets={"test-env": {"FLAKY": "always"}})
    workflow = ArgoSim(template, runner).submit(name="shapeflow-caught")
    assert workflow.phase == "Succeeded", [(p.template, p.stderr[-500:]) for p in workflow.pods if p.returncode]
    assert len(workflow.commands("step-inner")) == 4 * 3 and len(workflow.commands("fallback-inner")) == 4
    run = _run(local, "ShapeFlow", "argo-shapeflow-caught")
    assert run.successful and run.data.pairs == ["caught"] * 4
    assert "flaky once" in str(run["inner"]["1-0-0"].data.oops)


def test_a_foreach_of_100(local, docker_daemon, mflow_image):
    (template,) = local.create(local.write(FAN), image=mflow_image)
    workflow = ArgoSim(template, docker_runner(docker_daemon, local), max_pods=4).submit(name="fanflow-100")
    assert workflow.phase == "Succeeded"
    squares = workflow.commands("step-square")
    assert len(squares) == 100
    assert sorted(a[a.index("--task-id") + 1] for a in squares) == sorted("1-%d" % i for i in range(100))
    assert _run(local, "FanFlow", "argo-fanflow-100").data.values == [i * i for i in range(100)]


def test_a_failed_run_is_recorded_and_resumes_locally(local, docker_daemon, mflow_image):
    path = local.write(FAILING)
    (template,) = local.create(path, image=mflow_image)
    workflow = ArgoSim(template, docker_runner(docker_daemon, local)).submit(name="failflow-x1")
    assert workflow.phase == "Failed"
    boom = [p for p in workflow.pods if p.template == "step-boom"]
    assert [(p.argv[-1], p.returncode) for p in boom] == [("0", 10), ("1", 10)]  # @retry(times=1): two tries
    assert not workflow.commands("step-end")
    (recorded,) = workflow.commands("run-failed")
    assert recorded[:2] == ["mflow-meta", "run-end"] and "Argo workflow failflow-x1 ended Failed" in recorded
    run = _run(local, "FailFlow", "argo-failflow-x1")
    assert not run.successful and run.state == "failed"
    shown = local.mflow("runs", "FailFlow", "--all-namespaces", "--json")
    assert json.loads(shown.stdout.splitlines()[0])["status"] == "failed"
    resumed = local.mflow("resume", path, "--origin-run-id", "argo-failflow-x1", env={"FIXED": "1"})
    assert resumed.returncode == 0, resumed.stderr
    again = _run(local, "FailFlow", resumed.stdout.strip().split("/")[1])
    assert again.successful and again["start"].task.origin_pathspec == "FailFlow/argo-failflow-x1/start/1"


def test_a_task_that_failed_for_good_is_not_retried(local, docker_daemon, mflow_image):
    (template,) = local.create(local.write(FAILING), image=mflow_image)
    workflow = ArgoSim(template, docker_runner(docker_daemon, local)).submit({"count": "three"}, name="failflow-bad")
    assert workflow.phase == "Failed"
    (start,) = [p for p in workflow.pods if p.template == "step-start"]  # @retry(times=2), yet one try
    assert start.returncode in (2, 11) and "parameter 'count' expects" in start.stderr
    (record,) = [p for p in workflow.pods if p.template == "run-failed"]
    assert record.returncode == 4  # no run to record: the exit handler lets it through


def test_a_run_on_s3_with_credentials_from_a_secret(local, s3_server, docker_daemon, mflow_image):
    from mflow.client import Run
    from mflow.store import open_store

    url = "s3://%s/argo-%d" % (s3_server.bucket, os.getpid())
    settings = {k: v for k, v in s3_server.env.items() if not k.startswith("AWS_ACCESS") and k != "AWS_SECRET_ACCESS_KEY"}
    credentials = {k: s3_server.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    (template,) = local.create(local.write(FAN.replace("range(100)", "range(3)")), "--store", url, "--secret",
                               "mflow-s3", image=mflow_image, env=s3_server.env)
    env = {e["name"] for e in by_name(template)["step-start"]["container"]["env"]}
    assert "MFLOW_S3_ENDPOINT_URL" in env and not env & set(credentials)  # settings passed on, never credentials
    runner = docker_runner(docker_daemon, secrets={"mflow-s3": dict(settings, **credentials)})
    workflow = ArgoSim(template, runner).submit(name="fanflow-s3")
    assert workflow.phase == "Succeeded", [(p.template, p.stderr[-800:]) for p in workflow.pods if p.returncode]
    store = open_store(url, environ=dict(s3_server.env, MFLOW_USER="tester"))
    run = Run("FanFlow/argo-fanflow-s3", store=store, namespace=None)
    assert run.successful and run.data.values == [0, 1, 4]
    # Without the secret Kubernetes would not start the pods at all.
    with pytest.raises(Exception, match="secret 'mflow-s3' does not exist"):
        ArgoSim(template, docker_runner(docker_daemon)).submit(name="fanflow-nosecret")


# --- what create refuses, in one line ----------------------------------------------------------


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


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


def test_what_argo_cannot_take_is_one_line(local):
    result = local.mflow("argo-workflows", "create", local.write(SWITCH, "switch.py"), "--image", "x:1", "--only-json")
    assert result.returncode == 3
    assert last_line(result) == ("Error: flow SwitchFlow cannot run on Argo Workflows: step start is a switch "
                                 "(self.next with condition=). Deploy a flow without conditional steps, or run it "
                                 "with `mflow run`.")
    path = local.write(FAN)
    result = local.mflow("argo-workflows", "create", path, "--only-json")
    assert result.returncode == 2 and "give --image IMAGE or set MFLOW_ARGO_IMAGE" in last_line(result)
    assert local.mflow("argo-workflows", "create", path, "--only-json", env={"MFLOW_ARGO_IMAGE": "x:1"}).returncode == 0
    result = local.mflow("argo-workflows", "create", path, "--image", "x:1", "--only-json", "--name", "Bad_Name")
    assert result.returncode == 2 and "--name 'Bad_Name' is not a Kubernetes name" in last_line(result)
    cron = local.write(PROJECT.replace("daily=True", 'cron="0 25 * * *"'), "cron.py")
    result = local.mflow("argo-workflows", "create", cron, "--image", "x:1", "--only-json")
    assert result.returncode == 1
    assert "cron '0 25 * * *': hour '25' is outside 0-23" in result.stderr
    started = time.monotonic()
    result = local.mflow("argo-workflows", "create", path, "--image", "x:1")
    assert result.returncode == 6 and time.monotonic() - started < 10
    assert last_line(result).startswith("Error: no Argo Workflows endpoint is configured. Set MFLOW_ARGO_SERVER")


# --- the cluster's HTTP APIs, spoken to a stand-in on 127.0.0.1 ----------------------------------


class StandIn(http.server.ThreadingHTTPServer):
    """Keeps objects by path as the Kubernetes API (or an Argo Server) would, enough for
    create, trigger, list-runs and delete; records every request."""

    daemon_threads = True

    def __init__(self, argo_server=False, status=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.argo_server, self.status = argo_server, status
        self.objects, self.requests, self.version = {}, [], 0
        self.url = "http://127.0.0.1:%d" % self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path, _, query = self.path.partition("?")
        server.requests.append((self.command, path, query, body, self.headers.get("Authorization")))
        if server.status:
            return self._reply(server.status, {"kind": "Status", "message": "forbidden: no you don't"})
        if server.argo_server and path.endswith("/submit"):
            name = body["resourceName"] + "-s" + str(len(server.requests))
            return self._reply(200, {"metadata": {"name": name}})
        if self.command == "GET" and query:
            items = [o for p, o in server.objects.items() if p.startswith(path + "/")]
            return self._reply(200, {"items": items})
        if self.command == "GET":
            found = server.objects.get(path)
            return self._reply(200, found) if found else self._reply(404, {"message": "not found"})
        if self.command == "DELETE":
            return self._reply(200, {}) if server.objects.pop(path, None) else self._reply(404, {"message": "nope"})
        manifest = body
        if server.argo_server:
            manifest = body.get("template") or body.get("cronWorkflow")
        server.version += 1
        manifest = dict(manifest, metadata=dict(manifest["metadata"], resourceVersion=str(server.version)))
        if "generateName" in manifest["metadata"]:
            manifest["metadata"]["name"] = manifest["metadata"]["generateName"] + "x1y2z"
            manifest["status"] = {"phase": "Running", "startedAt": "2026-12-01T00:00:00Z"}
        key = path if self.command == "PUT" else path + "/" + manifest["metadata"]["name"]
        server.objects[key] = manifest
        return self._reply(201 if self.command == "POST" else 200, manifest)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


def test_create_trigger_list_delete_through_the_kubernetes_api(local):
    server = StandIn()
    env = {"MFLOW_KUBERNETES_API": server.url, "MFLOW_ARGO_TOKEN": "Bearer t0ken", "MFLOW_KUBERNETES_NAMESPACE": "ml"}
    path = local.write(SHAPES)
    try:
        created = local.mflow("argo-workflows", "create", path, "--image", "x:1", env=env)
        assert created.returncode == 0, created.stderr
        assert created.stdout.strip() == "shapeflow"
        base = "/apis/argoproj.io/v1alpha1/namespaces/ml"
        posted = [(m, p) for m, p, _, _, _ in server.requests if m != "GET"]
        assert posted == [("POST", base + "/workflowtemplates"), ("POST", base + "/cronworkflows")]
        assert all(auth == "Bearer t0ken" for *_, auth in server.requests)
        again = local.mflow("argo-workflows", "create", path, "--image", "x:2", env=env)
        assert again.returncode == 0 and "Updated WorkflowTemplate shapeflow" in again.stderr
        put = [b for m, p, _, b, _ in server.requests if m == "PUT" and p.endswith("/workflowtemplates/shapeflow")]
        assert put[0]["metadata"]["resourceVersion"] == "1"
        assert put[0]["spec"]["templates"][1]["container"]["image"] == "x:2"
        triggered = local.mflow("argo-workflows", "trigger", path, "--alpha", "0.75", "--flag", env=env)
        assert triggered.returncode == 0, triggered.stderr
        assert triggered.stdout.strip() == "ShapeFlow/argo-shapeflow-x1y2z"
        workflow = [b for m, p, _, b, _ in server.requests if m == "POST" and p.endswith("/workflows")][0]
        assert workflow["spec"]["workflowTemplateRef"] == {"name": "shapeflow"}
        assert workflow["spec"]["arguments"]["parameters"] == [{"name": "alpha", "value": "0.75"},
                                                               {"name": "flag", "value": "true"}]
        assert workflow["metadata"]["labels"]["mflow/workflow-template"] == "shapeflow"
        bad = local.mflow("argo-workflows", "trigger", path, "--count", "many", env=env)
        assert bad.returncode == 2 and "parameter 'count' expects a whole number" in last_line(bad)
        listed = local.mflow("argo-workflows", "list-runs", path, "--running", env=env)
        assert listed.returncode == 0, listed.stderr
        (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
        assert row == {"schema": 1, "run_id": "argo-shapeflow-x1y2z", "pathspec": "ShapeFlow/argo-shapeflow-x1y2z",
                       "status": "Running", "started_at": "2026-12-01T00:00:00Z", "finished_at": None,
                       "workflow": "shapeflow-x1y2z"}
        query = [q for m, p, q, _, _ in server.requests if p.endswith("/workflows") and m == "GET"][0]
        assert "labelSelector=mflow%2Fworkflow-template%3Dshapeflow%2Cworkflows.argoproj.io%2Fphase" in query
        deleted = local.mflow("argo-workflows", "delete", path, env=env)
        assert deleted.returncode == 0 and "Deleted WorkflowTemplate shapeflow and its CronWorkflow" in deleted.stderr
        gone = local.mflow("argo-workflows", "delete", path, env=env)
        assert gone.returncode == 4 and last_line(gone).startswith("Error: no WorkflowTemplate shapeflow in namespace ml")
        missing = local.mflow("argo-workflows", "trigger", path, env=env)
        assert missing.returncode == 4 and "Deploy it first: mflow argo-workflows create FLOW.py" in last_line(missing)
    finally:
        server.shutdown()


def test_create_and_trigger_through_an_argo_server(local):
    server = StandIn(argo_server=True)
    env = {"MFLOW_ARGO_SERVER": server.url}
    path = local.write(FAN)
    try:
        assert local.mflow("argo-workflows", "create", path, "--image", "x:1", env=env).returncode == 0
        assert ("POST", "/api/v1/workflow-templates/default") in [(m, p) for m, p, *_ in server.requests]
        body = [b for m, p, _, b, _ in server.requests if m == "POST"][0]
        assert body["namespace"] == "default" and body["template"]["kind"] == "WorkflowTemplate"
        triggered = local.mflow("argo-workflows", "trigger", path, env=env)
        assert triggered.returncode == 0, triggered.stderr
        submit = [b for m, p, _, b, _ in server.requests if p == "/api/v1/workflows/default/submit"][0]
        assert (submit["resourceKind"], submit["resourceName"]) == ("WorkflowTemplate", "fanflow")
        assert triggered.stdout.strip().startswith("FanFlow/argo-fanflow-s")
    finally:
        server.shutdown()


def test_an_endpoint_that_refuses_or_does_not_answer_fails_in_seconds(local):
    path = local.write(FAN)
    refusing = StandIn(status=403)
    try:
        result = local.mflow("argo-workflows", "delete", path, env={"MFLOW_KUBERNETES_API": refusing.url})
        assert result.returncode == 6
        assert "refused DELETE" in last_line(result) and "(HTTP 403): forbidden: no you don't" in last_line(result)
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        refusing.shutdown()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    started = time.monotonic()
    result = local.mflow("argo-workflows", "list-runs", path, env={"MFLOW_ARGO_SERVER": "http://127.0.0.1:%d" % port})
    assert result.returncode == 6 and time.monotonic() - started < 10
    assert last_line(result).startswith("Error: cannot reach http://127.0.0.1:%d (MFLOW_ARGO_SERVER):" % port)
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        started = time.monotonic()
        result = local.mflow("argo-workflows", "trigger", path, env={
            "MFLOW_KUBERNETES_API": "http://127.0.0.1:%d" % silent.getsockname()[1], "MFLOW_ARGO_TIMEOUT": "1"})
        assert result.returncode == 6 and time.monotonic() - started < 10
        assert "cannot reach" in last_line(result) and "timed out" in last_line(result)
