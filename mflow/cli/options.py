"""Options shared by several commands, each defined once and stacked as a decorator."""

import click


def _set_verbosity(ctx, param, value):
    console = ctx.obj
    if value and console is not None:
        console.verbosity += value if param.name == "verbose" else -value
    return value


def traceback_option(func):
    """--traceback: show the whole Python trace of an error (also MFLOW_TRACEBACK=1)."""
    return click.option(
        "--traceback",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        help="On error, show the whole Python traceback as well (also MFLOW_TRACEBACK=1).",
    )(func)


def verbosity_options(func):
    """-v/--verbose and -q/--quiet, counted."""
    func = click.option(
        "-q",
        "--quiet",
        count=True,
        expose_value=False,
        callback=_set_verbosity,
        help="Say less on stderr: errors only.",
    )(func)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_set_verbosity,
        help="Say more on stderr (repeatable).",
    )(func)


def flow_file_argument(func):
    """The FLOW.py positional argument, `-` for stdin."""
    return click.argument("flow_file", metavar="FLOW.py", type=click.Path(dir_okay=False, allow_dash=True))(func)


def flow_name_option(func):
    """--flow NAME: which FlowSpec subclass of the file."""
    return click.option(
        "--flow",
        "flow_name",
        metavar="NAME",
        help="The FlowSpec subclass to use when the file defines several.",
    )(func)


def common_options(func):
    """The options every command has."""
    return traceback_option(verbosity_options(func))


def store_option(func):
    """--store URL: which store (a folder or s3://bucket/prefix)."""
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        help="The store: a folder or s3://bucket/prefix (default: MFLOW_STORE, else the nearest .mflow folder).",
    )(func)


def json_option(func):
    """--json: JSON Lines even on a terminal."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON Lines even on a terminal.")(func)


def environment_option(func):
    """--environment pypi|local: whether steps with @pypi/@pypi_base run in their environments."""
    return click.option(
        "--environment",
        type=click.Choice(["pypi", "local"]),
        default="pypi",
        show_default=True,
        envvar="MFLOW_ENVIRONMENT",
        help="pypi: run steps with @pypi/@pypi_base in their locked environments (built when missing); "
        "local: ignore those decorators and use this interpreter (also MFLOW_ENVIRONMENT).",
    )(func)
