"""`mflow batch list|kill`: find and stop the jobs mflow submitted to AWS Batch and Slurm,
without the flow file: every job carries its flow, run, step, task, attempt and user."""

import click

from .options import common_options, json_option

COLUMNS = ["executor", "job_id", "pathspec", "attempt", "user", "state", "submitted_at"]


def filter_options(func):
    for option in reversed(
        [
            click.option("--run-id", help="Only the jobs of this run (a run id, or Flow/run)."),
            click.option("--my-runs", is_flag=True, help="Only the jobs of your own runs (the default for list)."),
            click.option("--user", metavar="USER", help="Only the jobs of this user's runs."),
            click.option(
                "--executor",
                "executors",
                type=click.Choice(["batch", "slurm"]),
                multiple=True,
                help="Only this engine (repeatable); default: every engine configured here.",
            ),
        ]
    ):
        func = option(func)
    return func


@click.group()
def batch():
    """List and kill mflow's jobs on AWS Batch and Slurm.

    Jobs are found by the identity each carries (its name and tags or comment), so this
    works from any machine that can reach the engine, without the flow file. AWS Batch is
    asked (about every job queue of the region) when MFLOW_BATCH_QUEUE is set; Slurm
    wherever squeue is on PATH.

    Examples:

      mflow batch list

      mflow batch list --run-id HelloFlow/1700000000000 --json | jq -r .job_id

      mflow batch kill --run-id 1700000000000
    """


@batch.command(name="list")
@filter_options
@click.option("--all", "include_finished", is_flag=True, help="Also jobs that have finished.")
@json_option
@common_options
@click.pass_obj
def list_jobs(console, run_id, my_runs, user, executors, include_finished, as_json):
    """List mflow's jobs: pending and running ones, of your own runs unless told otherwise.

    A table on a terminal, else JSON Lines (schema 1): executor, job_id, name, pathspec,
    flow, run_id, step, task_id, attempt, user, state, submitted_at, reason.

    Examples:

      mflow batch list --executor slurm

      mflow batch list --user alice --all --json
    """
    from .output import emit_rows

    job_filter = _job_filter(console, run_id, my_runs, user, active_only=not include_finished, default_mine=True)
    rows = []
    for executor in _executors(console, executors):
        try:
            rows.extend(job.to_json() for job in executor.jobs(job_filter))
        finally:
            executor.close()
    rows.sort(key=lambda row: (row["submitted_at"] or "", row["job_id"]))
    emit_rows(console, rows, COLUMNS, as_json)


@batch.command()
@filter_options
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the jobs to stop.",
)
@json_option
@common_options
@click.pass_obj
def kill(console, run_id, my_runs, user, executors, wait, as_json):
    """Cancel mflow's pending and running jobs, and wait until the engines say they stopped.

    Needs --run-id, --my-runs or --user. Running it again is harmless: jobs already
    stopped are left alone. Exit status 1 when some job did not stop within --wait.

    Examples:

      mflow batch kill --run-id HelloFlow/1700000000000

      mflow batch kill --my-runs --executor batch --wait 300
    """
    import time

    from mflow.errors import ExitCode, ParameterError
    from mflow.runtime.executors.base import wait_finished

    from .output import emit_rows

    if not (run_id or my_runs or user):
        raise ParameterError("mflow batch kill needs --run-id, --my-runs or --user", "Say whose jobs to cancel")
    job_filter = _job_filter(console, run_id, my_runs, user, active_only=True, default_mine=False)
    stopped, not_stopped = [], []
    for executor in _executors(console, executors):
        try:
            jobs = executor.jobs(job_filter)
            if not jobs:
                continue
            console.err("Cancelling %d %s job(s)..." % (len(jobs), executor.name))
            executor.cancel([job.job_id for job in jobs], "cancelled by mflow batch kill")
            states = wait_finished(executor, [job.job_id for job in jobs], time.time() + wait)
            for job in jobs:
                state = states.get(job.job_id)
                row = job._replace(state=state.state if state else job.state).to_json()
                (stopped if state else not_stopped).append(row)
        finally:
            executor.close()
    emit_rows(console, stopped + not_stopped, COLUMNS, as_json)
    if not stopped and not not_stopped:
        console.err("No pending or running jobs match.")
    if not_stopped:
        console.err(
            "Error: %d job(s) did not stop within %s s: %s. Run mflow batch kill again, or check them in the engine."
            % (len(not_stopped), wait, ", ".join(row["job_id"] for row in not_stopped))
        )
        return ExitCode.FAILED
    return ExitCode.OK


def _job_filter(console, run_id, my_runs, user, active_only, default_mine):
    from mflow.flow.current import resolve_username
    from mflow.runtime.executors.base import JobFilter

    flow = None
    if run_id and "/" in run_id:
        flow, _, run_id = run_id.partition("/")
    if my_runs or (default_mine and not (run_id or user)):
        user = resolve_username(console.environ)
    return JobFilter(flow=flow, run_id=run_id, user=user, active_only=active_only)


def _executors(console, names):
    """The executors to ask: those named, else every engine configured on this machine."""
    import shutil

    from mflow.errors import ExecutorError
    from mflow.runtime.executors import make_executor

    if not names:
        names = []
        if console.environ.get("MFLOW_BATCH_QUEUE"):
            names.append("batch")
        if shutil.which("squeue", path=console.environ.get("PATH")):
            names.append("slurm")
        if not names:
            raise ExecutorError(
                "no compute engine is configured here: MFLOW_BATCH_QUEUE is not set and Slurm's squeue is not on PATH",
                "Set MFLOW_BATCH_QUEUE for AWS Batch, or run where Slurm is installed",
            )
    return [make_executor(name, dict(console.environ)) for name in names]
