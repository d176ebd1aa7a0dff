"""The result-time API: Metaflow, Flow, Run, Step, Task and DataArtifact over an mflow store,
with Metaflow's names and semantics, for notebooks, scripts, and steps that read other flows.

    from mflow import Flow, namespace
    run = Flow("MovieStatsFlow").latest_successful_run
    run.data.genre_stats                          # the end step's artifact, loaded lazily
    [task.data.stats for task in run["compute_statistics"]]
    namespace(None)                               # every user's runs, not only yours

The store is the one every mflow command uses (MFLOW_STORE, else the nearest .mflow
folder) unless set_store() picks another; any object also takes store=.
"""

from mflow.errors import MflowNamespaceMismatch, MflowNotFound, PathspecError
from mflow.meta.tags import default_namespace, get_namespace, namespace

from .code import FlowCode
from .context import default_store, get_store, set_store
from .core import DataArtifact, Flow, Metaflow, MflowData, MflowObject, Run, Step, Task, TaskException

# Metaflow's names for the same errors, so that ported `except` clauses keep working.
MetaflowNotFound = MflowNotFound
MetaflowNamespaceMismatch = MflowNamespaceMismatch
MetaflowInvalidPathspec = PathspecError

__all__ = [
    "DataArtifact",
    "Flow",
    "FlowCode",
    "Metaflow",
    "MetaflowInvalidPathspec",
    "MetaflowNamespaceMismatch",
    "MetaflowNotFound",
    "MflowData",
    "MflowNamespaceMismatch",
    "MflowNotFound",
    "MflowObject",
    "Run",
    "Step",
    "Task",
    "TaskException",
    "default_namespace",
    "default_store",
    "get_namespace",
    "get_store",
    "namespace",
    "set_store",
]
