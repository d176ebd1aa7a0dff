"""Runs a deployment's tasks the way a production scheduler does: each task's mflow-task
command as its own process, in the structure's order, foreach splits from --splits-file.

Not a scheduler of mflow's: the tests use it to hold the protocol every export follows
(mflow.deploy) to its word, with real processes against a real store.
"""

import json
import os
import subprocess

from mflow.deploy import ForEach, Parallel, Step, failure_command, task_command, task_id


class TaskFailed(Exception):
    def __init__(self, step, result):
        self.step, self.result = step, result
        super().__init__("task of step %s exited %d: %s" % (step, result.returncode, result.stderr[-2000:]))


class SchedulerSim:
    """Execute `deployment`'s run `run_id`: `run()` returns the commands it ran, in order."""

    def __init__(self, deployment, run_id, env, workdir, params=None, executable=None, meta_executable=None):
        self.deployment, self.run_id, self.env, self.workdir = deployment, run_id, env, str(workdir)
        self.params = params
        self.executable = executable or "mflow-task"
        self.meta_executable = meta_executable or "mflow-meta"
        self.commands = []

    def run(self):
        try:
            self._sequence(self.deployment.structure, [], None)
        except TaskFailed as failed:
            self._call(failure_command(self.deployment, self.run_id, "step %s failed" % failed.step,
                                       executable=self.meta_executable), "run-end")
            raise
        return self.commands

    def _sequence(self, sequence, indices, split_index):
        previous_splits = None
        for node in sequence:
            if isinstance(node, Step):
                previous_splits = self._step(node, indices, split_index if node.split_index else None)
            elif isinstance(node, Parallel):
                for branch in node.branches:
                    self._sequence(branch, indices, None)
            elif isinstance(node, ForEach):
                for index in previous_splits:
                    self._sequence(node.body, indices + [index], index)

    def _step(self, step, indices, split_index):
        me = task_id(indices)
        parent = task_id(indices[:-1])
        inputs = [i.ref(parent if i.relation == "parent" else me) for i in step.inputs]
        splits = os.path.join(self.workdir, "splits-%s-%s.json" % (step.name, me)) if step.kind == "foreach" else None
        params = json.dumps(self.params) if step.name == "start" and self.params is not None else None
        command = task_command(self.deployment, step.name, self.run_id, me, inputs, split_index, params, splits,
                               executable=self.executable)
        self._call(command, step.name)
        if splits is not None:
            with open(splits) as handle:
                return json.load(handle)
        return None

    def _call(self, command, step):
        self.commands.append(command)
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, cwd=self.workdir, timeout=120)
        if result.returncode != 0:
            raise TaskFailed(step, result)
        return result
