"""Locked environments: the exact distributions (and their wheels' keys) an environment
holds, and the record that keeps them with a run in the store.

data/<Flow>/<run>/environments.json (schema 1):
  {"schema": 1, "type": "environments", "pathspec": "Flow/run",
   "steps": {"start": "<env id>", ...}, "specs": {"start": {"packages": {...}, "python": null}, ...},
   "environments": {"<env id>": {"spec": {...}, "python": "3.11", "implementation": "cpython",
        "platform": "linux-x86_64", "resolver": "uv 0.13.9",
        "packages": [{"name", "version", "url", "sha256", "wheel", "key", "size"}, ...]}}}
Each package's "key" is the store blob of its wheel, so gc keeps the wheels of kept runs
and `mflow-store cp` copies them along.
"""

from __future__ import annotations

import hashlib
import json

from mflow.errors import NotFoundError
from mflow.namedtuple import NamedTuple

SCHEMA = 1


class LockedPackage(NamedTuple):
    """One distribution of a locked environment.

    `url`/`sha256` are the file the resolver chose (a wheel, or an sdist built into a
    wheel); `wheel`/`key`/`size` are the wheel installed, whose key is its SHA-256 and so
    its blob key in the store. `key` is None until the wheel has been fetched or built.
    """

    name: str
    version: str
    url: Optional[str]
    sha256: str
    wheel: Optional[str] = None
    key: Optional[str] = None
    size: Optional[int] = None

    @property
    def filename(self):
        return (self.url or "").rstrip("/").rsplit("/", 1)[-1]

    def to_json(self):
        return dict(self._asdict())

    @classmethod
    def from_json(cls, data):
        return cls(**{name: data.get(name) for name in cls._fields})


class LockedEnv(NamedTuple):
    """A resolved environment: the spec it answers, where it runs, what it holds."""

    spec: dict
    python: str  # "3.11"
    implementation: str
    platform: str
    resolver: str
    packages: Tuple[LockedPackage, ...]

    @property
    def env_id(self):
        """A hash of what the environment is (platform and each distribution's file), not of
        how it was asked for: two specs that resolve alike share one environment."""
        identity = {
            "python": self.python,
            "implementation": self.implementation,
            "platform": self.platform,
            "packages": sorted([p.name, p.version, p.sha256] for p in self.packages),
        }
        data = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return hashlib.sha256(data).hexdigest()[:20]

    @property
    def key(self):
        return "%s-%s-%s" % (self.implementation, self.python, self.platform)

    def with_packages(self, packages):
        return self._replace(packages=tuple(packages))

    def to_json(self):
        data = dict(self._asdict())
        data["packages"] = [p.to_json() for p in self.packages]
        return data

    @classmethod
    def from_json(cls, data):
        return cls(
            spec=data.get("spec") or {},
            python=data["python"],
            implementation=data["implementation"],
            platform=data["platform"],
            resolver=data.get("resolver") or "",
            packages=tuple(LockedPackage.from_json(p) for p in data.get("packages") or ()),
        )

    def describe(self):
        return ", ".join("%s==%s" % (p.name, p.version) for p in self.packages) or "no packages"


def run_record(flow, run_id, step_envs, environments, step_specs):
    """The environments.json record of a run: {step: env id}, {step: the spec it asked
    for} and each locked environment."""
    return {
        "schema": SCHEMA,
        "type": "environments",
        "pathspec": "%s/%s" % (flow, run_id),
        "steps": dict(sorted(step_envs.items())),
        "specs": {step: spec for step, spec in sorted(step_specs.items())},
        "environments": {env_id: env.to_json() for env_id, env in sorted(environments.items())},
    }


def save_run_lock(store, flow, run_id, step_envs, environments, step_specs):
    """Keep the lock with the run; written once (a second write keeps the first)."""
    from mflow.store.layout import environments_path

    record = run_record(flow, run_id, step_envs, environments, step_specs)
    store.write_record(environments_path(flow, run_id), record, exclusive=True)
    return record


class RunLock(NamedTuple):
    """A run's lock as read back: {step: env id}, {env id: LockedEnv}, {step: spec}."""

    steps: dict
    environments: dict
    specs: dict

    def env_of(self, step):
        env_id = self.steps.get(step)
        return (env_id, self.environments[env_id]) if env_id is not None else (None, None)


def load_run_lock(store, flow, run_id):
    """The RunLock of a run, or None when the run recorded no environments."""
    from mflow.store.layout import environments_path

    try:
        record = store.read_record(environments_path(flow, run_id))
    except NotFoundError:
        return None
    environments = {env_id: LockedEnv.from_json(env) for env_id, env in (record.get("environments") or {}).items()}
    return RunLock(dict(record.get("steps") or {}), environments, dict(record.get("specs") or {}))
