"""Which step decorators apply to a task: the step's own, and `--with` ones it lacks.

The driver and mflow-task both ask here, so a task behaves the same however it starts.
"""

from mflow.decospec import EXECUTOR_DECORATORS, STEP_DECORATORS
from mflow.errors import ParameterError


def parse_with(specs):
    """{name: arguments} from --with values like `retry` or `retry:times=2,minutes_between_retries=0`.

    Values are Python literals; a bad name or argument is a ParameterError (exit 2)."""
    if not specs:
        return {}  # most tasks: without importing the literal reader (and _ast) for nothing
    from mflow.graph.syntax import literal_eval  # ast.literal_eval, without importing ast

    parsed = {}
    for text in specs:
        name, _, rest = text.partition(":")
        name = name.strip()
        if name not in STEP_DECORATORS:
            raise ParameterError(
                "--with %s names no decorator mflow knows" % text,
                "Use one of %s, e.g. --with retry:times=2" % ", ".join(sorted(STEP_DECORATORS)),
            )
        args = {}
        for item in filter(None, (part.strip() for part in _split_arguments(rest))):
            key, equals, value = item.partition("=")
            if not equals:
                raise ParameterError("--with %s: %r is not NAME=VALUE" % (text, item), "Write e.g. --with retry:times=2")
            try:
                args[key.strip()] = literal_eval(value.strip())
            except (ValueError, SyntaxError):
                args[key.strip()] = value.strip()
        problems = STEP_DECORATORS[name].problems(args)
        if problems:
            raise ParameterError("--with %s: %s" % (text, "; ".join(problems)), "Fix the argument")
        parsed[name] = args
    return parsed


def _split_arguments(text):
    """`a=1,b=[1, 2],c={'x': 'y,z'}` split at the commas between arguments only."""
    parts, depth, quote, start = [], 0, None, 0
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def with_texts(with_decorators):
    """--with values that parse_with turns back into `with_decorators` ({name: arguments}):
    how the driver hands its --with on to a task it starts as a command."""
    texts = []
    for name, args in sorted((with_decorators or {}).items()):
        items = ",".join("%s=%r" % (key, value) for key, value in sorted(args.items()))
        texts.append("%s:%s" % (name, items) if items else name)
    return texts


def task_decorators(flow_class, graph, step, with_decorators=None):
    """{name: attributes (defaults filled in)} of the decorators that apply to `step`."""
    found = {}
    for decorator in getattr(getattr(flow_class, step, None), "decorators", ()):
        found[decorator.name] = _unset_retry_delay(decorator.name, dict(decorator.attributes), decorator.given)
    kind = graph[step].transition.kind if graph[step].transition else None
    for name, args in (with_decorators or {}).items():
        if name in found:
            continue  # the step's own decorator wins over --with
        if name == "catch" and kind in ("foreach", "switch"):
            continue  # @catch cannot stand on these (a lint rule); --with skips them
        if name in EXECUTOR_DECORATORS and any(other in found for other in EXECUTOR_DECORATORS):
            continue  # a step's own @batch or @slurm wins over --with of another engine
        merged = dict(STEP_DECORATORS[name].defaults)
        merged.update(args)
        found[name] = _unset_retry_delay(name, merged, args)
    return found


def _unset_retry_delay(name, attributes, given):
    """A @retry without minutes_between_retries gets None there: the driver then retries a
    local task at once, as Metaflow does, and a remote one after Metaflow's 2 minutes."""
    if name == "retry" and "minutes_between_retries" not in given:
        attributes["minutes_between_retries"] = None
    return attributes
