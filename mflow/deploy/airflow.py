"""The Airflow 3 DAG file of a deployment: a task per step, each running one mflow-task.

A foreach is dynamic task mapping over the split ids its task reports, static branches are
parallel tasks, and a last task with trigger rule one_failed records a failed run in the
store. The file imports only Airflow and the standard library; `mflow airflow create`
writes it (man/mflow.1, AIRFLOW).
"""

from __future__ import annotations

import re

from mflow.errors import DeployError
from mflow.namedtuple import NamedTuple

#: JSON Schema types of Airflow's Param for each parameter type; JSON takes any value.
PARAM_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "JSON": None}
#: Task ids that no step can have (steps are Python identifiers): the failure path, and the
#: task that gathers the split ids of a foreach nested in another.
FAILURE_TASK = "run-failed"
SPLITS_TASK = "%s-splits"
#: Variables of the environment `create` runs in that every task gets (the store's settings,
#: never credentials: a worker has its own), as a remote job of `mflow run` gets them.
PASSED_VARIABLES = ("AWS_DEFAULT_REGION", "AWS_REGION", "MFLOW_CODE_SUFFIXES", "MFLOW_STALE_AFTER", "MFLOW_DEBUG")
PASSED_PREFIXES = ("MFLOW_S3_",)
#: Airflow DAG ids: letters, digits, _, . and -, at most 250.
_DAG_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
# What the commands leave to run time: Jinja for Airflow's values, shell variables for a
# mapped task's ids (its env). Each stands in a command line as a token until quoted.
_RUN_ID = "{{ run_id | mflow_run_id }}"
_ATTEMPT = "{{ ti.try_number - 1 }}"
_FALLBACK_ATTEMPT = "{{ ti.try_number }}"
_TOKENS = {
    "\0run\0": _RUN_ID,
    "\0attempt\0": _ATTEMPT,
    "\0fallback\0": _FALLBACK_ATTEMPT,
    "\0task\0": "'\"${MF_TASK_ID}\"'",
    "\0parent\0": "'\"${MF_PARENT_ID}\"'",
    "\0split\0": "'\"${MF_SPLIT_INDEX}\"'",
    "\0params\0": "'\"${MF_PARAMS}\"'",
}


class DagFile(NamedTuple):
    """A DAG file's text, its dag_id, and what it could not carry over (one line each)."""

    dag_id: str
    text: str
    warnings: tuple


def mflow_run_id(airflow_run_id):
    """The mflow run id of an Airflow DAG run: `airflow-` and its run id with every character
    but letters, digits, _, . and - made a -; a longer one than 200 characters keeps 187 and
    a hash of the whole."""
    import hashlib

    run_id = "airflow-" + re.sub(r"[^A-Za-z0-9_.-]", "-", airflow_run_id)
    if len(run_id) > 200:
        run_id = run_id[:187] + "-" + hashlib.sha256(airflow_run_id.encode("utf-8")).hexdigest()[:12]
    return run_id


def dag_file(deployment, flow_class, bin_dir="", environ=None, max_workers=100, worker_pool=None, paused=False,
             dag_id=None, start_date=None):
    """The DagFile of `deployment` (mflow.deploy.prepare's), for the flow class it was made
    from, named `dag_id` (default: the deployment's name). Tasks run `bin_dir`/mflow-task
    ("" finds it on the workers' PATH) with `environ`'s store settings; DeployError when
    Airflow cannot take it."""
    import datetime
    import os

    from mflow.task.decorators import task_decorators

    environ = os.environ if environ is None else environ
    dag_id = dag_id or deployment.name
    if not _DAG_ID.match(dag_id):
        raise DeployError(
            "flow %s would be Airflow DAG %r, which is not a DAG id (letters, digits, _, . and -)" % (deployment.flow,
                                                                                                     dag_id),
            "Give --name a DAG id, or with @project set MFLOW_USER to a plain user name or give --branch",
        )
    decorators = {name: task_decorators(flow_class, deployment.graph, name) for name in deployment.graph.steps}
    writer = _DagWriter(deployment, decorators, bin_dir)
    writer.sequence(deployment.structure, None)
    env = {"MFLOW_USER": deployment.user} if deployment.user else {}
    env.update((name, value) for name, value in sorted(environ.items())
               if name in PASSED_VARIABLES or name.startswith(PASSED_PREFIXES))
    start_date = start_date or datetime.datetime.now(datetime.timezone.utc).date()
    text = _render(deployment, dag_id, writer, env, max_workers, worker_pool, paused, start_date)
    return DagFile(dag_id, text, tuple(writer.warnings))


class _DagWriter:
    """Writes the task lines of a structure: `lines` in order, `tasks` every task variable."""

    def __init__(self, deployment, decorators, bin_dir):
        import os

        self.deployment = deployment
        self.decorators = decorators
        self.executable = os.path.join(bin_dir, "mflow-task") if bin_dir else "mflow-task"
        self.lines = []
        self.tasks = []
        self.warnings = []
        self.splits_of = {}  # foreach step -> the expression of its split ids

    def sequence(self, nodes, level, upstream=()):
        """Write `nodes`, each task mapped over `level` (None: not mapped) and after the task
        variables `upstream`; the task variables the next node goes after."""
        from mflow.deploy import ForEach, Parallel

        for node in nodes:
            if isinstance(node, Parallel):
                ends = []
                for branch in node.branches:
                    ends.extend(self.sequence(branch, level, upstream))
                upstream = ends
            elif isinstance(node, ForEach):
                upstream = self.sequence(node.body, self.splits_of[node.step], ())
            else:
                upstream = [self.step(node, level, upstream)]
        return upstream

    def step(self, step, level, upstream):
        name = "step_" + step.name
        decorators = self.decorators[step.name]
        self._warn_engines(step.name, decorators)
        command = self.command(step, level is not None, decorators)
        options = ["task_id=%r" % step.name, "bash_command=%r" % command]
        options += _retry_options(decorators)
        if step.kind == "foreach":
            options.append("output_processor=foreach_splits")
        if level is None:
            if step.name == "start" and self.deployment.parameters:
                options.append('env=dict(ENV, MF_PARAMS="{{ params | mflow_params }}")')
            else:
                options.append("env=ENV")
            self.lines.append("%s = BashOperator(%s)" % (name, _arguments(options)))
        else:
            self.lines.append("%s = BashOperator.partial(%s).expand(env=%s)" % (name, _arguments(options), level))
        self.tasks.append(name)
        # A task mapped over a foreach's splits already follows the task whose output it maps.
        following = [task for task in upstream if not step.split_index]
        if following:
            self.lines.append("%s >> %s" % (_task_list(following), name))
        if step.kind == "foreach":
            self.splits_of[step.name] = self._splits(step, name, level)
        return name

    def _splits(self, step, name, level):
        """The expression of a foreach step's split ids, mapped to the env of their tasks."""
        if level is None:
            return "%s.output.map(split_env)" % name
        # Each task of a foreach inside a foreach reports its own splits: gather them all.
        gathered = "splits_" + step.name
        self.lines.append("%s = task(all_splits, task_id=%r)(%s.output)" % (gathered, SPLITS_TASK % step.name,
                                                                             name))
        self.tasks.append(gathered)
        return "%s.map(split_env)" % gathered

    def command(self, step, mapped, decorators):
        """The bash command of the step's task: one mflow-task, and on the last try of a step
        with @catch its stand-in when the step failed."""
        from mflow.deploy import task_command

        me = "\0task\0" if mapped else "1"
        parent = "\0parent\0" if mapped else "1"
        inputs = [i.ref(parent if i.relation == "parent" else me) for i in step.inputs]
        params = "\0params\0" if step.name == "start" and self.deployment.parameters else None
        split = "\0split\0" if step.split_index else None

        def line(attempt):
            argv = task_command(self.deployment, step.name, "\0run\0", me, inputs, split, params,
                                attempt=attempt, executable=self.executable)
            return " ".join(_shell_word(arg) for arg in argv)

        text = line("\0attempt\0")
        if "catch" in decorators:
            # The stand-in is one attempt more than the last; Airflow's tries count from 1.
            retries = decorators.get("retry", {}).get("times", 0)
            text += "{%% if ti.try_number > %d %%} || %s --fallback{%% endif %%}" % (retries, line("\0fallback\0"))
        return text

    def _warn_engines(self, step, decorators):
        for engine in ("batch", "slurm"):
            if engine in decorators:
                self.warnings.append("step %s has @%s, but on Airflow its task runs on the Airflow worker" % (step,
                                                                                                          engine))


def _retry_options(decorators):
    """BaseOperator options of @retry and @timeout: Airflow retries, mflow-task times out
    first (and records it), Airflow kills a task that outlives that by its grace."""
    import datetime

    from mflow.decospec import retry_delay, timeout_seconds
    from mflow.runtime.driver import TIMEOUT_GRACE_SECONDS

    options = []
    retry = decorators.get("retry")
    if retry and retry["times"]:
        options.append("retries=%d" % retry["times"])
        options.append("retry_delay=%r" % datetime.timedelta(seconds=retry_delay(retry, 1, remote=True)))
        if retry.get("backoff", 1) > 1:
            options.append("retry_exponential_backoff=%r" % float(retry["backoff"]))
    timeout = decorators.get("timeout")
    if timeout:
        options.append("execution_timeout=%r" % datetime.timedelta(seconds=timeout_seconds(timeout)
                                                                   + TIMEOUT_GRACE_SECONDS))
    return [option.replace("datetime.timedelta", "timedelta") for option in options]


def _arguments(options):
    """Keyword arguments one a line, as the DAG file shows them."""
    return "\n%s" % "".join("    %s,\n" % option for option in options)


def _task_list(names):
    return names[0] if len(names) == 1 else "[%s]" % ", ".join(names)


def _shell_word(arg):
    """`arg` as one bash word, its run-time tokens made Jinja or shell variables."""
    import shlex

    if any(marker in arg for marker in ("{{", "{%", "{#")):
        raise DeployError("%r would be read as an Airflow template" % arg,
                          "Use a store, flow file and names without {{, {%% or {#")
    word = shlex.quote(arg)
    if "\0" not in word:
        return word
    for token, value in _TOKENS.items():
        word = word.replace(token, value)
    # A variable at either end leaves an empty '' there.
    word = word[2:] if word.startswith("''\"") else word
    return word[:-2] if word.endswith("\"''") else word


def _param(parameter):
    """The Param(...) of a flow parameter: its default (None: the deployment's), its JSON
    Schema type, its help as the description."""
    kind = PARAM_TYPES.get(parameter.type_name)
    options = []
    if parameter.default is not None or not parameter.required:
        options.append(repr(parameter.default))
    if kind is not None:
        options.append("type=%r" % ([kind, "null"] if parameter.default is None and not parameter.required else kind))
    if parameter.help:
        options.append("description=%r" % parameter.help)
    return "Param(%s)" % ", ".join(options)


def _render(deployment, dag_id, writer, env, max_workers, worker_pool, paused, start_date):
    import inspect
    import textwrap

    from mflow.deploy import failure_command

    parameters = [p for p in deployment.parameters if p.kind == "Parameter"]
    meta = writer.executable[: -len("mflow-task")] + "mflow-meta"
    failure = failure_command(deployment, "{run_id}", "an Airflow task failed for good", executable=meta)
    schedule = deployment.schedule
    doc = (deployment.graph.doc or "").strip().splitlines()
    default_args = {"retries": 0, "append_env": True}
    if worker_pool:
        default_args["pool"] = worker_pool
    dag_options = [
        "dag_id=%r" % dag_id,
        "description=%r" % (doc[0] if doc else "mflow flow %s" % deployment.flow),
        "schedule=%s" % ("CronTriggerTimetable(%r, timezone=%r)" % (schedule.cron5, schedule.timezone or "UTC")
                         if schedule else "None"),
        "start_date=datetime(%d, %d, %d, tzinfo=timezone.utc)" % (start_date.year, start_date.month, start_date.day),
        "catchup=False",
        "max_active_tasks=%d" % max_workers,
        "is_paused_upon_creation=%r" % bool(paused),
        "tags=%r" % (["mflow"] + [tag for tag in deployment.tags if len(tag) <= 100]),
        "params={%s}" % ", ".join("%r: %s" % (p.name, _param(p)) for p in parameters),
        "default_args=%r" % default_args,
        'user_defined_filters={"mflow_run_id": mflow_run_id, "mflow_params": mflow_params}',
    ]
    body = [textwrap.indent(line, "    ") for line in writer.lines]
    body.append("    failed = task(run_failed, task_id=%r, trigger_rule=\"one_failed\", retries=2, "
                "retry_delay=timedelta(seconds=30))()" % FAILURE_TASK)
    body.append("    %s >> failed" % _task_list(writer.tasks))
    return _TEMPLATE.format(
        dag_id=dag_id,
        flow=deployment.flow,
        deployment_id=deployment.id,
        timetable=", CronTriggerTimetable" if schedule else "",
        constants="\n".join((
            "FLOW = %r" % deployment.flow,
            "DEPLOYMENT = %r" % deployment.id,
            "STORE = %r" % deployment.store_url,
            "# Every task's environment beyond the worker's own (which holds any credentials).",
            "ENV = %r" % env,
            "PARAMETERS = %r" % (tuple(p.name for p in parameters),),
            "# Records the run as failed; {run_id} is the mflow run id.",
            "RUN_FAILED = %r" % failure,
        )),
        run_id_function=inspect.getsource(mflow_run_id).replace("    import hashlib\n\n", ""),
        dag_options="".join("    %s,\n" % option for option in dag_options),
        body="\n".join(body),
    )


_TEMPLATE = '''\
"""Airflow DAG {dag_id}: mflow flow {flow}, deployment {deployment_id}.

Written by `mflow airflow create`; regenerate it rather than edit it. Each task runs one
mflow-task against the store; a foreach maps its body's tasks over the split ids its task
prints; task run-failed records the mflow run as failed when a task fails for good.
"""

import hashlib
import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, task{timetable}
from airflow.sdk.exceptions import AirflowFailException

{constants}
NOT_FOUND = 4  # mflow-meta's exit status for a run that is not there (its start never ran)


{run_id_function}

def mflow_params(params):
    """The --params JSON of the start task: the run's parameter values (None: the default)."""
    given = {{name: params[name] for name in PARAMETERS if name in params and params[name] is not None}}
    return json.dumps(given)


def foreach_splits(output):
    """The task ids of a foreach task's splits, from the result line mflow-task prints last."""
    try:
        result = json.loads(output)
    except ValueError:
        raise ValueError("the last line mflow-task printed is not its result line: %r" % output[:500]) from None
    task_id = result["pathspec"].rsplit("/", 1)[1]
    return ["%s-%d" % (task_id, index) for index in range(result["foreach_splits"])]


def all_splits(splits):
    """The split ids of every task of a foreach step inside another foreach, in order."""
    return [task_id for task_ids in splits for task_id in task_ids]


def split_env(task_id):
    """The environment of the task of a foreach split: its id, its parent's, its index."""
    parent, index = task_id.rsplit("-", 1)
    return dict(ENV, MF_TASK_ID=task_id, MF_PARENT_ID=parent, MF_SPLIT_INDEX=index)


def run_failed(run_id=None):
    """Record the mflow run as failed, then fail the DAG run: a task has failed for good."""
    run = mflow_run_id(run_id)
    done = subprocess.run([arg.replace("{{run_id}}", run) for arg in RUN_FAILED], env=dict(os.environ, **ENV))
    if done.returncode not in (0, NOT_FOUND):
        raise RuntimeError("mflow-meta run-end exited %d; a retry may reach the store" % done.returncode)
    raise AirflowFailException("a task of mflow run %s/%s failed: the run is recorded as failed" % (FLOW, run))


with DAG(
{dag_options}) as dag:
{body}
'''
