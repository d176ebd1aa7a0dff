"""AWS Batch: a task attempt as one Batch job running `mflow-task` in the step's image.

boto3's batch client (imported here only) with bounded retries and timeouts; the standard
AWS configuration supplies region and credentials, MFLOW_BATCH_ENDPOINT_URL an emulator.
"""

import hashlib
import math
import shlex
import time

import orjson

from mflow.errors import ExecutorError

from . import positive_float
from .base import (
    CANCELLED, FAILED, JOB_PREFIX, PENDING, RUNNING, SUCCEEDED, Executor, JobInfo, JobState, merged_resources,
    parse_job_name,
)

NAME = "batch"
DEFAULT_PROGRAM = "mflow-task"
DEFAULT_ATTEMPTS = 4  # botocore's "standard" mode: exponential backoff with jitter
DEFAULT_POLL_SECONDS = 5.0
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0
#: AWS Batch refuses a timeout under 60 seconds.
MIN_TIMEOUT_SECONDS = 60
#: Jobs per DescribeJobs request, AWS Batch's limit.
DESCRIBE_BATCH = 100
#: What a job definition asks for when a submission does not override it (every one does).
DEFINITION_RESOURCES = (("VCPU", "1"), ("MEMORY", "4096"))
#: Where `@batch(use_tmpfs=True)` mounts its tmpfs; TMPDIR points there.
TMPFS_PATH = "/mflow_tmpfs"
#: mflow's own reasons for terminating a job start with this, so a poll in any process
#: tells a job mflow cancelled from one that failed.
CANCEL_PREFIX = "mflow: "
TIMEOUT_STATUS_REASON = "Job attempt duration exceeded timeout"
PENDING_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
#: Never sent to a job: its container gets credentials from its job role.
SECRET_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "AWS_PROFILE")
DENIED_CODES = ("AccessDeniedException", "AccessDenied")
BAD_CREDENTIAL_CODES = ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                        "InvalidClientTokenId", "SignatureDoesNotMatch")


class BatchExecutor(Executor):
    """Submits, polls, terminates and lists mflow's jobs on AWS Batch.

    Settings: MFLOW_BATCH_QUEUE, MFLOW_BATCH_IMAGE, MFLOW_BATCH_IAM_ROLE,
    MFLOW_BATCH_EXECUTION_ROLE (each a default the @batch decorator overrides),
    MFLOW_BATCH_PROGRAM (how the image starts mflow-task), MFLOW_BATCH_ENDPOINT_URL,
    MFLOW_BATCH_RETRIES and MFLOW_BATCH_POLL_SECONDS.
    """

    name = NAME

    def __init__(self, environ, queues=()):
        super().__init__(environ)
        self.endpoint = environ.get("MFLOW_BATCH_ENDPOINT_URL") or None
        self.attempts = int(positive_float(environ, "MFLOW_BATCH_RETRIES", DEFAULT_ATTEMPTS))
        self.poll_interval = positive_float(environ, "MFLOW_BATCH_POLL_SECONDS", DEFAULT_POLL_SECONDS)
        self.program = shlex.split(environ.get("MFLOW_BATCH_PROGRAM") or DEFAULT_PROGRAM)
        #: The queues jobs() searches; empty: every job queue of the region.
        self.queues = list(queues)
        self._session = None
        self._client = None
        self._definitions = {}  # definition name -> ARN

    # --- the client ---------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._connect()
        return self._client

    def _connect(self):
        """Set up the boto3 session and batch client; the session."""
        from botocore.config import Config

        from mflow.store.s3 import aws_session, configured_region

        try:
            session = aws_session(self.environ)
            region = configured_region(self.environ, session)
            if region is None:
                raise ExecutorError(
                    "no AWS region is set for AWS Batch", "Set AWS_DEFAULT_REGION (or a region in your AWS profile)",
                    executor=NAME,
                )
            config = Config(
                region_name=region,
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                retries={"mode": "standard", "total_max_attempts": self.attempts},
            )
            client = session.client("batch", endpoint_url=self.endpoint, config=config)
        except ExecutorError:
            raise
        except Exception as exc:  # a malformed endpoint URL, an unknown profile
            raise ExecutorError(
                "cannot set up AWS Batch: %s" % exc, "Check MFLOW_BATCH_ENDPOINT_URL and your AWS configuration",
                executor=NAME,
            ) from exc
        self._session, self._client = session, client
        return session

    @property
    def region(self):
        return self.client.meta.region_name

    def _where(self):
        return self.endpoint or "AWS Batch in %s" % self.region

    def _call(self, action, function, **kwargs):
        """One boto3 call; every failure a one-line ExecutorError naming `action`."""
        from botocore import exceptions as bx

        try:
            return function(**kwargs)
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = error.get("Message") or code
            if code in BAD_CREDENTIAL_CODES:
                raise ExecutorError(
                    "%s rejected the AWS credentials (%s) when trying to %s" % (self._where(), code, action),
                    "Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_PROFILE", executor=NAME,
                ) from exc
            if code in DENIED_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403:
                raise ExecutorError(
                    "permission denied: cannot %s on %s (%s)" % (action, self._where(), message),
                    "Ask for the AWS Batch permissions listed in man mflow (ENVIRONMENT)", executor=NAME,
                ) from exc
            raise ExecutorError(
                "%s refused to %s: %s" % (self._where(), action, message), "Check the @batch settings", executor=NAME
            ) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError) as exc:
            raise _no_credentials(exc) from exc
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
            raise ExecutorError(
                "cannot reach %s to %s after %d attempts" % (self._where(), action, self.attempts),
                "Check MFLOW_BATCH_ENDPOINT_URL, AWS_DEFAULT_REGION and your network", executor=NAME,
            ) from exc
        except bx.BotoCoreError as exc:
            raise ExecutorError(
                "cannot %s on %s: %s" % (action, self._where(), exc), "Retry; check your AWS configuration",
                executor=NAME,
            ) from exc

    def _pages(self, action, operation, key, **kwargs):
        """Every item under `key` of a paginated operation's pages."""
        items = []
        token = None
        while True:
            more = {"nextToken": token} if token else {}
            page = self._call(action, getattr(self.client, operation), **kwargs, **more)
            items.extend(page.get(key) or [])
            token = page.get("nextToken")
            if not token:
                return items

    # --- before the run -----------------------------------------------------------------------

    def check(self, store, options_by_step):
        if not store.url.startswith("s3://"):
            steps = ", ".join(sorted(options_by_step))
            raise ExecutorError(
                "@batch step%s %s cannot use the local store %s: AWS Batch containers cannot reach this machine's "
                "folders" % ("s" if len(options_by_step) > 1 else "", steps, store.url),
                "Run with --store s3://BUCKET/PREFIX (or MFLOW_STORE)", executor=NAME,
            )
        queues = {}
        for step, options in sorted(options_by_step.items()):
            self.image(options, step)
            queues.setdefault(self.queue(options, step), step)
        if self._connect().get_credentials() is None:
            raise _no_credentials()
        found = {q["jobQueueName"]: q for q in self._pages("describe job queues", "describe_job_queues", "jobQueues",
                                                           jobQueues=sorted(queues))}
        for queue, step in sorted(queues.items()):
            described = found.get(queue) or next((q for q in found.values() if q.get("jobQueueArn") == queue), None)
            if described is None:
                raise ExecutorError(
                    "AWS Batch job queue %s (step %s) does not exist at %s" % (queue, step, self._where()),
                    "Give an existing queue with @batch(queue=...) or MFLOW_BATCH_QUEUE", executor=NAME,
                )
            if described.get("state") != "ENABLED" or described.get("status") != "VALID":
                raise ExecutorError(
                    "AWS Batch job queue %s (step %s) is %s and %s, so it would run no job"
                    % (queue, step, described.get("state"), described.get("status")),
                    "Enable the queue or fix its compute environment, or use another queue", executor=NAME,
                )

    def queue(self, options, step=None):
        queue = options.get("queue") or self.environ.get("MFLOW_BATCH_QUEUE")
        if not queue:
            raise ExecutorError(
                "no AWS Batch job queue for step %s" % step, "Set MFLOW_BATCH_QUEUE or give @batch(queue=...)",
                executor=NAME,
            )
        return queue

    def image(self, options, step=None):
        image = options.get("image") or self.environ.get("MFLOW_BATCH_IMAGE")
        if not image:
            raise ExecutorError(
                "no container image for @batch step %s" % step,
                "Set MFLOW_BATCH_IMAGE or give @batch(image=...): an image with mflow installed", executor=NAME,
            )
        return image

    # --- submitting ---------------------------------------------------------------------------

    def definition(self, options, resources=None, step=None):
        """The job definition's fields for a step's @batch options (one per distinct set)."""
        container = {
            "image": self.image(options, step),
            "command": list(self.program),
            "resourceRequirements": [{"type": kind, "value": value} for kind, value in DEFINITION_RESOURCES],
        }
        role = options.get("iam_role") or self.environ.get("MFLOW_BATCH_IAM_ROLE")
        if role:
            container["jobRoleArn"] = role
        execution_role = options.get("execution_role") or self.environ.get("MFLOW_BATCH_EXECUTION_ROLE")
        if execution_role:
            container["executionRoleArn"] = execution_role
        linux = {}
        shared_memory = max(options.get("shared_memory") or 0, (resources or {}).get("shared_memory") or 0)
        if shared_memory:
            linux["sharedMemorySize"] = _mib(shared_memory)
        if options.get("max_swap") is not None:
            linux["maxSwap"] = _mib(options["max_swap"])
        if options.get("swappiness") is not None:
            linux["swappiness"] = int(options["swappiness"])
        if options.get("use_tmpfs") or options.get("tmpfs_size"):
            memory = (resources or {}).get("memory") or options.get("memory") or 4096
            size = options.get("tmpfs_size") or memory / 2  # as Metaflow: half the memory
            linux["tmpfs"] = [{"containerPath": TMPFS_PATH, "size": _mib(size), "mountOptions": ["rw"]}]
            container["environment"] = [{"name": "TMPDIR", "value": TMPFS_PATH}]
        if linux:
            container["linuxParameters"] = linux
        digest = hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
        return {"jobDefinitionName": "mflow-%s" % digest, "type": "container", "containerProperties": container}

    def _definition_arn(self, definition):
        """The ARN of an ACTIVE job definition with these fields, registered on first use."""
        name = definition["jobDefinitionName"]
        arn = self._definitions.get(name)
        if arn is None:
            found = self._pages("describe job definition %s" % name, "describe_job_definitions", "jobDefinitions",
                                jobDefinitionName=name, status="ACTIVE")
            if found:
                arn = max(found, key=lambda d: d.get("revision", 0))["jobDefinitionArn"]
            else:
                arn = self._call("register job definition %s" % name, self.client.register_job_definition,
                                 **definition)["jobDefinitionArn"]
            self._definitions[name] = arn
        return arn

    def job_request(self, task):
        """The SubmitJob request for one RemoteTask (its job definition registered if need be)."""
        options = task.options or {}
        resources = merged_resources(task.resources, options)
        definition = self.definition(options, task.resources, task.step)
        requirements = [{"type": "VCPU", "value": _number(resources["cpu"] or 1)},
                        {"type": "MEMORY", "value": "%d" % _mib(resources["memory"] or 4096)}]
        if resources["gpu"]:
            requirements.append({"type": "GPU", "value": "%d" % int(resources["gpu"])})
        tags = dict(options.get("tags") or {})
        tags.update(task.labels)
        request = {
            "jobName": task.job_name,
            "jobQueue": self.queue(options, task.step),
            "jobDefinition": self._definition_arn(definition),
            "containerOverrides": {
                "command": list(self.program) + [str(a) for a in task.arguments],
                "environment": self._environment(task.environment),
                "resourceRequirements": requirements,
            },
            "tags": tags,
            "propagateTags": True,
            # mflow retries a task itself, with a new job for each attempt.
            "retryStrategy": {"attempts": 1},
        }
        if task.timeout:
            request["timeout"] = {"attemptDurationSeconds": max(MIN_TIMEOUT_SECONDS, int(math.ceil(task.timeout)))}
        return request

    def _environment(self, environment):
        passed = {k: str(v) for k, v in (environment or {}).items()
                  if k not in SECRET_VARIABLES and not k.startswith("AWS_BATCH")}
        if "AWS_REGION" not in passed and "AWS_DEFAULT_REGION" not in passed:
            passed["AWS_DEFAULT_REGION"] = self.region
        return [{"name": k, "value": v} for k, v in sorted(passed.items())]

    def submit(self, task):
        request = self.job_request(task)
        answer = self._call("submit job %s to queue %s" % (request["jobName"], request["jobQueue"]),
                            self.client.submit_job, **request)
        return answer["jobId"]

    # --- watching, stopping, listing ----------------------------------------------------------

    def _describe(self, job_ids):
        jobs = []
        job_ids = list(job_ids)
        for start in range(0, len(job_ids), DESCRIBE_BATCH):
            chunk = job_ids[start:start + DESCRIBE_BATCH]
            jobs.extend(self._call("describe jobs", self.client.describe_jobs, jobs=chunk).get("jobs") or [])
        return jobs

    def poll(self, job_ids):
        found = {job["jobId"]: job_state(job) for job in self._describe(job_ids)}
        for job_id in job_ids:
            if job_id not in found:
                found[job_id] = job_state({"jobId": job_id, "status": "FAILED",
                                           "statusReason": "AWS Batch no longer knows job %s" % job_id})
        return found

    def cancel(self, job_ids, reason="cancelled by mflow"):
        reason = reason if reason.startswith(CANCEL_PREFIX) else CANCEL_PREFIX + reason
        for job_id in job_ids:
            # TerminateJob stops a job in any state; on a finished job it does nothing.
            self._call("terminate job %s" % job_id, self.client.terminate_job, jobId=job_id, reason=reason[:1024])

    def jobs(self, job_filter):
        queues = self.queues or [q["jobQueueName"] for q in self._pages(
            "list job queues", "describe_job_queues", "jobQueues")]
        summaries = {}
        for queue in queues:
            if job_filter.active_only:
                # Listing by status is the cheap way to active jobs; a name filter lists every status.
                for status in PENDING_STATUSES + ("RUNNING",):
                    for job in self._pages("list jobs of queue %s" % queue, "list_jobs", "jobSummaryList",
                                           jobQueue=queue, jobStatus=status):
                        summaries[job["jobId"]] = job
            else:
                for job in self._pages("list jobs of queue %s" % queue, "list_jobs", "jobSummaryList", jobQueue=queue,
                                       filters=[{"name": "JOB_NAME", "values": [JOB_PREFIX + "-*"]}]):
                    summaries[job["jobId"]] = job
        wanted = []
        for job_id, summary in summaries.items():
            name = summary.get("jobName") or ""
            if not name.startswith(JOB_PREFIX + "-"):
                continue  # not one of mflow's jobs
            identity = parse_job_name(name)
            if identity and job_filter.flow is not None and identity[0] != job_filter.flow:
                continue
            if identity and job_filter.run_id is not None and identity[1] != str(job_filter.run_id):
                continue
            wanted.append(job_id)
        infos = [job_info(job) for job in self._describe(wanted)]
        return sorted((i for i in infos if job_filter.matches(i)), key=lambda i: (i.submitted_at or "", i.name))

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None


def job_state(job):
    """The JobState of one job as DescribeJobs describes it."""
    status = job.get("status")
    if status in PENDING_STATUSES:
        return JobState(job["jobId"], PENDING)
    if status == "RUNNING":
        return JobState(job["jobId"], RUNNING)
    container = job.get("container") or {}
    attempts = job.get("attempts") or []
    last = (attempts[-1].get("container") or {}) if attempts else {}
    exit_code = container.get("exitCode", last.get("exitCode"))
    if status == "SUCCEEDED":
        return JobState(job["jobId"], SUCCEEDED, exit_code if exit_code is not None else 0)
    reason = job.get("statusReason") or ""
    if reason.startswith(CANCEL_PREFIX):
        return JobState(job["jobId"], CANCELLED, exit_code, reason[len(CANCEL_PREFIX):])
    if reason.startswith(TIMEOUT_STATUS_REASON):
        reason = "timed out: AWS Batch stopped the job at its time limit (%s)" % reason
    detail = container.get("reason") or last.get("reason")
    if detail and detail not in reason:
        reason = "%s: %s" % (reason, detail) if reason else detail
    return JobState(job["jobId"], FAILED, exit_code, reason or "AWS Batch reports the job %s" % (status or "failed"))


def job_info(job):
    """The JobInfo of one of mflow's jobs as DescribeJobs describes it (identity from its tags,
    else from its name)."""
    tags = job.get("tags") or {}
    identity = parse_job_name(job.get("jobName")) or (None,) * 5
    attempt = tags.get("mflow.attempt")
    state = job_state(job)
    created = job.get("createdAt")
    return JobInfo(
        executor=NAME,
        job_id=job["jobId"],
        name=job.get("jobName", ""),
        flow=tags.get("mflow.flow") or identity[0],
        run_id=tags.get("mflow.run") or identity[1],
        step=tags.get("mflow.step") or identity[2],
        task_id=tags.get("mflow.task") or identity[3],
        attempt=int(attempt) if attempt and attempt.isdigit() else identity[4],
        user=tags.get("mflow.user") or None,
        state=state.state,
        submitted_at=_iso(created) if created else None,
        reason=state.reason or job.get("statusReason"),
    )


def _no_credentials(cause=None):
    return ExecutorError(
        "no AWS credentials for AWS Batch%s" % (" (%s)" % cause if cause else ""),
        "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", executor=NAME,
    )


def _mib(megabytes):
    return int(math.ceil(float(megabytes)))


def _number(value):
    """A vCPU count as Batch takes it: whole numbers without a point (0.25 on Fargate)."""
    return "%d" % value if float(value).is_integer() else "%g" % value


def _iso(milliseconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(milliseconds / 1000.0))


EXECUTOR_CLASS = BatchExecutor
