"""Run exactly one attempt of one task: load its inputs lazily, run the step, persist.

The same code runs behind `mflow-task` and in each child the driver forks, so a task is
the same work wherever and however it is started.
"""

from __future__ import annotations

import os
import time

from mflow.decospec import timeout_seconds
from mflow.errors import ExitCode, MflowError, TransitionError
from mflow.namedtuple import NamedTuple
from mflow.naming import PARAMETERS_STEP, PARAMETERS_TASK_ID

# Internal artifacts every task may carry besides the user's.
FOREACH_STACK = "_foreach_stack"
RESULT_SCHEMA = 1


class TaskResult(NamedTuple):
    """What one attempt did: mflow-task prints it as one JSON line (schema 1)."""

    pathspec: str
    attempt: int
    status: str  # "successful" or "failed"
    next_steps: Tuple[str, ...] = ()
    transition: Optional[str] = None  # linear, split, foreach, switch; None for end or failure
    foreach_splits: Optional[int] = None
    exit_code: int = 0
    error: Optional[str] = None  # one line: the exception type and message
    exception: Optional[dict] = None  # a failure's type, message and traceback

    def to_json(self):
        return {
            "schema": RESULT_SCHEMA,
            "pathspec": self.pathspec,
            "attempt": self.attempt,
            "status": self.status,
            "next": list(self.next_steps),
            "transition": self.transition,
            "foreach_splits": self.foreach_splits,
            "exit_code": self.exit_code,
            "error": self.error,
            "exception": self.exception,
        }

    @classmethod
    def from_json(cls, record):
        return cls(
            record["pathspec"],
            record["attempt"],
            record["status"],
            tuple(record.get("next") or ()),
            record.get("transition"),
            record.get("foreach_splits"),
            record.get("exit_code", 0),
            record.get("error"),
            record.get("exception"),
        )

    def outcome(self):
        """What resume replays of a success: next steps, transition, foreach split count."""
        return {"next": list(self.next_steps), "transition": self.transition, "foreach_splits": self.foreach_splits}


class StepFailure(Exception):
    """The step's own code raised; `retryable` says whether another attempt may succeed."""

    def __init__(self, message, retryable=True, exception=None):
        super().__init__(message)
        self.retryable = retryable
        self.exception = exception or {"type": "MflowError", "message": message, "traceback": ""}


class TaskAttempt:
    """One attempt of task `step/task_id` of run `run_id`.

    `inputs` are the "step/task_id" of the tasks it reads: one for a linear step or a
    foreach item (with `split_index`), several for a join, in join order.
    """

    def __init__(self, store, meta, graph, flow_class, run_id, step, task_id, inputs, split_index=None, attempt=0,
                 log_paths=None, tags=(), origin_run_id=None, heartbeat=True, decorators=None, fallback=None,
                 live_logs=None):
        from mflow.store.pathspec import Pathspec

        self.store = store
        self.meta = meta
        self.graph = graph
        self.flow_class = flow_class
        self.flow_name = graph.name
        self.run_id = str(run_id)
        self.step = step
        self.task_id = str(task_id)
        self.inputs = tuple(inputs)
        self.split_index = split_index
        self.attempt = attempt
        self.log_paths = log_paths
        self.tags = tuple(tags)
        self.origin_run_id = origin_run_id
        # A task on its own beats from a thread; the driver beats for the tasks it forks.
        self.heartbeat = heartbeat
        # {name: attributes} of the step's decorators (see mflow.task.decorators).
        self.decorators = decorators if decorators is not None else {}
        # The failure a @catch fallback attempt stores instead of running the step.
        self.fallback = fallback
        # Seconds between copies of the logs to the store while the step runs (remote tasks,
        # whose output no driver on this machine sees), or None: logs are stored at the end.
        self.live_logs = live_logs
        self.pathspec = Pathspec.task(self.flow_name, self.run_id, step, self.task_id)
        self.node = graph[step]

    def _input_pathspec(self, ref):
        from mflow.store.pathspec import Pathspec

        step, task_id = ref.split("/")
        return Pathspec.task(self.flow_name, self.run_id, step, task_id)

    # --- the attempt ---------------------------------------------------------------------

    def run(self):
        """Run the attempt to the end and return its TaskResult; never raises for the
        step's own failures (they become a failed result)."""
        started = time.time()
        prepared = failure = None
        try:
            prepared = self._prepare()
        except StepFailure as exc:
            failure = exc
        stack = prepared[1] if prepared else ()
        self.meta.start_attempt(
            self.pathspec,
            self.attempt,
            pid=os.getpid(),
            host=os.uname().nodename,
            foreach_stack=[
                {"step": f.step, "var": f.var, "index": f.index, "num_splits": f.num_splits} for f in stack
            ],
            parent_tasks=[str(self._input_pathspec(ref)) for ref in self.inputs if not ref.startswith("_")],
            resources=self.decorators.get("resources"),
            fallback=self.fallback is not None,
            environment=_interpreter_record(self.store),
        )
        heartbeat = self.meta.attempt_heartbeat(self.pathspec, self.attempt) if self.heartbeat else None
        live = self._live_logs() if self.live_logs and self.log_paths else None
        try:
            if failure is not None:
                raise failure
            result = self._run(*prepared)
        except StepFailure as exc:
            code = ExitCode.TASK_FAILED if exc.retryable else ExitCode.TASK_FAILED_FINAL
            result = TaskResult(
                str(self.pathspec), self.attempt, "failed", exit_code=int(code), error=str(exc), exception=exc.exception
            )
        finally:
            if heartbeat is not None:
                heartbeat.stop()
            if live is not None:
                live.stop()  # before the final copy, which must be the last word
        self._save_logs()
        self.meta.end_attempt(
            self.pathspec,
            self.attempt,
            result.status,
            exit_code=result.exit_code,
            reason=result.error,
            duration=time.time() - started,
            exception=result.exception,
            result=result.outcome() if result.status == "successful" else None,
        )
        return result

    def _run(self, flow, stack):
        from mflow.flow.current import current

        from mflow.flow.current import resolve_username

        username = resolve_username()
        current._bind(
            username=username,
            namespace="user:%s" % username if username else None,
            flow_name=self.flow_name,
            run_id=self.run_id,
            step_name=self.step,
            task_id=self.task_id,
            retry_count=self.attempt,
            origin_run_id=self.origin_run_id,
            tags=list(self.tags),
            parameter_names=[p.name for _, p in self.flow_class._get_parameters()],
            **self._project_fields(),
        )
        try:
            if self.fallback is not None:
                transition = self._stand_in(flow)
            else:
                self._execute(flow)
                transition = self._check_transition(flow)
                var = (self.decorators.get("catch") or {}).get("var")
                if var and var not in flow.__dict__:
                    setattr(flow, var, None)  # as in Metaflow: `if self.var:` tells a failure
        finally:
            current._unbind()
        self._persist(flow, stack)
        if transition is None:
            return TaskResult(str(self.pathspec), self.attempt, "successful")
        return TaskResult(
            str(self.pathspec),
            self.attempt,
            "successful",
            tuple(transition.steps),
            transition.kind,
            transition.num_splits,
        )

    def _project_fields(self):
        """current's @project fields, from the run's system tags; none for other flows (which
        then read no run record)."""
        if "project" not in (getattr(self.flow_class, "_flow_decorators", None) or {}):
            return {}
        from mflow.deploy.project import project_from_tags

        try:
            record = self.meta.run_record(self.flow_name, self.run_id)
        except MflowError:  # a task run by hand, of a run with no record
            return {}
        info = project_from_tags(record.system_tags, self.flow_name)
        if info is None:
            return {}
        return {"project_name": info.name, "branch_name": info.branch, "is_production": info.is_production,
                "project_flow_name": info.flow_name}

    # --- inputs ----------------------------------------------------------------------------

    def _loader(self, ref):
        try:
            return self.store.artifacts(self._input_pathspec(ref))
        except MflowError as exc:
            raise StepFailure("cannot read input %s: %s" % (ref, exc), retryable=False)

    def _parameters(self):
        return self._loader("%s/%s" % (PARAMETERS_STEP, PARAMETERS_TASK_ID))

    def _parameter_values(self, parameters):
        attributes = [attribute for attribute, _ in self.flow_class._get_parameters()]
        return {attribute: parameters[attribute] for attribute in attributes if attribute in parameters}

    def _prepare(self):
        """A flow instance ready to run the step, and its foreach stack."""
        from mflow.flow.spec import ForeachFrame, Inputs

        flow = self.flow_class(use_cli=False)
        parameters = self._parameters()
        if self.node.is_join:
            views = []
            for ref in self.inputs:
                view = self.flow_class(use_cli=False)
                loader = self._loader(ref)
                view._current_step = ref.split("/")[0]
                view._set_artifact_source(ArtifactSource(loader))
                view._set_parameter_values(self._parameter_values(parameters))
                views.append(view)
            stack = tuple(_stack_of(views[0]))
            if self.graph[self.node.split].transition.kind == "foreach":
                stack = stack[:-1]  # the join of a foreach closes its frame
            self._join_inputs = Inputs(views)
            # A join inherits nothing but the parameters.
            self._inherited = ArtifactSource(parameters, only=self._parameter_attributes())
        else:
            if len(self.inputs) != 1:
                raise StepFailure(
                    "step %s takes one input, not %d" % (self.step, len(self.inputs)), retryable=False
                )
            parent = ArtifactSource(self._loader(self.inputs[0]))
            self._inherited = parent
            stack = tuple(parent.get(FOREACH_STACK) or ())
            if self.split_index is not None:
                stack += (self._foreach_frame(parent, ForeachFrame),)
        flow._begin_step(self.step, stack)
        flow._set_parameter_values(self._parameter_values(parameters))
        if not self.node.is_join:
            flow._set_artifact_source(self._inherited)
        return flow, stack

    def _parameter_attributes(self):
        return {attribute for attribute, _ in self.flow_class._get_parameters()}

    def _foreach_frame(self, parent, frame_type):
        parent_step = self.inputs[0].split("/")[0]
        split = self.graph[parent_step].transition
        if split is None or split.kind != "foreach":
            raise StepFailure("step %s is not a foreach; --split-index does not apply" % parent_step, retryable=False)
        try:
            items = parent[split.foreach]
        except KeyError:
            raise StepFailure(
                "foreach step %s has no artifact %s to split over" % (parent_step, split.foreach), retryable=False
            ) from None
        try:
            value = items[self.split_index]
            count = len(items)
        except TypeError:
            items = list(items)
            value, count = items[self.split_index], len(items)
        except IndexError:
            raise StepFailure(
                "split index %d is outside the foreach over %s (%d items)"
                % (self.split_index, split.foreach, len(items)),
                retryable=False,
            ) from None
        return frame_type(parent_step, split.foreach, self.split_index, count, value)

    # --- running ----------------------------------------------------------------------------

    def _execute(self, flow):
        method = getattr(flow, self.step)
        environment = self.decorators.get("environment")
        if environment:
            os.environ.update({str(k): str(v) for k, v in environment.get("vars", {}).items()})
        timeout = self.decorators.get("timeout")
        alarm = _Alarm(self.step, timeout_seconds(timeout)) if timeout else None
        try:
            if alarm is not None:
                alarm.start()
            if self.node.is_join:
                method(self._join_inputs)
            else:
                method()
        except BaseException as exc:  # the step's own failure, whatever it raised
            if isinstance(exc, KeyboardInterrupt):
                raise
            trace = user_traceback(exc)
            _write_stderr(trace)
            retryable = not isinstance(exc, TransitionError)
            details = {"type": _type_name(exc), "message": _first_line(exc), "traceback": trace}
            raise StepFailure(
                "%s: %s" % (type(exc).__name__, _first_line(exc)), retryable=retryable, exception=details
            ) from exc
        finally:
            if alarm is not None:
                alarm.stop()

    def _stand_in(self, flow):
        """The @catch fallback: store the failure in `var` and go on as the graph says,
        without running the step again."""
        from mflow.flow.exceptions import CaughtException
        from mflow.flow.spec import Transition

        catch = self.decorators.get("catch") or {}
        caught = CaughtException(
            self.fallback.get("type", "Exception"), self.fallback.get("message", ""), self.fallback.get("traceback", "")
        )
        if catch.get("print_exception", True):
            _write_stderr("@catch caught the failure of step %s: %s\n%s" % (self.step, caught, caught.traceback))
        if catch.get("var"):
            setattr(flow, catch["var"], caught)
        static = self.node.transition
        if static is None:
            return None
        return Transition(static.targets)

    def _check_transition(self, flow):
        transition = flow._transition
        static = self.node.transition
        if self.step == "end":
            if transition is not None:
                raise StepFailure("step end called self.next(); end is the last step", retryable=False)
            return None
        if transition is None:
            raise StepFailure(
                "step %s ended without calling self.next(); add it as the step's last statement" % self.step,
                retryable=False,
            )
        if static is None:
            raise StepFailure("step %s has no transition in the flow's graph" % self.step, retryable=False)
        expected = set(static.targets)
        if transition.kind != static.kind or not set(transition.steps) <= expected or (
            transition.kind != "switch" and set(transition.steps) != expected
        ):
            raise StepFailure(
                "step %s went to %s (%s) at run time, but its graph says %s (%s); "
                "keep self.next() the step's last statement with fixed targets"
                % (self.step, ", ".join(transition.steps), transition.kind, ", ".join(static.targets), static.kind),
                retryable=False,
            )
        return transition

    # --- persisting ---------------------------------------------------------------------------

    def _persist(self, flow, stack):
        writer = self.store.artifact_writer(self.pathspec, self.attempt)
        own = [name for name in flow.__dict__ if name not in flow._EPHEMERAL and not name.startswith("__")]
        inherited = self._inherited
        try:
            for name in inherited.names():
                if name not in flow.__dict__ and name != FOREACH_STACK:
                    writer.carry(inherited.record(name))  # untouched: by reference
            for name in own:
                # A value read from the input and maybe changed in place: stored again
                # only if its bytes changed.
                previous = inherited.record(name) if name in inherited else None
                writer.save(name, flow.__dict__[name], previous=previous)
            if stack:
                writer.save(FOREACH_STACK, tuple(stack))
            writer.commit()
        except MflowError as exc:
            raise StepFailure(str(exc), retryable=False) from exc

    def _live_logs(self):
        """A thread storing the logs every `live_logs` seconds while they grow."""
        from mflow.meta.heartbeat import Heartbeat

        sizes = {}

        def copy():
            now = tuple(os.path.getsize(path) if os.path.exists(path) else 0 for path in self.log_paths)
            if sizes.get("last") != now:
                self._save_logs()
                sizes["last"] = now

        return Heartbeat(copy, self.live_logs, first_after=min(1.0, self.live_logs)).start()

    def _save_logs(self):
        if not self.log_paths:
            return
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        stdout_path, stderr_path = self.log_paths
        self.store.save_logs(self.pathspec, self.attempt, stdout=stdout_path, stderr=stderr_path)


class ArtifactSource:
    """A task's stored artifacts as the lazy Mapping a flow instance reads from."""

    def __init__(self, loader, only=None):
        self.loader = loader
        self.only = only

    def names(self):
        return [name for name in self.loader if self.only is None or name in self.only]

    def __iter__(self):
        return iter(self.names())

    def __contains__(self, name):
        return name in self.loader and (self.only is None or name in self.only)

    def __getitem__(self, name):
        if not self.__contains__(name):
            raise KeyError(name)
        return self.loader[name]

    def get(self, name, default=None):
        return self[name] if name in self else default

    def record(self, name):
        return self.loader.record(name)

    def key_of(self, name):
        return self.loader.record(name).key if name in self else None


class _Alarm:
    """@timeout inside the task: SIGALRM raises TimeoutException in the step's code.

    A step whose code does not yield to Python (a C extension in a loop, blocked signals)
    is not stopped here: the driver kills such an attempt after a grace period."""

    def __init__(self, step, seconds):
        self.step = step
        self.seconds = seconds
        self._previous = None

    def _fire(self, signum, frame):
        from mflow.flow.exceptions import TimeoutException

        raise TimeoutException("step %s ran past its timeout of %s s" % (self.step, _number(self.seconds)))

    def start(self):
        import signal

        self._previous = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self):
        import signal

        signal.setitimer(signal.ITIMER_REAL, 0)
        if self._previous is not None:
            signal.signal(signal.SIGALRM, self._previous)


def _interpreter_record(store):
    from mflow.env.inventory import interpreter_record

    return interpreter_record(store)


def _number(value):
    return int(value) if float(value).is_integer() else value


def _type_name(exc):
    kind = type(exc)
    return kind.__name__ if kind.__module__ == "builtins" else "%s.%s" % (kind.__module__, kind.__qualname__)


def _stack_of(view):
    source = view.__dict__.get("_artifact_source")
    return source.get(FOREACH_STACK) or () if source is not None else ()


def user_traceback(exc, environ=None):
    """The traceback of a step's exception as Python prints it, from the user's first frame
    on, as Metaflow shows it: the task runner's own frames before it are left out unless
    MFLOW_DEBUG is set (to anything but "" or 0)."""
    import traceback

    environ = os.environ if environ is None else environ
    tb = exc.__traceback__
    if environ.get("MFLOW_DEBUG", "") in ("", "0"):
        while tb is not None and tb.tb_next is not None and _is_mflow_frame(tb.tb_frame):
            tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _is_mflow_frame(frame):
    name = frame.f_globals.get("__name__") or ""
    return (name == "mflow" or name.startswith("mflow.")) and not name.startswith("mflow.tutorials.")


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _write_stderr(text):
    # The task's stderr is its log: the traceback belongs there, as Python would print it.
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass
