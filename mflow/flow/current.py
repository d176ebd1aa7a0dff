"""`current`: what a step can learn about the task it runs in (flow, run, step, task, retry).

The task runner fills the singleton with `current._bind(...)`; outside a run every field is None.
"""

import os

# Tried in order, as Metaflow does with METAFLOW_USER first.
_USERNAME_VARIABLES = ("MFLOW_USER", "SUDO_USER", "USERNAME", "USER", "LOGNAME")

_FIELDS = (
    "flow_name",
    "run_id",
    "step_name",
    "task_id",
    "retry_count",
    "origin_run_id",
    "namespace",
    "username",
    "tags",
    "parameter_names",
    "project_name",
    "branch_name",
    "is_production",
    "project_flow_name",
)


def resolve_username(environ=None):
    """The user a run belongs to: $MFLOW_USER, else the login the environment names, else
    the account the process runs as (cron and containers often set no USER); None if none."""
    environ = os.environ if environ is None else environ
    for variable in _USERNAME_VARIABLES:
        value = environ.get(variable)
        if value:
            return value
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name or None
    except (ImportError, KeyError, OSError):
        return None


class Current:
    """The running task's identity; every field reads None (is_running_flow False) outside a run."""

    def __init__(self):
        self._unbind()

    def _bind(self, **fields):
        """Enter a task: set the given fields, the rest to their outside-a-run values.

        run_id and task_id are kept as strings; username defaults to resolve_username();
        retry_count defaults to 0; tags become a frozenset and parameter_names a tuple.
        """
        unknown = sorted(set(fields) - set(_FIELDS))
        if unknown:
            raise TypeError("current has no field %s; it has %s" % (", ".join(unknown), ", ".join(_FIELDS)))
        self._unbind()
        self._values.update(fields)
        for name in ("run_id", "task_id", "origin_run_id"):
            if self._values[name] is not None:
                self._values[name] = str(self._values[name])
        if self._values["username"] is None:
            self._values["username"] = resolve_username()
        if self._values["retry_count"] is None:
            self._values["retry_count"] = 0
        if self._values["tags"] is not None:
            self._values["tags"] = frozenset(self._values["tags"])
        if self._values["parameter_names"] is not None:
            self._values["parameter_names"] = tuple(self._values["parameter_names"])
        self._running = True

    def _unbind(self):
        """Leave the task: back to the outside-a-run state."""
        self._values = dict.fromkeys(_FIELDS)
        self._running = False

    @property
    def is_running_flow(self):
        """True inside a running task, False otherwise (e.g. when a library is imported in a notebook)."""
        return self._running

    @property
    def flow_name(self):
        return self._values["flow_name"]

    @property
    def run_id(self):
        return self._values["run_id"]

    @property
    def step_name(self):
        return self._values["step_name"]

    @property
    def task_id(self):
        return self._values["task_id"]

    @property
    def retry_count(self):
        """0 on a task's first attempt, then the number of attempts before this one."""
        return self._values["retry_count"]

    @property
    def origin_run_id(self):
        """The run this one was resumed from; None for an ordinary run."""
        return self._values["origin_run_id"]

    @property
    def namespace(self):
        return self._values["namespace"]

    @property
    def username(self):
        return self._values["username"]

    @property
    def tags(self):
        return self._values["tags"]

    @property
    def parameter_names(self):
        return self._values["parameter_names"]

    @property
    def project_name(self):
        """The flow's @project name; None for a flow without @project."""
        return self._values["project_name"]

    @property
    def branch_name(self):
        """The run's @project branch: user.NAME, test.BRANCH (--branch), prod (--production)."""
        return self._values["branch_name"]

    @property
    def is_production(self):
        """True for a run on a production branch (--production); None without @project."""
        return self._values["is_production"]

    @property
    def project_flow_name(self):
        """PROJECT.BRANCH.FlowName, the flow's name within its project (what a deployment is called)."""
        return self._values["project_flow_name"]

    @property
    def pathspec(self):
        """`flow/run/step/task` of the running task, or None when any part is unknown."""
        parts = [self._values[name] for name in ("flow_name", "run_id", "step_name", "task_id")]
        if any(part is None for part in parts):
            return None
        return "/".join(parts)

    def get(self, name, default=None):
        """A field's value, or `default` when it is None or not a field."""
        value = getattr(self, name, None)
        return default if value is None else value

    def __contains__(self, name):
        return getattr(self, name, None) is not None

    def __repr__(self):
        if not self._running:
            return "<current: not in a run>"
        return "<current %s>" % (self.pathspec or self.flow_name)


current = Current()
