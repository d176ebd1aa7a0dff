"""`mflow-graph`: parse and lint a flow file statically; print its graph.

Plumbing: the JSON output is a contract (schema 1, fields in man/mflow-graph.1).
"""

import click

from .boundary import entry_point
from .options import common_options, flow_file_argument, flow_name_option


def load_flow_graph(console, flow_file, flow_name):
    """The analyzed graph of FLOW.py (or of stdin when FLOW.py is `-`)."""
    from mflow.graph import load_graph

    if flow_file == "-":
        return load_graph("<stdin>", flow_name=flow_name, source=console.stdin.read())
    return load_graph(flow_file, flow_name=flow_name)


def print_problems(console, graph):
    for problem in graph.sorted_problems():
        console.err(problem.format(graph.path))


def dumps_json(value, pretty=False):
    import orjson

    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS, default=repr).decode("utf-8")


@click.command(name="mflow-graph", context_settings={"help_option_names": ["-h", "--help"]})
@flow_file_argument
@flow_name_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "dot", "text"]),
    default="json",
    show_default=True,
    help="Output format: JSON (the stable contract), Graphviz dot, or text for people.",
)
@click.option("--check", is_flag=True, help="Lint only: print each problem as FILE:LINE: error: message on stderr, exit 1 if any.")
@click.option("--pretty", is_flag=True, help="Indent the JSON output.")
@common_options
@click.pass_obj
def cli(console, flow_file, flow_name, output_format, check, pretty):
    """Parse FLOW.py statically (it is never imported or run) and print its graph.

    The output is JSON by default: the flow, its parameters, and each step with its type,
    next steps, foreach variable or switch cases, decorators, docstring and line, plus the
    problems found. `-` reads the flow from stdin.

    With --check nothing is printed on stdout: every broken graph rule goes to stderr as
    FILE:LINE: error: message and the exit status is 1; a clean flow exits 0 silently.

    Examples:

      mflow-graph flow.py | jq '.steps[].name'

      mflow-graph flow.py --format dot | dot -Tsvg > flow.svg

      mflow-graph --check flow.py && echo ok
    """
    from mflow.errors import ExitCode

    graph = load_flow_graph(console, flow_file, flow_name)
    if check:
        print_problems(console, graph)
        return ExitCode.FAILED if graph.problems else ExitCode.OK
    from mflow.graph import render

    if output_format == "json":
        console.out(dumps_json(render.graph_to_dict(graph), pretty=pretty))
    elif output_format == "dot":
        console.write(render.graph_to_dot(graph))
    else:
        console.write(render.graph_to_text(graph))
    return ExitCode.OK


main = entry_point(cli)
