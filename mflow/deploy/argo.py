"""Argo Workflows: a deployment as a WorkflowTemplate whose DAG tasks each run one mflow-task
in a container, a CronWorkflow for @schedule, and the HTTP calls that deploy, submit, list and
delete them (an Argo Server's API, or the Kubernetes API's argoproj.io resources).

Static branches are parallel DAG tasks; a foreach is a DAG task expanded `withParam` over the
split indices its foreach task writes (an output parameter), each item running the body's own
DAG template, which takes the split index and the foreach task's id as inputs, so that a
foreach inside a foreach is a DAG template inside a DAG template. The exit handler records a
run that did not succeed as failed. man/mflow-argo-workflows.1 says it for people.
"""

from __future__ import annotations

import re

from mflow.errors import DeployError, ExecutorError, NotFoundError, ParameterError
from mflow.namedtuple import NamedTuple

API_VERSION = "argoproj.io/v1alpha1"
#: A run's id is this and the Argo workflow's name.
RUN_PREFIX = "argo-"
RUN_ID = RUN_PREFIX + "{{workflow.name}}"
#: Where a foreach task writes its split indices in its pod: the output parameter `splits`.
SPLITS_PATH = "/tmp/mflow-splits.json"
SPLITS = "splits"
#: Kubernetes label values (Argo labels each workflow with its template's name) hold 63.
NAME_LIMIT = 63
ENTRYPOINT = "main"
EXIT_HANDLER = "exit-handler"
RUN_FAILED = "run-failed"
#: The label every workflow of a deployment carries, whoever started it (list-runs reads it).
TEMPLATE_LABEL = "mflow/workflow-template"
MANAGED_BY = {"app.kubernetes.io/managed-by": "mflow"}
#: mflow-task's exit statuses that no retry can fix (a bad command line or input, a task
#: failed for good): Argo does not retry them.
RETRY_EXPRESSION = "lastRetry.exitCode not in ['2', '3', '11']"
DEFAULT_NAMESPACE = "default"
DEFAULT_MAX_WORKERS = 100
DEFAULT_TIMEOUT = 10.0
#: Workflow phases, as list-runs filters them.
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
_VALID_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TASK_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
_PARAMETER_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
# Words of the expression language Argo evaluates `depends` in: a task named like one of them
# is read as the word (argoproj/argo-workflows#12037), so such a step's task gets a prefix.
_EXPR_WORDS = frozenset("""
    all any none one filter map find findIndex findLast findLastIndex count sum groupBy sortBy reduce len type
    abs ceil floor round int float string trim trimPrefix trimSuffix upper lower split splitAfter replace repeat
    join indexOf lastIndexOf hasPrefix hasSuffix max min mean median toJSON fromJSON toBase64 fromBase64 now
    duration date timezone first last get keys values toPairs fromPairs sort concat flatten uniq bitand bitor
    bitxor bitnand bitnot bitshl bitshr bitushr let in not and or matches contains startsWith endsWith nil true
    false if else env
""".split())


class Settings(NamedTuple):
    """Where and how a deployment's pods run: from the command line or MFLOW_*."""

    name: str  # the WorkflowTemplate's (and CronWorkflow's) name
    image: str  # MFLOW_ARGO_IMAGE: an image with mflow installed
    namespace: str = DEFAULT_NAMESPACE
    service_account: Optional[str] = None
    secrets: tuple = ()  # Kubernetes Secrets whose keys become every pod's environment
    max_workers: int = DEFAULT_MAX_WORKERS
    workflow_timeout: Optional[int] = None
    workflow_priority: Optional[int] = None


class Manifests(NamedTuple):
    """What `create` deploys: the WorkflowTemplate, the CronWorkflow (None without
    @schedule), and what Argo could not carry over (one line each)."""

    template: dict
    cron: Optional[dict]
    warnings: tuple

    def all(self):
        return [self.template] + ([self.cron] if self.cron is not None else [])


def template_name(deployed_name, given=None):
    """The WorkflowTemplate's name: --name as given (DeployError unless it is a Kubernetes
    name), else the deployed name (Flow, or project.branch.Flow) lower-cased, every other
    character but letters and digits made `-`, cut to 63 with a hash when longer."""
    import hashlib

    if given is not None:
        if not _VALID_NAME.match(given) or len(given) > NAME_LIMIT:
            raise ParameterError(
                "--name %r is not a Kubernetes name" % given,
                "Give at most %d lower-case letters, digits and -, starting and ending with a letter or digit"
                % NAME_LIMIT,
            )
        return given
    safe = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", deployed_name.lower())).strip("-") or "flow"
    if len(safe) > NAME_LIMIT:
        digest = hashlib.sha256(deployed_name.encode("utf-8")).hexdigest()[:8]
        safe = safe[:NAME_LIMIT - 9].rstrip("-") + "-" + digest
    return safe


def manifests(deployment, decorators_of, settings, environ, flow_class=None):
    """The Manifests of `deployment` (mflow.deploy.prepare's): `decorators_of(step)` gives a
    step's decorators, `environ` the store's settings every pod gets (never credentials:
    those come from --secret). DeployError naming what Argo cannot take."""
    writer = _TemplateWriter(deployment, decorators_of, settings, _pod_environment(deployment, environ))
    main = writer.dag(ENTRYPOINT, deployment.structure, _Scope.top())
    templates = [main] + writer.templates + [_exit_handler(), writer.failure_template()]
    labels = dict(MANAGED_BY)
    annotations = {"mflow/flow": deployment.flow, "mflow/deployment": deployment.id,
                   "mflow/deployed-name": deployment.name, "mflow/store": deployment.store_url}
    spec = {
        "entrypoint": ENTRYPOINT,
        "onExit": EXIT_HANDLER,
        "parallelism": settings.max_workers,
        "workflowMetadata": {"labels": {TEMPLATE_LABEL: settings.name}},
        "templates": templates,
    }
    parameters = writer.parameters(flow_class)
    if parameters:
        spec["arguments"] = {"parameters": parameters}
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if settings.workflow_timeout:
        spec["activeDeadlineSeconds"] = settings.workflow_timeout
    if settings.workflow_priority is not None:
        spec["priority"] = settings.workflow_priority
    metadata = {"name": settings.name, "namespace": settings.namespace, "labels": labels, "annotations": annotations}
    template = {"apiVersion": API_VERSION, "kind": "WorkflowTemplate", "metadata": metadata, "spec": spec}
    cron = None
    if deployment.schedule is not None:
        cron_spec = {
            "schedules": [deployment.schedule.cron5],
            "workflowMetadata": {"labels": {TEMPLATE_LABEL: settings.name}},
            "workflowSpec": {"workflowTemplateRef": {"name": settings.name}},
        }
        if deployment.schedule.timezone:
            cron_spec["timezone"] = deployment.schedule.timezone
        cron = {"apiVersion": API_VERSION, "kind": "CronWorkflow", "metadata": dict(metadata), "spec": cron_spec}
    return Manifests(template, cron, tuple(writer.warnings))


class _Scope(NamedTuple):
    """Where a DAG template's tasks are: the text of their own task id, of the foreach
    task's id and of the split index (template expressions inside a foreach body)."""

    me: str
    parent: Optional[str]
    split: Optional[str]
    depth: int

    @classmethod
    def top(cls):
        return cls("1", None, None, 0)

    @classmethod
    def body(cls, depth):
        parent, split = _input("parent-id"), _input("split-index")
        return cls("%s-%s" % (parent, split), parent, split, depth)


def _input(name):
    return "{{inputs.parameters.%s}}" % name


def _parameters(*names):
    return {"parameters": [{"name": name} for name in names]}


def _arguments(values):
    return {"parameters": [{"name": name, "value": value} for name, value in values]}


class _TemplateWriter:
    """Writes a structure's templates: `templates` (containers, foreach bodies) beside the
    DAG it returns, naming every task and template once."""

    def __init__(self, deployment, decorators_of, settings, env):
        self.deployment = deployment
        self.decorators_of = decorators_of
        self.settings = settings
        self.env = env
        self.templates = []
        self.warnings = []
        self.task_names = {}  # step -> its DAG task's name

    # --- DAGs -----------------------------------------------------------------------------

    def dag(self, name, sequence, scope, inputs=None):
        template = {"name": name}
        if inputs:
            template["inputs"] = inputs
        tasks, _ = self._tasks(sequence, scope, [])
        template["dag"] = {"tasks": tasks}
        taken = set()
        for task in tasks:
            if task["name"] in taken:
                raise DeployError(
                    "flow %s cannot run on Argo Workflows: two DAG tasks would be named %r" % (self.deployment.flow,
                                                                                                task["name"]),
                    "Rename one of the steps (Argo task names are the step names with _ as -)",
                )
            taken.add(task["name"])
        return template

    def _tasks(self, sequence, scope, after):
        """(DAG tasks of `sequence`, the depends terms of what follows it), the first after `after`."""
        from mflow.deploy import ForEach, Parallel

        tasks = []
        for node in sequence:
            if isinstance(node, Parallel):
                ends = []
                for branch in node.branches:
                    found, branch_ends = self._tasks(branch, scope, after)
                    tasks += found
                    ends += branch_ends
                after = ends
            elif isinstance(node, ForEach):
                tasks.append(self._foreach(node, scope, after))
                after = [tasks[-1]["name"]]
            else:
                found, after = self._step_tasks(node, scope, after)
                tasks += found
        return tasks, after

    def _foreach(self, node, scope, after):
        """The task that runs the foreach's body once per split index of its foreach task."""
        body_name = "foreach-" + self._safe(node.step)
        self.templates.append(self.dag(body_name, node.body, _Scope.body(scope.depth + 1),
                                       _parameters("parent-id", "split-index")))
        task = {
            "name": self._task_name(node.step) + "-foreach",
            "template": body_name,
            "depends": _depends(after),
            "withParam": "{{tasks.%s.outputs.parameters.%s}}" % (self.task_names[node.step], SPLITS),
            "arguments": _arguments([("parent-id", scope.me), ("split-index", "{{item}}")]),
        }
        return task

    def _step_tasks(self, step, scope, after):
        """The step's DAG task (and its @catch stand-in's), and the depends term of what follows."""
        decorators = self.decorators_of(step.name)
        self._warn_engines(step.name, decorators)
        name = self._task_name(step.name)
        task = {"name": name, "template": self._container(step, decorators, scope)}
        if after:
            task["depends"] = _depends(after)
        values = []
        if scope.depth:
            values.append(("task-id", scope.me))
        if step.split_index:
            values += [("parent-id", scope.parent), ("split-index", scope.split)]
        if values:
            task["arguments"] = _arguments(values)
        if "catch" not in decorators:
            return [task], [name]
        # The stand-in runs when the step failed for good; what follows takes either.
        task["continueOn"] = {"failed": True, "error": True}
        fallback = dict(task, name=name + "-fallback", template=self._container(step, decorators, scope, True),
                        depends="%s.Failed || %s.Errored" % (name, name))
        del fallback["continueOn"]
        return [task, fallback], ["(%s.Succeeded || %s.Succeeded)" % (name, fallback["name"])]

    def _task_name(self, step):
        if step not in self.task_names:
            name = self._safe(step)
            if name.replace("-", "_") in _EXPR_WORDS:
                name = "step-" + name
            self.task_names[step] = name
        return self.task_names[step]

    def _safe(self, step):
        name = step.replace("_", "-")
        if not _TASK_NAME.match(name):
            raise DeployError(
                "flow %s cannot run on Argo Workflows: step %s would be DAG task %r, which Argo refuses"
                % (self.deployment.flow, step, name),
                "Rename the step to start with a letter or digit", step=step,
            )
        return name

    # --- containers -----------------------------------------------------------------------

    def _container(self, step, decorators, scope, fallback=False):
        """The container template of the step's tasks (or of its @catch stand-in); its name."""
        from mflow.deploy import task_command

        inside = scope.depth > 0
        me = _input("task-id") if inside else "1"
        parent = _input("parent-id") if step.split_index else None
        inputs = [i.ref(parent if i.relation == "parent" else me) for i in step.inputs]
        retry = decorators.get("retry") or {}
        retries = retry.get("times", 0) if not fallback else 0
        params = self._params_expression() if step.name == "start" else None
        argv = task_command(
            self.deployment, step.name, RUN_ID, me, inputs, _input("split-index") if step.split_index else None,
            params, SPLITS_PATH if step.kind == "foreach" else None,
            attempt="auto" if fallback else ("{{retries}}" if retries else None),
        )
        if fallback:
            argv.append("--fallback")
        name = "%s-%s" % ("fallback" if fallback else "step", self._safe(step.name))
        template = {"name": name}
        names = (["task-id"] if inside else []) + (["parent-id", "split-index"] if step.split_index else [])
        if names:
            template["inputs"] = _parameters(*names)
        template["container"] = self._pod_container(argv, decorators)
        volumes = _volumes(decorators)
        if volumes:
            template["volumes"] = volumes
        if step.kind == "foreach":
            template["outputs"] = {"parameters": [{"name": SPLITS, "valueFrom": {"path": SPLITS_PATH}}]}
        if retries:
            template["retryStrategy"] = _retry_strategy(retry, retries)
        timeout = decorators.get("timeout")
        if timeout:
            from mflow.decospec import timeout_seconds
            from mflow.runtime.driver import TIMEOUT_GRACE_SECONDS

            # mflow-task stops the step first and records why; Argo stops a pod that outlives that.
            template["activeDeadlineSeconds"] = int(timeout_seconds(timeout) + TIMEOUT_GRACE_SECONDS)
        self.templates.append(template)
        return name

    def _pod_container(self, argv, decorators=None):
        container = {"image": self.settings.image, "command": argv[:1], "args": argv[1:]}
        if self.env:
            container["env"] = [{"name": key, "value": value} for key, value in sorted(self.env.items())]
        if self.settings.secrets:
            container["envFrom"] = [{"secretRef": {"name": secret}} for secret in self.settings.secrets]
        resources = _resources(decorators or {})
        if resources:
            container["resources"] = resources
        if decorators and (decorators.get("resources") or {}).get("shared_memory"):
            container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
        return container

    def _params_expression(self):
        """--params of the start task: the workflow's parameter values as one JSON object,
        made by Argo's expression language (a value may hold any character)."""
        names = [p.name for p in self._argo_parameters()]
        if not names:
            return None
        entries = ", ".join("'%s': workflow.parameters['%s']" % (name, name) for name in names)
        return "{{=toJson({%s})}}" % entries

    def failure_template(self):
        from mflow.deploy import failure_command

        argv = failure_command(self.deployment, RUN_ID, "Argo workflow {{workflow.name}} ended {{workflow.status}}")
        return {"name": RUN_FAILED, "container": self._pod_container(argv)}

    def _warn_engines(self, step, decorators):
        for engine in ("batch", "slurm"):
            if engine in decorators:
                self.warnings.append("step %s has @%s, but on Argo Workflows its task runs in a pod of the cluster"
                                     % (step, engine))

    # --- parameters -----------------------------------------------------------------------

    def _argo_parameters(self):
        """The flow's parameters a run can be given: every Parameter whose default Argo can
        show (IncludeFile is read at deploy time; a default of None or not JSON has no text)."""
        found = []
        for parameter in self.deployment.parameters:
            if parameter.kind != "Parameter":
                continue
            if not _PARAMETER_NAME.match(parameter.name):
                raise DeployError(
                    "flow %s cannot run on Argo Workflows: parameter %r is not an Argo parameter name"
                    % (self.deployment.flow, parameter.name),
                    "Name it with letters, digits, - and _ only",
                )
            if parameter.default is None and not parameter.required:
                if not any(w.startswith("parameter %s " % parameter.name) for w in self.warnings):
                    self.warnings.append("parameter %s has no default Argo can show, so its runs take the value it "
                                         "had when deployed and a trigger cannot set it" % parameter.name)
                continue
            found.append(parameter)
        return found

    def parameters(self, flow_class=None):
        """The workflow's arguments: each parameter with its default as text, as one would
        give it on the command line."""
        separators = {}
        for _, parameter in (flow_class._get_parameters() if flow_class is not None else ()):
            separators[parameter.name] = getattr(parameter, "separator", None)
        found = []
        for parameter in self._argo_parameters():
            entry = {"name": parameter.name}
            if parameter.default is not None:
                entry["value"] = parameter_text(parameter.default, parameter.type_name, separators.get(parameter.name))
            if parameter.help:
                entry["description"] = parameter.help
            found.append(entry)
        return found


def parameter_text(value, type_name, separator=None):
    """A parameter value as the text one gives it on the command line (an Argo parameter)."""
    import json

    if type_name == "JSON":
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)) and separator is not None:
        return separator.join(parameter_text(v, type_name) for v in value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _depends(terms):
    return " && ".join(terms)


def _retry_strategy(retry, retries):
    """@retry as Argo's retryStrategy: `retries` more tries, after the delay mflow gives a
    remote task (Metaflow's 2 minutes when unset), growing by backoff; never after a failure
    for good (exit 2, 3 or 11)."""
    from mflow.decospec import retry_delay

    strategy = {"limit": retries, "retryPolicy": "Always", "expression": RETRY_EXPRESSION}
    delay = retry_delay(retry, 1, remote=True)
    if delay > 0:
        backoff = {"duration": "%ds" % max(1, round(delay))}
        if retry.get("backoff", 1) > 1:
            backoff["factor"] = max(1, round(retry["backoff"]))
        strategy["backoff"] = backoff
    return strategy


def _resources(decorators):
    """@resources (and @batch's sizes, the larger of the two) as a container's resources:
    cpu, memory and disk requested, GPUs as the limit Kubernetes needs them in."""
    from mflow.runtime.executors.base import merged_resources

    if not decorators.get("resources") and not decorators.get("batch"):
        return None
    merged = merged_resources(decorators.get("resources"), decorators.get("batch"))
    requests = {}
    if merged.get("cpu"):
        requests["cpu"] = _quantity(merged["cpu"])
    if merged.get("memory"):
        requests["memory"] = "%dMi" % round(merged["memory"])
    if merged.get("disk"):
        requests["ephemeral-storage"] = "%dMi" % round(merged["disk"])
    resources = {"requests": requests} if requests else {}
    if merged.get("gpu"):
        resources["limits"] = {"nvidia.com/gpu": str(int(merged["gpu"]))}
    return resources or None


def _quantity(cpu):
    return str(int(cpu)) if float(cpu).is_integer() else "%dm" % round(float(cpu) * 1000)


def _volumes(decorators):
    shared = (decorators.get("resources") or {}).get("shared_memory")
    if not shared:
        return None
    return [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "%dMi" % round(shared)}}]


def _exit_handler():
    """Runs when a workflow ends: records the run as failed unless it succeeded (a run that
    never started is not there to record: that failure is let through)."""
    return {"name": EXIT_HANDLER, "dag": {"tasks": [{
        "name": "record-failure", "template": RUN_FAILED, "when": "{{workflow.status}} != Succeeded",
        "continueOn": {"failed": True},
    }]}}


def _pod_environment(deployment, environ):
    """The variables every pod gets, as `mflow run` gives a remote job: the store's settings
    and the user; never credentials."""
    from mflow.runtime.remote import PASSED_PREFIXES, PASSED_VARIABLES

    env = {key: value for key, value in environ.items() if key in PASSED_VARIABLES or key.startswith(PASSED_PREFIXES)}
    if deployment.user:
        env["MFLOW_USER"] = deployment.user
    return env


# --- the cluster ---------------------------------------------------------------------------


class ArgoClient:
    """Argo Workflows reached over HTTPS with the standard library: an Argo Server
    (MFLOW_ARGO_SERVER, its /api/v1) or else the Kubernetes API (MFLOW_KUBERNETES_API, its
    argoproj.io resources), with the bearer token MFLOW_ARGO_TOKEN; every request times
    out after MFLOW_ARGO_TIMEOUT seconds (10). ExecutorError when neither is set, or the
    endpoint cannot be reached or refuses."""

    def __init__(self, environ, namespace=None):
        server = (environ.get("MFLOW_ARGO_SERVER") or "").strip()
        kube = (environ.get("MFLOW_KUBERNETES_API") or "").strip()
        if not server and not kube:
            raise ExecutorError(
                "no Argo Workflows endpoint is configured",
                "Set MFLOW_ARGO_SERVER to the Argo Server's URL or MFLOW_KUBERNETES_API to the Kubernetes API's "
                "(e.g. http://127.0.0.1:8001 of `kubectl proxy`), or print the manifests with --only-json",
                executor="argo-workflows",
            )
        self.argo_server = bool(server)
        self.base = (server or kube).rstrip("/")
        self.variable = "MFLOW_ARGO_SERVER" if server else "MFLOW_KUBERNETES_API"
        if not self.base.startswith(("http://", "https://")):
            raise ExecutorError("%s=%s is not an http:// or https:// URL" % (self.variable, self.base),
                                "Give the URL with its scheme, e.g. https://argo.example.com:2746",
                                executor="argo-workflows")
        token = (environ.get("MFLOW_ARGO_TOKEN") or "").strip()
        self.token = token[len("Bearer "):] if token.startswith("Bearer ") else token
        self.namespace = namespace or environ.get("MFLOW_KUBERNETES_NAMESPACE") or DEFAULT_NAMESPACE
        try:
            self.timeout = float(environ.get("MFLOW_ARGO_TIMEOUT") or DEFAULT_TIMEOUT)
        except ValueError:
            raise ExecutorError("MFLOW_ARGO_TIMEOUT=%r is not a number of seconds" % environ["MFLOW_ARGO_TIMEOUT"],
                                "Give e.g. 10", executor="argo-workflows") from None
        self.ca_file = environ.get("MFLOW_ARGO_CA_FILE") or None

    # --- what the commands do -------------------------------------------------------------

    def apply(self, manifest):
        """Create `manifest` (a WorkflowTemplate or CronWorkflow), or replace the one of its
        name; True when it was created."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        current = self._get(kind, name)
        if current is None:
            self._request("POST", self._collection(kind), self._wrap(kind, manifest))
            return True
        updated = dict(manifest, metadata=dict(manifest["metadata"],
                                               resourceVersion=current["metadata"].get("resourceVersion")))
        self._request("PUT", self._item(kind, name), self._wrap(kind, updated, name))
        return False

    def delete(self, kind, name):
        """Delete the `kind` named `name`; False when there is none."""
        try:
            self._request("DELETE", self._item(kind, name))
        except NotFoundError:
            return False
        return True

    def exists(self, kind, name):
        return self._get(kind, name) is not None

    def submit(self, name, parameters):
        """Start a workflow from WorkflowTemplate `name` with `parameters` ({name: text});
        the new workflow's name. NotFoundError when the template is not deployed."""
        if not self.exists("WorkflowTemplate", name):
            raise NotFoundError("no WorkflowTemplate %s in namespace %s of %s" % (name, self.namespace, self.base),
                                "Deploy it first: mflow argo-workflows create FLOW.py")
        labels = {TEMPLATE_LABEL: name}
        if self.argo_server:
            body = {"namespace": self.namespace, "resourceKind": "WorkflowTemplate", "resourceName": name,
                    "submitOptions": {"parameters": ["%s=%s" % item for item in sorted(parameters.items())],
                                      "labels": ",".join("%s=%s" % item for item in labels.items())}}
            created = self._request("POST", "/api/v1/workflows/%s/submit" % self.namespace, body)
        else:
            workflow = {
                "apiVersion": API_VERSION, "kind": "Workflow",
                "metadata": {"generateName": name[:NAME_LIMIT - 6] + "-", "namespace": self.namespace,
                             "labels": dict(labels, **{"workflows.argoproj.io/workflow-template": name})},
                "spec": {"workflowTemplateRef": {"name": name}},
            }
            if parameters:
                workflow["spec"]["arguments"] = {"parameters": [{"name": key, "value": value}
                                                                for key, value in sorted(parameters.items())]}
            created = self._request("POST", self._collection("Workflow"), workflow)
        return created["metadata"]["name"]

    def workflows(self, name, phases=()):
        """The workflows of WorkflowTemplate `name`, newest first, only of `phases` if given."""
        selector = "%s=%s" % (TEMPLATE_LABEL, name)
        if phases:
            selector += ",workflows.argoproj.io/phase in (%s)" % ",".join(phases)
        from urllib.parse import quote

        key = "listOptions.labelSelector" if self.argo_server else "labelSelector"
        found = self._request("GET", "%s?%s=%s" % (self._collection("Workflow"), key, quote(selector, safe="")))
        items = (found or {}).get("items") or []
        return sorted(items, key=lambda w: w.get("metadata", {}).get("creationTimestamp") or "", reverse=True)

    # --- HTTP -----------------------------------------------------------------------------

    _PLURALS = {"WorkflowTemplate": ("workflowtemplates", "workflow-templates", "template"),
                "CronWorkflow": ("cronworkflows", "cron-workflows", "cronWorkflow"),
                "Workflow": ("workflows", "workflows", "workflow")}

    def _collection(self, kind):
        kube, argo, _ = self._PLURALS[kind]
        if self.argo_server:
            return "/api/v1/%s/%s" % (argo, self.namespace)
        return "/apis/%s/namespaces/%s/%s" % (API_VERSION, self.namespace, kube)

    def _item(self, kind, name):
        return "%s/%s" % (self._collection(kind), name)

    def _wrap(self, kind, manifest, name=None):
        """The request body: the manifest itself for Kubernetes, wrapped for an Argo Server."""
        if not self.argo_server:
            return manifest
        body = {"namespace": self.namespace, self._PLURALS[kind][2]: manifest}
        if name is not None:
            body["name"] = name
        return body

    def _get(self, kind, name):
        try:
            return self._request("GET", self._item(kind, name))
        except NotFoundError:
            return None

    def _request(self, method, path, body=None):
        import json
        import socket
        import ssl
        import urllib.error
        import urllib.request

        url = self.base + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        context = ssl.create_default_context(cafile=self.ca_file) if url.startswith("https://") else None
        where = "%s (%s)" % (self.base, self.variable)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            detail = _error_message(exc)
            if exc.code == 404:
                raise NotFoundError("%s %s: not found on %s%s" % (method, path, where, detail),
                                    "Check the name, --kubernetes-namespace and that Argo Workflows is installed") \
                    from None
            if exc.code in (401, 403):
                raise ExecutorError("%s refused %s %s (HTTP %d)%s" % (where, method, path, exc.code, detail),
                                    "Set MFLOW_ARGO_TOKEN to a token allowed to manage Argo workflows in namespace "
                                    "%s" % self.namespace, executor="argo-workflows") from None
            raise ExecutorError("%s answered %s %s with HTTP %d%s" % (where, method, path, exc.code, detail),
                                "Check the manifests with --only-json, and the server's logs",
                                executor="argo-workflows") from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ExecutorError("cannot reach %s: %s" % (where, reason),
                                "Check the URL and that the server is up (requests time out after %g s, "
                                "MFLOW_ARGO_TIMEOUT)" % self.timeout, executor="argo-workflows") from None
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            raise ExecutorError("%s answered %s %s with something that is not JSON" % (where, method, path),
                                "Check that %s is the Argo Server's or the Kubernetes API's URL" % self.variable,
                                executor="argo-workflows") from None


def _error_message(exc):
    """`: MESSAGE` of a Kubernetes Status or Argo error body, else nothing."""
    import json

    try:
        message = json.loads(exc.read().decode("utf-8")).get("message")
    except Exception:
        return ""
    return ": %s" % " ".join(str(message).split())[:300] if message else ""


def workflow_row(flow, workflow):
    """One list-runs row (schema 1) of an Argo workflow."""
    name = workflow.get("metadata", {}).get("name", "")
    status = workflow.get("status") or {}
    run_id = RUN_PREFIX + name
    return {"schema": 1, "run_id": run_id, "pathspec": "%s/%s" % (flow, run_id),
            "status": status.get("phase") or "Pending", "started_at": status.get("startedAt"),
            "finished_at": status.get("finishedAt"), "workflow": name}
