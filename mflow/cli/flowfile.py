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
    if not args or args[0] not in FLOW_FILE_SUBCOMMANDS:
        usage = "Usage: %s COMMAND [OPTIONS]\n\nCommands:\n" % prog
        usage += "".join("  %s\n" % name for name in FLOW_FILE_SUBCOMMANDS)
        usage += "\nEach is `mflow COMMAND %s`; see `mflow COMMAND --help`." % prog
        if args and args[0] not in ("-h", "--help"):
            sys.stderr.write("Error: unknown command %r.\n\n%s\n" % (args[0], usage))
            sys.exit(2)
        sys.stdout.write(usage + "\n")
        sys.exit(0)
    command = [args[0], path, "--flow", flow_class.__name__] + args[1:]
    sys.exit(run_cli(cli, command, prog_name=prog))
