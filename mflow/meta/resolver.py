"""What a pathspec typed by a user names: `latest` and `latest_successful` in place of a run
id, and Flow/run/step/NAME for an artifact of a step's tasks. Used by every command.

Not by mflow-task: Pathspec.parse, on its hot path, never touches the store.
"""

from __future__ import annotations

from mflow.errors import NotFoundError, PathspecError
from mflow.naming import is_identifier
from mflow.store.pathspec import Pathspec

from .metastore import DEFAULT, RUN_ALIASES
from .tags import get_namespace


class PathspecResolver:
    """Resolves the pathspecs of one command against one MetaStore.

    `latest` and `latest_successful` stand for the run id that MetaStore.latest gives in
    `namespace` (DEFAULT: the one in use, `user:<you>`; None: every run). Each flow's
    aliases are looked up once and kept, so a run that starts or ends while the command
    works cannot mix two runs in one answer: make one resolver per command.
    """

    def __init__(self, meta, namespace=DEFAULT):
        self.meta = meta
        self.namespace = get_namespace(meta.environ) if namespace is DEFAULT else namespace
        self._run_ids = {}  # (flow, alias) -> run id
        self._task_ids = {}  # step pathspec -> its task ids, in task id order

    def run_id(self, flow, run_id):
        """`run_id` itself, or the run `latest` or `latest_successful` stands for in `flow`."""
        if run_id not in RUN_ALIASES:
            return run_id
        key = (flow, run_id)
        if key not in self._run_ids:
            self._run_ids[key] = self._latest(flow, run_id)
        return self._run_ids[key]

    def _latest(self, flow, alias):
        successful = RUN_ALIASES[alias]
        try:
            return self.meta.latest(flow, successful=successful, namespace=self.namespace).run_id
        except NotFoundError:
            ns = self.namespace
            raise NotFoundError(
                "flow %s has no %srun%s in store %s, so %s/%s names none"
                % (flow, "successful " if successful else "", " in namespace %s" % ns if ns else "", self.meta.url,
                   flow, alias),
                "Run the flow first, or name a run by its id: `mflow-meta runs %s --all-namespaces` lists them" % flow,
                store=self.meta.url,
            ) from None

    def resolve(self, spec):
        """The Pathspec with its run id resolved (see run_id)."""
        if spec.run_id not in RUN_ALIASES:
            return spec
        return spec._replace(run_id=self.run_id(spec.flow, spec.run_id))

    def parse(self, text, min_depth=1, max_depth=5):
        """Pathspec.parse, then resolve: PathspecError for a malformed pathspec, before any lookup."""
        return self.resolve(Pathspec.parse(text, min_depth, max_depth))

    def task_ids(self, step):
        """The ids of the tasks of a step pathspec (Flow/run/step), in task id order, as
        mflow-meta lists them; NotFoundError for an unknown run, or a step with no tasks."""
        step = Pathspec(*step.parts[:3])
        if step not in self._task_ids:
            self._task_ids[step] = [task.task_id for task in self.meta.tasks(step.flow, step.run_id, step.step)]
        return self._task_ids[step]

    def step_artifact(self, spec):
        """For Flow/run/step/X: X when it names an artifact of the step rather than a task
        (X is a Python identifier, and the step has no task X), else None.

        A task id of digits is never looked up: no artifact name is all digits.
        """
        if spec.depth != 4 or not is_identifier(spec.task_id):
            return None
        return spec.task_id if spec.task_id not in self.task_ids(spec) else None

    def artifacts(self, spec, every_task=False):
        """The pathspecs a pathspec of depth 4 or 5 names, each a task's (depth 4) or a task's
        artifact (depth 5): itself, or for Flow/run/step/NAME the artifact NAME of the step's
        one task, or of each task with `every_task`. PathspecError when the step has several
        tasks and not `every_task`."""
        name = self.step_artifact(spec)
        if name is None:
            return [spec]
        task_ids = self.task_ids(spec)
        if len(task_ids) > 1 and not every_task:
            step = Pathspec(*spec.parts[:3])
            raise PathspecError(
                "step %s of run %s/%s has %d tasks, so %s names no one artifact"
                % (step.step, step.flow, step.run_id, len(task_ids), spec),
                "Name one task (%s/TASK/%s; `mflow-meta tasks %s` lists them) or give --all" % (step, name, step),
            )
        return [Pathspec(spec.flow, spec.run_id, spec.step, task_id, name) for task_id in task_ids]

