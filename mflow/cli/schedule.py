"""`mflow schedule FLOW.py`: the crontab line that runs a flow on its @schedule."""

import os
import shlex
import sys

import click

from .options import common_options, flow_file_argument, flow_name_option, store_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@flow_file_argument
@flow_name_option
@click.option("--branch", metavar="NAME", help="Run the @project flow on branch test.NAME.")
@click.option("--production", is_flag=True, help="Run the @project flow on its production branch.")
@click.option(
    "--lock",
    type=click.Choice(["wait", "refuse"]),
    default="refuse",
    show_default=True,
    help="While the previous run still runs: skip this one (refuse, exit 7) or wait for it.",
)
@store_option
@common_options
@click.pass_obj
def schedule(console, flow_file, flow_name, branch, production, lock, store_url):
    """Print the crontab line that runs FLOW.py on its @schedule.

    The line runs `mflow run` with absolute paths (cron starts in your home folder with a
    bare PATH) and --lock, so that runs cannot pile up when one takes longer than the
    interval; a @schedule timezone becomes a CRON_TZ line before it. Append it to your
    crontab; cron mails what a run prints, which with -q is nothing but errors and the
    run's pathspec.

    Examples:

      mflow schedule flow.py

      (crontab -l; mflow schedule flow.py --production) | crontab -
    """
    from mflow.deploy.project import project_info
    from mflow.deploy.schedule import crontab_line, schedule_of
    from mflow.errors import DeployError
    from mflow.flow.current import resolve_username
    from mflow.flow.decorators import flow_decorators
    from mflow.store.store import resolve_store_url

    from .run import load_flow

    graph, flow_class = load_flow(flow_file, flow_name)
    decorators = flow_decorators(flow_class)
    if "schedule" not in decorators:
        raise DeployError(
            "flow %s has no @schedule, so it has no time to run at" % graph.name,
            "Add e.g. @schedule(cron='0 10 * * *') or @schedule(daily=True) above the flow class",
        )
    project_info(flow_class, branch, production, resolve_username(console.environ))  # checks --branch
    store = resolve_store_url(store_url, console.environ).url
    path = os.path.abspath(flow_file)
    # Driver options before FLOW.py, where no flow parameter can take them.
    command = [_mflow_executable(), "run", "--store", store, "--flow", graph.name, "--lock", lock, "-q"]
    if branch is not None:
        command += ["--branch", branch]
    if production:
        command.append("--production")
    command.append(path)
    text = "cd %s && %s" % (shlex.quote(os.path.dirname(path)), " ".join(shlex.quote(part) for part in command))
    console.out(crontab_line(schedule_of(decorators["schedule"].attributes), text))


def _mflow_executable():
    """The mflow of this installation, by absolute path: cron's PATH does not hold a venv."""
    found = os.path.join(os.path.dirname(sys.executable), "mflow")
    return found if os.access(found, os.X_OK) else "mflow"
