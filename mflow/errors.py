"""Every error a user can cause, as one typed exception, and the exit codes they map to.

The core raises these; only mflow/cli turns them into `Error: ...` lines and exit codes.
"""


class _Code(int):
    """One exit code: an int with its name, as an IntEnum member is."""

    def __new__(cls, value, name):
        code = int.__new__(cls, value)
        code.name = name
        return code

    @property
    def value(self):
        return int(self)

    def __repr__(self):
        return "<ExitCode.%s: %d>" % (self.name, self)

    __str__ = int.__repr__

    def __reduce__(self):
        return ExitCode, (int(self),)


class _Codes(type):
    """Makes each int of the class body a named _Code; the class iterates over them and
    ExitCode(3) finds one, as IntEnum does, without importing enum (a few ms of every task)."""

    def __new__(mcs, name, bases, namespace):
        members = {key: _Code(value, key) for key, value in namespace.items() if type(value) is int}
        namespace.update(members)
        namespace["_members"] = tuple(members.values())
        return super().__new__(mcs, name, bases, namespace)

    def __iter__(cls):
        return iter(cls._members)

    def __call__(cls, value):
        for code in cls._members:
            if code == value:
                return code
        raise ValueError("%r is not a valid ExitCode" % (value,))


class ExitCode(metaclass=_Codes):
    """Exit codes of every mflow command; documented in man/mflow.1 (EXIT STATUS)."""

    OK = 0
    FAILED = 1  # the command ran and found a problem: lint errors, a failed run
    USAGE = 2  # the command line itself was wrong (unknown option, missing argument)
    BAD_INPUT = 3  # an input file is missing, unreadable, not Python, or holds no usable flow
    NOT_FOUND = 4  # a key, pathspec, run or flow that the store does not hold
    STORE = 5  # the store cannot be read or written: unreachable, denied, full, corrupt
    EXECUTOR = 6  # a compute engine (AWS Batch, Slurm) cannot be reached, refuses, or is misconfigured
    LOCKED = 7  # another run of the flow holds its overlap lock (mflow run --lock refuse, a scheduled run)
    TASK_FAILED = 10  # mflow-task: the step failed; another attempt may succeed
    TASK_FAILED_FINAL = 11  # mflow-task: failed in a way no retry can fix (bad graph, bad input)
    INTERNAL = 70  # a bug in mflow itself (EX_SOFTWARE); rerun with --traceback and report it
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    BROKEN_PIPE = 141  # stdout was closed early (`| head`); as a shell reports SIGPIPE


class MflowError(Exception):
    """Base of every error a user can cause.

    The message is one line: what happened, then what to do about it.
    """

    exit_code = ExitCode.FAILED

    def __init__(self, message, hint=None):
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self):
        if self.hint:
            return "%s %s" % (_sentence(self.message), _sentence(self.hint))
        return _sentence(self.message)


def _sentence(text):
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


class FlowFileError(MflowError):
    """The flow file cannot be used: missing, unreadable, bad syntax, no flow in it."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message, hint=None, path=None, line=None):
        self.path = path
        self.line = line
        super().__init__(message, hint)


class FlowDefinitionError(MflowError):
    """The flow's code misuses the authoring API (a decorator's arguments, a Parameter).

    Raised while the flow's class body is evaluated, so it names the step or parameter.
    """

    exit_code = ExitCode.BAD_INPUT


class GraphLintError(MflowError):
    """The flow's graph breaks one or more graph rules; `problems` holds each of them and
    `details` their `FILE:LINE: error: message` lines, which the CLI prints before its one-line
    error, as `mflow check` prints them."""

    exit_code = ExitCode.FAILED

    def __init__(self, problems, path=None):
        self.problems = list(problems)
        self.path = path
        self.details = [problem.format(path) for problem in self.problems] if path else []
        count = len(self.problems)
        super().__init__(
            "the flow's graph has %d problem%s%s" % (count, "" if count == 1 else "s", " (above)" if path else ""),
            "Fix %s and run again; `mflow check FLOW.py` checks a flow without running it"
            % ("it" if count == 1 else "them"),
        )


class ParameterError(MflowError):
    """A parameter value given on the command line or in the environment is invalid."""

    exit_code = ExitCode.USAGE


class TransitionError(MflowError):
    """A step called self.next() in a form or to a target that the graph does not allow."""

    exit_code = ExitCode.FAILED


class StoreError(MflowError):
    """The store cannot be read or written: unreachable, denied, full, a missing bucket.

    `store` is the store's URL; the message names it so that one line says where.
    """

    exit_code = ExitCode.STORE

    def __init__(self, message, hint=None, store=None):
        self.store = store
        super().__init__(message, hint)


class CorruptBlobError(StoreError):
    """A blob's bytes do not hash to its key, or a stored record cannot be parsed."""

    def __init__(self, message, hint=None, store=None, key=None):
        self.key = key
        super().__init__(message, hint, store)


class NotFoundError(MflowError):
    """A key, pathspec, run or flow that the store does not hold."""

    exit_code = ExitCode.NOT_FOUND

    def __init__(self, message, hint=None, store=None):
        self.store = store
        super().__init__(message, hint)


class PathspecError(MflowError):
    """A pathspec or blob key given by the user is malformed (not merely unknown)."""

    exit_code = ExitCode.USAGE


class ArtifactSerializationError(MflowError):
    """A value a step set on `self` cannot be pickled, not even with cloudpickle."""

    exit_code = ExitCode.FAILED

    def __init__(self, message, hint=None, artifact=None, step=None):
        self.artifact = artifact
        self.step = step
        super().__init__(message, hint)


class AlreadyExistsError(MflowError):
    """A run id or task attempt asked for explicitly is already taken in the store."""

    exit_code = ExitCode.USAGE

    def __init__(self, message, hint=None, store=None):
        self.store = store
        super().__init__(message, hint)


class TagError(MflowError):
    """A tag is invalid (empty, too long, not text), or a system tag was to be removed."""

    exit_code = ExitCode.USAGE


class MflowNotFound(NotFoundError, KeyError):
    """A flow, run, step, task or artifact that the client API cannot find (Metaflow's
    MetaflowNotFound). Also a KeyError, so that `run["nostep"]` fails as a Mapping would;
    MflowError's __str__ comes first, so the message is not quoted as a KeyError's would be."""


class MflowNamespaceMismatch(MflowNotFound):
    """The object exists, but its run is not in the namespace in use (Metaflow's
    MetaflowNamespaceMismatch); the hint says how to look at it anyway."""

    def __init__(self, message, hint=None, store=None, namespace=None):
        self.namespace = namespace
        super().__init__(message, hint, store)


class S3Error(StoreError):
    """A request of mflow.S3 failed: unreachable, rejected credentials, retries used up, a
    server error. `url` is the s3:// URL of the object or prefix the message names."""

    def __init__(self, message, hint=None, url=None):
        self.url = url
        super().__init__(message, hint, store=url)


class S3AccessDeniedError(S3Error):
    """S3 refused access to an object, a prefix or a bucket (HTTP 403)."""


class S3NotFoundError(NotFoundError):
    """mflow.S3 found no object at a key, or no bucket (`missing_bucket`); `url` names it."""

    def __init__(self, message, hint=None, url=None, missing_bucket=False):
        self.url = url
        self.missing_bucket = missing_bucket
        super().__init__(message, hint, store=url)


class S3URLError(MflowError):
    """A key or URL given to mflow.S3 cannot be used: outside the scoped prefix, no bucket,
    a full URL where a key is expected, or no root to resolve a key against."""

    exit_code = ExitCode.USAGE

    def __init__(self, message, hint=None, key=None):
        self.key = key
        super().__init__(message, hint)


class S3LocalFileError(MflowError):
    """A local file mflow.S3 was to upload is missing or unreadable, or a download cannot be
    written locally (a full disk)."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message, hint=None, path=None):
        self.path = path
        super().__init__(message, hint)


class S3ValueError(MflowError, TypeError):
    """A value given to S3.put is neither bytes, text nor a readable, seekable binary file."""

    exit_code = ExitCode.USAGE


class ExecutorError(MflowError):
    """A compute engine (AWS Batch, Slurm) cannot be used: unreachable, credentials missing,
    a queue, image or partition that does not exist, a store the engine's workers cannot reach."""

    exit_code = ExitCode.EXECUTOR

    def __init__(self, message, hint=None, executor=None):
        super().__init__(message, hint)
        self.executor = executor


class EnvironmentSpecError(MflowError):
    """A step's @pypi / @pypi_base cannot be met: a package or version that does not exist,
    packages that conflict, a python= version this machine does not have. Raised before any
    task runs; `steps` and `package` say where."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message, hint=None, steps=(), package=None):
        self.steps = tuple(steps)
        self.package = package
        super().__init__(message, hint)


class EnvironmentBuildError(MflowError):
    """A step's environment could not be built although its spec is sound: the package index
    or the store unreachable, a wheel that fails its hash, pip or uv failing."""

    exit_code = ExitCode.FAILED


class DeployError(MflowError):
    """A flow cannot be deployed to a production scheduler as it is: a step the scheduler
    cannot express (a switch, a step looping to itself), a parameter it cannot take."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message, hint=None, step=None):
        self.step = step
        super().__init__(message, hint)


class RunLockedError(MflowError):
    """Another run of the flow (on the same @project branch) holds the overlap lock, and this
    run was told to refuse rather than wait; `holder` is that run's pathspec."""

    exit_code = ExitCode.LOCKED

    def __init__(self, message, hint=None, holder=None):
        self.holder = holder
        super().__init__(message, hint)
