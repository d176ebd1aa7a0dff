"""Which names a flow may give its steps and parameters.

Shared by the static linter and the authoring API, so both judge names the same way.
"""

# Checked by sets of characters, not regular expressions: importing re (with enum) would
# cost every task process a few ms for these few checks.
_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_LETTERS = _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
WORD_CHARACTERS = _LETTERS | _DIGITS | {"_"}
_STEP_CHARACTERS = _LOWER | _DIGITS | {"_"}
_PARAMETER_CHARACTERS = WORD_CHARACTERS | {"-"}


def is_step_name(name):
    """A step name: lower-case letters, digits and `_`, not starting with `_`."""
    return bool(name) and name[0] != "_" and _STEP_CHARACTERS.issuperset(name)


def is_parameter_name(name):
    """A parameter name: letters, digits, `_` and `-`, starting with a letter or `_`."""
    return bool(name) and (name[0] in _LETTERS or name[0] == "_") and _PARAMETER_CHARACTERS.issuperset(name)


def is_identifier(text):
    """An ASCII Python identifier: letters, digits and `_`, not starting with a digit."""
    return text.isascii() and text.isidentifier()

# The task that holds a run's parameters, as the input of its start step: a step name no
# flow can use.
PARAMETERS_STEP = "_parameters"
PARAMETERS_TASK_ID = "0"

# Attributes of FlowSpec a step would shadow; a step named like one breaks the flow.
RESERVED_STEP_NAMES = frozenset(
    ["name", "next", "input", "index", "inputs", "foreach_stack", "merge_artifacts", "cmd", "script_name", "self"]
)

# The names Metaflow reserves for its own options, exactly (each also in its _ form, which
# parameter_key treats alike): a flow that runs on Metaflow runs here. A parameter may share
# a name with any other option of `mflow run`; it wins after FLOW.py (see FlowCommand).
RESERVED_PARAMETER_NAMES = frozenset(
    [
        "params", "with", "tag", "namespace", "obj", "tags", "decospecs", "run-id-file", "max-num-splits",
        "max-workers", "max-log-size", "user-namespace", "runner-attribute-file",
    ]
)


def parameter_key(name):
    """The form in which two parameter names clash: case and - versus _ do not count,
    because both become the same command-line option and environment variable."""
    return name.lower().replace("-", "_")


def is_reserved_parameter(name):
    return parameter_key(name) in {parameter_key(n) for n in RESERVED_PARAMETER_NAMES}
