"""`mflow env show|diff|build`: the interpreter and distributions each task ran with, what
changed between two runs, and a flow's @pypi environments built ahead of a run.

Porcelain over mflow.env; rows are a table on a terminal and JSON Lines otherwise.
"""

import click

from .options import common_options, flow_name_option, json_option, store_option
from .output import emit_rows, open_store


@click.group(name="env", context_settings={"help_option_names": ["-h", "--help"]})
def env():
    """The environments of steps: what each task ran with, and @pypi builds.

    Every task attempt records its Python version and the exact distributions of its
    interpreter; steps with @pypi or @pypi_base run in locked environments.

    Examples:

      mflow env show HelloFlow/1700000000000

      mflow env diff HelloFlow/1700000000000 HelloFlow/1700000000999

      mflow env build flow.py
    """


@env.command("show")
@click.argument("pathspec", metavar="PATHSPEC")
@json_option
@store_option
@common_options
@click.pass_obj
def show(console, pathspec, as_json, store_url):
    """Print the Python version and the distributions a run, step or task ran with.

    PATHSPEC is Flow/run, Flow/run/step or Flow/run/step/task. One row per distribution of
    each distinct interpreter inventory, with the steps that ran on it and their @pypi
    environment (env_id). JSON Lines fields (schema 1): pathspec, steps, python, env_id,
    inventory_key, name, version.

    Examples:

      mflow env show HelloFlow/1700000000000

      mflow env show HelloFlow/1700000000000/train/3 --json | jq -r '.name + "==" + .version'
    """
    from mflow.env.report import show_rows

    from .meta import pathspec_resolver

    store = open_store(console, store_url)
    resolver = pathspec_resolver(console, store)
    rows = show_rows(store, resolver.meta, resolver.parse(pathspec, 2, 4))
    emit_rows(console, rows, ["steps", "python", "env_id", "name", "version"], as_json,
              formats={"steps": ",".join, "env_id": lambda value: value or "-"})


@env.command("diff")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@json_option
@store_option
@common_options
@click.pass_obj
def diff(console, run_a, run_b, as_json, store_url):
    """Print the distributions added, removed or changed from run RUN_A to run RUN_B.

    RUN_A and RUN_B are Flow/run pathspecs (of any flows). When every step changed alike
    the rows say so once (step `*`); else one set of rows per step that changed. Nothing
    printed means the same interpreters. JSON Lines fields (schema 1): step (null for every
    step), change (added, removed, changed), name, a, b (the versions; python's too).

    Examples:

      mflow env diff TrainFlow/1700000000000 TrainFlow/1700000000999

      mflow env diff TrainFlow/1700000000000 TrainFlow/1700000000999 --json | jq -r .name

      mflow env diff TrainFlow/latest_successful TrainFlow/latest
    """
    from mflow.env.report import diff_rows

    from .meta import pathspec_resolver

    store = open_store(console, store_url)
    resolver = pathspec_resolver(console, store)
    rows, skipped = diff_rows(store, resolver.meta, resolver.parse(run_a, 2, 2), resolver.parse(run_b, 2, 2))
    if skipped:
        console.info("Steps in only one of the runs, not compared: %s." % ", ".join(skipped))
    emit_rows(console, rows, ["step", "change", "name", "a", "b"], as_json,
              formats={"step": lambda value: value or "*"})


@env.command("build")
@click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False))
@flow_name_option
@click.option(
    "--with",
    "with_specs",
    multiple=True,
    metavar="DECORATOR[:K=V,...]",
    help="Apply a step decorator to every step that lacks it, as `mflow run --with` does (repeatable).",
)
@click.option("--refresh", is_flag=True, help="Resolve the specs again instead of reusing this machine's locks.")
@json_option
@store_option
@common_options
@click.pass_obj
def build(console, flow_file, flow_name, with_specs, refresh, as_json, store_url):
    """Resolve, lock and build the @pypi environments of FLOW.py's steps ahead of a run.

    Each distinct spec is resolved once (pip, or uv where installed), built once on this
    machine and its wheels put in the store, so the run that follows builds nothing. One
    row per environment: steps, env_id, lock (resolved, cached), action (built, reused),
    seconds, packages. Bad input fails here as it would before a run.

    Examples:

      mflow env build flow.py

      MFLOW_ENV_INSTALLER=pip mflow env build flow.py --refresh --json
    """
    from mflow.env import resolve_run
    from mflow.task.decorators import parse_with

    from .run import load_flow

    graph, flow_class = load_flow(flow_file, flow_name)
    store = open_store(console, store_url)
    plan = resolve_run(store, flow_class, graph, flow_file, parse_with(with_specs), "pypi", refresh=refresh,
                       environ=console.environ)
    if not plan.actions:
        console.info("Flow %s has no step with @pypi or @pypi_base: nothing to build." % graph.name)
    rows = [dict(action, schema=1) for action in plan.actions]
    emit_rows(console, rows, ["steps", "env_id", "lock", "action", "seconds", "packages"], as_json,
              formats={"steps": ",".join, "packages": lambda p: " ".join(p) or "(none)"})
