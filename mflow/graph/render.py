"""Render an analyzed FlowGraph as JSON (the plumbing contract), Graphviz dot, or text.

The JSON fields are documented in man/mflow-graph.1 and versioned by SCHEMA_VERSION.
"""

from .model import SCHEMA_VERSION


def graph_to_dict(graph):
    """The graph as plain data: the `--format json` document."""
    return {
        "schema": SCHEMA_VERSION,
        "file": graph.path,
        "flow": {
            "name": graph.name,
            "doc": graph.doc,
            "line": graph.line,
            "decorators": [d.as_dict() for d in graph.decorators],
        },
        "parameters": [p.as_dict() for p in graph.parameters],
        "steps": [_step_dict(node) for node in graph.ordered_steps()],
        "problems": [p.as_dict() for p in graph.sorted_problems()],
    }


def _step_dict(node):
    transition = node.transition
    return {
        "name": node.name,
        "type": node.type,
        "transition": transition.kind if transition else None,
        "next": node.next_steps,
        "foreach": transition.foreach if transition else None,
        "condition": transition.condition if transition else None,
        "cases": transition.cases if transition else None,
        "join": node.matching_join,
        "split": node.split,
        "split_parents": node.split_parents,
        "in": node.in_steps,
        "decorators": [d.as_dict() for d in node.decorators],
        "doc": node.doc,
        "line": node.line,
    }


def _dot_quote(text):
    return '"%s"' % str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_SHAPES = {
    "start": "oval",
    "end": "oval",
    "split": "trapezium",
    "foreach": "trapezium",
    "switch": "diamond",
    "join": "invtrapezium",
    "linear": "box",
}


def graph_to_dot(graph):
    """Graphviz source; `mflow-graph flow.py --format dot | dot -Tsvg > flow.svg` draws it."""
    lines = [
        "digraph %s {" % _dot_quote(graph.name),
        "    rankdir=TB;",
        '    node [fontname="Helvetica", style="rounded,filled", fillcolor="#f5f5f5"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    if graph.doc:
        lines.append("    labelloc=t; label=%s;" % _dot_quote(graph.name + "\n" + graph.doc.splitlines()[0]))
    for node in graph.ordered_steps():
        decorators = " ".join("@" + d.name for d in node.decorators)
        label = node.name + "\n(" + node.type + ")" + ("\n" + decorators if decorators else "")
        lines.append("    %s [label=%s, shape=%s];" % (_dot_quote(node.name), _dot_quote(label), _SHAPES.get(node.type, "box")))
    for node in graph.ordered_steps():
        transition = node.transition
        if transition is None:
            continue
        if transition.kind == "switch":
            for case, target in transition.cases.items():
                lines.append(
                    "    %s -> %s [label=%s, style=dashed];"
                    % (_dot_quote(node.name), _dot_quote(target), _dot_quote("%s == %s" % (transition.condition, case)))
                )
            continue
        for target in transition.targets:
            attrs = ""
            if transition.kind == "foreach":
                attrs = " [label=%s, style=bold]" % _dot_quote("foreach " + transition.foreach)
            lines.append("    %s -> %s%s;" % (_dot_quote(node.name), _dot_quote(target), attrs))
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_to_text(graph):
    """Steps in reading order with their docstrings and transitions, for people."""
    out = []
    if graph.doc:
        out.extend([graph.doc.strip(), ""])
    for param in graph.parameters:
        default = "" if not param.has_default else "  (default: %s)" % (
            repr(param.default) if param.default_literal else param.default
        )
        required = "  (required)" if param.required else ""
        out.append("Parameter --%s %s%s%s" % (param.name, param.type, default, required))
        if param.help:
            out.append("    " + param.help)
    if graph.parameters:
        out.append("")
    for node in graph.ordered_steps():
        decorators = "".join(" @" + d.name for d in node.decorators)
        out.append("Step %s%s" % (node.name, decorators))
        if node.doc:
            out.extend("    " + line for line in node.doc.strip().splitlines())
        out.append("    => " + _describe_transition(node))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _describe_transition(node):
    transition = node.transition
    if node.name == "end" or transition is None:
        return "(end of flow)" if node.name == "end" else "(no transition)"
    targets = ", ".join(transition.targets)
    if transition.kind == "foreach":
        note = "  (foreach over %s" % transition.foreach
    elif transition.kind == "split":
        note = "  (split"
    elif transition.kind == "switch":
        cases = ", ".join("%s: %s" % (case, target) for case, target in transition.cases.items())
        return "{%s}  (switch on %s)" % (cases, transition.condition)
    else:
        return targets
    if node.matching_join:
        note += ", joined at %s" % node.matching_join
    return targets + note + ")"
