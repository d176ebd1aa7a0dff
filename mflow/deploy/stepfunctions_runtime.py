"""Inside a foreach task's AWS Batch job on Step Functions: run mflow-task, then put the
task's split indices into DynamoDB, where the state machine's getItem state reads them.

A Batch job's result carries no output of the task, so the count travels through a table
(as Metaflow's does): item {pathspec: Flow/run/step/task, splits: [0..n-1], ttl: expiry}.
"""

import os
import signal
import subprocess
import tempfile
import time

from mflow.errors import ExecutorError, ExitCode

#: How long DynamoDB keeps an item (its TTL attribute; the table's TTL must be on to use it).
TTL_SECONDS = 30 * 24 * 3600


def run_foreach_task(table, key, command, environ=None):
    """Run `command` (mflow-task's argv) with --splits-file; on success put its split indices
    under `key` in `table`. The exit code: mflow-task's, or EXECUTOR when DynamoDB refuses."""
    environ = dict(os.environ if environ is None else environ)
    folder = tempfile.mkdtemp(prefix="mflow-splits-")
    path = os.path.join(folder, "splits.json")
    try:
        code = _run(list(command) + ["--splits-file", path], environ)
        if code != 0:
            return code
        from mflow import jsonio

        try:
            with open(path, encoding="utf-8") as handle:
                splits = jsonio.loads(handle.read())
        except FileNotFoundError:
            raise ExecutorError("mflow-task succeeded but wrote no split indices for %s" % key,
                                "Check that the step is a foreach (self.next(..., foreach=...))",
                                executor="step-functions") from None
        put_splits(table, key, splits, environ)
        return ExitCode.OK
    finally:
        for name in os.listdir(folder):
            os.unlink(os.path.join(folder, name))
        os.rmdir(folder)


def _run(command, environ):
    """Run the task as a child, passing on the signals AWS Batch stops a job with."""
    child = subprocess.Popen(command, env=environ)
    forwarded = {}

    def forward(signum, frame):
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        forwarded[signum] = signal.signal(signum, forward)
    try:
        return child.wait()
    finally:
        for signum, handler in forwarded.items():
            signal.signal(signum, handler)


def put_splits(table, key, splits, environ):
    """Write item {pathspec: key, splits: [...], ttl} to DynamoDB table `table` (endpoint
    MFLOW_DYNAMODB_ENDPOINT_URL when set)."""
    from botocore import exceptions as bx
    from botocore.config import Config

    from mflow.store.s3 import aws_session, configured_region

    session = aws_session(environ)
    config = Config(region_name=configured_region(environ, session), connect_timeout=5, read_timeout=30,
                    retries={"mode": "standard", "total_max_attempts": 5})
    item = {
        "pathspec": {"S": key},
        "splits": {"L": [{"N": str(int(index))} for index in splits]},
        "ttl": {"N": str(int(time.time()) + TTL_SECONDS)},
    }
    try:
        client = session.client("dynamodb", endpoint_url=environ.get("MFLOW_DYNAMODB_ENDPOINT_URL") or None,
                                config=config)
        client.put_item(TableName=table, Item=item)
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise ExecutorError("cannot put the split indices of %s into DynamoDB table %s: %s" % (key, table, exc),
                            "Check that the table exists and that the job role may dynamodb:PutItem on it",
                            executor="step-functions") from exc
