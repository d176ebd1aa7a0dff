"""`mflow argo-workflows create|trigger|list-runs|delete FLOW.py`: run a flow on Argo Workflows,
every step a pod running mflow-task, as Metaflow's `argo-workflows` command does
(mflow.deploy.argo writes the manifests and talks to the cluster).
"""

import click

from .options import common_options, flow_name_option, json_option, store_option
from .run import FlowCommand, load_flow
from .stepfunctions import StepFunctionsGroup

COLUMNS = ["run_id", "status", "started_at", "finished_at"]


def target_options(func):
    """The options that say which deployment: --flow, --name, --branch, --production, and the
    Kubernetes namespace it is in."""
    for option in reversed([
        flow_name_option,
        click.option("--name", metavar="NAME", help="The WorkflowTemplate's name (default: the flow's, or "
                     "project.branch.Flow with @project, lower-cased with - for other characters)."),
        click.option("--branch", metavar="NAME", help="A @project flow's branch: test.NAME (default: user.<you>)."),
        click.option("--production", is_flag=True, help="A @project flow's production branch: prod (prod.NAME "
                     "with --branch)."),
        click.option("--kubernetes-namespace", "namespace", metavar="NS", envvar="MFLOW_KUBERNETES_NAMESPACE",
                     default="default", show_default=True,
                     help="The Kubernetes namespace of the workflows (also MFLOW_KUBERNETES_NAMESPACE)."),
    ]):
        func = option(func)
    return func


@click.group(cls=StepFunctionsGroup, name="argo-workflows", context_settings={"help_option_names": ["-h", "--help"]})
def argo_workflows():
    """Deploy a flow to Argo Workflows, start and list its runs, delete it.

    The flow becomes a WorkflowTemplate (and a CronWorkflow with @schedule) whose DAG
    runs every step as a pod of the image given by --image (MFLOW_ARGO_IMAGE), running
    mflow-task against the store; a foreach fans out with withParam. Runs are ordinary
    mflow runs with ids argo-<workflow name>, seen by mflow runs, mflow dump, the client
    and mflow resume. trigger, list-runs and delete talk to MFLOW_ARGO_SERVER (an Argo
    Server) or MFLOW_KUBERNETES_API. `python flow.py argo-workflows ...` works the same.

    Examples:

      mflow argo-workflows create flow.py --image registry.example/mflow:1 --only-json | kubectl apply -f -

      mflow argo-workflows trigger flow.py --alpha 0.5

      mflow argo-workflows list-runs flow.py --running
    """


@argo_workflows.command()
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@target_options
@click.option("--image", metavar="IMAGE", envvar="MFLOW_ARGO_IMAGE",
              help="The container image every step runs in: one with mflow (and the flow's packages) installed "
              "(also MFLOW_ARGO_IMAGE).")
@click.option("--only-json", is_flag=True, help="Print the manifests as JSON (the WorkflowTemplate, then the "
              "CronWorkflow with @schedule) and deploy nothing (the flow's code and deployment record are stored "
              "all the same).")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Tag every run of the deployment (repeatable).")
@click.option("--max-workers", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many pods of a run run at once (the workflow's parallelism).")
@click.option("--workflow-timeout", type=click.IntRange(min=1), metavar="SECONDS",
              help="Stop a run that takes longer than this (the workflow's activeDeadlineSeconds).")
@click.option("--workflow-priority", type=int, metavar="N",
              help="The workflows' priority: higher ones start first when the controller limits how many run.")
@click.option("--service-account", metavar="NAME", envvar="MFLOW_KUBERNETES_SERVICE_ACCOUNT",
              help="The Kubernetes service account the pods run as (also MFLOW_KUBERNETES_SERVICE_ACCOUNT).")
@click.option("--secret", "secrets", multiple=True, metavar="SECRET",
              help="A Kubernetes Secret whose keys become every pod's environment variables, e.g. the store's "
              "AWS credentials (repeatable; also MFLOW_KUBERNETES_SECRETS, comma-separated).")
@store_option
@common_options
@click.pass_obj
def create(console, flow_file, flow_name, name, branch, production, namespace, image, only_json, tags, max_workers,
           workflow_timeout, workflow_priority, service_account, secrets, store_url):
    """Deploy FLOW.py to Argo Workflows as a WorkflowTemplate (and a CronWorkflow).

    Stores the flow's code and a deployment record, then creates or replaces the
    WorkflowTemplate (and, with @schedule, the CronWorkflow; without it, removes one left
    from before) through MFLOW_ARGO_SERVER or MFLOW_KUBERNETES_API; prints the template's
    name, or with --only-json the manifests. Parameters are the workflow's arguments, @retry
    a retryStrategy, @timeout activeDeadlineSeconds, @resources the container's resources,
    @project the name. A flow Argo cannot express (a switch, a step looping to itself) is
    exit 3, naming the step; no --image is exit 2.

    Examples:

      mflow argo-workflows create flow.py --image registry.example/mflow:1 --store s3://bucket/mflow

      mflow argo-workflows create flow.py --only-json > flow.json && kubectl apply -f flow.json

      python flow.py argo-workflows create --production --secret mflow-s3
    """
    from mflow.deploy import argo, prepare, structure
    from mflow.flow.decorators import flow_decorators
    from mflow.task.decorators import task_decorators

    from .output import open_store

    environ = console.environ
    graph, flow_class = load_flow(flow_file, flow_name)
    structure(graph, "argo-workflows")  # refused before anything is stored
    if not image:
        raise click.UsageError("argo-workflows create needs the image the steps run in: give --image IMAGE or set "
                               "MFLOW_ARGO_IMAGE (an image with mflow installed)")
    if name is not None and "project" in flow_decorators(flow_class):
        raise click.UsageError("--name cannot rename a @project flow's template; give --branch or --production")
    if not secrets and environ.get("MFLOW_KUBERNETES_SECRETS"):
        secrets = tuple(s.strip() for s in environ["MFLOW_KUBERNETES_SECRETS"].split(",") if s.strip())
    client = None if only_json else argo.ArgoClient(environ, namespace)
    store = open_store(console, store_url)
    if not store.url.startswith("s3://"):
        console.err("Warning: the store %s is a folder: every pod must see it at that path (a volume), or use "
                    "--store s3://BUCKET/PREFIX." % store.url)
    deployment = prepare(store, graph, flow_class, flow_file, "argo-workflows", branch=branch, production=production,
                         tags=tags, environ=environ)
    settings = argo.Settings(
        name=argo.template_name(deployment.name, name), image=image, namespace=namespace,
        service_account=service_account, secrets=tuple(secrets), max_workers=max_workers,
        workflow_timeout=workflow_timeout, workflow_priority=workflow_priority,
    )
    found = argo.manifests(deployment, lambda step: task_decorators(flow_class, graph, step), settings, environ,
                           flow_class)
    for warning in found.warnings:
        console.err("Warning: %s." % warning)
    if only_json:
        import orjson

        for manifest in found.all():
            console.out(orjson.dumps(manifest, option=orjson.OPT_INDENT_2).decode("utf-8"))
        return
    created = client.apply(found.template)
    if found.cron is not None:
        client.apply(found.cron)
    else:
        client.delete("CronWorkflow", settings.name)
    console.info("%s WorkflowTemplate %s for flow %s (deployment %s) in namespace %s."
                 % ("Created" if created else "Updated", settings.name, graph.name, deployment.id, namespace))
    if found.cron is not None:
        console.info("It runs on its @schedule %s (CronWorkflow %s)." % (deployment.schedule.cron5, settings.name))
    console.info("Start a run with: mflow argo-workflows trigger %s" % flow_file)
    console.out(settings.name)


@argo_workflows.command(cls=FlowCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False))
@target_options
@click.option("--run-id-file", type=click.Path(dir_okay=False, writable=True),
              help="Write the run's id to this file once the workflow is submitted.")
@common_options
@click.pass_context
def trigger(ctx, flow_file, flow_name, name, branch, production, namespace, run_id_file, **params):
    """Start a run of the deployed FLOW.py on Argo Workflows; print its pathspec.

    Each Parameter of the flow is an option, as for `mflow run` (`--NAME VALUE`, booleans
    `--NAME/--no-NAME`); values not given are the defaults taken when the flow was
    deployed. A value is checked here and converted by the run's start task. The run's id
    is argo-<the workflow's name>.

    Examples:

      mflow argo-workflows trigger flow.py

      mflow argo-workflows trigger flow.py --alpha 0.5 --config '{"k": 2}'

      python flow.py argo-workflows trigger --run-id-file run.txt
    """
    from mflow.deploy import argo

    console = ctx.obj
    graph, flow_class = ctx.meta.get("mflow.flow") or load_flow(flow_file, flow_name)
    values = _given_parameters(flow_class, params)
    template = _template_name(console, graph, flow_class, name, branch, production)
    workflow = argo.ArgoClient(console.environ, namespace).submit(template, values)
    run = argo.RUN_PREFIX + workflow
    if run_id_file:
        with open(run_id_file, "w", encoding="utf-8") as handle:
            handle.write(run + "\n")
    console.info("Submitted workflow %s of WorkflowTemplate %s: run %s/%s." % (workflow, template, graph.name, run))
    console.out("%s/%s" % (graph.name, run))


def _given_parameters(flow_class, params):
    """{name: text} of the parameters given, each checked by converting it here; IncludeFile
    is read when the flow is deployed only."""
    from mflow.deploy.argo import parameter_text
    from mflow.errors import ParameterError

    values = {}
    for attribute, parameter in flow_class._get_parameters():
        raw = params.get("param_" + attribute)
        if raw is None:
            continue
        if parameter.kind == "IncludeFile":
            raise ParameterError(
                "IncludeFile %r was read when the flow was deployed and cannot be given to a run" % parameter.name,
                "Deploy again (mflow argo-workflows create) to include another file",
            )
        if not isinstance(raw, bool):
            parameter.convert(raw)
        values[parameter.name] = parameter_text(raw, "bool") if isinstance(raw, bool) else raw
    return values


def _template_name(console, graph, flow_class, name, branch, production):
    from mflow.deploy.argo import template_name
    from mflow.deploy.project import project_info
    from mflow.flow.current import resolve_username

    project = project_info(flow_class, branch, production, resolve_username(console.environ))
    return template_name(project.flow_name if project is not None else graph.name, name)


@argo_workflows.command(name="list-runs")
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@target_options
@click.option("--pending", "phases", flag_value="Pending", multiple=True, help="Only runs not started yet.")
@click.option("--running", "phases", flag_value="Running", multiple=True, help="Only runs still running.")
@click.option("--succeeded", "phases", flag_value="Succeeded", multiple=True, help="Only runs that succeeded.")
@click.option("--failed", "phases", flag_value="Failed", multiple=True, help="Only runs that failed.")
@click.option("--errored", "phases", flag_value="Error", multiple=True,
              help="Only runs that Argo stopped with an error (a pod lost, a deadline passed).")
@json_option
@common_options
@click.pass_obj
def list_runs(console, flow_file, flow_name, name, branch, production, namespace, phases, as_json):
    """List the runs of the deployed FLOW.py on Argo Workflows, newest first.

    A table on a terminal, else JSON Lines (schema 1): run_id, pathspec, status (Pending,
    Running, Succeeded, Failed, Error), started_at, finished_at, workflow.

    Examples:

      mflow argo-workflows list-runs flow.py

      mflow argo-workflows list-runs flow.py --failed --json | jq -r .pathspec
    """
    from mflow.deploy import argo

    from .output import emit_rows

    graph, flow_class = load_flow(flow_file, flow_name)
    template = _template_name(console, graph, flow_class, name, branch, production)
    workflows = argo.ArgoClient(console.environ, namespace).workflows(template, phases)
    emit_rows(console, [argo.workflow_row(graph.name, w) for w in workflows], COLUMNS, as_json)


@argo_workflows.command()
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@target_options
@common_options
@click.pass_obj
def delete(console, flow_file, flow_name, name, branch, production, namespace):
    """Delete the deployed FLOW.py's WorkflowTemplate and its CronWorkflow.

    Workflows already started are not stopped; their data stays in the store. Exit status
    4 when there is nothing to delete.

    Examples:

      mflow argo-workflows delete flow.py

      python flow.py argo-workflows delete --production
    """
    from mflow.deploy import argo
    from mflow.errors import NotFoundError

    graph, flow_class = load_flow(flow_file, flow_name)
    template = _template_name(console, graph, flow_class, name, branch, production)
    client = argo.ArgoClient(console.environ, namespace)
    scheduled = client.delete("CronWorkflow", template)
    if not client.delete("WorkflowTemplate", template) and not scheduled:
        raise NotFoundError("no WorkflowTemplate %s in namespace %s" % (template, namespace),
                            "Check the flow's name, --name, --branch and --kubernetes-namespace")
    console.info("Deleted WorkflowTemplate %s%s." % (template, " and its CronWorkflow" if scheduled else ""))
