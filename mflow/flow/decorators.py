"""@step and the step decorators (@retry, @catch, @timeout, @resources, @environment).

Decorator arguments are judged by mflow.decospec, the same table the static linter uses.
"""

import types

from mflow.decospec import STEP_DECORATORS
from mflow.errors import FlowDefinitionError

# Decorators applied before @step (i.e. written below it) wait here until @step or the
# flow class sees them, so the error can say which mistake it was.
_PENDING = "_pending_step_decorators"


def step(f):
    """Mark a method as a step of its flow; put other step decorators above @step."""
    if not isinstance(f, types.FunctionType):
        raise FlowDefinitionError(
            "@step is applied to %s, not to a method" % _describe(f),
            "Put @step directly above the def of a step method",
        )
    if getattr(f, "is_step", False):
        raise FlowDefinitionError("@step is applied twice to step %r" % f.__name__, "Keep one @step")
    pending = f.__dict__.pop(_PENDING, None)
    if pending:
        name = pending[0]
        raise FlowDefinitionError(
            "@%s on step %r is placed below @step" % (name, f.__name__),
            "Put @%s above @step, with @step directly above def" % name,
        )
    f.is_step = True
    f.name = f.__name__
    f.decorators = []
    return f


class StepDecorator:
    """One decorator on one step: its name, its arguments merged over the defaults.

    `given` holds only the arguments written in the flow; `attributes` adds the defaults.
    Subclasses (one per decorator name) are where run-time behaviour will live.
    """

    name = None

    def __init__(self, attributes=None, step_name=None):
        self.given, self.attributes = _checked(STEP_DECORATORS[self.name], attributes, "step %r" % step_name)
        self.step_name = step_name

    def __repr__(self):
        args = ", ".join("%s=%r" % item for item in sorted(self.given.items()))
        return "@%s(%s)" % (self.name, args) if args else "@%s" % self.name


STEP_DECORATOR_CLASSES = {}


def make_step_decorator(name, decorator_class=None):
    """The user-facing @NAME for a decorator of decospec.STEP_DECORATORS.

    It works bare (`@NAME`) or called with keyword arguments (`@NAME(a=1)`), and adds a
    `decorator_class` instance (by default a plain StepDecorator subclass) to the step.
    """
    if name not in STEP_DECORATORS:
        raise KeyError("no step decorator %r in mflow.decospec.STEP_DECORATORS" % name)
    if decorator_class is None:
        class_name = "".join(part.title() for part in name.split("_")) + "Decorator"
        decorator_class = type(class_name, (StepDecorator,), {"name": name, "__module__": __name__})
    STEP_DECORATOR_CLASSES[name] = decorator_class

    def decorator(*args, **kwargs):
        if len(args) == 1 and isinstance(args[0], types.FunctionType):
            return _attach(decorator_class, args[0], kwargs)
        if len(args) == 1 and callable(args[0]) and not kwargs:
            raise FlowDefinitionError(
                "@%s is applied to %s, not to a step method" % (name, _describe(args[0])),
                "Put @%s above @step, with @step directly above def" % name,
            )
        return lambda f: _attach(decorator_class, f, kwargs, positional=args)

    decorator.__name__ = decorator.__qualname__ = name
    decorator.__doc__ = _DOCS.get(name)
    return decorator


def _attach(decorator_class, f, kwargs, positional=()):
    name = decorator_class.name
    if not isinstance(f, types.FunctionType):
        raise FlowDefinitionError(
            "@%s is applied to %s, not to a step method" % (name, _describe(f)),
            "Put @%s above @step, with @step directly above def" % name,
        )
    step_name = f.__name__
    if positional:
        raise FlowDefinitionError(
            "@%s on step %r has positional arguments (%s)" % (name, step_name, ", ".join(map(repr, positional))),
            "Name them: @%s(%s)" % (name, ", ".join("%s=..." % arg for arg in STEP_DECORATORS[name].defaults)),
        )
    instance = decorator_class(kwargs, step_name=step_name)
    if not getattr(f, "is_step", False):
        # Decorators apply bottom-up, so one written below @step runs before it.
        f.__dict__.setdefault(_PENDING, []).insert(0, name)
        return f
    if not STEP_DECORATORS[name].allow_multiple and any(d.name == name for d in f.decorators):
        raise FlowDefinitionError("@%s is applied twice to step %r" % (name, step_name), "Keep one @%s" % name)
    # Bottom-up application again: inserting at the front keeps source order top to bottom.
    f.decorators.insert(0, instance)
    return f


def pending_decorator_problem(name, f):
    """The error for a method with step decorators but no @step, or None when it has none."""
    pending = getattr(f, _PENDING, None)
    if not pending or getattr(f, "is_step", False):
        return None
    return FlowDefinitionError(
        "@%s on method %r has no @step under it" % (pending[0], name),
        "Put @step directly above def, below @%s" % pending[0],
    )


def _checked(spec, attributes, where):
    """(given, merged over the defaults) of a decorator's arguments, or the error naming them."""
    given = dict(attributes or {})
    problems = spec.problems(given)
    if problems:
        # decospec's messages already say what a valid argument looks like.
        raise FlowDefinitionError("@%s on %s: %s" % (spec.name, where, "; ".join(problems)))
    merged = _fresh_copy(spec.defaults)
    merged.update(given)
    return given, merged


def _fresh_copy(defaults):
    # Defaults such as environment's vars={} must not be shared between steps.
    return {key: (dict(value) if isinstance(value, dict) else value) for key, value in defaults.items()}


def _describe(obj):
    name = getattr(obj, "__name__", None)
    kind = type(obj).__name__
    return "%s %r" % (kind, name) if name else "a %s" % kind


_DOCS = {
    "retry": "Retry a failed task: @retry(times=3, minutes_between_retries=2).",
    "catch": "Let a step's failure not stop the run; store the exception in artifact `var`: @catch(var='error').",
    "timeout": "Fail a task that runs longer than seconds + minutes + hours: @timeout(minutes=10).",
    "resources": "Declare what a task needs (cpu, gpu, memory and disk in MB, shared_memory) for the compute layer.",
    "environment": "Set environment variables for a step's task: @environment(vars={'NAME': 'value'}).",
    "batch": "Run the step's tasks on AWS Batch: @batch(cpu=4, memory=16000, queue='q', image='repo/img:tag').",
    "slurm": "Run the step's tasks as Slurm jobs: @slurm(partition='short', cpus=4, memory=16000, time=60).",
    "pypi": "Run the step in a virtual environment holding exactly these PyPI packages (plus mflow): "
    "@pypi(packages={'six': '1.16.0'}, python='3.11').",
}

retry = make_step_decorator("retry")
catch = make_step_decorator("catch")
timeout = make_step_decorator("timeout")
resources = make_step_decorator("resources")
environment = make_step_decorator("environment")
batch = make_step_decorator("batch")
slurm = make_step_decorator("slurm")
pypi = make_step_decorator("pypi")


# --- decorators of the flow class -------------------------------------------------------------


class FlowDecorator:
    """One decorator on a flow class (@pypi_base): its name and arguments over the defaults."""

    name = None

    def __init__(self, attributes=None, flow_name=None):
        from mflow.decospec import FLOW_DECORATORS

        self.given, self.attributes = _checked(FLOW_DECORATORS[self.name], attributes, "flow %s" % flow_name)

    def __repr__(self):
        args = ", ".join("%s=%r" % item for item in sorted(self.given.items()))
        return "@%s(%s)" % (self.name, args)


def flow_decorators(flow_class):
    """{name: FlowDecorator} of a flow class, its bases' included (the class's own win)."""
    return dict(getattr(flow_class, "_flow_decorators", None) or {})


def make_flow_decorator(name):
    """The user-facing @NAME(...) for a decorator of decospec.FLOW_DECORATORS, put above
    `class MyFlow(FlowSpec):`."""
    class_name = "".join(part.title() for part in name.split("_")) + "FlowDecorator"
    decorator_class = type(class_name, (FlowDecorator,), {"name": name, "__module__": __name__})

    def apply(cls, kwargs):
        if not isinstance(cls, type) or not hasattr(cls, "_get_steps"):
            raise FlowDefinitionError(
                "@%s is applied to %s, not to a flow class" % (name, _describe(cls)),
                "Put @%s above `class MyFlow(FlowSpec):`" % name,
            )
        found = flow_decorators(cls)
        if name in cls.__dict__.get("_flow_decorators", {}):
            raise FlowDefinitionError("@%s is applied twice to flow %s" % (name, cls.__name__), "Keep one @%s" % name)
        found[name] = decorator_class(kwargs, flow_name=cls.__name__)
        cls._flow_decorators = found
        return cls

    def decorator(*args, **kwargs):
        if len(args) == 1 and not kwargs and isinstance(args[0], type):
            return apply(args[0], {})
        if args:
            raise FlowDefinitionError(
                "@%s takes keyword arguments only, not %s" % (name, ", ".join(map(repr, args))),
                "Write e.g. @%s(%s)" % (name, _FLOW_EXAMPLES.get(name, "...")),
            )
        return lambda cls: apply(cls, kwargs)

    decorator.__name__ = decorator.__qualname__ = name
    decorator.__doc__ = _FLOW_DOCS.get(name)
    return decorator


_FLOW_EXAMPLES = {"pypi_base": "packages={'six': '1.16.0'}", "schedule": "cron='0 10 * * *'", "project": "name='fraud'"}

_FLOW_DOCS = {
    "pypi_base": "Run every step in a virtual environment holding these PyPI packages: "
    "@pypi_base(packages={'pandas': '2.2.2'}, python='3.11'); a step's @pypi values win.",
    "schedule": "When a deployed flow runs: @schedule(cron='0 10 * * *', timezone='Europe/Berlin'), "
    "or hourly=True, daily=True (the default), weekly=True.",
    "project": "Put the flow in a project: @project(name='fraud'); runs and deployments are named and "
    "tagged by branch (--branch NAME, --production).",
}

pypi_base = make_flow_decorator("pypi_base")
schedule = make_flow_decorator("schedule")
project = make_flow_decorator("project")
