"""Resume: which steps of an earlier run to clone by reference and which to run again.

A resumed run is a new run: successful tasks outside the rerun steps are cloned (their
manifests point at the same blobs, nothing is copied), the rest runs as in `mflow run`.
"""

from __future__ import annotations

from mflow.errors import MflowError, NotFoundError
from mflow.namedtuple import NamedTuple

from .planner import PARAMETERS_STEP, PARAMETERS_TASK_ID

PARAMETERS_REF = "%s/%s" % (PARAMETERS_STEP, PARAMETERS_TASK_ID)


class ResumeError(MflowError):
    """The run cannot be resumed as asked (it is still running, its graph changed...)."""


class OriginTask(NamedTuple):
    """A successful task of the origin run that a new task may clone."""

    pathspec: str
    attempt: int  # its successful attempt
    result: dict  # next, transition, foreach_splits
    foreach_stack: tuple


class ResumePlan(NamedTuple):
    flow: str
    origin_run_id: str
    rerun_steps: tuple  # steps with tasks to run again, in graph order
    clone_steps: tuple  # steps with tasks to clone, in graph order
    fresh_steps: frozenset  # steps none of whose tasks may be cloned
    params: dict  # the origin run's recorded parameter values
    origin_tasks: dict  # (step, input refs, split index) -> OriginTask

    def to_json(self):
        return {
            "schema": 1,
            "flow": self.flow,
            "origin_run_id": self.origin_run_id,
            "clone_steps": list(self.clone_steps),
            "rerun_steps": list(self.rerun_steps),
            "clone_tasks": len(self.origin_tasks),
        }

    def describe(self):
        cloned = ", ".join(self.clone_steps) or "nothing"
        return "Resuming %s/%s: cloning tasks of %s (%d tasks); running again %s." % (
            self.flow,
            self.origin_run_id,
            cloned,
            len(self.origin_tasks),
            ", ".join(self.rerun_steps),
        )


def graph_summary(graph):
    """{step: {"type", "next"}}: what a run records of its graph, for resume to compare."""
    return {node.name: {"type": node.type, "next": node.next_steps} for node in graph.ordered_steps()}


def graph_differences(recorded, current):
    """Sentences naming how the current graph differs from a recorded one."""
    differences = []
    for step in current:
        if step not in recorded:
            differences.append("step %s is new" % step)
    for step in recorded:
        if step not in current:
            differences.append("step %s is gone" % step)
        elif recorded[step] != current[step]:
            was, now = recorded[step], current[step]
            differences.append(
                "step %s is now %s -> %s (was %s -> %s)"
                % (step, now["type"], ", ".join(now["next"]) or "-", was["type"], ", ".join(was["next"]) or "-")
            )
    return differences


def descendants(graph, roots):
    """`roots` and every step reachable from them."""
    seen, todo = set(), list(roots)
    while todo:
        step = todo.pop()
        if step in seen:
            continue
        seen.add(step)
        todo.extend(graph[step].next_steps)
    return seen


def plan_resume(meta, graph, origin_run_id=None, step=None):
    """The ResumePlan for resuming `origin_run_id` (default: the latest run of the flow in
    the namespace) from `step` (default: the steps that failed or never finished)."""
    flow = graph.name
    if origin_run_id is None:
        try:
            origin_run_id = meta.latest(flow).run_id
        except NotFoundError:
            raise NotFoundError(
                "flow %s has no run to resume" % flow, "Run it first, or give --origin-run-id"
            ) from None
    origin = meta.run(flow, str(origin_run_id))
    if origin.status == "running":
        raise ResumeError(
            "run %s/%s is still running" % (flow, origin_run_id),
            "Wait for it to end, or stop it, before resuming it",
        )
    recorded = origin.record.graph
    if recorded is not None:
        differences = graph_differences(recorded, graph_summary(graph))
        if differences:
            raise ResumeError(
                "the flow's graph differs from run %s/%s's: %s" % (flow, origin_run_id, "; ".join(differences)),
                "Resume needs the graph the run had; run the flow anew instead",
            )
    tasks = meta.tasks(flow, str(origin_run_id))
    order = [node.name for node in graph.ordered_steps()]
    if step is not None:
        if step not in graph.steps:
            raise ResumeError("flow %s has no step %s" % (flow, step), "Steps: %s" % ", ".join(order))
        roots = {step}
    else:
        roots = {task.step for task in tasks if task.status != "successful"}
        ran = {task.step for task in tasks}
        end_done = any(task.step == "end" and task.status == "successful" for task in tasks)
        if not roots and end_done:
            raise ResumeError(
                "run %s/%s succeeded; there is nothing to resume" % (flow, origin_run_id),
                "Name a STEP to run again from it, e.g. mflow resume FLOW.py end",
            )
        if not roots:  # stopped between tasks (driver killed): go on where nothing ran
            roots = {name for name in order if name not in ran}
    rerun = descendants(graph, roots)
    # A named step runs again whole. By default only what failed runs again: the failed
    # step's successful tasks (the other items of a foreach) are cloned, and only the
    # steps after it run anew, since their inputs change.
    fresh = rerun if step is not None else rerun - roots
    origin_tasks = {}
    for task in tasks:
        if task.step in fresh or task.status != "successful":
            continue
        succeeded = [a for a in task.attempts if a.status == "successful" and a.end is not None]
        if not succeeded or not succeeded[-1].end.result:
            continue
        attempt = succeeded[-1]
        record = task.record
        parents = tuple(_ref(p) for p in (record.parent_tasks if record else ())) or (PARAMETERS_REF,)
        split_index = _split_index(graph, task.step, parents, record)
        origin_tasks[(task.step, parents, split_index)] = OriginTask(
            "%s/%s/%s/%s" % (flow, origin_run_id, task.step, task.task_id),
            attempt.attempt,
            attempt.end.result,
            tuple(record.foreach_stack) if record else (),
        )
    clone_steps = [name for name in order if any(key[0] == name for key in origin_tasks)]
    return ResumePlan(
        flow,
        str(origin_run_id),
        tuple(name for name in order if name in rerun),
        tuple(clone_steps),
        frozenset(fresh),
        dict(origin.record.params or {}),
        origin_tasks,
    )


def _ref(pathspec):
    parts = str(pathspec).split("/")
    return "%s/%s" % (parts[2], parts[3])


def _split_index(graph, step, parents, record):
    """The foreach item index of a direct foreach child, else None (as TaskSpec has it)."""
    if len(parents) != 1 or record is None:
        return None
    parent_step = parents[0].split("/")[0]
    if parent_step == PARAMETERS_STEP:
        return None
    transition = graph[parent_step].transition if parent_step in graph else None
    if transition is not None and transition.kind == "foreach":
        return record.foreach_index
    return None


class Cloner:
    """Clones origin tasks into the new run and remembers which new task stands for which."""

    def __init__(self, store, meta, plan, flow, run_id):
        self.store = store
        self.meta = meta
        self.plan = plan
        self.flow = flow
        self.run_id = run_id
        self.origin_of = {PARAMETERS_REF: PARAMETERS_REF}  # new "step/task" -> origin "step/task"
        self.cloned = 0

    def source(self, spec):
        """The OriginTask a TaskSpec can clone, or None when it must run."""
        if spec.step in self.plan.fresh_steps:
            return None
        inputs = []
        for ref in spec.inputs:
            origin = self.origin_of.get(ref)
            if origin is None:
                return None
            inputs.append(origin)
        return self.plan.origin_tasks.get((spec.step, tuple(inputs), spec.split_index))

    def clone(self, spec, origin):
        """Make task `spec` of the new run a clone of `origin`: its artifacts and logs by
        reference, its records with origin_pathspec. The result the origin task had."""
        import os

        from mflow.store.pathspec import Pathspec

        source = Pathspec.parse(origin.pathspec, 4, 4)
        target = Pathspec.task(self.flow, self.run_id, spec.step, spec.task_id)
        loader = self.store.artifacts(source, origin.attempt)
        writer = self.store.artifact_writer(target, 0)
        for name in loader:
            writer.carry(loader.record(name))
        writer.commit()
        try:
            self.store.save_logs(
                target,
                0,
                stdout=self.store.load_log(source, origin.attempt, "stdout"),
                stderr=self.store.load_log(source, origin.attempt, "stderr"),
            )
        except NotFoundError:
            pass  # a task that left no logs
        parents = ["%s/%s/%s" % (self.flow, self.run_id, ref) for ref in spec.inputs if ref != PARAMETERS_REF]
        self.meta.start_attempt(
            target,
            0,
            pid=os.getpid(),
            foreach_stack=list(origin.foreach_stack),
            parent_tasks=parents,
            origin_pathspec=origin.pathspec,
        )
        self.meta.end_attempt(target, 0, "successful", exit_code=0, reason="cloned", duration=0.0,
                              result=origin.result)
        self.origin_of["%s/%s" % (spec.step, spec.task_id)] = "%s/%s" % (source.step, source.task_id)
        self.cloned += 1
        return origin.result

    def copy_parameters(self):
        """The new run's parameters task: the origin's, by reference."""
        from mflow.store.pathspec import Pathspec

        source = Pathspec.task(self.flow, self.plan.origin_run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)
        target = Pathspec.task(self.flow, self.run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)
        loader = self.store.artifacts(source)
        writer = self.store.artifact_writer(target, 0)
        for name in loader:
            writer.carry(loader.record(name))
        writer.commit()
