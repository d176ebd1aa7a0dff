"""A scheduler's run, from inside its tasks: the start task creates it, the end task ends it.

The scheduler holds no metadata of ours: the start task (mflow-task --init-run DEPLOYMENT)
writes the run's code package record, parameters and run record from the deployment's
record, exactly once however often it is retried, and the end task (--end-run) records the
run's success; a failure path records a failure with `mflow-meta run-end`.
"""

from mflow.errors import NotFoundError, ParameterError


def claim_code(store, flow, run_id, deployment_id):
    """Give run `run_id` the deployment's code package (first writer wins); the deployment
    record. Runs before the task unpacks its code."""
    from mflow.store import layout
    from mflow.store.code import CodePackage

    from . import read_deployment

    record = read_deployment(store, flow, deployment_id)
    code = record["code"]
    package = CodePackage(flow, str(run_id), code["key"], code["size"], code["stored_size"], code["files"],
                          tuple(code["suffixes"]), code["graph"])
    store.write_record(layout.code_path(flow, run_id), package.to_json(), exclusive=True)
    return record


def start_run(store, meta, record, flow_class, graph, run_id, params_text=None, on_wait=None):
    """Create run `run_id` of the deployment `record` unless it exists: its parameters (the
    deployment's defaults, overridden by `params_text`, a JSON object) and its run record,
    after taking the deployment's overlap lock when it has one."""
    from mflow.naming import PARAMETERS_STEP, PARAMETERS_TASK_ID
    from mflow.runtime.resume import graph_summary
    from mflow.store.pathspec import Pathspec

    flow = record["flow"]
    try:
        meta.run_record(flow, run_id)
        return False  # a retry of the start task: the run is there
    except NotFoundError:
        pass
    values = parameter_values(store, record, flow_class, params_text)
    if record.get("lock"):
        from mflow.meta.lock import RunLock

        RunLock(meta, flow, record["name"], record["lock"]).acquire(run_id, on_wait=on_wait)
    task = Pathspec.task(flow, run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)
    if not store.attempts(task):
        writer = store.artifact_writer(task, 0)
        writer.save_many(sorted(values.items()))
        writer.commit()
    from mflow.runtime.driver import _recorded

    tags = ["scheduler:%s" % record["scheduler"], "production:%s" % record["name"]]
    if record.get("project"):
        tags += ["project:%s" % record["project"]["name"], "project_branch:%s" % record["project"]["branch"]]
    try:
        meta.start_run(
            flow,
            run_id,
            params={p.name: _recorded(p, values.get(attr)) for attr, p in flow_class._get_parameters()},
            user_tags=record.get("tags") or (),
            code_key=record["code"]["key"],
            user=record.get("user"),
            graph=graph_summary(graph),
            extra_system_tags=tags,
        )
    except Exception as exc:
        from mflow.errors import AlreadyExistsError

        if not isinstance(exc, AlreadyExistsError):
            raise
    return True


def parameter_values(store, record, flow_class, params_text=None):
    """{attribute: value} of a scheduled run: the deployment's defaults, and the values a
    trigger gave (`params_text`: a JSON object of parameter name -> value, a value either
    text as on the command line or of the parameter's JSON type)."""
    import pickle

    from mflow import jsonio
    from mflow.naming import parameter_key

    given = {}
    if params_text:
        try:
            given = jsonio.loads(params_text)
        except ValueError as exc:
            raise ParameterError("--params is not JSON: %s" % exc, "Give a JSON object of name: value") from None
        if not isinstance(given, dict):
            raise ParameterError("--params must be a JSON object of name: value", "Give e.g. '{\"alpha\": 0.5}'")
    defaults = pickle.loads(store.blobs.get(record["defaults_key"]))
    by_key = {parameter_key(p.name): (attribute, p) for attribute, p in flow_class._get_parameters()}
    values = dict(defaults)
    for name, value in given.items():
        found = by_key.get(parameter_key(str(name)))
        if found is None:
            raise ParameterError(
                "flow %s has no parameter %r" % (record["flow"], name),
                "Its parameters: %s" % (", ".join(sorted(p.name for _, p in by_key.values())) or "none"),
            )
        attribute, parameter = found
        if parameter.kind == "IncludeFile":
            raise ParameterError(
                "IncludeFile %r was read when the flow was deployed and cannot be given to a run" % parameter.name,
                "Deploy again to include another file",
            )
        values[attribute] = parameter.convert(value if isinstance(value, str) else jsonio.dumps(value))
    for attribute, parameter in flow_class._get_parameters():
        if values.get(attribute) is None and parameter.needs_value:
            raise ParameterError(
                "parameter %r is required and has no value" % parameter.name,
                "Give it when triggering the run, e.g. --%s VALUE" % parameter.name,
            )
    return values


def end_run(meta, flow, run_id, status="successful", reason=None):
    """Record the run's end (the first end written wins); the RunEndRecord in the store."""
    failure = {"reason": reason} if reason else None
    return meta.end_run(flow, run_id, status, first_failure=failure)


def expand_inputs(meta, flow, run_id, step, pattern):
    """The task ids `pattern` (`ID-*`) stands for among the tasks of `step`: every split
    ID-0 ... ID-(n-1), in order; ParameterError naming a missing one."""
    from mflow.errors import PathspecError

    prefix = pattern[:-1]
    found = {}
    for task in meta.tasks(flow, run_id, step):
        rest = str(task.task_id)[len(prefix):] if str(task.task_id).startswith(prefix) else ""
        if rest.isdigit() and task.status == "successful":
            found[int(rest)] = str(task.task_id)
    if not found:
        raise PathspecError(
            "--input %s/%s matches no finished task of run %s/%s" % (step, pattern, flow, run_id),
            "Run the foreach's tasks first",
        )
    missing = [i for i in range(max(found) + 1) if i not in found]
    if missing:
        raise PathspecError(
            "--input %s/%s: split %s%d has not finished" % (step, pattern, prefix, missing[0]),
            "Run every task of the foreach before its join",
        )
    return [found[i] for i in range(len(found))]
