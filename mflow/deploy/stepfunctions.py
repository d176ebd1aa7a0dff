"""AWS Step Functions: a deployed flow as an Amazon States Language state machine whose Task
states run mflow-task as AWS Batch jobs, and the AWS calls that deploy, start, list and delete it.

Every step is a Task state (batch:submitJob.sync); static branches are a Parallel state; a
foreach is a Map state over the split indices that the foreach task writes to a DynamoDB
table (mflow.deploy.stepfunctions_runtime) and a dynamodb:getItem state reads back. A failure
anywhere is caught, recorded by a Batch job running `mflow-meta run-end --status failed`, and
ends in a Fail state. boto3 is imported only where AWS is called.
"""

from __future__ import annotations

import math
import re

from mflow.errors import DeployError, ExecutorError, ParameterError
from mflow.namedtuple import NamedTuple

SUBMIT_JOB = "arn:aws:states:::batch:submitJob.sync"
GET_ITEM = "arn:aws:states:::dynamodb:getItem"
#: A run's id is this and the execution's name (the name is what Step Functions shows).
RUN_PREFIX = "sfn-"
#: How many foreach splits run at once (Map's MaxConcurrency), as Metaflow's --max-workers.
DEFAULT_MAX_WORKERS = 100
#: Step Functions' limit for state machine and rule names.
NAME_LIMIT = 80
#: The DynamoDB attributes of a foreach task's item: the key, the split indices, expiry.
SPLITS_KEY, SPLITS_ATTRIBUTE, SPLITS_TTL = "pathspec", "splits", "ttl"
#: How long a split count is kept in the table (DynamoDB's TTL deletes it after).
SPLITS_TTL_SECONDS = 30 * 24 * 3600
RUNTIME_MODULE = "mflow.cli.stepfunctions"  # its split_writer(), around mflow.deploy.stepfunctions_runtime
DEFAULT_PYTHON = "python3"
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
DEFAULT_ATTEMPTS = 3
#: Execution statuses, as list-runs filters them.
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
BAD_CREDENTIAL_CODES = ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                        "InvalidClientTokenId", "SignatureDoesNotMatch")

_INIT, _RECORD_FAILURE, _FAIL = "mflow: run", "mflow: record failure", "mflow: failed"
# Placeholders task_command() inserts verbatim, turned into JSONPath by _dynamic() below.
_SLOT = "\x00%s\x00"
_SLOTS = {
    "run": "$.run_id",
    "task": "$.task_id",
    "parent": "$.parent_id",
    "split": "$.split_index",
    "params": "$.params",
    "attempt": "States.Format('{}', $$.State.RetryCount)",
    "reason": "$.reason",
}
_SLOT_PATTERN = "\x00([a-z]+)\x00"


def slot(name):
    return _SLOT % name


class StepJob(NamedTuple):
    """How one step's tasks run on AWS Batch: the SubmitJob request of mflow's Batch
    executor for it (placeholders where the run, task and attempt go), the job definition
    it names, and its @retry / @catch."""

    step: str
    request: dict
    definition: dict
    retry: Optional[dict]
    catch: bool


class Settings(NamedTuple):
    """The AWS side of a deployment: names, roles and tables from the command line or MFLOW_*."""

    name: str  # the state machine's (and the EventBridge rule's) name
    role: Optional[str]  # MFLOW_SFN_IAM_ROLE: the role Step Functions runs as
    events_role: Optional[str]  # MFLOW_EVENTS_SFN_ACCESS_IAM_ROLE: lets EventBridge start it
    table: Optional[str]  # MFLOW_SFN_DYNAMO_DB_TABLE: the foreach split counts
    max_workers: int = DEFAULT_MAX_WORKERS
    workflow_timeout: Optional[int] = None
    python: str = DEFAULT_PYTHON  # the image's Python with mflow, for the foreach tasks


def state_machine_name(deployed_name, given=None):
    """The state machine's name: --name, else the deployed name (Flow or project.branch.Flow),
    its characters that Step Functions refuses made `-`, cut to 80 with a hash if longer."""
    import hashlib

    name = given or deployed_name
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", name)
    if len(safe) > NAME_LIMIT:
        digest = hashlib.sha256(safe.encode("utf-8")).hexdigest()[:8]
        safe = safe[:NAME_LIMIT - 9] + "-" + digest
    return safe


def check_flow(graph, flow_class, decorators_of):
    """DeployError naming what Step Functions cannot run: a switch or a loop (the deploy
    core's check), a @slurm step, a @schedule timezone (EventBridge rules run in UTC)."""
    from mflow.deploy import structure
    from mflow.flow.decorators import flow_decorators

    structure(graph, "step-functions")
    for step in graph.steps:
        if "slurm" in decorators_of(step):
            raise DeployError(
                "flow %s cannot run on Step Functions: step %s is @slurm, and Step Functions runs every step on "
                "AWS Batch" % (graph.name, step),
                "Remove @slurm from the step (use @batch or @resources)", step=step,
            )
    schedule = flow_decorators(flow_class).get("schedule")
    if schedule is not None and schedule.attributes.get("timezone"):
        raise DeployError(
            "flow %s has @schedule(timezone=%r), and EventBridge rules run in UTC"
            % (graph.name, schedule.attributes["timezone"]),
            "Give the cron in UTC and drop timezone=",
        )


def step_jobs(deployment, decorators_of, environ, settings):
    """{step: StepJob}: each step's SubmitJob request, built by mflow's AWS Batch executor
    as for `mflow run` (queue, image, roles, resources, @timeout, environment), plus the job
    that records a failed run under the name _RECORD_FAILURE."""
    from mflow.decospec import timeout_seconds
    from mflow.deploy import failure_command, task_command
    from mflow.runtime.executors.base import RemoteTask, merged_resources

    executor = _NamingBatch(environ)
    environment = _job_environment(deployment, environ)
    table = settings.table
    jobs = {}
    for node in _walk(deployment.structure):
        decorators = decorators_of(node.name)
        options = dict(decorators.get("batch") or {})
        resources = merged_resources(decorators.get("resources"), options)
        timeout = decorators.get("timeout")
        arguments = task_command(
            deployment, node.name, slot("run"), slot("task"), _input_refs(node),
            slot("split") if node.split_index else None, slot("params"), attempt=slot("attempt"),
        )[1:]
        if node.kind == "foreach" and not table:
            raise ExecutorError(
                "step %s is a foreach, and Step Functions needs a DynamoDB table to learn its split count" % node.name,
                "Set MFLOW_SFN_DYNAMO_DB_TABLE (or give --dynamodb-table) to a table whose key is the string %s"
                % SPLITS_KEY, executor="step-functions",
            )
        task = RemoteTask(
            flow=deployment.flow, run_id=slot("run"), step=node.name, task_id=slot("task"), attempt=0,
            user=deployment.user or "", arguments=tuple(arguments), environment=environment,
            resources=resources, options=options,
            timeout=timeout_seconds(timeout) if timeout else None,
        )
        request = executor.job_request(task)
        if node.kind == "foreach":
            # The task runs under the split writer, which hands its split indices to DynamoDB.
            overrides = request["containerOverrides"]
            overrides["command"] = [settings.python, "-m", RUNTIME_MODULE, "--table", table, "--key",
                                    _splits_key(deployment, node.name), "--"] + overrides["command"]
        jobs[node.name] = StepJob(node.name, request, executor.definition(options, resources, node.name),
                                  decorators.get("retry"), "catch" in decorators)
    request = executor.job_request(RemoteTask(
        flow=deployment.flow, run_id=slot("run"), step="end", task_id="failed", attempt=0,
        user=deployment.user or "", arguments=(), environment=environment, resources={"cpu": 1, "memory": 1024},
        options={},
    ))
    request["containerOverrides"]["command"] = [_meta_program(executor.program)] + failure_command(
        deployment, slot("run"), slot("reason"))[1:]
    jobs[_RECORD_FAILURE] = StepJob(_RECORD_FAILURE, request, executor.definition({}, None, None), None, False)
    return jobs


class _NamingBatch:
    """mflow's AWS Batch executor, except that a job request names its job definition instead
    of looking up (or registering) its ARN: building a state machine calls no AWS API."""

    def __new__(cls, environ):
        from mflow.runtime.executors.batch import BatchExecutor

        class NamingBatch(BatchExecutor):
            def _definition_arn(self, definition):
                return definition["jobDefinitionName"]

            @property
            def region(self):
                from mflow.store.s3 import aws_session, configured_region

                return configured_region(self.environ, aws_session(self.environ)) or "us-east-1"

        return NamingBatch(environ)


def _job_environment(deployment, environ):
    """The variables a job's mflow-task needs, as `mflow run` passes them to its Batch jobs:
    the store's settings and the user; never credentials (a job has its job role)."""
    from mflow.runtime.remote import PASSED_PREFIXES, PASSED_VARIABLES

    passed = {key: value for key, value in environ.items()
              if key in PASSED_VARIABLES or key.startswith(PASSED_PREFIXES) or key == "MFLOW_DYNAMODB_ENDPOINT_URL"}
    passed["MFLOW_STORE"] = deployment.store_url
    if deployment.user:
        passed["MFLOW_USER"] = deployment.user
    return passed


def _meta_program(program):
    """How the image starts mflow-meta: MFLOW_BATCH_PROGRAM with mflow-task made mflow-meta."""
    last = program[-1] if program else "mflow-task"
    return last[: -len("mflow-task")] + "mflow-meta" if last.endswith("mflow-task") else "mflow-meta"


def _input_refs(node):
    refs = []
    for found in node.inputs:
        if found.relation == "parent":
            refs.append("%s/%s" % (found.step, slot("parent")))
        else:
            refs.append(found.ref(slot("task")))
    return refs


def _splits_key(deployment, step):
    return "%s/%s/%s/%s" % (deployment.flow, slot("run"), step, slot("task"))


def _walk(sequence):
    from mflow.deploy import walk

    return walk(sequence)


# --- the state machine ----------------------------------------------------------------------


def state_machine(deployment, jobs, settings):
    """The Amazon States Language definition (a dict) of the deployment's state machine.

    The state data is {run_id, task_id, params} at the top and {run_id, task_id, parent_id,
    split_index} in a foreach's splits; each step's task reads its inputs' ids from it."""
    from mflow.deploy import ForEach, Parallel

    builder = _Builder(deployment, jobs, settings, ForEach, Parallel)
    states = {
        _INIT: {
            "Type": "Pass",
            "Comment": "The run's id and parameters (the execution input's Parameters, a JSON object as text)",
            "Parameters": {
                "run_id.$": "States.Format('%s{}', $$.Execution.Name)" % RUN_PREFIX,
                "task_id": "1",
                "params.$": "$.Parameters",
            },
        }
    }
    first = builder.sequence(deployment.structure, states, top=True)
    states[_INIT]["Next"] = first
    states[_RECORD_FAILURE] = dict(builder.batch_task(jobs[_RECORD_FAILURE]), Next=_FAIL,
                                   Catch=[{"ErrorEquals": ["States.ALL"], "Next": _FAIL}])
    states[_FAIL] = {"Type": "Fail", "Error": "mflow.RunFailed", "Cause": "A step of the run failed; see mflow logs"}
    definition = {
        "Comment": "mflow flow %s (deployment %s)" % (deployment.flow, deployment.id),
        "StartAt": _INIT,
        "States": states,
    }
    if settings.workflow_timeout:
        definition["TimeoutSeconds"] = int(settings.workflow_timeout)
    return definition


class _Builder:
    def __init__(self, deployment, jobs, settings, foreach_class, parallel_class):
        self.deployment = deployment
        self.jobs = jobs
        self.settings = settings
        self.ForEach = foreach_class
        self.Parallel = parallel_class

    def sequence(self, sequence, states, top):
        """Add the states of `sequence` to `states`, chained; the first one's name. The last
        one ends its branch or iteration (or the whole run, at the top)."""
        names = []
        for node in sequence:
            if isinstance(node, self.ForEach):
                names.extend(self.foreach(node, states, top))
            elif isinstance(node, self.Parallel):
                names.append(self.parallel(node, states, top))
            else:
                names.extend(self.step(node, states, top))
        for name, following in zip(names, names[1:]):
            _chain(states, name, {"Next": following})
        _chain(states, names[-1], {"End": True})
        return names[0]

    def step(self, node, states, top):
        job = self.jobs[node.name]
        state = self.batch_task(job)
        if job.retry and job.retry.get("times"):
            state["Retry"] = [_retry(job.retry)]
        names = [node.name]
        if job.catch:
            # @catch: after the retries, a stand-in task records the failure and the run goes on.
            fallback = self.batch_task(job, fallback=True, attempt=(job.retry or {}).get("times", 0) + 1)
            catch_name = "%s: catch" % node.name
            state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": catch_name}]
            if top:
                self._catch(fallback, node.name, states)
            states[node.name] = state
            states[catch_name] = fallback
        else:
            if top:
                self._catch(state, node.name, states)
            states[node.name] = state
        if node.kind == "foreach":
            read = "%s: splits" % node.name
            states[read] = {
                "Type": "Task",
                "Comment": "How many splits foreach task %s made: its split writer put them here" % node.name,
                "Resource": GET_ITEM,
                "Parameters": {
                    "TableName": self.settings.table,
                    "Key": {SPLITS_KEY: {"S.$": _expression(_splits_key(self.deployment, node.name))}},
                    "ConsistentRead": True,
                },
                "ResultSelector": {"indices.$": "$.Item.%s.L" % SPLITS_ATTRIBUTE},
                "ResultPath": "$.splits",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}],
            }
            if top:
                self._catch(states[read], node.name, states)
            names.append(read)
        return names

    def foreach(self, node, states, top):
        body = {}
        start = self.sequence(node.body, body, top=False)
        name = "%s: foreach" % node.step
        state = {
            "Type": "Map",
            "Comment": "One iteration per split of foreach %s (over %s)" % (node.step, node.var),
            "ItemsPath": "$.splits.indices",
            "ItemSelector": {
                "run_id.$": "$.run_id",
                "parent_id.$": "$.task_id",
                "task_id.$": "States.Format('{}-{}', $.task_id, $$.Map.Item.Index)",
                "split_index.$": "States.Format('{}', $$.Map.Item.Index)",
            },
            "MaxConcurrency": int(self.settings.max_workers),
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": start, "States": body},
            "ResultPath": None,
        }
        if top:
            self._catch(state, "the foreach of %s" % node.step, states)
        states[name] = state
        return [name]

    def parallel(self, node, states, top):
        branches = []
        for branch in node.branches:
            body = {}
            start = self.sequence(branch, body, top=False)
            branches.append({"StartAt": start, "States": body})
        name = "%s: branches" % _first_name(node)
        state = {"Type": "Parallel", "Branches": branches, "ResultPath": None}
        if top:
            self._catch(state, "a branch before %s" % node.join, states)
        states[name] = state
        return name

    def batch_task(self, job, fallback=False, attempt=None):
        request = _pascal(job.request)
        request.pop("PropagateTags", None)  # the Step Functions integration does not take it
        request["JobName"] = _job_name(self.deployment.flow, job.step)
        command = request["ContainerOverrides"]["Command"]
        if fallback:
            command = [str(attempt) if part == slot("attempt") else part for part in command] + ["--fallback"]
            request["Tags"]["mflow.attempt"] = str(attempt)
            request["ContainerOverrides"]["Command"] = command
        return {"Type": "Task", "Resource": SUBMIT_JOB, "Parameters": _dynamic(request), "ResultPath": None}

    def _catch(self, state, what, states):
        """Send any failure of `state` (after its retries) to the failure path, naming `what`."""
        reason = "mflow: failed %s" % what
        note = "%s failed" % what
        states[reason] = {
            "Type": "Pass",
            "Parameters": {
                "run_id.$": "$.run_id",
                "reason.$": "States.Format('%s on AWS Step Functions ({})', $.error.Error)" % _escape(note),
            },
            "Next": _RECORD_FAILURE,
        }
        state.setdefault("Catch", []).append({"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": reason})


def _first_name(parallel):
    return parallel.join


def _chain(states, name, transition):
    """Give state `name` (and its @catch stand-in, which goes on where the step would) its
    Next or End."""
    for key in (name, "%s: catch" % name):
        if key in states:
            states[key].update(transition)


def _retry(retry):
    from mflow.decospec import REMOTE_RETRY_MINUTES

    minutes = retry.get("minutes_between_retries")
    minutes = REMOTE_RETRY_MINUTES if minutes is None else minutes
    rule = {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": max(1, int(math.ceil(60 * minutes))),
            "MaxAttempts": int(retry["times"]), "BackoffRate": float(max(1, retry.get("backoff") or 1))}
    if retry.get("jitter"):
        rule["JitterStrategy"] = "FULL"
    return rule


def _job_name(flow, step):
    # Run, task and attempt are in the job's tags (mflow batch list reads them there).
    return re.sub(r"[^A-Za-z0-9_-]", "_", "mflow-%s-%s" % (flow, step))[:128]


def _pascal(value, keep=False):
    """A Batch API request in the Step Functions integration's spelling (JobName, not
    jobName); the keys of Tags are the user's and stay as they are."""
    if isinstance(value, dict):
        return {(key if keep else key[:1].upper() + key[1:]): _pascal(item, key == "tags") for key, item in value.items()}
    if isinstance(value, list):
        return [_pascal(item) for item in value]
    return value


def _dynamic(value):
    """`value` with its placeholders made JSONPath: a text holding one becomes `KEY.$` with
    its expression, a list of texts holding one `KEY.$` with States.Array."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if isinstance(item, str) and re.search(_SLOT_PATTERN, item):
                result[key + ".$"] = _expression(item)
            elif isinstance(item, list) and any(isinstance(i, str) and re.search(_SLOT_PATTERN, i) for i in item):
                result[key + ".$"] = "States.Array(%s)" % ", ".join(_argument(str(i)) for i in item)
            else:
                result[key] = _dynamic(item)
        return result
    if isinstance(value, list):
        return [_dynamic(item) for item in value]
    return value


def _expression(text):
    """A text with placeholders as one JSONPath expression or intrinsic function."""
    parts = re.split(_SLOT_PATTERN, text)
    literals, names = parts[0::2], parts[1::2]
    if len(names) == 1 and not literals[0] and not literals[1]:
        return _SLOTS[names[0]]
    template = "{}".join(_escape(literal) for literal in literals)
    return "States.Format('%s', %s)" % (template, ", ".join(_SLOTS[name] for name in names))


def _argument(text):
    """One argument of an intrinsic function: a quoted literal, or an expression."""
    if re.search(_SLOT_PATTERN, text):
        return _expression(text)
    return "'%s'" % _escape(text)


def _escape(text):
    """A literal inside an intrinsic function: ', {, } and \\ take a backslash."""
    return re.sub(r"([\\'{}])", r"\\\1", text)


# --- deploying, starting, listing, deleting ------------------------------------------------


def schedule_target_input():
    """What the EventBridge rule hands each execution it starts: no parameters (defaults)."""
    from mflow import jsonio

    return jsonio.dumps({"Parameters": "{}"})


def trigger_input(values):
    """The execution input for parameter values {name: value}."""
    from mflow import jsonio

    return jsonio.dumps({"Parameters": jsonio.dumps(values)})


class StepFunctions:
    """The AWS side: Step Functions, EventBridge and AWS Batch's job definitions, through
    boto3 clients with short connect timeouts and few retries, every failure one ExecutorError.

    Settings: MFLOW_SFN_ENDPOINT_URL, MFLOW_EVENTS_ENDPOINT_URL, MFLOW_BATCH_ENDPOINT_URL
    (emulators), MFLOW_SFN_RETRIES, and the standard AWS region and credentials."""

    def __init__(self, environ):
        from mflow.runtime.executors import positive_float

        self.environ = environ
        self.attempts = int(positive_float(environ, "MFLOW_SFN_RETRIES", DEFAULT_ATTEMPTS))
        self._session = None
        self._clients = {}

    def _client(self, service):
        if service in self._clients:
            return self._clients[service]
        from botocore.config import Config

        from mflow.store.s3 import aws_session, configured_region

        endpoints = {"stepfunctions": "MFLOW_SFN_ENDPOINT_URL", "events": "MFLOW_EVENTS_ENDPOINT_URL",
                     "batch": "MFLOW_BATCH_ENDPOINT_URL"}
        endpoint = self.environ.get(endpoints[service]) or None
        try:
            session = self._session or aws_session(self.environ)
            self._session = session
            region = configured_region(self.environ, session)
            if region is None:
                raise ExecutorError("no AWS region is set for Step Functions",
                                    "Set AWS_DEFAULT_REGION (or a region in your AWS profile)", executor="step-functions")
            if session.get_credentials() is None:
                raise _no_credentials()
            config = Config(region_name=region, connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                            retries={"mode": "standard", "total_max_attempts": self.attempts})
            client = session.client(service, endpoint_url=endpoint, config=config)
        except ExecutorError:
            raise
        except Exception as exc:  # a malformed endpoint URL, an unknown profile
            raise ExecutorError("cannot set up the AWS %s client: %s" % (service, exc),
                                "Check %s and your AWS configuration" % endpoints[service],
                                executor="step-functions") from exc
        self._clients[service] = client
        return client

    def _call(self, service, action, operation, **kwargs):
        """One AWS call; every failure one line naming `action` and where."""
        from botocore import exceptions as bx

        client = self._client(service)
        where = client.meta.endpoint_url if service != "batch" or self.environ.get("MFLOW_BATCH_ENDPOINT_URL") \
            else "AWS Batch in %s" % client.meta.region_name
        try:
            return getattr(client, operation)(**kwargs)
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in BAD_CREDENTIAL_CODES:
                raise ExecutorError("%s rejected the AWS credentials (%s) when trying to %s" % (where, code, action),
                                    "Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_PROFILE",
                                    executor="step-functions") from exc
            raise _ClientError(code, "%s refused to %s: %s" % (where, action, error.get("Message") or code),
                               "Check the settings in man mflow-step-functions (ENVIRONMENT)") from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError) as exc:
            raise _no_credentials(exc) from exc
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
            raise ExecutorError("cannot reach %s to %s after %d attempts" % (where, action, self.attempts),
                                "Check MFLOW_SFN_ENDPOINT_URL, AWS_DEFAULT_REGION and your network",
                                executor="step-functions") from exc
        except bx.BotoCoreError as exc:
            raise ExecutorError("cannot %s on %s: %s" % (action, where, exc), "Retry; check your AWS configuration",
                                executor="step-functions") from exc

    # --- deploying ---------------------------------------------------------------------------

    def register_definitions(self, jobs):
        """Register each distinct job definition the steps use, unless an ACTIVE one has its name."""
        done = set()
        for job in jobs.values():
            name = job.definition["jobDefinitionName"]
            if name in done:
                continue
            done.add(name)
            found = self._call("batch", "describe job definition %s" % name, "describe_job_definitions",
                               jobDefinitionName=name, status="ACTIVE").get("jobDefinitions")
            if not found:
                self._call("batch", "register job definition %s" % name, "register_job_definition", **job.definition)

    def find(self, name):
        """The ARN of state machine `name`, or None."""
        token = None
        while True:
            page = self._call("stepfunctions", "list state machines", "list_state_machines",
                              **({"nextToken": token} if token else {}))
            for machine in page.get("stateMachines") or []:
                if machine["name"] == name:
                    return machine["stateMachineArn"]
            token = page.get("nextToken")
            if not token:
                return None

    def deploy(self, name, definition, role):
        """Create state machine `name`, or update it if it exists; (ARN, created)."""
        from mflow import jsonio

        if not role:
            raise ExecutorError("no IAM role for Step Functions to run state machine %s as" % name,
                                "Set MFLOW_SFN_IAM_ROLE (or give --iam-role) to a role that may submit Batch jobs "
                                "and read the DynamoDB table", executor="step-functions")
        text = jsonio.dumps(definition)
        arn = self.find(name)
        if arn is None:
            answer = self._call("stepfunctions", "create state machine %s" % name, "create_state_machine",
                                name=name, definition=text, roleArn=role)
            return answer["stateMachineArn"], True
        self._call("stepfunctions", "update state machine %s" % name, "update_state_machine",
                   stateMachineArn=arn, definition=text, roleArn=role)
        return arn, False

    def schedule(self, name, arn, schedule, events_role):
        """Create or replace the EventBridge rule that starts the state machine on `schedule`;
        with schedule None, remove a rule left from an earlier deployment."""
        if schedule is None:
            self.unschedule(name)
            return None
        if not events_role:
            raise ExecutorError("no IAM role for EventBridge to start state machine %s on its @schedule" % name,
                                "Set MFLOW_EVENTS_SFN_ACCESS_IAM_ROLE to a role that may start executions of it",
                                executor="step-functions")
        rule = self._call("events", "create rule %s" % name, "put_rule", Name=name,
                          ScheduleExpression=schedule.eventbridge, State="ENABLED",
                          Description="Runs mflow flow %s" % name)["RuleArn"]
        self._call("events", "set the target of rule %s" % name, "put_targets", Rule=name,
                   Targets=[{"Id": "mflow", "Arn": arn, "RoleArn": events_role, "Input": schedule_target_input()}])
        return rule

    def unschedule(self, name):
        """Delete the EventBridge rule `name` with its targets; False if there was none."""
        try:
            targets = self._call("events", "list the targets of rule %s" % name, "list_targets_by_rule", Rule=name)
        except _ClientError as exc:
            if exc.code == "ResourceNotFoundException":
                return False
            raise
        ids = [target["Id"] for target in targets.get("Targets") or []]
        if ids:
            self._call("events", "remove the targets of rule %s" % name, "remove_targets", Rule=name, Ids=ids)
        self._call("events", "delete rule %s" % name, "delete_rule", Name=name)
        return True

    # --- runs --------------------------------------------------------------------------------

    def require(self, name):
        arn = self.find(name)
        if arn is None:
            from mflow.errors import NotFoundError

            raise NotFoundError("no state machine %s on AWS Step Functions" % name,
                                "Deploy it first: mflow step-functions create FLOW.py")
        return arn

    def start(self, arn, execution_name, values):
        answer = self._call("stepfunctions", "start an execution", "start_execution", stateMachineArn=arn,
                            name=execution_name, input=trigger_input(values))
        return answer["executionArn"]

    def describe(self, execution_arn):
        return self._call("stepfunctions", "describe execution", "describe_execution", executionArn=execution_arn)

    def executions(self, arn, statuses=()):
        """Every execution of the state machine (of these statuses), newest first."""
        found = []
        for status in statuses or (None,):
            token = None
            while True:
                more = {"nextToken": token} if token else {}
                if status:
                    more["statusFilter"] = status
                page = self._call("stepfunctions", "list executions", "list_executions", stateMachineArn=arn, **more)
                found.extend(page.get("executions") or [])
                token = page.get("nextToken")
                if not token:
                    break
        return sorted(found, key=lambda e: e.get("startDate") or 0, reverse=True)

    def delete(self, name):
        """Delete state machine `name` and its rule; False if neither was there."""
        rule = self.unschedule(name)
        arn = self.find(name)
        if arn is not None:
            self._call("stepfunctions", "delete state machine %s" % name, "delete_state_machine", stateMachineArn=arn)
        return arn is not None or rule

    def close(self):
        for client in self._clients.values():
            client.close()
        self._clients = {}


class _ClientError(ExecutorError):
    """AWS refused a call; `code` is its error code."""

    def __init__(self, code, message, hint):
        self.code = code
        super().__init__(message, hint, executor="step-functions")


def _no_credentials(cause=None):
    return ExecutorError(
        "no AWS credentials for Step Functions%s" % (" (%s)" % cause if cause else ""),
        "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", executor="step-functions",
    )


def execution_row(flow, execution):
    """One execution as list-runs shows it (schema 1)."""
    run_id = RUN_PREFIX + execution["name"]
    return {
        "schema": 1,
        "run_id": run_id,
        "pathspec": "%s/%s" % (flow, run_id),
        "status": execution.get("status"),
        "started_at": _iso(execution.get("startDate")),
        "stopped_at": _iso(execution.get("stopDate")),
        "execution_arn": execution.get("executionArn"),
    }


def _iso(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(when, "strftime") else when


def execution_name(run_id=None):
    """A new execution's name (the run id without sfn-), or the one `run_id` asks for."""
    if run_id is None:
        import time
        import uuid

        return "%d-%s" % (int(time.time() * 1000), uuid.uuid4().hex[:8])
    name = run_id[len(RUN_PREFIX):] if run_id.startswith(RUN_PREFIX) else run_id
    if not re.match(r"^[A-Za-z0-9_-]{1,80}$", name):
        raise ParameterError("--run-id %r cannot name an execution" % run_id,
                             "Use at most 80 letters, digits, - and _ (after sfn-)")
    return name
