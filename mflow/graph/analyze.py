"""The graph rules: complete a parsed FlowGraph and record every rule it breaks.

Each rule adds Problems (line + message) instead of stopping, so one run reports them all.
"""

from mflow.decospec import FLOW_DECORATORS, STEP_DECORATORS
from mflow.naming import RESERVED_STEP_NAMES, is_parameter_name, is_reserved_parameter, is_step_name, parameter_key

from .model import Problem

def analyze(graph):
    """Fill in each step's type, inputs and split/join pairing, and add to graph.problems
    every graph rule the flow breaks. Returns the graph."""
    _check_names(graph)
    _check_parameters(graph)
    _check_decorators(graph)
    _check_arguments(graph)
    _check_start_and_end(graph)
    _resolve_edges(graph)
    _set_types(graph)
    reachable = _check_reachable(graph)
    acyclic = _check_cycles(graph, reachable)
    if acyclic and "start" in graph.steps:
        _check_split_join(graph, reachable)
    _check_catch_placement(graph)
    return graph


def _add(graph, line, message):
    graph.problems.append(Problem(line, message))


def _check_names(graph):
    for node in graph:
        if node.name.startswith("_"):
            _add(graph, node.line, "step name %s starts with _; step names may not" % node.name)
        elif not is_step_name(node.name):
            _add(graph, node.line, "step name %s is invalid; use lowercase letters, digits and _" % node.name)
        if node.name in RESERVED_STEP_NAMES:
            _add(graph, node.line, "step name %s is reserved by FlowSpec; rename the step" % node.name)


def _check_parameters(graph):
    seen = {}
    for param in graph.parameters:
        if not isinstance(param.name, str) or not param.name:
            _add(graph, param.line, "%s %s has no name; give it one, e.g. %s('%s')" % (
                param.kind, param.attribute, param.kind, param.attribute))
            continue
        if not is_parameter_name(param.name):
            _add(graph, param.line, "parameter name %r is invalid; use letters, digits, _ and -" % param.name)
        if is_reserved_parameter(param.name):
            _add(graph, param.line, "parameter name %r is reserved, as in Metaflow; rename it" % param.name)
        key = parameter_key(param.name)
        if key in seen:
            first_name, first_line = seen[key]
            same = "is declared twice" if first_name == param.name else "clashes with %r (case and - versus _ do not count)" % first_name
            _add(graph, param.line, "parameter %r %s (lines %d and %d)" % (param.name, same, first_line, param.line))
        else:
            seen[key] = (param.name, param.line)
        clash = param.attribute if param.attribute in graph.steps else param.name if param.name in graph.steps else None
        if clash:
            _add(graph, param.line, "parameter %s has the same name as step %s; rename one" % (param.attribute, clash))
        problem = _default_problem(param)
        if problem:
            _add(graph, param.line, "parameter %r: %s" % (param.name, problem))


def _default_problem(param):
    if not param.has_default or not param.default_literal or param.default is None:
        return None
    value = param.default
    if param.type == "JSONType" and isinstance(value, str):
        import json

        try:
            json.loads(value)
        except ValueError as exc:
            return "default %r is not valid JSON (%s)" % (value, exc)
        return None
    expected = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}.get(param.type)
    if expected is None:
        return None
    if param.separator and isinstance(value, str):
        return None
    if isinstance(value, bool) and param.type != "bool":
        return "default %r is not of type %s" % (value, param.type)
    if not isinstance(value, expected):
        return "default %r is not of type %s" % (value, param.type)
    return None


def _check_decorators(graph):
    _check_flow_decorators(graph)
    for node in graph:
        seen = set()
        for deco in node.decorators:
            if deco.name in FLOW_DECORATORS:
                _add(graph, deco.line, "@%s on step %s belongs on the flow class; on a step use @%s"
                     % (deco.name, node.name, deco.name.replace("_base", "")))
                continue
            spec = STEP_DECORATORS.get(deco.name)
            if deco.name in seen and not (spec and spec.allow_multiple):
                _add(graph, deco.line, "@%s is applied twice to step %s; keep one" % (deco.name, node.name))
            seen.add(deco.name)
            if spec is not None:  # else the user's own decorator: nothing to judge
                _check_arguments_of(graph, deco, spec, "step %s" % node.name)


def _check_arguments_of(graph, deco, spec, where):
    if deco.positional:
        _add(graph, deco.line, "@%s on %s takes keyword arguments only" % (deco.name, where))
        return
    literal = [k for k in deco.args if k not in deco.nonliteral]
    for problem in spec.problems(deco.args, literal_only=literal):
        _add(graph, deco.line, "@%s on %s: %s" % (deco.name, where, problem))


def _check_flow_decorators(graph):
    seen = set()
    for deco in graph.decorators:
        if deco.name in STEP_DECORATORS and deco.name not in FLOW_DECORATORS:
            _add(graph, deco.line, "@%s is a step decorator; put it above a step's @step, not on flow %s"
                 % (deco.name, graph.name))
            continue
        spec = FLOW_DECORATORS.get(deco.name)
        if spec is None:
            continue  # the user's own class decorator
        if deco.name in seen:
            _add(graph, deco.line, "@%s is applied twice to flow %s; keep one" % (deco.name, graph.name))
        seen.add(deco.name)
        _check_arguments_of(graph, deco, spec, "flow %s" % graph.name)


def _check_arguments(graph):
    for node in graph:
        count = len(node.arg_names)
        if count > 2:
            _add(graph, node.line, "step %s takes %d arguments; a step takes only self, a join (self, inputs)" % (node.name, count))
        elif count == 0:
            _add(graph, node.line, "step %s takes no arguments; a step takes self" % node.name)


def _check_start_and_end(graph):
    for name in ("start", "end"):
        if name not in graph.steps:
            _add(graph, graph.line, "flow %s has no %s step; add a @step named %s" % (graph.name, name, name))
    if "end" in graph.steps and graph["end"].is_join:
        _add(graph, graph["end"].line, "step end is a join (it takes inputs); end takes only self, add a join step before it")
    if "start" in graph.steps and graph["start"].is_join:
        _add(graph, graph["start"].line, "step start is a join (it takes inputs); start takes only self")


def _resolve_edges(graph):
    for node in graph:
        node.in_steps = []
    for node in graph:
        transition = node.transition
        if transition is None:
            continue
        known = []
        for target in transition.targets:
            if target not in graph.steps:
                import difflib  # only on this error path: it costs start-up time

                hint = difflib.get_close_matches(target, list(graph.steps), n=1)
                suffix = "; did you mean %s?" % hint[0] if hint else "; define it or fix the name"
                _add(graph, transition.line, "step %s goes to unknown step %s%s" % (node.name, target, suffix))
                continue
            if target == "start":
                _add(graph, transition.line, "step %s goes to start; nothing may go to start" % node.name)
                continue
            if target == node.name and transition.kind != "switch":
                _add(graph, transition.line, "step %s goes to itself; only a switch may loop to its own step" % node.name)
                continue
            known.append(target)
            if node.name not in graph[target].in_steps:
                graph[target].in_steps.append(node.name)
        transition.targets = known
        if transition.cases:
            transition.cases = {case: target for case, target in transition.cases.items() if target in known}


def _set_types(graph):
    for node in graph:
        kind = node.transition.kind if node.transition else None
        if node.name == "end":
            node.type = "end"
        elif node.is_join:
            node.type = "join"
        elif kind in ("split", "foreach", "switch"):
            node.type = kind
        elif node.name == "start":
            node.type = "start"
        else:
            node.type = "linear"


def _edges(node):
    """Targets of a node, leaving out a switch's loop to its own step."""
    return [t for t in node.next_steps if t != node.name]


def _check_reachable(graph):
    if "start" not in graph.steps:
        return set(graph.steps)
    reachable, todo = set(), ["start"]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        todo.extend(_edges(graph[name]))
    for node in graph:
        if node.name not in reachable:
            _add(graph, node.line, "step %s cannot be reached from start; connect it or remove it" % node.name)
    return reachable


def _check_cycles(graph, reachable):
    """Report each cycle once; iterative, so a flow of thousands of steps cannot overflow."""
    state = {}
    acyclic = True
    for root in graph.steps:
        if root in state:
            continue
        state[root] = "open"
        path, stack = [root], [iter(_edges(graph[root]))]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = "done"
                stack.pop()
                continue
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                _add(
                    graph,
                    graph[path[-1]].transition.line,
                    "steps %s form a cycle; only a switch may loop, and only to its own step" % " -> ".join(cycle),
                )
                acyclic = False
            elif target not in state:
                state[target] = "open"
                path.append(target)
                stack.append(iter(_edges(graph[target])))
    return acyclic


def _topological(graph, names):
    """`names` in an order where every step comes after the steps that lead to it."""
    indegree = {name: 0 for name in names}
    for name in names:
        for target in _edges(graph[name]):
            if target in indegree:
                indegree[target] += 1
    ready = [name for name in graph.steps if name in names and indegree[name] == 0]
    order = []
    while ready:
        name = ready.pop(0)
        order.append(name)
        for target in _edges(graph[name]):
            if target in indegree:
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
    return order


def _check_split_join(graph, reachable):
    """Walk the DAG from start keeping, for each step, the stack of splits it is inside and
    which branch of the innermost split it is on; joins pop the stack."""
    context = {}  # step -> (stack of split names, branch label)
    closed_by_end = set()  # splits already reported as reaching end unjoined
    for name in _topological(graph, reachable):
        node = graph[name]
        if name == "start":
            incoming = [((), None)]
        else:
            incoming = [_outgoing_context(graph, context, parent, name) for parent in node.in_steps if parent in context]
        if not incoming:
            continue
        if node.is_join:
            context[name] = _join_context(graph, node, incoming, context)
        else:
            context[name] = _merge_context(graph, node, incoming)
        stack = context[name][0]
        node.split_parents = list(stack)
        if name == "end" and stack:
            closed_by_end.update(stack)
            _add(
                graph,
                node.line,
                "step end is reached inside the split at %s; add a join step to close it before end" % stack[-1],
            )
        if node.transition and node.transition.kind == "foreach":
            for target in node.transition.targets:
                if graph[target].is_join:
                    _add(
                        graph,
                        node.transition.line,
                        "foreach step %s goes straight to join %s; put at least one step between them"
                        % (name, target),
                    )
    for node in graph:
        if node.type in ("split", "foreach") and node.name in context and node.matching_join is None:
            if node.name not in closed_by_end:
                _add(graph, node.line, "the %s at step %s is never joined; add a join step" % (node.type, node.name))


def _outgoing_context(graph, context, parent, child):
    stack, branch = context[parent]
    node = graph[parent]
    if node.transition and node.transition.kind in ("split", "foreach"):
        return stack + (parent,), child
    return stack, branch


def _merge_context(graph, node, incoming):
    first = incoming[0]
    for other in incoming[1:]:
        if other[0] != first[0]:
            _add(
                graph,
                node.line,
                "step %s is reached from inside and outside a split (%s); only a join may take several branches"
                % (node.name, ", ".join(node.in_steps)),
            )
            return first
    branches = sorted({branch for _, branch in incoming if branch is not None})
    if first[0] and len(branches) > 1:
        _add(
            graph,
            node.line,
            "branches %s of split %s meet at step %s, which is not a join; declare it as def %s(self, inputs)"
            % (", ".join(branches), first[0][-1], node.name, node.name),
        )
    return first


def _join_context(graph, node, incoming, context):
    stacks = {stack for stack, _ in incoming}
    if any(not stack for stack in stacks):
        _add(
            graph,
            node.line,
            "step %s is a join (it takes inputs) but no split leads to it; remove inputs or add a split" % node.name,
        )
        return (), None
    splits = sorted({stack[-1] for stack in stacks})
    if len(splits) > 1 or len(stacks) > 1:
        _add(
            graph,
            node.line,
            "join %s takes branches of different splits (%s); give each split its own join"
            % (node.name, ", ".join(splits)),
        )
    split_name = incoming[0][0][-1]
    split = graph[split_name]
    node.split = split_name
    if split.matching_join is None:
        split.matching_join = node.name
    elif split.matching_join != node.name:
        _add(
            graph,
            node.line,
            "split %s is joined by both %s and %s; all its branches must meet at one join"
            % (split_name, split.matching_join, node.name),
        )
    if split.transition and split.transition.kind == "split":
        arrived = {branch for stack, branch in incoming if stack and stack[-1] == split_name}
        missing = [b for b in split.transition.targets if b not in arrived]
        if missing:
            _add(
                graph,
                node.line,
                "join %s does not receive branch%s %s of split %s; every branch must reach the join"
                % (node.name, "es" if len(missing) > 1 else "", ", ".join(missing), split_name),
            )
    return context[split_name]


def _check_catch_placement(graph):
    for node in graph:
        deco = node.decorator("catch")
        if deco and node.transition and node.transition.kind in ("foreach", "switch"):
            _add(
                graph,
                deco.line,
                "@catch on %s step %s is not allowed; a caught failure leaves no %s to follow"
                % (node.transition.kind, node.name, "items" if node.transition.kind == "foreach" else "case"),
            )
