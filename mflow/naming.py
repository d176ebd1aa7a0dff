"""Which names a flow may give its steps and parameters.

Shared by the static linter and the authoring API, so both judge names the same way.
"""

import re

STEP_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# Attributes of FlowSpec a step would shadow; a step named like one breaks the flow.
RESERVED_STEP_NAMES = frozenset(
    ["name", "next", "input", "index", "inputs", "foreach_stack", "merge_artifacts", "cmd", "script_name", "self"]
)

# Options of `mflow run` that a parameter (which becomes `--NAME`) must not take.
RESERVED_PARAMETER_NAMES = frozenset(
    [
        "help", "tag", "with", "store", "flow", "run-id", "run-id-file", "max-workers", "max-num-splits",
        "quiet", "verbose", "traceback", "log-format", "namespace", "params", "origin-run-id",
        "environment",
    ]
)


def parameter_key(name):
    """The form in which two parameter names clash: case and - versus _ do not count,
    because both become the same command-line option and environment variable."""
    return name.lower().replace("-", "_")


def is_reserved_parameter(name):
    return parameter_key(name) in {parameter_key(n) for n in RESERVED_PARAMETER_NAMES}
