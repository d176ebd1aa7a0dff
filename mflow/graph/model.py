"""The static graph of one flow: its steps, transitions, parameters and decorators.

Plain data built by mflow.graph.parse and completed by mflow.graph.analyze; nothing here
imports or runs the flow.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

SCHEMA_VERSION = 1


@dataclass
class Problem:
    """One broken graph rule, reported as FILE:LINE: error: message."""

    line: int
    message: str

    def format(self, path):
        return "%s:%d: error: %s" % (path, self.line, self.message)

    def as_dict(self):
        return {"line": self.line, "message": self.message}


@dataclass
class Decorator:
    """A decorator on a step or the flow class, with its keyword arguments.

    `args` holds literal values; arguments whose value is an expression hold its source
    text and are named in `nonliteral`.
    """

    name: str
    line: int
    args: Dict[str, object] = field(default_factory=dict)
    nonliteral: List[str] = field(default_factory=list)
    positional: int = 0

    def as_dict(self):
        return {"name": self.name, "args": self.args, "nonliteral": self.nonliteral, "line": self.line}


@dataclass
class Transition:
    """The self.next(...) call that ends a step.

    kind is "linear" (one target), "split" (several), "foreach" (one target and a
    foreach variable) or "switch" (a dict of cases and a condition variable).
    """

    kind: str
    line: int
    targets: List[str] = field(default_factory=list)
    foreach: Optional[str] = None
    condition: Optional[str] = None
    cases: Optional[Dict[str, str]] = None


@dataclass
class StepNode:
    """One @step method and what the analysis learned about its place in the graph."""

    name: str
    line: int
    doc: Optional[str] = None
    arg_names: List[str] = field(default_factory=list)
    decorators: List[Decorator] = field(default_factory=list)
    transition: Optional[Transition] = None
    # Set by analyze():
    type: str = "linear"
    in_steps: List[str] = field(default_factory=list)
    matching_join: Optional[str] = None  # for a split or foreach: the join that closes it
    split: Optional[str] = None  # for a join: the split or foreach it closes
    split_parents: List[str] = field(default_factory=list)  # enclosing splits, outermost first

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


@dataclass
class ParameterInfo:
    """A Parameter or IncludeFile declared on the flow class."""

    attribute: str
    name: Optional[str]
    kind: str  # "Parameter" or "IncludeFile"
    line: int
    type: str = "str"
    default: object = None
    default_literal: bool = True
    has_default: bool = False
    help: Optional[str] = None
    required: bool = False
    separator: Optional[str] = None

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


@dataclass
class FlowGraph:
    """A flow class as the static parser sees it."""

    path: str
    name: str
    line: int
    doc: Optional[str] = None
    decorators: List[Decorator] = field(default_factory=list)
    parameters: List[ParameterInfo] = field(default_factory=list)
    steps: Dict[str, StepNode] = field(default_factory=dict)
    problems: List[Problem] = field(default_factory=list)

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
