"""Every executable mflow installs, mapped to the click command behind it.

Tests walk this table to check that help text and man pages cover every option.
"""

COMMANDS = {
    "mflow": "mflow.cli.main:cli",
    "mflow-graph": "mflow.cli.graph:cli",
    "mflow-store": "mflow.cli.store:cli",
    "mflow-meta": "mflow.cli.meta:cli",
    "mflow-task": "mflow.cli.task_command:cli",
}


def load(name):
    """The click command object for executable `name`."""
    import importlib

    module_name, attr = COMMANDS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)
