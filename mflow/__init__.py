"""mflow: Metaflow-style data-science workflows as small composable Unix commands.

`from mflow import FlowSpec, step, ...` as with Metaflow; names load on first use so that
importing mflow (and starting mflow-task) stays fast.
"""

__version__ = "0.1.0"

from mflow.lazy import lazy_getattr

_EXPORTS = {
    "FlowSpec": "mflow.flow.spec",
    "step": "mflow.flow.decorators",
    "retry": "mflow.flow.decorators",
    "catch": "mflow.flow.decorators",
    "timeout": "mflow.flow.decorators",
    "resources": "mflow.flow.decorators",
    "environment": "mflow.flow.decorators",
    "batch": "mflow.flow.decorators",
    "slurm": "mflow.flow.decorators",
    "pypi": "mflow.flow.decorators",
    "pypi_base": "mflow.flow.decorators",
    "schedule": "mflow.flow.decorators",
    "project": "mflow.flow.decorators",
    "Parameter": "mflow.flow.parameters",
    "JSONType": "mflow.flow.parameters",
    "IncludeFile": "mflow.flow.parameters",
    "current": "mflow.flow.current",
    "parallel_map": "mflow.flow.parallel",
    "parallel_imap_unordered": "mflow.flow.parallel",
    "S3": "mflow.s3",
    "Metaflow": "mflow.client",
    "Flow": "mflow.client",
    "Run": "mflow.client",
    "Step": "mflow.client",
    "Task": "mflow.client",
    "DataArtifact": "mflow.client",
    "namespace": "mflow.client",
    "get_namespace": "mflow.client",
    "default_namespace": "mflow.client",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


def __dir__():
    return __all__
