"""Reproducible step environments: @pypi / @pypi_base resolved, locked with the run, built
once per machine (pip, or uv where installed) and rebuilt from the lock and the store's
wheels wherever a task runs; and the interpreter inventory every attempt records.

    plan = resolve_run(store, flow_class, graph, "flow.py", {}, "pypi")   # before the run
    plan.record(flow, run_id)                                              # with the run
    python = step_python(store, flow, run_id, "train")                     # in mflow-task

Light to import: what each entry point needs loads when it is called.
"""

from mflow.lazy import lazy_getattr

_EXPORTS = {
    "EnvPlan": "mflow.env.plan",
    "resolve_run": "mflow.env.plan",
    "step_python": "mflow.env.plan",
    "task_python": "mflow.env.plan",
    "interpreter_record": "mflow.env.inventory",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
