"""FlowSpec, the base class of every flow, and what steps call on self (next, merge_artifacts...).

Nothing here runs a flow: the task runner drives an instance through its `_`-named hooks.
"""

import sys
import types
from collections import namedtuple

from mflow.errors import FlowDefinitionError, ParameterError, TransitionError

from .decorators import pending_decorator_problem
from .parameters import Parameter


class Transition(namedtuple("Transition", "steps foreach condition cases num_splits")):
    """What a step's self.next() asked for, for the task runner to act on.

    steps: the names of the steps that run next (for a switch, the one case picked).
    foreach/num_splits: the artifact a foreach iterates over and how many items it holds.
    condition/cases: the artifact a switch reads and its (value, step name) pairs.
    """

    __slots__ = ()

    def __new__(cls, steps, foreach=None, condition=None, cases=None, num_splits=None):
        return super().__new__(cls, tuple(steps), foreach, condition, cases, num_splits)

    @property
    def kind(self):
        """One of linear, split, foreach or switch, as the static graph names them."""
        if self.condition is not None:
            return "switch"
        if self.foreach is not None:
            return "foreach"
        return "split" if len(self.steps) > 1 else "linear"


# One level of foreach nesting around a task: which step split, over which artifact,
# this task's position in it, and the item it got (what self.input returns).
ForeachFrame = namedtuple("ForeachFrame", "step var index num_splits value")


class _FlowName:
    """`MyFlow.name` and `self.name`: the flow's class name."""

    def __get__(self, flow, owner=None):
        return (owner or type(flow)).__name__


_NO_NAMES = types.MappingProxyType({})


class FlowSpec:
    """Base class of a flow: @step methods joined by self.next(), Parameters, constants.

    `MyFlow()` under `__main__` hands the command line to mflow (`python flow.py run`);
    `MyFlow(use_cli=False)` only builds an instance.
    """

    # Instance state of the flow machinery, never an artifact of the user's.
    _EPHEMERAL = frozenset(
        ["_current_step", "_transition", "_foreach_stack", "_parameter_values", "_read_only", "_artifact_source"]
    )
    _current_step = None
    _transition = None
    _foreach_stack = ()
    _read_only = _NO_NAMES

    name = _FlowName()

    def __init__(self, use_cli=True):
        if use_cli:
            from mflow.cli.flowfile import run_flow_class

            run_flow_class(type(self))

    def __init_subclass__(cls, **kwargs):
        # Runs when the flow's class body has been evaluated, so mistakes fail at import.
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            problem = pending_decorator_problem(name, value)
            if problem:
                raise problem
            if name in _flowspec_names():
                raise FlowDefinitionError(
                    "flow %s defines %r, which hides FlowSpec.%s" % (cls.__name__, name, name),
                    "Rename it",
                )
        cls._get_parameters()

    # --- the class: steps, parameters, constants ----------------------------------------------

    @classmethod
    def _members(cls):
        """Every attribute the flow's own classes define, in definition order (bases first)."""
        members = {}
        for klass in reversed(cls.__mro__):
            if klass is object or klass is FlowSpec:
                continue
            for name, value in vars(klass).items():
                # An override keeps the position of the name it replaces.
                members[name] = value
        return members

    @classmethod
    def _get_steps(cls):
        """[(name, function)] of the flow's steps in definition order."""
        return [
            (name, value)
            for name, value in cls._members().items()
            if isinstance(value, types.FunctionType) and getattr(value, "is_step", False)
        ]

    @classmethod
    def _get_parameters(cls):
        """[(attribute, Parameter)] in definition order.

        Raises FlowDefinitionError when two parameters share a name (names are
        case-insensitive and - equals _, since each becomes a --NAME option) or when a
        parameter is named like a step.
        """
        steps = {name for name, _ in cls._get_steps()}
        found = []
        seen = {}
        for attribute, value in cls._members().items():
            if not isinstance(value, Parameter):
                continue
            if value._attribute is None:
                value._attribute = attribute  # assigned after the class was created
            key = value.name.lower().replace("-", "_")
            if key in seen:
                raise FlowDefinitionError(
                    "parameters %r (self.%s) and %r (self.%s) of flow %s have the same name"
                    % (seen[key][1].name, seen[key][0], value.name, attribute, cls.__name__),
                    "Rename one; parameter names ignore case and treat - as _",
                )
            seen[key] = (attribute, value)
            for clash in (attribute, key):
                if clash in steps:
                    raise FlowDefinitionError(
                        "parameter %r (self.%s) has the same name as step %r" % (value.name, attribute, clash),
                        "Rename the parameter or the step",
                    )
            found.append((attribute, value))
        return found

    @classmethod
    def _get_constants(cls):
        """[(name, value)] of class attributes that are neither steps, parameters nor methods."""
        return [
            (name, value)
            for name, value in cls._members().items()
            if not name.startswith("_")
            and not isinstance(
                value, (types.FunctionType, classmethod, staticmethod, property, type, Parameter)
            )
        ]

    # --- the task runner's hooks ------------------------------------------------------------

    def _begin_step(self, step_name, foreach_stack=()):
        """Make this instance the one running `step_name`.

        `foreach_stack` holds a ForeachFrame (or a 5-tuple of its fields) per enclosing
        foreach, outermost first. From here on class constants and step names are read-only.
        """
        steps = [name for name, _ in self._get_steps()]
        if step_name not in steps:
            raise ValueError("flow %s has no step %r" % (self.name, step_name))
        self._current_step = step_name
        self._foreach_stack = tuple(f if isinstance(f, ForeachFrame) else ForeachFrame(*f) for f in foreach_stack)
        self._transition = None
        read_only = {name: "a class constant" for name, _ in self._get_constants()}
        read_only.update((name, "a step") for name in steps)
        self._read_only = types.MappingProxyType(read_only)

    def _set_parameter_values(self, values):
        """Give parameters their run's values, keyed by attribute name (self.ATTRIBUTE)."""
        known = {attribute for attribute, _ in self._get_parameters()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(
                "flow %s has no parameter %s" % (self.name, ", ".join(unknown)),
                "Give values only for %s" % (", ".join(sorted(known)) or "no parameters: the flow has none"),
            )
        merged = dict(self.__dict__.get("_parameter_values", {}))
        merged.update(values)
        self._parameter_values = merged

    def _set_artifact_source(self, source):
        """Let the instance read artifacts it does not hold from `source`, a Mapping of
        name -> value that loads lazily (a parent task's artifacts). A value read from it
        becomes an attribute, so a step that changes it in place keeps the change."""
        object.__setattr__(self, "_artifact_source", source)

    def _artifact_names(self):
        """Names of the artifacts this instance holds or can read from its source."""
        names = [name for name in self.__dict__ if name not in self._EPHEMERAL and not name.startswith("__")]
        source = self.__dict__.get("_artifact_source")
        if source is not None:
            names.extend(name for name in source if name not in self.__dict__)
        return names

    def _artifact_key(self, name):
        """The content key of artifact `name` when it is unchanged from the source, else None."""
        source = self.__dict__.get("_artifact_source")
        key_of = getattr(source, "key_of", None)
        if key_of is None or name in self.__dict__:
            return None
        return key_of(name)

    def __getattr__(self, name):
        # Only reached when normal lookup fails: the artifact may be in the source.
        source = self.__dict__.get("_artifact_source")
        if source is not None and not name.startswith("__") and name in source:
            value = source[name]
            object.__setattr__(self, name, value)
            return value
        descriptor = getattr(type(self), name, None)
        if isinstance(descriptor, Parameter):
            return descriptor.__get__(self)  # raises its own, clearer AttributeError
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    def __setattr__(self, name, value):
        kind = self._read_only.get(name)
        if kind is not None:
            raise FlowDefinitionError(
                "step %r assigns self.%s, which is %s of flow %s" % (self._current_step, name, kind, self.name),
                "It is read-only in steps; store the value under another name",
            )
        object.__setattr__(self, name, value)

    # --- what steps use ---------------------------------------------------------------------

    @property
    def input(self):
        """The item of the foreach this task handles; None outside a foreach."""
        return self._foreach_stack[-1].value if self._foreach_stack else None

    @property
    def index(self):
        """This task's 0-based position in its foreach; None outside a foreach."""
        return self._foreach_stack[-1].index if self._foreach_stack else None

    def foreach_stack(self):
        """[(index, num_splits, value)] for each enclosing foreach, outermost first."""
        return [(frame.index, frame.num_splits, frame.value) for frame in self._foreach_stack]

    def next(self, *targets, foreach=None, condition=None, **unknown):
        """Say which step(s) run after this one; the last statement of every step but end.

            self.next(self.a)                                   # linear
            self.next(self.a, self.b)                           # split
            self.next(self.train, foreach="params")             # one task per item
            self.next({"hi": self.a, "lo": self.b}, condition="mode")  # switch on self.mode
        """
        step = self._current_step or sys._getframe(1).f_code.co_name
        if unknown:
            raise TransitionError(
                "step %r passes unknown keyword %s to self.next()" % (step, ", ".join(sorted(unknown))),
                "self.next() takes steps, foreach= or condition=",
            )
        if self._transition is not None:
            raise TransitionError(
                "step %r calls self.next() twice" % step, "Call self.next() once, as the step's last statement"
            )
        if condition is not None or any(isinstance(target, dict) for target in targets):
            transition = self._switch(step, targets, condition, foreach)
        elif foreach is not None:
            transition = self._foreach(step, self._target_names(step, targets), foreach)
        else:
            transition = Transition(self._target_names(step, targets))
        self._transition = transition

    def _target_names(self, step, targets, allow_repeats=False):
        if not targets:
            raise TransitionError(
                "step %r calls self.next() without a step" % step, "Name the next step, e.g. self.next(self.end)"
            )
        names = []
        for position, target in enumerate(targets, 1):
            func = getattr(target, "__func__", None)
            if func is None or getattr(target, "__self__", None) is not self:
                raise TransitionError(
                    "argument %d of self.next() in step %r is %s, not a step of this flow"
                    % (position, step, _short(target)),
                    "Pass a step method, e.g. self.next(self.end)",
                )
            name = func.__name__
            if not getattr(func, "is_step", False):
                raise TransitionError(
                    "step %r goes to %r, which is not a step" % (step, name), "Add @step to %s" % name
                )
            if name in names and not allow_repeats:
                raise TransitionError(
                    "step %r names step %r twice in self.next()" % (step, name), "Name each next step once"
                )
            names.append(name)
        return names

    def _foreach(self, step, names, var):
        if not isinstance(var, str):
            raise TransitionError(
                "step %r gives foreach=%s; it must name an artifact as a string" % (step, _short(var)),
                "Write e.g. self.next(self.train, foreach='params')",
            )
        if len(names) != 1:
            raise TransitionError(
                "step %r has a foreach over %d steps" % (step, len(names)), "A foreach goes to exactly one step"
            )
        try:
            items = getattr(self, var)
        except AttributeError:
            raise TransitionError(
                "the foreach of step %r names self.%s, which does not exist" % (step, var),
                "Assign self.%s before calling self.next()" % var,
            ) from None
        try:
            count = len(items)
        except TypeError:
            try:
                count = sum(1 for _ in items)
            except TypeError:
                raise TransitionError(
                    "the foreach of step %r iterates over self.%s, a %s, which is not iterable"
                    % (step, var, type(items).__name__),
                    "Give foreach= a list or another iterable",
                ) from None
        if count == 0:
            raise TransitionError(
                "the foreach of step %r iterates over self.%s, which is empty" % (step, var),
                "Give it at least one item",
            )
        return Transition(names, foreach=var, num_splits=count)

    def _switch(self, step, targets, condition, foreach):
        example = "Write e.g. self.next({'a': self.a, 'b': self.b}, condition='mode')"
        if foreach is not None:
            raise TransitionError("step %r gives both a switch and foreach=" % step, "A switch cannot be a foreach")
        if len(targets) != 1 or not isinstance(targets[0], dict):
            if condition is None:
                raise TransitionError("step %r passes self.next() a dict of cases among other steps" % step, example)
            raise TransitionError("step %r gives condition= without a single dict of cases" % step, example)
        if condition is None:
            raise TransitionError("step %r gives a dict of cases without condition=" % step, example)
        if not isinstance(condition, str):
            raise TransitionError(
                "step %r gives condition=%s; it must name an artifact as a string" % (step, _short(condition)), example
            )
        cases = targets[0]
        if len(cases) < 2:
            raise TransitionError("the switch of step %r has %d case(s)" % (step, len(cases)), "Give at least two")
        bad_keys = [key for key in cases if not isinstance(key, str)]
        if bad_keys:
            raise TransitionError(
                "the switch of step %r has case %s; cases must be strings" % (step, _short(bad_keys[0])), example
            )
        names = self._target_names(step, list(cases.values()), allow_repeats=True)
        try:
            value = getattr(self, condition)
        except AttributeError:
            raise TransitionError(
                "the switch of step %r reads self.%s, which does not exist" % (step, condition),
                "Assign self.%s before calling self.next()" % condition,
            ) from None
        pairs = tuple(zip(cases, names))
        picked = [name for case, name in pairs if isinstance(value, str) and case == value]
        if not picked:
            raise TransitionError(
                "the switch of step %r reads self.%s = %s, which matches no case" % (step, condition, _short(value)),
                "Set self.%s to one of %s" % (condition, ", ".join(repr(case) for case in cases)),
            )
        return Transition(picked, condition=condition, cases=pairs)

    def merge_artifacts(self, inputs, exclude=None, include=None):
        """In a join, copy to self the artifacts its inputs agree on.

        Artifacts already set on self, parameters and class constants are left alone.
        An artifact whose inputs hold different values is a conflict: set it on self
        first. `include` (only these, each must exist) and `exclude` are exclusive.
        Nothing is set when anything fails.
        """
        step = self._current_step or sys._getframe(1).f_code.co_name
        include = list(include or ())
        exclude = set(exclude or ())
        if include and exclude:
            raise FlowDefinitionError(
                "step %r gives merge_artifacts both include= and exclude=" % step, "Give only one of them"
            )
        try:
            sources = list(inputs)
        except TypeError:
            sources = [inputs]
        if not sources or not all(callable(getattr(source, "_artifact_names", None)) for source in sources):
            raise FlowDefinitionError(
                "step %r calls merge_artifacts with %s, not a join's inputs" % (step, _short(inputs)),
                "Call self.merge_artifacts(inputs) in a join step (def join(self, inputs))",
            )
        never = set(self._EPHEMERAL)
        never.update(attribute for attribute, _ in self._get_parameters())
        never.update(name for name, _ in self._get_constants())
        chosen = {}
        conflicts = []
        for source in sources:
            for name in source._artifact_names():
                if name in never or name in exclude or (include and name not in include) or hasattr(self, name):
                    continue
                if name not in chosen:
                    chosen[name] = source
                elif name not in conflicts and not _same_artifact(chosen[name], source, name):
                    conflicts.append(name)
        if conflicts:
            error = FlowDefinitionError(
                "step %r cannot merge artifacts %s: its inputs hold different values"
                % (step, ", ".join(sorted(conflicts))),
                "Set %s on self in the join before calling merge_artifacts, or exclude them"
                % ", ".join("self.%s" % name for name in sorted(conflicts)),
            )
            error.artifacts = sorted(conflicts)
            raise error
        missing = [name for name in include if name not in chosen and not hasattr(self, name)]
        if missing:
            error = FlowDefinitionError(
                "step %r asks merge_artifacts to include %s, which no input has" % (step, ", ".join(missing)),
                "Include only artifacts set in at least one branch",
            )
            error.artifacts = missing
            raise error
        values = {name: getattr(source, name) for name, source in chosen.items()}
        for name, value in values.items():
            setattr(self, name, value)

    def __getstate__(self):
        raise FlowDefinitionError(
            "flow %s cannot be stored as an artifact; a step assigned self or an input to an attribute" % self.name,
            "Store specific values instead, e.g. self.x = inp.x",
        )

    def __repr__(self):
        if self._current_step is None:
            return "<flow %s>" % self.name
        where = ",".join(str(frame.index) for frame in self._foreach_stack)
        return "<flow %s step %s%s>" % (self.name, self._current_step, "[%s]" % where if where else "")


class Inputs:
    """A join step's `inputs`: iterate over the incoming flows, index them, or pick one by
    the step it ran (`inputs.train`), as in Metaflow."""

    def __init__(self, flows):
        self._flows = tuple(flows)

    def __iter__(self):
        return iter(self._flows)

    def __len__(self):
        return len(self._flows)

    def __getitem__(self, index):
        return self._flows[index]

    def __getattr__(self, name):
        if not name.startswith("_"):
            for flow in self._flows:
                if getattr(flow, "_current_step", None) == name:
                    return flow
        steps = ", ".join(str(getattr(flow, "_current_step", None)) for flow in self._flows)
        raise AttributeError("inputs has no step %r; it holds %s" % (name, steps))


def _same_artifact(first, second, name):
    first_key, second_key = _artifact_key(first, name), _artifact_key(second, name)
    if first_key is not None and second_key is not None:
        return first_key == second_key
    return _equal_values(getattr(first, name), getattr(second, name))


def _artifact_key(source, name):
    key_of = getattr(source, "_artifact_key", None)
    return key_of(name) if callable(key_of) else None


def _equal_values(first, second):
    if first is second:
        return True
    try:
        same = first == second
        if isinstance(same, bool):
            return same
    except Exception:
        pass
    # Values whose == is not a plain bool (arrays, data frames) compare by their bytes.
    import pickle

    try:
        return pickle.dumps(first, protocol=4) == pickle.dumps(second, protocol=4)
    except Exception:
        return False


def _flowspec_names():
    return frozenset(name for name in vars(FlowSpec) if not name.startswith("_"))


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
