"""mflow's run metadata: runs, tasks, attempts, tags, namespaces and latest pointers, kept
as immutable records under meta/ in the store itself, with no server. See man/mflow-meta.1.

    from mflow.meta import MetaStore
    meta = MetaStore(store)
    run_id = meta.allocate_run_id("TrainFlow")
    meta.start_run("TrainFlow", run_id, params={"alpha": 0.5})
    meta.end_run("TrainFlow", run_id, "successful")
    meta.runs("TrainFlow", status="failed", since="7d")

Light to import (no boto3, no click): mflow-task loads it on every start.
"""

from .metastore import DEFAULT, MetaStore, RunTags, parse_duration, parse_since
from .records import (
    AttemptEndRecord,
    AttemptInfo,
    AttemptStartRecord,
    FlowRecord,
    RunEndRecord,
    RunInfo,
    RunRecord,
    StepInfo,
    TagChangeRecord,
    TaskInfo,
    TaskRecord,
)
from .tags import default_namespace, get_namespace, namespace, user_namespace

__all__ = [
    "DEFAULT",
    "AttemptEndRecord",
    "AttemptInfo",
    "AttemptStartRecord",
    "FlowRecord",
    "MetaStore",
    "RunEndRecord",
    "RunInfo",
    "RunRecord",
    "RunTags",
    "StepInfo",
    "TagChangeRecord",
    "TaskInfo",
    "TaskRecord",
    "default_namespace",
    "get_namespace",
    "namespace",
    "parse_duration",
    "parse_since",
    "user_namespace",
]
