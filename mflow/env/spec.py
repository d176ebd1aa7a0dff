"""What environment each step asks for: @pypi_base on the flow merged with the step's @pypi
(and --with pypi:...), the step's values winning, as a canonical, hashable EnvSpec."""

from __future__ import annotations

from mflow.namedtuple import NamedTuple

_SEPARATORS = r"[-_.]+"  # through re's cache of patterns: re is imported only to normalize


def normalize(name):
    """A package name as indexes compare them (PEP 503): "Foo_Bar" -> "foo-bar"."""
    import re

    base, bracket, extras = name.partition("[")
    base = re.sub(_SEPARATORS, "-", base.strip()).lower()
    if not bracket:
        return base
    names = sorted(re.sub(_SEPARATORS, "-", e.strip()).lower() for e in extras.rstrip("]").split(",") if e.strip())
    return "%s[%s]" % (base, ",".join(names))


def base_name(name):
    """The distribution of a requirement name, without extras: "dask[df]" -> "dask"."""
    return normalize(name).split("[")[0]


class EnvSpec(NamedTuple):
    """The packages (normalized name, version text) a step asks for, and its python=."""

    packages: Tuple[Tuple[str, str], ...]
    python: Optional[str] = None

    @classmethod
    def make(cls, packages, python=None):
        merged = {}
        for name, version in (packages or {}).items():
            merged[normalize(name)] = (version or "").strip()
        return cls(tuple(sorted(merged.items())), python)

    def to_json(self):
        return {"packages": dict(self.packages), "python": self.python}

    @classmethod
    def from_json(cls, data):
        return cls.make(data.get("packages") or {}, data.get("python"))

    def requirements(self):
        """pip requirement lines: six==1.16.0, requests>=2,<3, numpy."""
        from mflow.decospec import requirement

        return [requirement(name, version) for name, version in self.packages]

    def describe(self):
        text = ", ".join(r for r in self.requirements()) or "no packages"
        return text + (" on Python %s" % self.python if self.python else "")


def step_specs(flow_class, graph, with_decorators=None):
    """{step: EnvSpec} for every step that runs in an environment; steps without @pypi (or
    a flow without @pypi_base), and steps with @pypi(disabled=True), are left out."""
    from mflow.flow.decorators import flow_decorators
    from mflow.task.decorators import task_decorators

    base = flow_decorators(flow_class).get("pypi_base")
    specs = {}
    for step in graph.steps:
        step_pypi = task_decorators(flow_class, graph, step, with_decorators).get("pypi")
        if step_pypi is None and base is None:
            continue
        if step_pypi is not None and step_pypi.get("disabled"):
            continue
        packages = {}
        python = None
        for attributes in (base.attributes if base else None, step_pypi):
            if not attributes:
                continue
            for name, version in (attributes.get("packages") or {}).items():
                packages[normalize(name)] = version
            python = attributes.get("python") or python
        specs[step] = EnvSpec.make(packages, python)
    return specs


def may_enter_environment(graph, step, environment, with_specs=()):
    """Whether a task of `step` may run in an environment of its own: not with --environment
    local, and only when the flow file gives the step one (decided without the store)."""
    return environment != "local" and static_uses_environment(graph, step, with_specs)


def static_uses_environment(graph, step, with_specs=()):
    """Whether the flow file, read statically, gives `step` an environment: a cheap test
    mflow-task makes before it reads the run's lock from the store."""
    node = graph[step]
    if any(deco.name == "pypi_base" for deco in graph.decorators):
        return True
    if node.decorator("pypi") is not None:
        return True
    return any(spec.split(":", 1)[0].strip() == "pypi" for spec in with_specs)
