"""Compute engines that run a run's tasks elsewhere: AWS Batch and Slurm (see base.py)."""

from mflow.errors import ExecutorError, ParameterError

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


def positive_float(environ, name, default):
    """The number setting `name` of `environ` gives, `default` when it is unset or empty.

    Here, the lightest module both the executors and the S3 store (mflow.store.s3) import:
    an executor reads its settings without importing the S3 machinery (concurrent.futures,
    tempfile: ~10 ms of a Slurm driver's start), and an S3 store costs a task little more."""
    text = environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ParameterError("%s=%r is not a positive number" % (name, text), "Unset it or give a number above 0")
    return value
