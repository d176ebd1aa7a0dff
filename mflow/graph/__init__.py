"""Static parse, lint rules and renderers for flow files.

`load_graph(path)` gives an analyzed FlowGraph; nothing here imports the flow itself.
"""

from .model import SCHEMA_VERSION, FlowGraph, Problem, StepNode  # noqa: F401


def load_graph(path, flow_name=None, source=None):
    """Parse and analyze the flow in `path`; graph.problems lists every broken rule."""
    from .analyze import analyze
    from .parse import parse_flow_file

    return analyze(parse_flow_file(path, flow_name=flow_name, source=source))


def check_graph(graph):
    """Raise GraphLintError when the analyzed graph breaks any rule."""
    if graph.problems:
        from mflow.errors import GraphLintError

        raise GraphLintError(graph.sorted_problems())
