"""`mflow step-functions create|trigger|list-runs|delete FLOW.py`: run a flow on AWS Step
Functions, every step an AWS Batch job, as Metaflow's `step-functions` command does.

Also `python -m mflow.cli.stepfunctions --table T --key K -- mflow-task ...`: the split
writer a foreach task's job runs on Step Functions (mflow.deploy.stepfunctions_runtime).
"""

import os

import click

from .options import common_options, flow_name_option, json_option, store_option
from .run import FlowCommand, load_flow

COLUMNS = ["run_id", "status", "started_at", "stopped_at"]


class StepFunctionsGroup(click.Group):
    """Takes the subcommand anywhere before its own options, so that both `mflow
    step-functions create FLOW.py` and what `python flow.py step-functions create` hands
    over (`step-functions --flow NAME FLOW.py create`) work."""

    def parse_args(self, ctx, args):
        args = list(args)
        if args and args[0] not in self.commands:
            valued = {opt for command in self.commands.values() for param in command.params
                      if isinstance(param, click.Option) and not param.is_flag for opt in param.opts}
            for index, arg in enumerate(args):
                if arg in self.commands and (index == 0 or args[index - 1] not in valued):
                    args = [arg] + args[:index] + args[index + 1:]
                    break
            else:
                # No subcommand (`python flow.py step-functions --help`): the group's own help.
                args = [arg for index, arg in enumerate(args)
                        if arg != "--flow" and (index == 0 or args[index - 1] != "--flow") and not arg.endswith(".py")]
        return super().parse_args(ctx, args)


def target_options(func):
    """The options that say which deployment: --name, --branch, --production."""
    for option in reversed([
        flow_name_option,
        click.option("--name", metavar="NAME",
                     help="The state machine's name (default: the flow's, or project.branch.Flow with @project)."),
        click.option("--branch", metavar="NAME", help="A @project flow's branch: test.NAME (default: user.<you>)."),
        click.option("--production", is_flag=True, help="A @project flow's production branch: prod (prod.NAME "
                     "with --branch)."),
    ]):
        func = option(func)
    return func


@click.group(cls=StepFunctionsGroup, name="step-functions", context_settings={"help_option_names": ["-h", "--help"]})
def step_functions():
    """Deploy a flow to AWS Step Functions, start and list its runs, delete it.

    Each step runs as an AWS Batch job (MFLOW_BATCH_QUEUE, MFLOW_BATCH_IMAGE, @batch and
    @resources as for `mflow run`); a foreach is a Map state, static branches a Parallel
    state; the store must be on S3. Runs are ordinary mflow runs with ids sfn-<execution>,
    seen by mflow runs, mflow dump and the client. `python flow.py step-functions ...` works
    the same.

    Examples:

      mflow step-functions create flow.py

      mflow step-functions trigger flow.py --alpha 0.5

      mflow step-functions list-runs flow.py --running
    """


@step_functions.command()
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@target_options
@click.option("--only-json", is_flag=True, help="Print the state machine's JSON and deploy nothing (the flow's "
              "code and deployment record are stored all the same).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Tag every run of the deployment (repeatable).")
@click.option("--max-workers", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many splits of a foreach run at once (the Map state's MaxConcurrency).")
@click.option("--workflow-timeout", type=click.IntRange(min=1), metavar="SECONDS",
              help="Stop a run that takes longer than this (the state machine's TimeoutSeconds).")
@click.option("--iam-role", metavar="ARN", envvar="MFLOW_SFN_IAM_ROLE",
              help="The role Step Functions runs as: it submits the Batch jobs and reads the DynamoDB table "
              "(also MFLOW_SFN_IAM_ROLE).")
@click.option("--dynamodb-table", metavar="TABLE", envvar="MFLOW_SFN_DYNAMO_DB_TABLE",
              help="The DynamoDB table (string key pathspec) that carries foreach split counts to the state "
              "machine (also MFLOW_SFN_DYNAMO_DB_TABLE).")
@store_option
@common_options
@click.pass_obj
def create(console, flow_file, flow_name, name, branch, production, only_json, tags, max_workers,
           workflow_timeout, iam_role, dynamodb_table, store_url):
    """Deploy FLOW.py as a Step Functions state machine (and its Batch job definitions).

    Stores the flow's code and a deployment record, registers the job definitions, creates
    or updates the state machine and, with @schedule, an EventBridge rule that starts it
    (MFLOW_EVENTS_SFN_ACCESS_IAM_ROLE). Prints the state machine's ARN, or its JSON with
    --only-json. A flow Step Functions cannot express (a switch, a step looping to itself, a
    @slurm step) is exit 3, naming the step.

    Examples:

      mflow step-functions create flow.py --store s3://bucket/mflow

      mflow step-functions create flow.py --only-json | jq .States

      python flow.py step-functions create --production --tag nightly
    """
    from mflow.deploy import prepare
    from mflow.deploy import stepfunctions as sfn
    from mflow.errors import ExecutorError
    from mflow.task.decorators import task_decorators

    from .output import open_store

    environ = console.environ
    graph, flow_class = load_flow(flow_file, flow_name)

    def decorators_of(step):
        return task_decorators(flow_class, graph, step)

    sfn.check_flow(graph, flow_class, decorators_of)
    store = open_store(console, store_url)
    if not store.url.startswith("s3://"):
        raise ExecutorError(
            "Step Functions runs every step as an AWS Batch job, which cannot reach the local store %s" % store.url,
            "Give --store s3://BUCKET/PREFIX (or MFLOW_STORE)", executor="step-functions",
        )
    aws = None
    if not only_json:
        from mflow.runtime.executors.batch import BatchExecutor

        batch = BatchExecutor(environ)
        try:
            batch.check(store, {step: dict(decorators_of(step).get("batch") or {}) for step in graph.steps})
        finally:
            batch.close()
        aws = sfn.StepFunctions(environ)
    deployment = prepare(store, graph, flow_class, flow_file, "step-functions", branch=branch, production=production,
                         tags=tags, environ=environ)
    settings = sfn.Settings(
        name=sfn.state_machine_name(deployment.name, name), role=iam_role,
        events_role=environ.get("MFLOW_EVENTS_SFN_ACCESS_IAM_ROLE"), table=dynamodb_table, max_workers=max_workers,
        workflow_timeout=workflow_timeout, python=environ.get("MFLOW_SFN_PYTHON") or sfn.DEFAULT_PYTHON,
    )
    jobs = sfn.step_jobs(deployment, decorators_of, environ, settings)
    definition = sfn.state_machine(deployment, jobs, settings)
    if only_json:
        import orjson

        console.out(orjson.dumps(definition, option=orjson.OPT_INDENT_2).decode("utf-8"))
        return None
    try:
        aws.register_definitions(jobs)
        arn, created = aws.deploy(settings.name, definition, settings.role)
        rule = aws.schedule(settings.name, arn, deployment.schedule, settings.events_role)
    finally:
        aws.close()
    console.info("%s state machine %s for flow %s (deployment %s)."
                 % ("Created" if created else "Updated", settings.name, graph.name, deployment.id))
    if rule:
        console.info("It runs on its @schedule %s (EventBridge rule %s)." % (deployment.schedule.eventbridge,
                                                                             settings.name))
    console.info("Start a run with: mflow step-functions trigger %s" % flow_file)
    console.out(arn)
    return None


@step_functions.command(cls=FlowCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False))
@target_options
@click.option("--run-id", metavar="RUN", help="The run's id, sfn-NAME (default: a new one); NAME names the execution.")
@click.option("--run-id-file", type=click.Path(dir_okay=False, writable=True),
              help="Write the run's id to this file once the run has started.")
@common_options
@click.pass_context
def trigger(ctx, flow_file, flow_name, name, branch, production, run_id, run_id_file, **params):
    """Start a run of the deployed FLOW.py on Step Functions; print its pathspec.

    Each Parameter of the flow is an option, as for `mflow run` (`--NAME VALUE`, booleans
    `--NAME/--no-NAME`), also MFLOW_PARAM_<NAME>; values not given are the defaults taken
    when the flow was deployed. A value is checked here and converted by the run's start task.

    Examples:

      mflow step-functions trigger flow.py

      mflow step-functions trigger flow.py --alpha 0.5 --config '{"k": 2}'

      python flow.py step-functions trigger --run-id-file run.txt
    """
    from mflow.deploy import stepfunctions as sfn

    console = ctx.obj
    graph, flow_class = ctx.meta.get("mflow.flow") or load_flow(flow_file, flow_name)
    values = _given_parameters(flow_class, params, console.environ)
    machine = _machine_name(console, graph, flow_class, name, branch, production)
    execution = sfn.execution_name(run_id)
    aws = sfn.StepFunctions(console.environ)
    try:
        arn = aws.require(machine)
        aws.start(arn, execution, values)
    finally:
        aws.close()
    run = sfn.RUN_PREFIX + execution
    if run_id_file:
        with open(run_id_file, "w", encoding="utf-8") as handle:
            handle.write(run + "\n")
    console.info("Started run %s/%s on state machine %s." % (graph.name, run, machine))
    console.out("%s/%s" % (graph.name, run))


def _given_parameters(flow_class, params, environ):
    """{name: value} of the parameters given (an option, else MFLOW_PARAM_<NAME>): the text
    as typed (checked by converting it here), booleans as booleans; IncludeFile is read at
    deploy time only."""
    from mflow.errors import ParameterError

    from .run import parameter_env_name

    values = {}
    for attribute, parameter in flow_class._get_parameters():
        raw = params.get("param_" + attribute)
        if raw is None:
            raw = environ.get(parameter_env_name(parameter.name))
        if raw is None:
            continue
        if parameter.kind == "IncludeFile":
            raise ParameterError(
                "IncludeFile %r was read when the flow was deployed and cannot be given to a run" % parameter.name,
                "Deploy again (mflow step-functions create) to include another file",
            )
        if not isinstance(raw, bool):
            parameter.convert(raw)
        values[parameter.name] = raw
    return values


def _machine_name(console, graph, flow_class, name, branch, production):
    from mflow.deploy.project import project_info
    from mflow.deploy.stepfunctions import state_machine_name
    from mflow.flow.current import resolve_username

    project = project_info(flow_class, branch, production, resolve_username(console.environ))
    return state_machine_name(project.flow_name if project is not None else graph.name, name)


@step_functions.command(name="list-runs")
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@target_options
@click.option("--running", "statuses", flag_value="RUNNING", multiple=True, help="Only runs still running.")
@click.option("--succeeded", "statuses", flag_value="SUCCEEDED", multiple=True, help="Only runs that succeeded.")
@click.option("--failed", "statuses", flag_value="FAILED", multiple=True, help="Only runs that failed.")
@click.option("--timed-out", "statuses", flag_value="TIMED_OUT", multiple=True,
              help="Only runs stopped by --workflow-timeout.")
@click.option("--aborted", "statuses", flag_value="ABORTED", multiple=True, help="Only runs that were stopped.")
@json_option
@common_options
@click.pass_obj
def list_runs(console, flow_file, flow_name, name, branch, production, statuses, as_json):
    """List the runs of the deployed FLOW.py on Step Functions, newest first.

    A table on a terminal, else JSON Lines (schema 1): run_id, pathspec, status (RUNNING,
    SUCCEEDED, FAILED, TIMED_OUT, ABORTED), started_at, stopped_at, execution_arn.

    Examples:

      mflow step-functions list-runs flow.py

      mflow step-functions list-runs flow.py --failed --json | jq -r .pathspec
    """
    from mflow.deploy import stepfunctions as sfn

    from .output import emit_rows

    graph, flow_class = load_flow(flow_file, flow_name)
    machine = _machine_name(console, graph, flow_class, name, branch, production)
    aws = sfn.StepFunctions(console.environ)
    try:
        executions = aws.executions(aws.require(machine), statuses)
    finally:
        aws.close()
    emit_rows(console, [sfn.execution_row(graph.name, e) for e in executions], COLUMNS, as_json)


@step_functions.command()
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@target_options
@common_options
@click.pass_obj
def delete(console, flow_file, flow_name, name, branch, production):
    """Delete the deployed FLOW.py's state machine and its @schedule rule.

    Runs already started are not stopped; their data stays in the store. Exit status 4
    when there is nothing to delete.

    Examples:

      mflow step-functions delete flow.py

      python flow.py step-functions delete --production
    """
    from mflow.deploy import stepfunctions as sfn
    from mflow.errors import NotFoundError

    graph, flow_class = load_flow(flow_file, flow_name)
    machine = _machine_name(console, graph, flow_class, name, branch, production)
    aws = sfn.StepFunctions(console.environ)
    try:
        if not aws.delete(machine):
            raise NotFoundError("no state machine %s on AWS Step Functions" % machine,
                                "Check the flow's name, --name and --branch")
    finally:
        aws.close()
    console.info("Deleted state machine %s." % machine)


def split_writer(argv=None):
    """`python -m mflow.cli.stepfunctions --table T --key K -- COMMAND...`: a foreach task's
    job on Step Functions; exits with mflow-task's code."""
    import sys

    from mflow.deploy.stepfunctions_runtime import run_foreach_task
    from mflow.errors import ExitCode, MflowError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        split = args.index("--")
        options = dict(zip(args[:split:2], args[1:split:2]))
        table, key, command = options["--table"], options["--key"], args[split + 1:]
        if not command:
            raise ValueError
    except (ValueError, KeyError):
        sys.stderr.write("Usage: python -m mflow.cli.stepfunctions --table TABLE --key PATHSPEC -- COMMAND...\n")
        sys.exit(ExitCode.USAGE)
    try:
        sys.exit(run_foreach_task(table, key, command))
    except MflowError as exc:
        sys.stderr.write("Error: %s\n" % exc)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    split_writer()
