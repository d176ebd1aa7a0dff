"""Runs an Argo WorkflowTemplate the way Argo's controller would, from the manifest alone: it
resolves the template tags the manifest uses, walks each DAG by its `depends`, expands
`withParam`, retries by `retryStrategy`, reads output parameters from the pod's files, runs
the `onExit` handler, and runs every container's command and args for real, as a container of
a Docker daemon (DockerRunner: tests/docker_env.py) whose /tmp is a fresh folder.

Not Argo: no Kubernetes, no pods, no backoff delays, no UI. It knows only what mflow's export
writes, and refuses any field or tag it does not know, so the export cannot drift away from
what was proven here without a test noticing.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

TAG = re.compile(r"\{\{(.*?)\}\}", re.S)
# What a DAG task, a template and a container may hold: anything else is refused.
TASK_KEYS = {"name", "template", "depends", "arguments", "withParam", "continueOn", "when"}
TEMPLATE_KEYS = {"name", "inputs", "outputs", "dag", "container", "retryStrategy", "activeDeadlineSeconds", "volumes"}
CONTAINER_KEYS = {"image", "command", "args", "env", "envFrom", "resources", "volumeMounts"}
SPEC_KEYS = {"entrypoint", "onExit", "parallelism", "workflowMetadata", "templates", "arguments", "serviceAccountName",
             "activeDeadlineSeconds", "priority"}


class SimError(Exception):
    """The manifest asks for something Argo would refuse, or this simulator does not know."""


class Pod:
    """One container run: which template, the argv as resolved, how it ended."""

    def __init__(self, template, argv, env, retry):
        self.template, self.argv, self.env, self.retry = template, argv, env, retry
        self.returncode = None
        self.stdout = self.stderr = ""
        self.outputs = {}


class Workflow:
    """A finished workflow: its name, phase, every pod in the order they started."""

    def __init__(self, name):
        self.name = name
        self.phase = None
        self.pods = []
        self.lock = threading.Lock()

    def commands(self, template=None):
        return [p.argv for p in self.pods if template is None or p.template == template]


def read_manifests(text):
    """The JSON objects of `mflow argo-workflows create --only-json`'s output, in order."""
    decoder, found, index = json.JSONDecoder(), [], 0
    text = text.strip()
    while index < len(text):
        value, index = decoder.raw_decode(text, index)
        found.append(value)
        while index < len(text) and text[index].isspace():
            index += 1
    return found


class ArgoSim:
    """Submits workflows of `template` (a WorkflowTemplate manifest) to `runner`."""

    def __init__(self, template, runner, max_pods=4):
        if template.get("kind") != "WorkflowTemplate":
            raise SimError("not a WorkflowTemplate: %r" % template.get("kind"))
        self.template = template
        self.spec = template["spec"]
        unknown = set(self.spec) - SPEC_KEYS
        if unknown:
            raise SimError("workflow spec fields the simulator does not know: %s" % sorted(unknown))
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        if len(self.templates) != len(self.spec["templates"]):
            raise SimError("two templates share a name")
        self.runner = runner
        parallelism = self.spec.get("parallelism") or max_pods
        self.pods = threading.Semaphore(min(parallelism, max_pods))

    def fire(self, cron, when="1700000000"):
        """Start the workflow a CronWorkflow starts: named after it and its scheduled time."""
        if cron["spec"]["workflowSpec"] != {"workflowTemplateRef": {"name": self.template["metadata"]["name"]}}:
            raise SimError("the CronWorkflow does not run this template: %r" % cron["spec"]["workflowSpec"])
        return self.submit(name="%s-%s" % (cron["metadata"]["name"], when))

    def submit(self, parameters=None, name=None):
        """Run a workflow to its end; the Workflow (its phase Succeeded, Failed or Error)."""
        workflow = Workflow(name or "%s-%s" % (self.template["metadata"]["name"], os.urandom(3).hex()[:5]))
        values = {}
        for parameter in (self.spec.get("arguments") or {}).get("parameters", []):
            if "value" in parameter:
                values[parameter["name"]] = parameter["value"]
        for key, value in (parameters or {}).items():
            if not any(p["name"] == key for p in (self.spec.get("arguments") or {}).get("parameters", [])):
                raise SimError("no workflow parameter %r" % key)
            values[key] = str(value)
        for parameter in (self.spec.get("arguments") or {}).get("parameters", []):
            if parameter["name"] not in values:
                raise SimError("parameter %r is required and has no value" % parameter["name"])
        scope = {"workflow.name": workflow.name, "workflow.parameters": values}
        phase, _ = self._invoke(workflow, self.spec["entrypoint"], {}, scope)
        workflow.phase = phase
        if self.spec.get("onExit"):
            exit_scope = dict(scope, **{"workflow.status": phase})
            self._invoke(workflow, self.spec["onExit"], {}, exit_scope)
        return workflow

    # --- templates ------------------------------------------------------------------------

    def _invoke(self, workflow, name, arguments, scope):
        """Run template `name` with input values `arguments`; its phase (and outputs)."""
        template = self.templates.get(name)
        if template is None:
            raise SimError("no template %r" % name)
        unknown = set(template) - TEMPLATE_KEYS
        if unknown:
            raise SimError("template %s has fields the simulator does not know: %s" % (name, sorted(unknown)))
        inputs = {}
        for parameter in (template.get("inputs") or {}).get("parameters", []):
            if parameter["name"] in arguments:
                inputs[parameter["name"]] = arguments[parameter["name"]]
            elif "value" in parameter:
                inputs[parameter["name"]] = parameter["value"]
            else:
                raise SimError("template %s needs input %r" % (name, parameter["name"]))
        extra = set(arguments) - set(inputs)
        if extra:
            raise SimError("template %s takes no inputs %s" % (name, sorted(extra)))
        local = {"workflow.name": scope["workflow.name"], "workflow.parameters": scope["workflow.parameters"],
                 "inputs": inputs}
        if "workflow.status" in scope:
            local["workflow.status"] = scope["workflow.status"]
        if "dag" in template:
            return self._dag(workflow, template, local), {}
        return self._container(workflow, template, local)

    def _dag(self, workflow, template, scope):
        tasks = {t["name"]: t for t in template["dag"]["tasks"]}
        for task in tasks.values():
            unknown = set(task) - TASK_KEYS
            if unknown:
                raise SimError("task %s has fields the simulator does not know: %s" % (task["name"], sorted(unknown)))
        deps = {name: _depends_names(task.get("depends", ""), tasks) for name, task in tasks.items()}
        results = {}  # task name -> (phase, outputs)
        done = threading.Condition()
        running = set()
        failed = False

        def run(name):
            try:
                outcome = self._task(workflow, tasks[name], scope, results)
            except BaseException as exc:  # a manifest error: end the DAG with it
                outcome = ("Error", {"error": exc})
            with done:
                results[name] = outcome
                running.discard(name)
                done.notify_all()

        with done:
            while len(results) < len(tasks):
                errors = [r[1]["error"] for r in results.values() if "error" in r[1]]
                if errors:
                    raise errors[0]
                started = False
                for name, task in tasks.items():
                    if name in results or name in running or not all(d in results for d in deps[name]):
                        continue
                    if failed or not _evaluate_depends(task.get("depends"), results):
                        results[name] = ("Omitted", {})
                        started = True
                        continue
                    running.add(name)
                    threading.Thread(target=run, args=(name,), daemon=True).start()
                    started = True
                if not started:
                    if not running:
                        raise SimError("DAG %s is stuck: %s wait forever" % (template["name"],
                                                                              sorted(set(tasks) - set(results))))
                    done.wait()
                failed = failed or any(phase in ("Failed", "Error") and not _continues(tasks[n], phase)
                                       for n, (phase, _) in results.items())
            errors = [r[1]["error"] for r in results.values() if "error" in r[1]]
            if errors:
                raise errors[0]
        return "Failed" if failed else "Succeeded"

    def _task(self, workflow, task, scope, results):
        """Run one DAG task (each item of its withParam); (phase, outputs)."""
        task_scope = dict(scope, tasks={name: outputs for name, (_, outputs) in results.items()})
        if "when" in task:
            condition = resolve(task["when"], task_scope)
            if not _evaluate_when(condition):
                return "Skipped", {}
        items = [None]
        if "withParam" in task:
            items = json.loads(resolve(task["withParam"], task_scope))
            if not isinstance(items, list):
                raise SimError("withParam of %s is not a JSON list" % task["name"])
            if not items:
                return "Skipped", {}
        threads, outcomes, errors = [], [None] * len(items), []

        def one(index, item):
            item_scope = dict(task_scope, item=item) if item is not None or "withParam" in task else task_scope
            try:
                arguments = {p["name"]: resolve(p["value"], item_scope)
                             for p in (task.get("arguments") or {}).get("parameters", [])}
                outcomes[index] = self._invoke(workflow, task["template"], arguments, scope)
            except BaseException as exc:  # a manifest error: the workflow ends with it
                errors.append(exc)

        for index, item in enumerate(items):
            thread = threading.Thread(target=one, args=(index, item), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        if any(o is None for o in outcomes):
            raise SimError("task %s did not finish" % task["name"])
        phases = [phase for phase, _ in outcomes]
        phase = "Failed" if "Failed" in phases else "Error" if "Error" in phases else "Succeeded"
        return phase, outcomes[0][1] if len(outcomes) == 1 else {}

    def _container(self, workflow, template, scope):
        """Run a container template's pod, retried as its retryStrategy says; (phase, outputs)."""
        container = template["container"]
        unknown = set(container) - CONTAINER_KEYS
        if unknown:
            raise SimError("container of %s has fields the simulator does not know: %s" % (template["name"],
                                                                                        sorted(unknown)))
        strategy = template.get("retryStrategy") or {}
        limit = int(strategy.get("limit", 0))
        if strategy and strategy.get("retryPolicy") not in (None, "Always", "OnFailure", "OnError"):
            raise SimError("retryPolicy %r" % strategy.get("retryPolicy"))
        for retry in range(limit + 1):
            pod_scope = dict(scope, retries=str(retry)) if strategy else scope
            argv = [resolve(a, pod_scope) for a in container.get("command", []) + container.get("args", [])]
            env = {e["name"]: resolve(e["value"], pod_scope) for e in container.get("env", [])}
            pod = Pod(template["name"], argv, env, retry)
            with workflow.lock:
                workflow.pods.append(pod)
            outputs = [(p["name"], p["valueFrom"]["path"]) for p in (template.get("outputs") or {}).get("parameters", [])]
            with self.pods:
                self.runner.run(pod, container, outputs, template.get("activeDeadlineSeconds"))
            if pod.returncode == 0:
                missing = [n for n, _ in outputs if n not in pod.outputs]
                if missing:
                    return "Error", {}
                return "Succeeded", {"outputs.parameters": pod.outputs}
            if retry == limit:
                break
            expression = strategy.get("expression")
            if expression and not evaluate_expression(expression, {"lastRetry": {"exitCode": str(pod.returncode)}}):
                break
        return "Failed", {}


# --- template tags --------------------------------------------------------------------------


def resolve(text, scope):
    """`text` with every {{tag}} replaced, as Argo does: simple tags by name, {{=...}} by
    evaluating the expression; a tag the scope does not hold is an error."""
    def replace(match):
        body = match.group(1)
        if body.startswith("="):
            value = evaluate_expression(body[1:], _expression_env(scope))
            return value if isinstance(value, str) else json.dumps(value)
        return _simple(body.strip(), scope)

    return TAG.sub(replace, text)


def _simple(name, scope):
    if name == "item" and "item" in scope:
        item = scope["item"]
        return item if isinstance(item, str) else json.dumps(item)
    if name in ("workflow.name", "workflow.status", "retries") and name in scope:
        return scope[name]
    parts = name.split(".")
    if parts[:2] == ["workflow", "parameters"] and len(parts) == 3 and parts[2] in scope["workflow.parameters"]:
        return scope["workflow.parameters"][parts[2]]
    if parts[:2] == ["inputs", "parameters"] and len(parts) == 3 and parts[2] in scope.get("inputs", {}):
        return scope["inputs"][parts[2]]
    if parts[0] == "tasks" and len(parts) == 5 and parts[2:4] == ["outputs", "parameters"]:
        outputs = scope.get("tasks", {}).get(parts[1], {}).get("outputs.parameters", {})
        if parts[4] in outputs:
            return outputs[parts[4]]
    raise SimError("unresolved template tag {{%s}}" % name)


class _Namespace(dict):
    """A map whose keys read as attributes too (workflow.parameters['x'], lastRetry.exitCode)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise SimError("expression reads %r, which is not there" % name) from None


def _expression_env(scope):
    return {"workflow": _Namespace(name=scope["workflow.name"], parameters=_Namespace(scope["workflow.parameters"]))}


def evaluate_expression(text, env):
    """An expression of Argo's expression language, of the few forms the export writes
    (maps, indexing, comparison, toJson, asInt), evaluated as the same Python expression."""
    if re.search(r"[^\s\w'\"{}\[\]().,:!=<>-]", text):
        raise SimError("expression %r uses syntax the simulator does not know" % text)
    names = dict(toJson=lambda v: json.dumps(v, separators=(",", ":")), asInt=int, string=str)
    names.update({k: _Namespace(v) if isinstance(v, dict) else v for k, v in env.items()})
    try:
        return eval(compile(text, "<argo expression>", "eval"), {"__builtins__": {}}, names)
    except SimError:
        raise
    except Exception as exc:
        raise SimError("expression %r: %s" % (text, exc)) from None


_DEPENDS_TOKEN = re.compile(r"\s*(&&|\|\||!|\(|\)|[A-Za-z0-9][-A-Za-z0-9]*(?:\.[A-Za-z]+)?)")
_RESULTS = {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned"}


def _depends_tokens(text):
    tokens, index = [], 0
    text = text or ""
    while index < len(text.rstrip()):
        match = _DEPENDS_TOKEN.match(text, index)
        if not match:
            raise SimError("depends %r: cannot read it at %r" % (text, text[index:]))
        tokens.append(match.group(1))
        index = match.end()
    return tokens


def _depends_names(text, tasks):
    names = []
    for token in _depends_tokens(text):
        if token in ("&&", "||", "!", "(", ")"):
            continue
        name, _, result = token.partition(".")
        if name not in tasks:
            raise SimError("depends %r names no task %r" % (text, name))
        if result and result not in _RESULTS:
            raise SimError("depends %r: %r is not a task result" % (text, result))
        names.append(name)
    return names


def _evaluate_depends(text, results):
    """Argo's enhanced depends: a bare name is Succeeded || Skipped || Daemoned."""
    if not text:
        return True
    python = []
    for token in _depends_tokens(text):
        if token in ("&&", "||", "!", "(", ")"):
            python.append({"&&": " and ", "||": " or ", "!": " not "}.get(token, token))
            continue
        name, _, result = token.partition(".")
        phase = results[name][0]
        phase = "Errored" if phase == "Error" else phase
        value = phase in ("Succeeded", "Skipped") if not result else phase == result
        python.append(str(value))
    return eval("".join(python), {"__builtins__": {}})


def _evaluate_when(text):
    """`when` after substitution, of the form A != B or A == B (govaluate's words)."""
    match = re.fullmatch(r"\s*(\S+)\s*(==|!=)\s*(\S+)\s*", text)
    if not match:
        raise SimError("when %r is not of the form A != B" % text)
    left, operator, right = match.groups()
    return (left == right) == (operator == "==")


def _continues(task, phase):
    continue_on = task.get("continueOn") or {}
    return (phase == "Failed" and continue_on.get("failed")) or (phase == "Error" and continue_on.get("error"))


# --- where pods run ---------------------------------------------------------------------------


class _Runner:
    """Runs a pod's argv with its environment and the secrets it names (envFrom); the pod's
    own /tmp is a fresh folder, from which output parameters are read."""

    def __init__(self, secrets=None, timeout=300):
        self.secrets = secrets or {}
        self.timeout = timeout

    def environment(self, pod, container):
        env = {}
        for source in container.get("envFrom", []):
            name = source["secretRef"]["name"]
            if name not in self.secrets:
                raise SimError("secret %r does not exist (Kubernetes would not start the pod)" % name)
            env.update(self.secrets[name])
        env.update(pod.env)
        return env

    def run(self, pod, container, outputs, deadline):
        tmp = tempfile.mkdtemp(prefix="argo-pod-")
        try:
            timeout = min(float(deadline), self.timeout) if deadline else self.timeout
            try:
                result = self.execute(pod, container, tmp, timeout)
                pod.returncode, pod.stdout, pod.stderr = result.returncode, result.stdout, result.stderr
            except subprocess.TimeoutExpired:
                pod.returncode, pod.stderr = -9, "the pod passed its activeDeadlineSeconds"
            for name, path in outputs:
                if not path.startswith("/tmp/"):
                    raise SimError("output %s is at %s, outside the pod's /tmp" % (name, path))
                local = os.path.join(tmp, path[len("/tmp/"):])
                if os.path.exists(local):
                    with open(local) as handle:
                        pod.outputs[name] = handle.read().strip()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class DockerRunner(_Runner):
    """Each pod a container of `daemon` (tests/docker_env.py), on the host's network, its /tmp
    a fresh folder; `mounts` ({host path: path inside}) are the volumes, e.g. a store folder."""

    def __init__(self, daemon, mounts=None, secrets=None, timeout=300):
        super().__init__(secrets, timeout)
        self.daemon, self.mounts = daemon, mounts or {}

    def execute(self, pod, container, tmp, timeout):
        args = ["run", "--rm", "--network", "host", "-v", "%s:/tmp" % tmp]
        for source, target in sorted(self.mounts.items()):
            args += ["-v", "%s:%s" % (source, target)]
        for key, value in sorted(self.environment(pod, container).items()):
            args += ["-e", "%s=%s" % (key, value)]
        started = time.monotonic()
        result = self.daemon.docker(*(args + [container["image"]] + pod.argv), timeout=timeout + 30, check=False)
        if result.returncode in (125, 126, 127) and "docker:" in result.stderr:
            raise SimError("docker could not start the pod's container: %s" % result.stderr.strip()[-500:])
        if time.monotonic() - started > timeout:
            raise subprocess.TimeoutExpired(pod.argv, timeout)
        return result
