"""`python flow.py COMMAND ...`: the Metaflow habit, mapped onto `mflow COMMAND flow.py`.

FlowSpec() under `__main__` hands over here, so both spellings do exactly the same.
"""

import inspect
import os
import sys

from .boundary import run_cli


def run_flow_class(flow_class, argv=None):
    """Run `mflow COMMAND FILE --flow NAME ARGS...` for the file defining `flow_class`; exits."""
    from .main import FLOW_FILE_SUBCOMMANDS, cli

    args = list(sys.argv[1:] if argv is None else argv)
    path = inspect.getsourcefile(flow_class) or sys.argv[0]
    prog = os.path.basename(path)
    # Options before COMMAND are the driver's (`python flow.py --with retry run`, as in
    # Metaflow); they go before FLOW.py, where no flow parameter can take them.
    position = next((i for i, arg in enumerate(args) if arg in FLOW_FILE_SUBCOMMANDS), None)
    leading = args[:position] if position is not None else args
    if position is None or not all(arg.startswith("-") for arg in leading[:1]):
        usage = "Usage: %s [OPTIONS] COMMAND [ARGS]\n\nCommands:\n" % prog
        usage += "".join("  %s\n" % name for name in FLOW_FILE_SUBCOMMANDS)
        usage += "\nEach is `mflow COMMAND [OPTIONS] %s [ARGS]`; see `mflow COMMAND --help`." % prog
        if args and args[0] not in ("-h", "--help"):
            sys.stderr.write("Error: unknown command %r.\n\n%s\n" % (args[0], usage))
            sys.exit(2)
        sys.stdout.write(usage + "\n")
        sys.exit(0)
    command = [args[position]] + leading + ["--flow", flow_class.__name__, path] + args[position + 1:]
    sys.exit(run_cli(cli, command, prog_name=prog))
