"""`mflow env show` and `mflow env diff` as data: which interpreter inventory each task
attempt recorded, grouped by step, and what changed between two runs."""

from __future__ import annotations

from mflow.errors import NotFoundError
from mflow.namedtuple import NamedTuple

ROW_SCHEMA = 1


class TaskEnvironment(NamedTuple):
    """The inventory a task's latest started attempt recorded (or, for a task resume
    cloned, the one its origin task recorded)."""

    pathspec: str
    step: str
    key: Optional[str]
    env_id: Optional[str]


def _recorded(meta, info, depth=0):
    for attempt in reversed(info.attempts):
        environment = attempt.start.environment if attempt.start is not None else None
        if environment and environment.get("key"):
            return environment
    record = info.record
    if not info.attempts and record is not None and record.origin_pathspec and depth < 50:
        try:
            return _recorded(meta, meta.task(record.origin_pathspec), depth + 1)
        except NotFoundError:
            return None
    return None


def task_environments(meta, pathspec):
    """TaskEnvironment of every task under a run, step or task Pathspec."""
    if pathspec.depth == 4:
        infos = [meta.task(str(pathspec))]
    else:
        meta.run(pathspec.flow, pathspec.run_id)  # NotFoundError for an unknown run
        infos = meta.tasks(pathspec.flow, pathspec.run_id, pathspec.step if pathspec.depth == 3 else None)
    found = []
    for info in infos:
        environment = _recorded(meta, info) or {}
        found.append(TaskEnvironment(info.pathspec, info.step, environment.get("key"), environment.get("env_id")))
    return found


class InventoryCache:
    """Inventories by blob key, each read once."""

    def __init__(self, store):
        self.store = store
        self._loaded = {}

    def __getitem__(self, key):
        if key not in self._loaded:
            from .inventory import load_inventory

            self._loaded[key] = load_inventory(self.store, key)
        return self._loaded[key]


def _by_step(environments):
    """{step: (key, env_id)} of a run: each step's tasks' inventory (the first task's when
    tasks of one step differ, which only a change to the machines mid-run does)."""
    steps = {}
    for item in environments:
        if item.key is not None:
            steps.setdefault(item.step, (item.key, item.env_id))
    return steps


def show_rows(store, meta, pathspec):
    """Rows of `mflow env show` (schema 1): one per distribution of each distinct inventory,
    with the steps (or the task) that ran on it."""
    environments = task_environments(meta, pathspec)
    if not any(item.key for item in environments):
        raise NotFoundError(
            "%s has no recorded interpreter (its tasks ran before mflow recorded one, or never started)" % pathspec,
            "Give a run, step or task that ran",
            store=store.url,
        )
    groups = {}
    for item in environments:
        if item.key is None:
            continue
        group = groups.setdefault((item.key, item.env_id), {"steps": [], "tasks": []})
        if item.step not in group["steps"]:
            group["steps"].append(item.step)
        group["tasks"].append(item.pathspec)
    inventories = InventoryCache(store)
    rows = []
    for (key, env_id), group in groups.items():
        inventory = inventories[key]
        for name, version in inventory["distributions"]:
            rows.append({
                "schema": ROW_SCHEMA,
                "pathspec": str(pathspec),
                "steps": group["steps"],
                "python": inventory["python"],
                "env_id": env_id,
                "inventory_key": key,
                "name": name,
                "version": version,
            })
    return rows


def _versions(inventory):
    return {name.lower(): (name, version) for name, version in inventory["distributions"]}


def _changes(a, b):
    """[(change, name, version in a, version in b)] from inventory a to inventory b."""
    changes = []
    if a["python"] != b["python"]:
        changes.append(("changed", "python", a["python"], b["python"]))
    va, vb = _versions(a), _versions(b)
    for lower in sorted(set(va) | set(vb)):
        if lower not in vb:
            changes.append(("removed", va[lower][0], va[lower][1], None))
        elif lower not in va:
            changes.append(("added", vb[lower][0], None, vb[lower][1]))
        elif va[lower][1] != vb[lower][1]:
            changes.append(("changed", vb[lower][0], va[lower][1], vb[lower][1]))
    return changes


def diff_rows(store, meta, run_a, run_b):
    """Rows of `mflow env diff` (schema 1): each distribution added, removed or changed from
    run A to run B. When every step changed alike, one set of rows with step None; else
    rows per step that changed. Steps only one run has are left out (see `skipped`)."""
    steps_a = _by_step(task_environments(meta, run_a))
    steps_b = _by_step(task_environments(meta, run_b))
    common = [step for step in steps_a if step in steps_b]
    inventories = InventoryCache(store)
    per_step = {}
    for step in common:
        (key_a, _), (key_b, _) = steps_a[step], steps_b[step]
        per_step[step] = [] if key_a == key_b else _changes(inventories[key_a], inventories[key_b])
    distinct = {tuple(changes) for changes in per_step.values()}
    if len(distinct) == 1 and len(per_step) > 1:
        grouped = [(None, per_step[common[0]])]
    else:
        grouped = [(step, changes) for step, changes in per_step.items() if changes]
    rows = []
    for step, changes in grouped:
        for change, name, old, new in changes:
            rows.append({
                "schema": ROW_SCHEMA,
                "step": step,
                "change": change,
                "name": name,
                "a": old,
                "b": new,
            })
    skipped = sorted(set(steps_a) ^ set(steps_b))
    return rows, skipped
