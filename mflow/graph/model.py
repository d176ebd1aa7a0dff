"""The static graph of one flow: its steps, transitions, parameters and decorators.

Plain data built by mflow.graph.parse and completed by mflow.graph.analyze; nothing here
imports or runs the flow.
"""

SCHEMA_VERSION = 1
_REQUIRED = object()


class _Plain:
    """Plain data from FIELDS, (name, default) pairs: keyword or positional construction,
    equality and repr, as dataclasses would give; a default of `list` or `dict` is a new
    one per object. (Every task reads the graph: dataclasses' import and code generation
    would cost each one more than the graph itself.)"""

    FIELDS = ()
    __hash__ = None

    def __init__(self, *args, **kwargs):
        if len(args) > len(self.FIELDS):
            raise TypeError("%s() takes at most %d arguments" % (type(self).__name__, len(self.FIELDS)))
        for (name, _), value in zip(self.FIELDS, args):
            setattr(self, name, value)
        for name, default in self.FIELDS[len(args):]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif default is _REQUIRED:
                raise TypeError("%s() needs %s" % (type(self).__name__, name))
            else:
                value = default() if default in (list, dict) else default
            setattr(self, name, value)
        if kwargs:
            raise TypeError("%s() got unexpected %s" % (type(self).__name__, ", ".join(sorted(kwargs))))

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name, _ in self.FIELDS)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (n, getattr(self, n)) for n, _ in self.FIELDS))


class Problem(_Plain):
    """One broken graph rule, reported as FILE:LINE: error: message."""

    FIELDS = (
        ("line", _REQUIRED),  # int
        ("message", _REQUIRED),  # str
    )

    def format(self, path):
        return "%s:%d: error: %s" % (path, self.line, self.message)

    def as_dict(self):
        return {"line": self.line, "message": self.message}


class Decorator(_Plain):
    """A decorator on a step or the flow class, with its keyword arguments.

    `args` holds literal values; arguments whose value is an expression hold its source
    text and are named in `nonliteral`.
    """

    FIELDS = (
        ("name", _REQUIRED),  # str
        ("line", _REQUIRED),  # int
        ("args", dict),  # Dict[str, object]
        ("nonliteral", list),  # List[str]
        ("positional", 0),  # int
    )

    def as_dict(self):
        return {"name": self.name, "args": self.args, "nonliteral": self.nonliteral, "line": self.line}


class Transition(_Plain):
    """The self.next(...) call that ends a step.

    kind is "linear" (one target), "split" (several), "foreach" (one target and a
    foreach variable) or "switch" (a dict of cases and a condition variable).
    """

    FIELDS = (
        ("kind", _REQUIRED),  # str
        ("line", _REQUIRED),  # int
        ("targets", list),  # List[str]
        ("foreach", None),  # Optional[str]
        ("condition", None),  # Optional[str]
        ("cases", None),  # Optional[Dict[str, str]]
    )


class StepNode(_Plain):
    """One @step method and what the analysis learned about its place in the graph."""

    FIELDS = (
        ("name", _REQUIRED),  # str
        ("line", _REQUIRED),  # int
        ("doc", None),  # Optional[str]
        ("arg_names", list),  # List[str]
        ("decorators", list),  # List[Decorator]
        ("transition", None),  # Optional[Transition]
        # Set by analyze():
        ("type", "linear"),  # str
        ("in_steps", list),  # List[str]
        ("matching_join", None),  # Optional[str]: for a split or foreach: the join that closes it
        ("split", None),  # Optional[str]: for a join: the split or foreach it closes
        ("split_parents", list),  # List[str]: enclosing splits, outermost first
    )

    @property
    def is_join(self):
        return len(self.arg_names) == 2

    @property
    def next_steps(self):
        return list(self.transition.targets) if self.transition else []

    def decorator(self, name):
        for deco in self.decorators:
            if deco.name == name:
                return deco
        return None


class ParameterInfo(_Plain):
    """A Parameter or IncludeFile declared on the flow class."""

    FIELDS = (
        ("attribute", _REQUIRED),  # str
        ("name", _REQUIRED),  # Optional[str]
        ("kind", _REQUIRED),  # str: "Parameter" or "IncludeFile"
        ("line", _REQUIRED),  # int
        ("type", "str"),  # str
        ("default", None),  # object
        ("default_literal", True),  # bool
        ("has_default", False),  # bool
        ("help", None),  # Optional[str]
        ("required", False),  # bool
        ("separator", None),  # Optional[str]
    )

    def as_dict(self):
        return {
            "attribute": self.attribute,
            "name": self.name,
            "kind": self.kind,
            "type": self.type,
            "default": self.default,
            "default_literal": self.default_literal,
            "has_default": self.has_default,
            "help": self.help,
            "required": self.required,
            "separator": self.separator,
            "line": self.line,
        }


class FlowGraph(_Plain):
    """A flow class as the static parser sees it."""

    FIELDS = (
        ("path", _REQUIRED),  # str
        ("name", _REQUIRED),  # str
        ("line", _REQUIRED),  # int
        ("doc", None),  # Optional[str]
        ("decorators", list),  # List[Decorator]
        ("parameters", list),  # List[ParameterInfo]
        ("steps", dict),  # Dict[str, StepNode]
        ("problems", list),  # List[Problem]
    )

    def __getitem__(self, name):
        return self.steps[name]

    def __contains__(self, name):
        return name in self.steps

    def __iter__(self):
        return iter(self.steps.values())

    def sorted_problems(self):
        return sorted(self.problems, key=lambda p: (p.line, p.message))

    def ordered_steps(self):
        """Steps in the order a reader follows them: depth first from start, each join
        after all the branches it closes, then any step unreachable from start."""
        seen, order = set(), []
        waiting = {name: len(set(node.in_steps) - {name}) for name, node in self.steps.items()}

        def visit(root):
            stack = [root]
            while stack:
                name = stack.pop()
                if name in seen or name not in self.steps:
                    continue
                seen.add(name)
                order.append(self.steps[name])
                ready = []
                for target in self.steps[name].next_steps:
                    if target == name:
                        continue
                    waiting[target] = waiting.get(target, 0) - 1
                    if waiting[target] <= 0:
                        ready.append(target)
                stack.extend(reversed(ready))

        if "start" in self.steps:
            visit("start")
        for name in self.steps:
            visit(name)
        return order
