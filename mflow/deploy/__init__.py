"""Deploying a flow to a production scheduler: what every export (Step Functions, Argo,
Airflow, cron) shares.

`prepare()` checks that the scheduler can express the flow, stores its code and a
deployment record, and returns a Deployment: its steps in execution order (`structure`),
its parameters, schedule and project naming. `task_command()` is the mflow-task command line
of one task; each export only writes these in its scheduler's own words. man/mflow.1
(PRODUCTION SCHEDULERS) describes the protocol its tasks follow.
"""

from __future__ import annotations

import hashlib
import os

from mflow.errors import DeployError, NotFoundError
from mflow.namedtuple import NamedTuple

SCHEMA = 1
DEPLOYMENTS = ".deployments"
SCHEDULERS = ("step-functions", "argo-workflows", "airflow", "cron")
_SCHEDULER_NAMES = {"step-functions": "Step Functions", "argo-workflows": "Argo Workflows", "airflow": "Airflow",
                    "cron": "cron"}


# --- the structure: the steps in execution order ----------------------------------------------


class Input(NamedTuple):
    """An input of a step's task: the task of `step` with the same id (`same`), the id without
    its last `-i` (`parent`: the foreach step's task, for the first step of a foreach body), or
    every `ID-i` of it (`children`: the tasks a foreach join closes)."""

    step: str
    relation: str

    def ref(self, task_id):
        """The --input argument for the task with id text `task_id` (a template is fine for
        `same` and `children`; `parent` needs the parent's id: see Step.parent_id)."""
        if self.relation == "children":
            return "%s/%s-*" % (self.step, task_id)
        return "%s/%s" % (self.step, task_id)


class Step(NamedTuple):
    """One step: kind is split or foreach when a Parallel or ForEach follows it (a join's
    too), else start, linear, join or end; depth is how many
    foreach levels enclose it; `split_index` is True for the first step of a foreach body
    (its tasks take --split-index)."""

    name: str
    kind: str
    depth: int
    inputs: tuple
    split_index: bool = False


class Parallel(NamedTuple):
    """The static branches after a split step; `join` is the step that closes them."""

    branches: tuple  # of tuples (sequences)
    join: str


class ForEach(NamedTuple):
    """The body of a foreach, run once per item of `var` of `step`; `join` closes it."""

    step: str
    var: str
    body: tuple
    join: str


def structure(graph, scheduler="a production scheduler"):
    """The flow's steps in execution order as a tuple of Step, Parallel and ForEach;
    DeployError naming the step the scheduler cannot express."""
    where = _SCHEDULER_NAMES.get(scheduler, scheduler)
    for node in graph:
        if node.transition is not None and node.transition.kind == "switch":
            raise DeployError(
                "flow %s cannot run on %s: step %s is a switch (self.next with condition=)" % (graph.name, where, node.name),
                "Deploy a flow without conditional steps, or run it with `mflow run`",
                step=node.name,
            )
    return _sequence(graph, "start", None, 0, (), where)


def _sequence(graph, name, stop, depth, inputs, where, split_index=False):
    found = []
    seen = set()
    while name is not None and name != stop:
        if name in seen:
            raise DeployError("flow %s cannot run on %s: step %s loops" % (graph.name, where, name), step=name)
        seen.add(name)
        node = graph[name]
        kind = node.transition.kind if node.transition is not None else None
        if name == "end":
            role = "end"
        elif kind in ("split", "foreach"):
            role = kind  # what follows it, a join's too: its several inputs say it is one
        elif node.is_join:
            role = "join"
        else:
            role = "start" if name == "start" else "linear"
        found.append(Step(name, role, depth, tuple(inputs), split_index))
        split_index = False
        if kind == "split":
            join = node.matching_join
            branches = tuple(_sequence(graph, target, join, depth, (Input(name, "same"),), where)
                             for target in node.transition.targets)
            found.append(Parallel(branches, join))
            inputs = tuple(Input(_last(branch).name, "same") for branch in branches)
            name = join
        elif kind == "foreach":
            join = node.matching_join
            body = _sequence(graph, node.transition.targets[0], join, depth + 1, (Input(name, "parent"),), where,
                             split_index=True)
            found.append(ForEach(name, node.transition.foreach, body, join))
            inputs = (Input(_last(body).name, "children"),)
            name = join
        elif kind == "linear":
            inputs = (Input(name, "same"),)
            name = node.transition.targets[0]
        else:
            name = None
    return tuple(found)


def _last(sequence):
    return sequence[-1]


def walk(sequence):
    """Every Step of a structure, in execution order, nested ones included."""
    for node in sequence:
        if isinstance(node, Step):
            yield node
        elif isinstance(node, Parallel):
            for branch in node.branches:
                yield from walk(branch)
        else:
            yield from walk(node.body)


def task_id(indices):
    """The id of a task inside foreach splits `indices` (outermost first): `1`, `1-3`, `1-3-0`."""
    return "-".join(["1"] + [str(i) for i in indices])


# --- the deployment -------------------------------------------------------------------------


class DeployParameter(NamedTuple):
    """A flow parameter as a scheduler shows it: type_name is str, int, float, bool or JSON."""

    name: str
    type_name: str
    default: object
    help: Optional[str]
    required: bool
    kind: str = "Parameter"

    def to_json(self):
        return {"name": self.name, "type": self.type_name, "default": self.default, "help": self.help,
                "required": self.required, "kind": self.kind}


class Deployment(NamedTuple):
    """A flow prepared for a scheduler. `name` is its deployed name (the flow's, or with
    @project PROJECT.BRANCH.Flow); `id` names its record in the store, which every run's
    start task (--init-run) reads."""

    id: str
    flow: str
    name: str
    scheduler: str
    store_url: str
    flow_file: str
    parameters: tuple
    schedule: object  # mflow.deploy.schedule.Schedule or None
    project: object  # mflow.deploy.project.ProjectInfo or None
    tags: tuple
    lock: Optional[str]
    structure: tuple
    graph: object
    code_key: str
    user: Optional[str]

    @property
    def run_tags(self):
        """The system tags of every run of the deployment."""
        tags = ["scheduler:%s" % self.scheduler, "production:%s" % self.name]
        if self.project is not None:
            tags.extend(self.project.tags())
        return tuple(tags)


def prepare(store, graph, flow_class, flow_file, scheduler, branch=None, production=False, tags=(), lock=None,
            environ=None, user=None):
    """Check that `scheduler` can express the flow, store its code package and deployment
    record, and return the Deployment. `lock` (wait, refuse or None) is what a run does while
    the deployment's previous run still runs."""
    from mflow.flow.current import resolve_username
    from mflow.flow.decorators import flow_decorators
    from mflow.graph import graph_record
    from mflow.meta.tags import validate_tags
    from mflow.store.code import build_code_package, code_suffixes

    from .project import project_info
    from .schedule import schedule_of

    if scheduler not in SCHEDULERS:
        raise ValueError("scheduler must be one of %s, not %r" % (", ".join(SCHEDULERS), scheduler))
    if lock not in (None, "wait", "refuse"):
        raise ValueError("lock must be wait, refuse or None, not %r" % (lock,))
    environ = os.environ if environ is None else environ
    shape = structure(graph, scheduler)
    user = user or resolve_username(environ)
    project = project_info(flow_class, branch, production, user)
    decorators = flow_decorators(flow_class)
    schedule = schedule_of(decorators["schedule"].attributes) if "schedule" in decorators else None
    parameters, defaults = _parameters(store, flow_class, user)
    directory = os.path.dirname(os.path.abspath(flow_file))
    root = getattr(store.backend, "root", None)
    suffixes = code_suffixes(environ)
    data, count = build_code_package(directory, suffixes, skip=[root] if root else ())
    code = store.blobs.put(data)
    name = project.flow_name if project is not None else graph.name
    base = os.path.basename(flow_file)
    record = {
        "schema": SCHEMA,
        "type": "deployment",
        "flow": graph.name,
        "name": name,
        "scheduler": scheduler,
        "flow_file": base,
        "code": {"key": code.key, "size": code.size, "stored_size": code.stored_size, "files": count,
                 "suffixes": list(suffixes), "graph": graph_record(graph, base, _read_bytes(flow_file))},
        "parameters": [p.to_json() for p in parameters],
        "defaults_key": defaults,
        "schedule": schedule.to_json() if schedule is not None else None,
        "project": project.to_json() if project is not None else None,
        "tags": list(validate_tags(tags)),
        "lock": lock,
        "user": user,
    }
    from mflow import jsonio

    digest = hashlib.sha256(jsonio.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    deployment_id = "%s-%s-%s" % (scheduler, _safe(name), digest)
    record["id"] = deployment_id
    store.write_record(deployment_path(graph.name, deployment_id), record, exclusive=True)
    return _deployment(store, record, graph, shape)


def deployment_path(flow, deployment_id):
    from mflow.meta import paths

    return "%s%s/%s.json" % (paths.flow_prefix(flow), DEPLOYMENTS, deployment_id)


def read_deployment(store, flow, deployment_id):
    """The deployment record `deployment_id` of `flow`; NotFoundError when the store lacks it."""
    try:
        return store.read_record(deployment_path(flow, deployment_id))
    except NotFoundError:
        raise NotFoundError(
            "store %s has no deployment %s of flow %s" % (store.url, deployment_id, flow),
            "Deploy the flow again (its scheduler's `create`), with the same store",
            store=store.url,
        ) from None


def _deployment(store, record, graph, shape):
    from .project import ProjectInfo
    from .schedule import Schedule

    schedule = record.get("schedule")
    project = record.get("project")
    return Deployment(
        id=record["id"],
        flow=record["flow"],
        name=record["name"],
        scheduler=record["scheduler"],
        store_url=store.url,
        flow_file=record["flow_file"],
        parameters=tuple(DeployParameter(p["name"], p["type"], p["default"], p["help"], p["required"], p["kind"])
                         for p in record["parameters"]),
        schedule=Schedule(schedule["cron"], schedule["eventbridge"], schedule["timezone"]) if schedule else None,
        project=ProjectInfo(project["name"], project["branch"], project["is_production"], project["flow_name"])
        if project else None,
        tags=tuple(record["tags"]),
        lock=record.get("lock"),
        structure=shape,
        graph=graph,
        code_key=record["code"]["key"],
        user=record.get("user"),
    )


def _parameters(store, flow_class, user):
    """(DeployParameter per parameter, blob key of the pickled defaults): defaults are taken
    now, as Metaflow takes them when a flow is deployed (a deferred default is called, an
    IncludeFile read)."""
    import pickle

    from mflow.flow.parameters import JSONType, ParameterContext, _TYPE_NAMES

    found, defaults = [], {}
    for attribute, parameter in flow_class._get_parameters():
        value = None
        if not parameter.needs_value:
            context = ParameterContext(flow_class.__name__, user, parameter.name, None, "deploy")
            value = parameter.resolve_default(context)
        defaults[attribute] = value
        type_name = "JSON" if parameter.type is JSONType else _TYPE_NAMES.get(parameter.type, "str")
        shown = value if _is_json(value) else None
        found.append(DeployParameter(parameter.name, type_name, shown, parameter.help, parameter.needs_value,
                                     parameter.kind))
    key = store.blobs.put(pickle.dumps(defaults, protocol=4)).key
    return tuple(found), key


def _is_json(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _safe(name):
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "-" for c in name)[:120]


def _read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


# --- the command of one task ------------------------------------------------------------------


def task_command(deployment, step, run_id, task_id, inputs=(), split_index=None, params=None, splits_file=None,
                 attempt=None, executable="mflow-task"):
    """mflow-task's command line (a list of strings) for one task of a deployment's run.
    Each value is inserted verbatim, so a scheduler may pass its own template expressions.
    The start task creates the run (--init-run); the end task records its success."""
    command = [executable, "--package", "--flow", deployment.flow, "--store", deployment.store_url,
               deployment.flow_file, step, "--run-id", str(run_id), "--task-id", str(task_id)]
    for ref in inputs:
        command += ["--input", str(ref)]
    if split_index is not None:
        command += ["--split-index", str(split_index)]
    if attempt is not None:
        command += ["--attempt", str(attempt)]
    if step == "start":
        command += ["--init-run", deployment.id]
        if params is not None:
            command += ["--params", str(params)]
    if step == "end":
        command.append("--end-run")
    if splits_file is not None:
        command += ["--splits-file", str(splits_file)]
    return command


def failure_command(deployment, run_id, reason=None, executable="mflow-meta"):
    """The command a scheduler's failure path runs: record the run as failed (a run that
    ended already is left as it is)."""
    command = [executable, "run-end", "%s/%s" % (deployment.flow, run_id), "--status", "failed",
               "--store", deployment.store_url]
    if reason is not None:
        command += ["--reason", str(reason)]
    return command
