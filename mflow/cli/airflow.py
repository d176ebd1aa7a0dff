"""`mflow airflow create FLOW.py -o dag.py`: a flow as an Apache Airflow 3 DAG file, a task
per step running mflow-task (mflow.deploy.airflow writes the file).
"""

import os
import sys

import click

from .options import common_options, flow_name_option, store_option


class AirflowGroup(click.Group):
    """Takes its subcommand after options and FLOW.py as well, since `python flow.py airflow
    create ...` hands over `airflow --flow NAME FLOW.py create ...`."""

    def parse_args(self, ctx, args):
        position = next((i for i, arg in enumerate(args) if arg in self.commands), None)
        if position:
            args = [args[position]] + list(args[:position]) + list(args[position + 1:])
        elif position is None and args and args[0] == "--flow":  # `python flow.py airflow [--help]`
            args = [arg for arg in args if arg in ("-h", "--help")]
        return super().parse_args(ctx, args)


@click.group(cls=AirflowGroup, name="airflow", context_settings={"help_option_names": ["-h", "--help"]})
def airflow():
    """Deploy a flow to Apache Airflow 3 as a DAG file.

    The DAG runs every step as a task of its own running mflow-task against the store (a
    foreach as dynamic task mapping, static branches as parallel tasks); its runs are
    ordinary mflow runs with ids airflow-<DAG run id>, seen by mflow runs, mflow dump, the
    client and mflow resume. `python flow.py airflow create -o dag.py` works the same.

    Examples:

      mflow airflow create flow.py -o ~/airflow/dags/flow.py

      python flow.py airflow create --production -o dags/train.py
    """


@airflow.command()
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, exists=True))
@flow_name_option
@click.option("-o", "--output", "output", metavar="DAG.py", default="-", show_default=True,
              help="Write the DAG file here (atomically, for a dags folder Airflow watches); - for stdout.")
@click.option("--name", metavar="NAME", help="The DAG's dag_id (default: the flow's name; with @project, "
              "project.branch.Flow, which --name cannot change).")
@click.option("--branch", metavar="NAME", help="A @project flow's branch: test.NAME (default: user.<you>).")
@click.option("--production", is_flag=True, help="A @project flow's production branch: prod (prod.NAME with "
              "--branch).")
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="Tag every run of the deployment (repeatable); also a tag of the DAG.")
@click.option("--is-paused-upon-creation", "paused", is_flag=True,
              help="Airflow keeps the DAG paused when it first sees it (is_paused_upon_creation).")
@click.option("--max-workers", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many tasks of a DAG run run at once (the DAG's max_active_tasks).")
@click.option("--worker-pool", metavar="POOL", help="The Airflow pool every task runs in.")
@click.option("--bin-dir", metavar="DIR", envvar="MFLOW_AIRFLOW_BIN_DIR",
              help="The folder of mflow-task and mflow-meta on the Airflow workers (default: this mflow's own; "
              "an empty value finds them on the workers' PATH; also MFLOW_AIRFLOW_BIN_DIR).")
@store_option
@common_options
@click.pass_obj
def create(console, flow_file, flow_name, output, name, branch, production, tags, paused, max_workers, worker_pool,
           bin_dir, store_url):
    """Write FLOW.py as an Airflow 3 DAG file (-o DAG.py) and store its deployment.

    Stores the flow's code package and a deployment record, then writes a DAG file that
    imports only Airflow and the standard library, with the store, the folder of mflow's
    executables and the store's settings (never credentials) written in. Parameters are
    the DAG's params, @retry its tasks' retries, @timeout their execution_timeout, @schedule
    its schedule; @project names the DAG. Put the file in Airflow's dags folder. A flow
    Airflow cannot express (a switch, a step looping to itself) is exit 3, naming the step.

    Examples:

      mflow airflow create flow.py -o ~/airflow/dags/hello.py

      mflow airflow create flow.py --store s3://bucket/mflow --tag nightly > dags/hello.py

      python flow.py airflow create --branch exp -o dags/hello.py
    """
    from mflow.deploy import prepare
    from mflow.deploy.airflow import dag_file
    from mflow.flow.decorators import flow_decorators

    from .output import open_store
    from .run import load_flow

    graph, flow_class = load_flow(flow_file, flow_name)
    if name is not None and "project" in flow_decorators(flow_class):
        raise click.UsageError("--name cannot rename a @project flow's DAG; give --branch or --production instead")
    target = _OutputFile(output)  # fails before anything is stored
    try:
        store = open_store(console, store_url)
        deployment = prepare(store, graph, flow_class, flow_file, "airflow", branch=branch, production=production,
                             tags=tags, environ=console.environ)
        dag = dag_file(deployment, flow_class, _bin_dir(bin_dir), console.environ, max_workers=max_workers,
                       worker_pool=worker_pool, paused=paused, dag_id=name)
        for warning in dag.warnings:
            console.err("Warning: %s." % warning)
        if target.path is None:
            console.out(dag.text.rstrip("\n"))
        else:
            target.write(dag.text)
            console.info("Wrote DAG %s of flow %s (deployment %s) to %s." % (dag.dag_id, graph.name, deployment.id,
                                                                          output))
    finally:
        target.discard()


def _bin_dir(given):
    """--bin-dir, else the folder of this installation's mflow-task (the interpreter's)."""
    if given is not None:
        return os.path.abspath(os.path.expanduser(given)) if given else ""
    here = os.path.dirname(os.path.abspath(sys.executable))
    return here if os.access(os.path.join(here, "mflow-task"), os.X_OK) else ""


class _OutputFile:
    """The -o file, written atomically: a temporary file beside it, renamed over it."""

    def __init__(self, output):
        import tempfile

        self.path = None if output == "-" else os.path.abspath(os.path.expanduser(output))
        self._temp = None
        if self.path is None:
            return
        try:
            handle, self._temp = tempfile.mkstemp(dir=os.path.dirname(self.path), prefix=".mflow-dag-",
                                                  suffix=".tmp")
            os.close(handle)
        except OSError as exc:
            from mflow.errors import ExitCode

            error = click.ClickException("cannot write %s: %s. Give -o a file in a folder you can write"
                                         % (output, exc.strerror or exc))
            error.exit_code = ExitCode.USAGE
            raise error from None

    def write(self, text):
        with open(self._temp, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(self._temp, 0o644)
        os.replace(self._temp, self.path)
        self._temp = None

    def discard(self):
        if self._temp is not None and os.path.exists(self._temp):
            os.unlink(self._temp)
