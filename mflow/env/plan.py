"""The driver's and mflow-task's entry points: resolve and build a run's environments before
it starts (resolve_run -> EnvPlan, recorded with the run), and find a step's interpreter
when its task starts (step_python, task_python)."""

import hashlib
import json
import os
import sys
import time

from mflow.errors import EnvironmentBuildError, MflowError

from .build import ensure_env
from .cache import FORMAT, cache_path, inside_environment, read_json, write_json
from .interpreter import find
from .lock import LockedEnv, load_run_lock, save_run_lock
from .spec import EnvSpec, step_specs

ENVIRONMENTS = ("pypi", "local")


class EnvPlan:
    """What resolve_run settled: the environment (a LockedEnv) of each step that has one,
    built on this machine, its wheels in the store. `steps` are the steps whose tasks must
    start in their environment's interpreter; record() keeps the lock with a run."""

    def __init__(self, store, step_envs=None, environments=None, actions=(), step_specs=None):
        self.store = store
        self.step_envs = dict(step_envs or {})
        self.step_specs = dict(step_specs or {})
        self.environments = dict(environments or {})
        self.actions = list(actions)

    @property
    def steps(self):
        return frozenset(self.step_envs)

    def record(self, flow, run_id):
        """Store the lock with run `run_id`, so its tasks, remote workers and resume find it."""
        if self.step_envs:
            specs = {step: spec.to_json() for step, spec in self.step_specs.items()}
            save_run_lock(self.store, flow, run_id, self.step_envs, self.environments, specs)

    def __repr__(self):
        return "EnvPlan(%s)" % ", ".join("%s=%s" % item for item in sorted(self.step_envs.items()))


def resolve_run(store, flow_class, graph, flow_file=None, with_decorators=None, environment="pypi", origin=None,
                refresh=False, environ=None):
    """The EnvPlan of a run about to start: each distinct @pypi/@pypi_base spec resolved
    (or its lock taken from `origin`, the (flow, run_id) a resume continues), built once on
    this machine and its wheels put in the store. Bad input raises EnvironmentSpecError,
    naming the step and the package, before anything is built."""
    environ = os.environ if environ is None else environ
    if environment not in ENVIRONMENTS:
        raise EnvironmentBuildError(
            "--environment %s is not one of %s" % (environment, ", ".join(ENVIRONMENTS)), "Use pypi or local"
        )
    specs = {} if environment == "local" else step_specs(flow_class, graph, with_decorators)
    if not specs:
        return EnvPlan(store)
    from .installer import pick_installer

    installer = pick_installer(environ)
    groups = {}
    for step, spec in specs.items():
        groups.setdefault(spec, []).append(step)
    origin_lock = load_run_lock(store, *origin) if origin else None
    locked = {}  # spec -> (LockedEnv, interpreter, how)
    to_resolve = []
    for spec, steps in groups.items():
        from_origin = _origin_env(origin_lock, spec, steps)
        if from_origin is not None:
            locked[spec] = (from_origin, find(from_origin.python, steps, environ), "locked by origin run")
        else:
            to_resolve.append((spec, steps, find(spec.python, steps, environ)))  # python= checked before any work
    for (spec, steps, interp), env in zip(to_resolve, _parallel(
            [lambda s=spec, st=steps, i=interp: _resolve(s, st, i, installer, refresh, environ)
             for spec, steps, interp in to_resolve])):
        locked[spec] = (env[0], interp, env[1])
    order = sorted(groups, key=lambda spec: min(groups[spec]))
    built = _parallel([lambda s=spec: ensure_env(locked[s][0], locked[s][1], installer, store, environ)
                       for spec in order])
    step_envs, environments, actions = {}, {}, []
    for spec, result in zip(order, built):
        env = result.env
        _store_wheels(store, env, result, environ)
        if locked[spec][2] == "resolved":
            _remember_resolution(spec, locked[spec][1], env, environ)
        environments[env.env_id] = env
        for step in groups[spec]:
            step_envs[step] = env.env_id
        actions.append({
            "steps": sorted(groups[spec]),
            "env_id": env.env_id,
            "packages": ["%s==%s" % (p.name, p.version) for p in env.packages],
            "python": env.python,
            "lock": locked[spec][2],
            "action": result.action,
            "installer": installer.describe(),
            "seconds": round(result.seconds, 3),
            "path": result.path,
        })
    return EnvPlan(store, step_envs, environments, actions, specs)


def _parallel(jobs):
    """Run the callables on threads (they wait on pip, uv and the network); their results in
    order, or the first job's error in order."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, len(jobs))) as pool:
        futures = [pool.submit(job) for job in jobs]
    return [future.result() for future in futures]


def _origin_env(origin_lock, spec, steps):
    """The origin run's environment for these steps, if it was locked for the same spec."""
    if origin_lock is None:
        return None
    for step in sorted(steps):
        _, env = origin_lock.env_of(step)
        asked = origin_lock.specs.get(step)
        if env is not None and asked is not None and EnvSpec.from_json(asked) == spec:
            return env
    return None


def _resolution_path(spec, interp, environ):
    identity = json.dumps([FORMAT, spec.to_json(), interp.key, interp.version], sort_keys=True)
    return cache_path("resolved", hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24] + ".json", environ=environ)


def _resolve(spec, steps, interp, installer, refresh, environ):
    """(LockedEnv, how): the spec's lock from this machine's resolution cache, else resolved."""
    path = _resolution_path(spec, interp, environ)
    if not refresh:
        cached = read_json(path)
        if cached is not None:
            return LockedEnv.from_json(cached), "cached"
    from .build import scratch_python

    packages = installer.resolve(
        interp, spec.requirements(), _mflow_constraints(), steps, scratch=scratch_python(interp, installer, environ)
    )
    env = LockedEnv(spec.to_json(), interp.short, interp.implementation, interp.platform, installer.describe(),
                    tuple(sorted(packages, key=lambda p: p.name.lower())))
    return env, "resolved"


def _remember_resolution(spec, interp, env, environ):
    try:
        write_json(_resolution_path(spec, interp, environ), env.to_json())
    except OSError:
        pass  # a read-only cache costs a resolution next time, nothing else


def _mflow_constraints():
    """mflow's own requirements: a step may pin any package, but not one mflow cannot run
    with (that conflict is reported like any other)."""
    from importlib import metadata

    try:
        requires = metadata.requires("mflow") or ()
    except metadata.PackageNotFoundError:
        return []
    return [r.split(";")[0].strip() for r in requires if "extra" not in r.partition(";")[2]]


def _store_wheels(store, env, result, environ):
    from .wheels import local_wheel, upload_wheels

    paths = list(result.wheels) or [local_wheel(p, environ) for p in env.packages]
    if any(path is None for path in paths):
        return  # built elsewhere from the store: the wheels are there already
    try:
        upload_wheels(store, env.packages, paths)
    except (OSError, MflowError) as exc:
        raise EnvironmentBuildError(
            "cannot put the wheels of environment %s in store %s: %s" % (env.env_id, store.url, exc),
            "Check that the store is writable",
        ) from None


# --- when a task starts ---------------------------------------------------------------------


def step_python(store, flow, run_id, step, environ=None):
    """The interpreter of `step`'s environment in run `run_id` (built here from the run's
    lock if this machine lacks it, its wheels from the store first), or None when the run
    recorded no environment for the step."""
    lock = load_run_lock(store, flow, run_id)
    if lock is None:
        return None
    env_id, env = lock.env_of(step)
    if env is None:
        return None
    return _built_python(store, env, step, environ).python


def _built_python(store, env, step, environ):
    from .installer import pick_installer

    interp = find(env.python, [step], environ)
    pure = all((p.wheel or p.filename).endswith("-none-any.whl") for p in env.packages)
    if interp.key != env.key and not pure:
        raise EnvironmentBuildError(
            "the environment of step %s was locked for %s; this machine runs %s" % (step, env.key, interp.key),
            "Run the step on a machine of the same platform, or resolve it again with a new run",
        )
    return ensure_env(env, interp, pick_installer(environ), store, environ)


def task_python(store, graph, step, run_id, environment="pypi", with_specs=(), environ=None):
    """(python, env id) that mflow-task must run `step` in, or None to run it here: with
    --environment local, for a step without @pypi/@pypi_base, inside its environment
    already, or for a run that recorded no lock."""
    from .spec import may_enter_environment

    if not may_enter_environment(graph, step, environment, with_specs):
        return None
    if inside_environment(environ) is not None:
        return None
    lock = load_run_lock(store, graph.name, run_id)
    env_id, env = lock.env_of(step) if lock is not None else (None, None)
    if env is None:
        return None
    started = time.time()
    built = _built_python(store, env, step, environ)
    if built.action == "built":
        sys.stderr.write("Built the environment of step %s (%s) in %.1f s.\n"
                         % (step, env.describe(), time.time() - started))
    return built.python, env_id

