"""Which tasks a run needs next, from the static graph and the results of finished tasks.

Pure bookkeeping, no processes and no store: the driver feeds it results, it hands back
TaskSpecs. Foreach fan-out, join gathering (nested too) and switch choices live here.
"""

from __future__ import annotations

from mflow.namedtuple import NamedTuple
from mflow.naming import PARAMETERS_STEP, PARAMETERS_TASK_ID  # noqa: F401 - re-exported


class Frame(NamedTuple):
    """One enclosing split of a task: the split's step and task, and which branch this is
    (the target step name for a static split, the item index for a foreach)."""

    step: str
    task_id: str
    branch: object


class TaskSpec(NamedTuple):
    """A task to run: its step and id, the task ids it reads (in join order), the foreach
    item index for a foreach child, and its split context."""

    step: str
    task_id: str
    inputs: Tuple[str, ...]  # "step/task_id" of each input task
    split_index: Optional[int]
    context: Tuple[Frame, ...]


class TaskOutcome(NamedTuple):
    """What a finished task asks for next, as mflow-task reports it."""

    next_steps: Tuple[str, ...]  # for a switch: only the case taken
    transition: Optional[str]  # linear, split, foreach, switch, or None for end
    num_splits: Optional[int] = None


class RunPlanner:
    """Tracks one run's tasks: give it each finished task's outcome, get the tasks that
    have become ready. Task ids are allocated here, counting up from `first_task_id`."""

    def __init__(self, graph, first_task_id=1):
        self.graph = graph
        self._next_id = first_task_id
        self.tasks = {}  # task_id -> TaskSpec
        self._num_splits = {}  # task_id of a foreach split -> its number of items
        self._arrivals = {}  # (join step, context key) -> {branch: "step/task_id"}
        self.unfinished = set()

    def new_task_id(self):
        task_id = str(self._next_id)
        self._next_id += 1
        return task_id

    def start(self):
        """The first task: start, reading the run's parameters."""
        return [self._spec("start", ("%s/%s" % (PARAMETERS_STEP, PARAMETERS_TASK_ID),), None, ())]

    def _spec(self, step, inputs, split_index, context, task_id=None):
        spec = TaskSpec(step, task_id or self.new_task_id(), tuple(inputs), split_index, tuple(context))
        self.tasks[spec.task_id] = spec
        self.unfinished.add(spec.task_id)
        return spec

    def finished(self, task_id, outcome):
        """Record that a task succeeded with `outcome`; the TaskSpecs now ready to run."""
        spec = self.tasks[task_id]
        self.unfinished.discard(task_id)
        me = "%s/%s" % (spec.step, task_id)
        ready = []
        kind = outcome.transition
        if kind is None:
            return ready
        if kind == "foreach":
            self._num_splits[task_id] = outcome.num_splits
            target = outcome.next_steps[0]
            for index in range(outcome.num_splits):
                context = spec.context + (Frame(spec.step, task_id, index),)
                ready.extend(self._arrive(target, me, context, split_index=index))
            return ready
        for target in outcome.next_steps:
            context = spec.context
            if kind == "split":
                context = context + (Frame(spec.step, task_id, target),)
            ready.extend(self._arrive(target, me, context))
        return ready

    def _arrive(self, target, source, context, split_index=None):
        node = self.graph[target]
        if not node.is_join:
            return [self._spec(target, (source,), split_index, context)]
        frame = context[-1]
        key = (target, context[:-1], frame.step, frame.task_id)
        arrived = self._arrivals.setdefault(key, {})
        arrived[frame.branch] = source
        split = self.graph[frame.step]
        if split.transition.kind == "foreach":
            expected = list(range(self._num_splits[frame.task_id]))
        else:
            expected = list(split.transition.targets)
        if len(arrived) < len(expected):
            return []
        del self._arrivals[key]
        inputs = [arrived[branch] for branch in expected]
        return [self._spec(target, inputs, None, context[:-1])]

    def waiting_joins(self):
        """Joins some of whose inputs have arrived: (join step, arrived count)."""
        return [(key[0], len(arrived)) for key, arrived in self._arrivals.items()]
