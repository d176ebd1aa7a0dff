"""`mflow check` and `mflow show`: the graph rules and the graph, for people."""

import click

from .graph import load_flow_graph, print_problems
from .options import common_options, flow_file_argument, flow_name_option


@click.command()
@flow_file_argument
@flow_name_option
@common_options
@click.pass_obj
def check(console, flow_file, flow_name):
    """Check FLOW.py against every graph rule, without running it.

    Each problem is printed as FILE:LINE: error: message; the exit status is 1 when
    there is any. A clean flow prints "The graph looks good."

    Examples:

      mflow check flow.py

      python flow.py check
    """
    from mflow.errors import ExitCode

    graph = load_flow_graph(console, flow_file, flow_name)
    if graph.problems:
        print_problems(console, graph)
        count = len(graph.problems)
        console.err("%d problem%s in flow %s." % (count, "" if count == 1 else "s", graph.name))
        return ExitCode.FAILED
    console.info("The graph looks good.")
    return ExitCode.OK


@click.command()
@flow_file_argument
@flow_name_option
@common_options
@click.pass_obj
def show(console, flow_file, flow_name):
    """Show the steps of FLOW.py in order with their docstrings and transitions.

    Examples:

      mflow show flow.py

      python flow.py show
    """
    from mflow.graph.render import graph_to_text

    graph = load_flow_graph(console, flow_file, flow_name)
    console.write(graph_to_text(graph))
    if graph.problems:
        console.err("The graph has problems; `mflow check %s` lists them." % flow_file)
