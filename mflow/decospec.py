"""What each step decorator accepts and which argument values are valid.

One table serves both the static linter (mflow-graph --check, on literal arguments) and
the decorators a flow applies at import time, so the two can never disagree.
"""

import keyword

# Patterns as text, matched through re's own cache of compiled patterns: most flows never
# need them, and importing re (with enum) at import time would cost every task a few ms.
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# A distribution name (PEP 508), optionally with extras: "requests", "dask[dataframe]".
_PACKAGE_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._,\s-]+\])?$"
# A bare version ("1.16.0", "2.*") or specifiers (">=1.2,<2", "~=3.1", "!=1.0").
_VERSION = r"^[A-Za-z0-9.*+!_-]+$"
_SPECIFIER = r"^\s*(===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*$"
_PYTHON_VERSION = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"


def _match(pattern, text):
    import re

    return re.match(pattern, text)


def _is_number(value):
    return not isinstance(value, bool) and (isinstance(value, (int, float)) or _is_a(value, "Real"))


def _is_int(value):
    return not isinstance(value, bool) and (isinstance(value, int) or _is_a(value, "Integral"))


def _is_a(value, kind):
    """isinstance(value, numbers.<kind>) for the numbers that are not int or float (numpy's):
    the numbers module is imported only for those."""
    import numbers

    return isinstance(value, getattr(numbers, kind))


def _check_retry(args):
    problems = []
    times = args.get("times")
    if not _is_int(times) or times < 0:
        problems.append("times must be a whole number of 0 or more, not %r" % (times,))
    minutes = args.get("minutes_between_retries")
    if not _is_number(minutes) or minutes < 0:
        problems.append("minutes_between_retries must be a number of 0 or more, not %r" % (minutes,))
    backoff = args.get("backoff")
    if not _is_number(backoff) or backoff < 1:
        problems.append("backoff must be a number of 1 or more (the factor each delay grows by), not %r" % (backoff,))
    jitter = args.get("jitter")
    if not _is_number(jitter) or not 0 <= jitter <= 1:
        problems.append("jitter must be a number from 0 to 1 (the random share added to a delay), not %r" % (jitter,))
    return problems


# Minutes before a retry when @retry does not say: Metaflow's default, kept for tasks that
# run as remote jobs; a local task is retried at once, as Metaflow's local runtime does.
REMOTE_RETRY_MINUTES = 2


def retry_delay(args, retry_number, random_fraction=0.0, remote=False):
    """Seconds to wait before retry `retry_number` (1 for the first): the delay grows by
    `backoff` each time, plus up to `jitter` of itself at random (`random_fraction` in [0, 1)).
    minutes_between_retries None (not given) is 0 locally, REMOTE_RETRY_MINUTES remotely."""
    minutes = args.get("minutes_between_retries")
    if minutes is None:
        minutes = REMOTE_RETRY_MINUTES if remote else 0
    base = 60.0 * minutes * args.get("backoff", 1) ** (retry_number - 1)
    return base * (1 + args.get("jitter", 0) * random_fraction)


def _check_catch(args):
    problems = []
    var = args.get("var")
    if var is not None and (
        not isinstance(var, str) or not var.isidentifier() or keyword.iskeyword(var) or var.startswith("_")
    ):
        problems.append("var must name an artifact (a Python identifier not starting with _), not %r" % (var,))
    if not isinstance(args.get("print_exception"), bool):
        problems.append("print_exception must be True or False, not %r" % (args.get("print_exception"),))
    return problems


def _check_timeout(args):
    problems = []
    for unit in ("seconds", "minutes", "hours"):
        value = args.get(unit)
        if not _is_number(value) or value < 0:
            problems.append("%s must be a number of 0 or more, not %r" % (unit, value))
    if not problems and timeout_seconds(args) <= 0:
        problems.append("needs a duration: give seconds=, minutes= or hours=")
    return problems


def timeout_seconds(args):
    """The total duration of a @timeout's arguments, in seconds."""
    return args.get("seconds", 0) + 60 * args.get("minutes", 0) + 3600 * args.get("hours", 0)


def _check_resources(args):
    problems = []
    for name in ("cpu", "memory", "disk", "shared_memory"):
        value = args.get(name)
        if value is not None and (not _is_number(value) or value <= 0):
            problems.append("%s must be a positive number, not %r" % (name, value))
    gpu = args.get("gpu")
    if gpu is not None and (not _is_int(gpu) or gpu < 0):
        problems.append("gpu must be a whole number of 0 or more, not %r" % (gpu,))
    return problems


def _check_environment(args):
    env = args.get("vars")
    if not isinstance(env, dict):
        return ["vars must be a dict of variable names to string values, not %r" % (env,)]
    problems = []
    for name, value in env.items():
        if not isinstance(name, str) or not _match(_ENV_NAME, name):
            problems.append("vars has an invalid variable name %r" % (name,))
        elif not isinstance(value, (str, bool)) and not _is_number(value):  # bool: as numbers.Real has it
            problems.append("vars[%r] must be a string or a number, not %s" % (name, type(value).__name__))
    return problems


def _check_positive(args, names, whole=False):
    problems = []
    for name in names:
        value = args.get(name)
        if value is None:
            continue
        if whole and (not _is_int(value) or value < 0):
            problems.append("%s must be a whole number of 0 or more, not %r" % (name, value))
        elif not whole and (not _is_number(value) or value <= 0):
            problems.append("%s must be a positive number, not %r" % (name, value))
    return problems


def _check_text(args, names):
    return [
        "%s must be text, not %r" % (name, args.get(name))
        for name in names
        if args.get(name) is not None and (not isinstance(args.get(name), str) or not args.get(name).strip())
    ]


def _check_batch(args):
    problems = _check_positive(args, ("cpu", "memory", "shared_memory", "max_swap", "tmpfs_size"))
    problems += _check_positive(args, ("gpu",), whole=True)
    problems += _check_text(args, ("image", "queue", "iam_role", "execution_role"))
    swappiness = args.get("swappiness")
    if swappiness is not None and (not _is_int(swappiness) or not 0 <= swappiness <= 100):
        problems.append("swappiness must be a whole number from 0 to 100, not %r" % (swappiness,))
    if not isinstance(args.get("use_tmpfs"), bool):
        problems.append("use_tmpfs must be True or False, not %r" % (args.get("use_tmpfs"),))
    tags = args.get("tags")
    if tags is not None and (
        not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        problems.append("tags must be a dict of text to text, not %r" % (tags,))
    return problems


def _check_slurm(args):
    problems = _check_positive(args, ("cpus", "memory"))
    problems += _check_positive(args, ("gpus",), whole=True)
    problems += _check_text(args, ("partition", "account", "qos", "constraint"))
    minutes = args.get("time")
    if minutes is not None and (not _is_number(minutes) or minutes <= 0):
        problems.append("time must be a positive number of minutes, not %r" % (minutes,))
    extra = args.get("extra")
    if extra is not None and (not isinstance(extra, (list, tuple)) or not all(isinstance(a, str) for a in extra)):
        problems.append("extra must be a list of sbatch options such as ['--exclusive'], not %r" % (extra,))
    return problems


#: The step decorators that send a step's tasks to a compute engine instead of this machine.
EXECUTOR_DECORATORS = ("batch", "slurm")


def _check_pypi(args):
    problems = []
    packages = args.get("packages")
    if not isinstance(packages, dict):
        return ["packages must be a dict of package names to versions, e.g. {'six': '1.16.0'}, not %r" % (packages,)]
    for name, version in packages.items():
        if not isinstance(name, str) or not _match(_PACKAGE_NAME, name):
            problems.append("packages has an invalid package name %r" % (name,))
        elif not isinstance(version, str):
            problems.append(
                "packages[%r] must be a version string such as '1.16.0' (or '' for any), not %r" % (name, version)
            )
        elif version.strip() and not is_version_spec(version):
            problems.append(
                "packages[%r] has an invalid version %r; write '1.16.0', '>=1.2,<2' or '' for any" % (name, version)
            )
    python = args.get("python")
    if python is not None and (not isinstance(python, str) or not _match(_PYTHON_VERSION, python)):
        problems.append("python must be a version such as '3.11' or '3.11.4', not %r" % (python,))
    disabled = args.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        problems.append("disabled must be True or False, not %r" % (disabled,))
    return problems


def is_version_spec(text):
    """True for a bare version ("1.16.0") or comma-separated specifiers (">=1.2,<2")."""
    text = text.strip()
    if _match(_VERSION, text):
        return True
    return all(_match(_SPECIFIER, part) for part in text.split(","))


def requirement(name, version):
    """The pip requirement of one `packages` entry: a bare version pins it exactly."""
    version = (version or "").strip()
    if not version:
        return name
    if _match(_VERSION, version):
        return "%s==%s" % (name, version)
    return name + version.replace(" ", "")


class DecoratorSpec:
    """A step decorator's name, its keyword arguments with their defaults, and its checks."""

    def __init__(self, name, defaults, check, allow_multiple=False):
        self.name = name
        self.defaults = defaults
        self._check = check
        # Whether a step may carry this decorator more than once (e.g. several cards).
        self.allow_multiple = allow_multiple

    def problems(self, args, literal_only=None):
        """Messages for every invalid argument in `args` (a dict of keyword arguments).

        `literal_only`, when given, is the set of argument names whose values are known;
        values outside it (expressions the static parser cannot evaluate) are not judged.
        """
        problems = []
        for name in args:
            if name not in self.defaults:
                problems.append(
                    "has no argument %r; it takes %s" % (name, ", ".join(sorted(self.defaults)) or "none")
                )
        if problems:
            return problems
        if literal_only is not None and set(args) - set(literal_only):
            return []
        merged = dict(self.defaults)
        merged.update(args)
        return self._check(merged)


STEP_DECORATORS = {
    spec.name: spec
    for spec in (
        DecoratorSpec(
            "retry", {"times": 3, "minutes_between_retries": 2, "backoff": 1, "jitter": 0}, _check_retry
        ),
        DecoratorSpec("catch", {"var": None, "print_exception": True}, _check_catch),
        DecoratorSpec("timeout", {"seconds": 0, "minutes": 0, "hours": 0}, _check_timeout),
        DecoratorSpec(
            "resources",
            {"cpu": 1, "gpu": None, "disk": None, "memory": 4096, "shared_memory": None},
            _check_resources,
        ),
        DecoratorSpec("environment", {"vars": {}}, _check_environment),
        DecoratorSpec(
            "batch",
            {
                "cpu": 1, "gpu": 0, "memory": 4096, "image": None, "queue": None, "iam_role": None,
                "execution_role": None, "shared_memory": None, "max_swap": None, "swappiness": None,
                "use_tmpfs": False, "tmpfs_size": None, "tags": None,
            },
            _check_batch,
        ),
        DecoratorSpec(
            "slurm",
            {
                "partition": None, "cpus": 1, "memory": 4096, "gpus": None, "time": None, "account": None,
                "qos": None, "constraint": None, "extra": None,
            },
            _check_slurm,
        ),
        DecoratorSpec("pypi", {"packages": {}, "python": None, "disabled": False}, _check_pypi),
    )
}

def _check_schedule(args):
    problems = []
    for name in ("hourly", "daily", "weekly"):
        if not isinstance(args.get(name), bool):
            problems.append("%s must be True or False, not %r" % (name, args.get(name)))
    cron = args.get("cron")
    if cron is not None:
        from mflow.deploy.schedule import convert_cron

        try:
            convert_cron(cron)
        except ValueError as exc:
            problems.append(str(exc))
    timezone = args.get("timezone")
    if timezone is not None:
        if not isinstance(timezone, str) or not _known_timezone(timezone):
            problems.append("timezone must be an IANA time zone name such as 'Europe/Berlin', not %r" % (timezone,))
    return problems


def _known_timezone(name):
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(name)
        return True
    except (ImportError, ValueError, OSError, LookupError):
        return False


def is_project_name(name):
    """A @project name: lower-case letters, digits and `_`, starting with a letter, at most
    64 characters (it becomes part of deployed flows' names and of tags)."""
    return (isinstance(name, str) and 0 < len(name) <= 64 and name[0].isascii() and name[0].islower()
            and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in name))


def is_branch_name(name):
    """A --branch name: letters, digits, `_`, `-` and `.`, starting with a letter or digit,
    at most 64 characters."""
    return (isinstance(name, str) and 0 < len(name) <= 64 and name[0].isascii() and name[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "_-.") for c in name))


def _check_project(args):
    name = args.get("name")
    if not is_project_name(name):
        return ["name must be lower-case letters, digits and _, starting with a letter (at most 64), not %r" % (name,)]
    return []


# Decorators of the flow class itself (written above `class MyFlow(FlowSpec):`).
FLOW_DECORATORS = {
    spec.name: spec
    for spec in (
        DecoratorSpec("pypi_base", {"packages": {}, "python": None}, _check_pypi),
        DecoratorSpec(
            "schedule", {"cron": None, "hourly": False, "daily": True, "weekly": False, "timezone": None},
            _check_schedule,
        ),
        DecoratorSpec("project", {"name": None}, _check_project),
    )
}
