"""AWS Step Functions for the tests: moto's standalone server running state machines for real.

moto's server on a free 127.0.0.1 port, configured (through /moto-api/config) to execute
state machines with its Amazon States Language interpreter and to run AWS Batch jobs as
containers of the test run's own Docker daemon (tests/docker_env.py) on the host's network,
so that they reach the S3 test server and moto itself on 127.0.0.1. Set up like an account:
a Batch compute environment and queue, IAM roles, the DynamoDB table of foreach split counts.
The jobs' image is the mflow image with the S3 test server's credentials in its environment,
as a job role would give a real job its credentials. Started once per test run, stopped by
its PID; if it does not start, every test that needs it fails (never skips).
"""

import os
import subprocess

import pytest
from batch_server import (
    QUEUE, REGION, BatchServer, _create_account, _moto_api, _wait_until_ready, moto_server_command,
)
from s3_server import ADMIN_KEY, ADMIN_SECRET, ISOLATED_AWS, _die_with_parent, free_ports

TABLE = "mflow-sfn-splits"
SFN_ROLE = "arn:aws:iam::123456789012:role/mflow-test-sfn"
EVENTS_ROLE = "arn:aws:iam::123456789012:role/mflow-test-events"


class SfnServer(BatchServer):
    """A running moto server that executes state machines: its endpoint, and the
    environment of a user of `mflow step-functions` with the S3 test server as store."""

    def __init__(self, process, endpoint, log_path, image, s3_env):
        super().__init__(process, endpoint, log_path)
        self.image = image
        self.table = TABLE
        self.env = dict(
            s3_env,
            AWS_DEFAULT_REGION=REGION,
            MFLOW_SFN_ENDPOINT_URL=endpoint,
            MFLOW_BATCH_ENDPOINT_URL=endpoint,
            MFLOW_EVENTS_ENDPOINT_URL=endpoint,
            MFLOW_DYNAMODB_ENDPOINT_URL=endpoint,
            MFLOW_BATCH_QUEUE=QUEUE,
            MFLOW_BATCH_IMAGE=image,
            MFLOW_BATCH_RETRIES="2",
            MFLOW_SFN_IAM_ROLE=SFN_ROLE,
            MFLOW_EVENTS_SFN_ACCESS_IAM_ROLE=EVENTS_ROLE,
            MFLOW_SFN_DYNAMO_DB_TABLE=TABLE,
        )


def start_server(work_dir, docker_env, image, s3_env):
    """Start moto's server executing state machines, its Batch jobs in `image`; an SfnServer."""
    os.makedirs(work_dir, exist_ok=True)
    (port,) = free_ports(1)
    log_path = os.path.join(work_dir, "moto.log")
    env = dict(os.environ, **ISOLATED_AWS, **docker_env)
    env.pop("MOTO_SIMPLE_BATCH_FAIL_AFTER", None)
    # The interpreter's own clients call moto at localhost:MOTO_PORT; Batch containers share
    # the host's network, so that 127.0.0.1 is this machine for them too.
    env.update(MOTO_PORT=str(port), MOTO_DOCKER_NETWORK_MODE="host")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)),
                                                      env.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [_python(), "-c", SERVER_MAIN, "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work_dir, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = SfnServer(process, "http://127.0.0.1:%d" % port, log_path, image, s3_env)
    try:
        _wait_until_ready(server)
        config = _moto_api(server, "/moto-api/config", {"batch": {"use_docker": True},
                                                        "stepfunctions": {"execute_state_machine": True}})
        # moto's answer leaves out the stepfunctions part; a run that executes shows it took.
        if config.get("batch", {}).get("use_docker") is not True:
            pytest.fail("moto_server did not take the batch config use_docker=true: %r" % (config,))
        _create_account(server)
        iam = server.client("iam")
        for role in (SFN_ROLE, EVENTS_ROLE):
            iam.create_role(RoleName=role.rsplit("/", 1)[1], AssumeRolePolicyDocument="{}")
        server.client("dynamodb").create_table(
            TableName=TABLE, KeySchema=[{"AttributeName": "pathspec", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pathspec", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        )
    except BaseException:
        server.stop()
        raise
    return server


# moto's server, with the fixes below applied first.
SERVER_MAIN = "import sfn_server; sfn_server.patch_moto(); from moto.server import main; main()"


def patch_moto():
    """Test-only fixes to moto 5.2.5's Step Functions interpreter, applied as its server starts.

    1. getmoto/moto#10076 (fix proposed in getmoto/moto#10094): a service integration's
    parameters go to boto3 in the state machine's PascalCase (`JobName`), and its answer
    comes back in boto3's casing (`jobId`), because moto's port of LocalStack's interpreter
    reduced StateTaskService._normalise_parameters and _normalise_response to `pass`. AWS
    Batch's submitJob.sync then fails with States.Runtime (cause 'JobName'). Restored here as
    upstream's fix does: both convert through the operation's botocore shapes, with the
    helpers moto kept (_to_boto_request, _from_boto_response).
    2. A retried .sync task timed out at once: see _fresh_task_token_per_attempt()."""
    import botocore.session
    from botocore import xform_name
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    models = {}

    def operation(task, boto_service_name, service_action_name):
        service = task._get_boto_service_name(boto_service_name=boto_service_name)
        action = task._get_boto_service_action(service_action_name=service_action_name)
        if service not in models:
            models[service] = botocore.session.get_session().get_service_model(service)
        model = models[service]
        name = next(op for op in model.operation_names if xform_name(op) == xform_name(action))
        return model.operation_model(name)

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):
        shape = operation(self, boto_service_name, service_action_name).input_shape
        if shape is not None:
            self._to_boto_request(parameters, shape)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):
        shape = operation(self, boto_service_name, service_action_name).output_shape
        if shape is not None:
            self._from_boto_response(response, shape)

    service = state_task_service.StateTaskService
    service._normalise_parameters = normalise_parameters
    service._normalise_response = normalise_response
    _fresh_task_token_per_attempt()


def _fresh_task_token_per_attempt():
    """A .sync task of a service that also supports waitForTaskToken (Batch) listens on its
    task token; the token is made once per state, and the first attempt's end interrupts its
    listener, so a retry (@retry's Retry) "times out" at once (TaskTimedOut, a Catch runs
    while the retried job still runs). AWS gives every attempt a token of its own; so does
    this. No upstream issue found: moto inherited it from LocalStack's interpreter, where
    .sync tasks started listening on the token (localstack/localstack#11197)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition

    task_class = callback.StateTaskServiceCallback
    original = task_class._eval_integration_pattern

    def eval_integration_pattern(self, env, *args, **kwargs):
        if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns:
            token = (env.states.context_object.context_object_data.get("Task") or {}).get("Token")
            endpoint = env.callback_pool_manager.get(token) if token else None
            if endpoint is not None and endpoint._notify_event.is_set():  # an earlier attempt's, interrupted
                env.callback_pool_manager.add(env.states.context_object.update_task_token())
        return original(self, env, *args, **kwargs)

    task_class._eval_integration_pattern = eval_integration_pattern


def _python():
    return os.path.join(os.path.dirname(moto_server_command()[0]), "python")


@pytest.fixture(scope="session")
def sfn_server(tmp_path_factory, docker_daemon, mflow_image, s3_server):
    """moto's Step Functions, Batch (in docker), DynamoDB and EventBridge, for the whole run."""
    credentials = {"AWS_ACCESS_KEY_ID": ADMIN_KEY, "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET,
                   "AWS_EC2_METADATA_DISABLED": "true"}
    image = docker_daemon.with_env(mflow_image, mflow_image.replace(":", "-job:", 1), credentials)
    server = start_server(str(tmp_path_factory.mktemp("moto-sfn")), docker_daemon.env, image, s3_server.env)
    try:
        yield server
    finally:
        server.stop()
