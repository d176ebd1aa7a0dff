"""Compute engines that run a run's tasks elsewhere: AWS Batch and Slurm (see base.py)."""

from mflow.errors import ExecutorError

#: Executor names and the modules that hold them, imported only when a run uses them.
EXECUTORS = {"batch": "mflow.runtime.executors.batch", "slurm": "mflow.runtime.executors.slurm"}


def executor_name(decorators):
    """The executor a task with these {name: attributes} decorators runs on: batch, slurm or local."""
    found = [name for name in EXECUTORS if name in decorators]
    if len(found) > 1:
        raise ExecutorError(
            "a step cannot run on both %s" % " and ".join(found), "Keep one of @batch and @slurm on the step"
        )
    return found[0] if found else "local"


def make_executor(name, environ):
    """A new Executor of engine `name` (batch or slurm)."""
    import importlib

    module = importlib.import_module(EXECUTORS[name])
    return module.EXECUTOR_CLASS(environ)
