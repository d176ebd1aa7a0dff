"""`mflow`: the porcelain driver, one lazily loaded module per subcommand.

Output here is for people and may change; scripts use the mflow-* plumbing commands.
"""

import importlib

import click

from .boundary import entry_point
from .options import common_options

# Subcommand -> "module:attribute"; loaded only when used, so `mflow --help` stays fast.
SUBCOMMANDS = {
    "check": "mflow.cli.check:check",
    "show": "mflow.cli.check:show",
    "run": "mflow.cli.run:run",
    "logs": "mflow.cli.run:logs",
    "resume": "mflow.cli.run:resume",
    "dump": "mflow.cli.inspect:dump",
    "tag": "mflow.cli.inspect:tag",
    "runs": "mflow.cli.inspect:runs",
    "batch": "mflow.cli.batch:batch",
    "env": "mflow.cli.env:env",
    "schedule": "mflow.cli.schedule:schedule",
    "step-functions": "mflow.cli.stepfunctions:step_functions",
    "airflow": "mflow.cli.airflow:airflow",
    "argo-workflows": "mflow.cli.argo:argo_workflows",
}

# Subcommands whose first argument is FLOW.py: `python flow.py NAME ...` maps onto them.
FLOW_FILE_SUBCOMMANDS = ("check", "show", "run", "resume", "schedule", "step-functions", "airflow",
                         "argo-workflows")


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(name="mflow", cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mflow", message="%(prog)s %(version)s")
@common_options
def cli():
    """Run and inspect Metaflow-style flows, every task its own process.

    Each subcommand has its own --help. The plumbing commands mflow-graph, mflow-task,
    mflow-store and mflow-meta give stable, machine-readable output for scripts.

    Examples:

      mflow check flow.py

      mflow show flow.py
    """


main = entry_point(cli)
