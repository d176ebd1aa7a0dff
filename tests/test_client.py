"""The client API against runs made by the real driver, on a local folder and on the S3 test
server: every property, namespaces, errors, tags, attempts, and a 1,000-task foreach."""

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime

import pytest

from mflow.client import (
    DataArtifact,
    Flow,
    Metaflow,
    MflowNamespaceMismatch,
    MflowNotFound,
    Run,
    Step,
    Task,
    default_namespace,
    get_store,
    namespace,
    set_store,
)
from mflow.errors import PathspecError, TagError
from mflow.meta import MetaStore
from mflow.store import open_store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = os.path.join(REPO, "mflow", "tutorials")

CLIENT_FLOW = """
import sys
from mflow import FlowSpec, Parameter, current, retry, step

class ClientFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.blob = b"x" * 5000  # too large to live in the manifest: a blob of its own
        print("hello from start")
        print("a warning", file=sys.stderr)
        self.next(self.work, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        if self.input == 2 and current.retry_count == 0:
            raise RuntimeError("flaky first try")
        self.square = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.result = {"total": self.total, "alpha": self.alpha}
"""

FAIL_FLOW = """
import os
from mflow import FlowSpec, step

class FailFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if str(self.input) == os.environ.get("FAIL_ITEM"):
            raise ValueError("bad item %d" % self.input)
        self.value = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

WIDE_FLOW = """
from mflow import FlowSpec, step

class WideFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(1000))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def mflow():
    path = shutil.which("mflow")
    assert path, "mflow is not on PATH; run the tests through scripts/test"
    return path


class Results:
    """Runs made once by the real driver, on the store (local or S3) a module's tests read."""

    def __init__(self, kind, url, env, folder):
        self.kind = kind
        self.url = url
        self.env = dict(env)
        self.run_url = url
        self.flows = folder / "flows"  # beside the store, not above it: the code package stays small
        self.flows.mkdir(parents=True, exist_ok=True)
        self.store = open_store(url, environ=dict(os.environ, **self.env))
        self.runs = {}

    def write(self, name, source):
        path = self.flows / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path

    def start(self, path, *args, user="alice", env=None, command="run"):
        env = dict(os.environ, **self.env, **(env or {}), MFLOW_STORE=self.run_url, MFLOW_USER=user)
        return subprocess.Popen(
            [mflow(), command, str(path), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(self.flows), env=env,
        )  # fmt: skip

    def finish(self, name, process, ok=True):
        stdout, stderr = process.communicate(timeout=240)
        assert (process.returncode == 0) == ok, stderr
        if ok:
            self.runs[name] = stdout.strip().splitlines()[-1]
        else:
            self.runs[name] = stderr.split("Error: run ", 1)[1].split(" ")[0]
        return self.runs[name]

    def publish(self):
        """The runs made so far, copied to the store the tests read (for S3)."""
        if self.run_url != self.url:
            copy = subprocess.run(
                [shutil.which("mflow-store"), "cp", "-q", self.run_url, self.url],
                capture_output=True, text=True, env=dict(os.environ, **self.env), timeout=240,
            )
            assert copy.returncode == 0, copy.stderr
        return self

    def build(self):
        """Two phases of runs at once: ClientFlow twice by alice (the second newest), once
        by bob; a FailFlow failed at its first item, then its resume; MovieStatsFlow, then
        the tutorial that reads it."""
        client = self.write("client_flow.py", CLIENT_FLOW)
        fail = self.write("fail_flow.py", FAIL_FLOW)
        for name in ("moviestats.py", "playlistredux.py", "movies.csv"):
            shutil.copy(os.path.join(TUTORIALS, name), self.flows / name)
        first = {
            "first": self.start(client, "--tag", "exp"),
            "failed": self.start(fail, env={"FAIL_ITEM": "0"}),
            "moviestats": self.start(self.flows / "moviestats.py"),
        }
        for name, process in first.items():
            self.finish(name, process, ok=name != "failed")
        second = {
            "second": self.start(client, "--tag", "exp", "--tag", "second", "--alpha", "0.25"),
            "bob": self.start(client, user="bob"),
            "redux": self.start(self.flows / "playlistredux.py", "--genre", "Comedy"),
            "resumed": self.start(fail, "--origin-run-id", run_id(self.runs["failed"]), command="resume"),
        }
        for name, process in second.items():
            self.finish(name, process)
        return self.publish()


@pytest.fixture(scope="module", params=["local", "s3"])
def results(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("client-%s" % request.param)
    if request.param == "local":
        return Results("local", str(folder / "store"), {}, folder).build()
    server = request.getfixturevalue("s3_server")
    return Results("s3", server.url(), server.env, folder).build()


@pytest.fixture
def client(results):
    """The client reading the results' store in alice's namespace, as it was afterwards."""
    set_store(results.store)
    namespace("user:alice")
    try:
        yield results
    finally:
        set_store(None)
        default_namespace()


def run_id(pathspec):
    return pathspec.split("/")[1]


# --- flows and runs ------------------------------------------------------------------------------


def test_flow_lists_runs_newest_first_in_the_namespace(client):
    runs = client.runs
    flow = Flow("ClientFlow")
    assert [r.pathspec for r in flow] == [runs["second"], runs["first"]]  # bob's is not in alice's namespace
    assert flow.latest_run == Run(runs["second"]) and flow.latest_successful_run.pathspec == runs["second"]
    assert [r.pathspec for r in flow.runs("second")] == [runs["second"]]
    assert [r.pathspec for r in flow.runs("exp")] == [runs["second"], runs["first"]]
    assert list(flow.runs("exp", "nothing-has-this")) == []
    assert run_id(runs["first"]) in flow and "12345" not in flow and "bad/id" not in flow
    assert flow[run_id(runs["first"])].pathspec == runs["first"]
    assert isinstance(flow.created_at, datetime) and flow.tags == frozenset() and flow.parent is None
    assert Flow("FailFlow").latest_successful_run.pathspec == runs["resumed"]
    assert [r.pathspec for r in Flow("FailFlow")] == [runs["resumed"], runs["failed"]]
    assert [r.successful for r in Flow("FailFlow")] == [True, False]
    names = [f.id for f in Metaflow().flows]
    assert {"ClientFlow", "FailFlow", "MovieStatsFlow", "PlayListReduxFlow"} <= set(names)
    assert repr(flow) == "Flow('ClientFlow')" and str(Metaflow()) == "Metaflow()"
    # Every user's runs, once the namespace is lifted.
    namespace(None)
    everyone = [r.pathspec for r in Flow("ClientFlow")]  # bob's and the second started together
    assert set(everyone[:2]) == {runs["bob"], runs["second"]} and everyone[2] == runs["first"]
    assert Flow("ClientFlow").latest_run.pathspec == everyone[0]


def test_run_status_times_tags_data_and_code(client):
    run = Run(client.runs["second"])
    assert run.id == run_id(client.runs["second"]) and run.path_components == client.runs["second"].split("/")
    assert run.successful and run.finished and run.status == "successful" and run.state == "succeeded"
    assert isinstance(run.created_at, datetime) and run.created_at <= run.finished_at
    assert run.finished_at == run.end_task.finished_at and run.ended_at >= run.finished_at
    assert {"exp", "second", "user:alice", "runtime:mflow"} <= run.tags
    assert run.user_tags == {"exp", "second"} and "user:alice" in run.system_tags
    assert run.data.result == {"total": 1 + 4 + 9, "alpha": 0.25}
    assert run["end"].task.data.result == run.data.result and run.end_task.pathspec.startswith(run.pathspec + "/end/")
    assert [s.id for s in run] == ["end", "join", "work", "start"]  # newest first
    assert "work" in run and "nostep" not in run and "bad step" not in run
    assert run.parent == Flow("ClientFlow") and run.origin_pathspec is None
    assert run.is_in_namespace()
    code = run.code
    assert code.script_name == "client_flow.py" and "class ClientFlow" in code.flowspec
    assert "client_flow.py" in code.files and code.tarball.getmember("client_flow.py").size > 0
    with code.extract() as folder:
        assert "class ClientFlow" in open(os.path.join(folder, "client_flow.py")).read()
    assert "<b>Run(" in run._repr_html_() and "successful" in run._repr_html_()


def test_steps_tasks_and_artifacts(client):
    run = Run(client.runs["first"])
    work = run["work"]
    tasks = list(work)
    assert len(tasks) == 3 and work.parent == run
    assert [t.created_at for t in tasks] == sorted((t.created_at for t in tasks), reverse=True)  # newest first
    assert sorted(t.index for t in tasks) == [0, 1, 2]
    for task in tasks:
        value = [1, 2, 3][task.index]
        assert task.data.square == value ** 2 and task["square"].data == value ** 2
        assert task.artifacts.square.data == value ** 2
        assert task.data.alpha == 0.5 and task.data.items == [1, 2, 3]  # parameters and inherited values
        assert task.successful and task.finished and isinstance(task.finished_at, datetime)
        assert task.parent == work and task.tags == run.tags
    task = tasks[0]
    assert Task(task.pathspec) == task and Step(work.pathspec).pathspec == work.pathspec
    artifact = DataArtifact(task.pathspec + "/square")
    assert artifact.data == task.data.square and artifact.parent == task and artifact.type == "int"
    record = client.store.artifacts(task.pathspec).record("square")
    assert artifact.sha == record.key and artifact.size == record.size
    assert isinstance(artifact.finished_at, datetime) and artifact.finished_at == artifact.created_at
    # Internal artifacts: left out of data, iteration and artifacts, but there by name.
    assert "_foreach_stack" not in task.data and "_foreach_stack" in task
    assert task["_foreach_stack"].data[-1].index == task.index
    assert [a.id for a in task] == ["alpha", "blob", "items", "square"] and "square" in dir(task.data)
    with pytest.raises(AttributeError):
        task.data.nothing
    assert repr(task.data) == "<MflowData: alpha, blob, items, square>" and "<table>" in task.data._repr_html_()
    # A blob-stored value loads, and loads once.
    start = run["start"].task
    assert start.data.blob == b"x" * 5000 and start.data.blob is start.data.blob
    assert start.stdout == "hello from start\n" and "a warning" in start.stderr
    assert start.index is None and start.exception is None and start.runtime_name == "mflow"
    # The graph: parents and children.
    assert list(start.child_tasks) == sorted(tasks, key=lambda t: int(t.id))
    assert list(task.parent_tasks) == [start]
    (join,) = task.child_tasks
    assert sorted(t.id for t in join.parent_tasks) == sorted(t.id for t in tasks)
    assert [s.id for s in work.parent_steps] == ["start"] and [s.id for s in work.child_steps] == ["join"]
    assert isinstance(work.created_at, datetime) and work.finished_at >= work.created_at
    assert "foreach index" in task._repr_html_() and repr(task) == "Task('%s')" % task.pathspec


def test_attempts_of_a_retried_task(client):
    run = Run(client.runs["first"])
    (task,) = [t for t in run["work"] if t.index == 1]  # item 2 failed once, then succeeded
    assert task.current_attempt == 1 and task.successful and task.data.square == 4
    first, second = task.attempts
    assert repr(first) == "Task('%s', attempt=0)" % task.pathspec and second.current_attempt == 1
    assert not first.successful and first.finished and first.status == "failed"
    assert first.exception.type == "RuntimeError" and first.exception.message == "flaky first try"
    assert "Traceback (most recent call last)" in first.exception.traceback
    assert "flaky first try" in first.stderr and list(first) == [] and "square" not in first.data
    assert Task(task.pathspec, attempt=0) == first and Task(task.pathspec, attempt=1).data.square == 4
    assert DataArtifact(task.pathspec + "/square", attempt=1).data == 4
    with pytest.raises(MflowNotFound, match="has no attempt 2.*Its attempts are 0, 1"):
        Task(task.pathspec, attempt=2)
    with pytest.raises(TypeError):
        Task(task.pathspec, attempt=-1)


def test_a_failed_run_and_its_failed_task(client):
    run = Run(client.runs["failed"])
    # As in Metaflow: a run whose end step never ran is not finished; `state` says it stopped.
    assert not run.successful and not run.finished and run.status == "failed" and run.state == "failed"
    assert run.finished_at is None and isinstance(run.ended_at, datetime)
    assert run.data is None and run.end_task is None and "end" not in run
    (failed,) = [t for t in run["work"] if t.index == 0]  # the others may have been stopped
    assert not failed.successful and failed.finished and failed.status == "failed"
    exception = failed.exception
    assert (exception.type, exception.message) == ("ValueError", "bad item 0")
    assert str(exception) == "ValueError: bad item 0" and exception.exception == "bad item 0"
    assert 'raise ValueError("bad item %d" % self.input)' in exception.traceback == exception.stacktrace
    assert "ValueError: bad item 0" in failed.stderr
    # A task with no artifacts: the attempt failed before saving any.
    assert list(failed) == [] and "value" not in failed.data and repr(failed.data) == "<MflowData: >"
    with pytest.raises(MflowNotFound, match="has no artifact 'value'.*failed before it saved any"):
        failed["value"]
    with pytest.raises(MflowNotFound):
        DataArtifact(failed.pathspec + "/value")


def test_a_resumed_run_and_its_cloned_tasks(client):
    failed, resumed = Run(client.runs["failed"]), Run(client.runs["resumed"])
    assert resumed.successful and resumed.origin_pathspec == failed.pathspec
    start = resumed["start"].task
    assert start.origin_pathspec == failed["start"].task.pathspec and start.successful
    assert start.data.items == [0, 1, 2] and start["items"].sha == failed["start"].task["items"].sha
    assert resumed["start"].origin_pathspec == failed.pathspec + "/start"
    work = {task.index: task for task in resumed["work"]}
    assert work[0].origin_pathspec is None and work[0].data.value == 0  # ran again
    for task in work.values():
        if task.origin_pathspec:  # items that had finished before the failure: cloned
            origin = Task(task.origin_pathspec)
            assert origin.successful and task.data.value == origin.data.value == task.index
    assert [t.id for t in resumed["join"].task.parent_tasks] == sorted((t.id for t in work.values()), key=int)


def test_exception_from_the_reason_alone():
    """Attempts recorded before the end record held the exception: the one-line reason is
    parsed, and the traceback is read from the attempt's stderr."""
    from types import SimpleNamespace

    from mflow.client.core import _exception_of

    class Logs:
        def _log(self, stream, attempt):
            return "noise\nTraceback (most recent call last):\n  File x\nKeyError: 'k'\n"

    attempt = SimpleNamespace(attempt=0, end=SimpleNamespace(reason="KeyError: 'k'"))
    exception = _exception_of(Logs(), attempt)
    assert (exception.type, exception.message) == ("KeyError", "'k'")
    assert exception.traceback == "Traceback (most recent call last):\n  File x\nKeyError: 'k'"
    killed_end = SimpleNamespace(reason="killed by signal 9 (SIGKILL)")
    killed = _exception_of(Logs(), SimpleNamespace(attempt=0, end=killed_end))
    assert killed.type is None and str(killed) == "killed by signal 9 (SIGKILL)"


# --- namespaces, errors ---------------------------------------------------------------------------------


def test_objects_outside_the_namespace_say_how_to_see_them(client):
    bob = client.runs["bob"]
    end = "%s/end" % bob
    for make in (lambda: Run(bob), lambda: Step(end), lambda: Flow("ClientFlow")[run_id(bob)]):
        with pytest.raises(MflowNamespaceMismatch) as caught:
            make()
        assert isinstance(caught.value, MflowNotFound) and isinstance(caught.value, KeyError)
        assert "not in namespace user:alice: run %s was started by bob" % bob in str(caught.value)
        assert "namespace(None)" in str(caught.value) and caught.value.exit_code == 4
    task = next(iter(Step(end, _namespace_check=False)))
    with pytest.raises(MflowNamespaceMismatch):
        Task(task.pathspec)
    with pytest.raises(MflowNamespaceMismatch):
        DataArtifact(task.pathspec + "/result")
    with pytest.raises(MflowNamespaceMismatch, match="flow ClientFlow has no run in namespace user:carol.*namespace"):
        Flow("ClientFlow", namespace="user:carol")
    assert not Run(bob, _namespace_check=False).is_in_namespace()
    namespace("user:bob")
    assert Run(bob).data.result["alpha"] == 0.5 and Flow("ClientFlow").latest_run.pathspec == bob
    namespace(None)
    assert DataArtifact(task.pathspec + "/result").data["total"] == 14


def test_unknown_and_malformed_pathspecs(client):
    first = client.runs["first"]
    cases = [
        (lambda: Flow("NoSuchFlow"), "has no flow NoSuchFlow"),
        (lambda: Run("ClientFlow/12345"), "flow ClientFlow has no run 12345"),
        (lambda: Run("NoSuchFlow/12345"), "has no flow NoSuchFlow"),
        (lambda: Step(first + "/nostep"), "run %s has no step nostep" % first),
        (lambda: Task(first + "/work/99999"), "step %s/work has no task 99999" % first),
        (lambda: DataArtifact(first + "/end/1/x"), "has no task 1"),
        (lambda: Run(first)["nostep"], "has no step nostep"),
        (lambda: Run(first)["work"]["99999"], "has no task 99999"),
        (lambda: Run(first)["end"].task["nothing"], "has no artifact 'nothing'"),
    ]
    for make, message in cases:
        with pytest.raises(MflowNotFound, match=message):
            make()
    with pytest.raises(KeyError):
        Run(first)["nostep"]
    for make in (lambda: Run("ClientFlow"), lambda: Task(first), lambda: Flow("Bad Flow"), lambda: Run("F/../x")):
        with pytest.raises(PathspecError):
            make()
    with pytest.raises(TypeError):
        Run(42)


# --- tags --------------------------------------------------------------------------------------------------


def test_tag_changes_show_in_the_client_and_in_mflow_meta(client, cli):
    from mflow.cli.meta import cli as meta_cli

    run = Run(client.runs["first"])
    run.add_tag("shipped")
    run.add_tags(["v1", "v2"])
    assert {"shipped", "v1", "v2", "exp"} <= run.user_tags and "shipped" in run.tags
    assert {"shipped", "v1"} <= Run(run.pathspec).user_tags  # a fresh object reads the change
    meta = MetaStore(client.store)
    assert {"shipped", "v1", "v2"} <= set(meta.tags("ClientFlow", run.id).user)
    listed = cli(meta_cli, ["tag", "list", run.pathspec, "--json", "--store", client.url], environ=client.env)
    assert listed.code == 0 and '"tag":"shipped"' in listed.stdout
    run.remove_tag("v1")
    run.replace_tag("v2", "v3")
    run.replace_tags(["exp"], ["prod"])
    assert run.user_tags == {"shipped", "v3", "prod"} == set(meta.tags("ClientFlow", run.id).user)
    assert [r.pathspec for r in Flow("ClientFlow").runs("prod")] == [run.pathspec]
    with pytest.raises(TagError, match="system tag"):
        run.add_tag("user:mallory")
    with pytest.raises(TagError):
        run.remove_tag("runtime:mflow")
    run.replace_tags(["shipped", "v3", "prod"], ["exp"])
    assert run.user_tags == {"exp"}


# --- reading another flow's results in a step ------------------------------------------------------------


def test_a_flow_reads_another_flows_results_in_a_step(client):
    redux = Run(client.runs["redux"])
    stats = Run(client.runs["moviestats"])
    assert redux.data.stats_run == stats.pathspec
    assert redux.data.genre_stats == stats.data.genre_stats
    playlist = redux.data.playlist
    assert redux.data.chosen_genre == "Comedy" and 1 <= len(playlist) <= 5
    median = stats.data.genre_stats["Comedy"]["median"]
    genre_task = [t for t in stats["compute_statistics"] if t.data.genre == "Comedy"]
    assert genre_task and genre_task[0].data.stats["median"] == median
    assert "Using the statistics of run %s." % stats.pathspec in redux["start"].task.stdout


# --- the store, pickling, the top-level names -------------------------------------------------------------


def test_store_choice_and_pickling(client, tmp_path):
    assert get_store().url == client.store.url
    task = Run(client.runs["second"]).end_task
    assert Run(client.runs["second"], store=client.store) == Run(client.runs["second"])
    if client.kind == "local":  # a pickled object opens its store by URL, with this environment
        assert pickle.loads(pickle.dumps(task)) == task
        assert pickle.loads(pickle.dumps(task["result"])).data == task.data.result
    empty = tmp_path / "empty"
    set_store(str(empty))
    with pytest.raises(MflowNotFound, match="has no flow ClientFlow"):
        Flow("ClientFlow")
    assert Metaflow().flows == []


def test_the_top_level_names_load_lazily(repo):
    import mflow

    assert mflow.Flow is Flow and mflow.namespace is namespace and mflow.DataArtifact is DataArtifact
    code = "import sys, mflow; print('mflow.client' in sys.modules, 'mflow.meta' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(repo))
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_cloned_tasks_read_their_origin(tmp_path):
    """A task cloned by resume (origin_pathspec, no attempt of its own) is successful and
    shows its origin's artifacts; its run names the origin run."""
    store = open_store(str(tmp_path / "store"), environ={"MFLOW_USER": "alice"})
    meta = MetaStore(store)
    origin = meta.allocate_run_id("CloneFlow")
    meta.start_run("CloneFlow", origin, params={})
    meta.start_attempt("CloneFlow/%s/start/1" % origin, 0, pid=1, parent_tasks=[])
    writer = store.artifact_writer("CloneFlow/%s/start/1" % origin, 0)
    writer.save("x", 41)
    writer.commit()
    meta.end_attempt("CloneFlow/%s/start/1" % origin, 0, "successful")
    meta.end_run("CloneFlow", origin, "failed")
    flow = Flow("CloneFlow", store=store, namespace="user:alice")
    assert flow.latest_successful_run is None and flow.latest_run.id == origin
    clone = meta.allocate_run_id("CloneFlow")
    meta.start_run("CloneFlow", clone, params={}, origin_run_id=origin)
    meta.register_task("CloneFlow", clone, "start", "1", origin_pathspec="CloneFlow/%s/start/1" % origin)
    meta.end_run("CloneFlow", clone, "successful")
    run = Run("CloneFlow/%s" % clone, store=store, namespace="user:alice")
    assert run.origin_pathspec == "CloneFlow/%s" % origin
    task = run["start"].task
    assert task.origin_pathspec == "CloneFlow/%s/start/1" % origin and task.successful and task.finished
    assert task.data.x == 41 and run["start"].origin_pathspec == "CloneFlow/%s/start" % origin


# --- a thousand tasks -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def wide_run_started(tmp_path_factory):
    """The 1,000-task run, started when the module starts so that it runs while the other
    tests do; wide_run waits for it."""
    folder = tmp_path_factory.mktemp("wide")
    results = Results("local", str(folder / "store"), {}, folder)
    process = results.start(results.write("wide_flow.py", WIDE_FLOW), "--max-num-splits", "1000")
    try:
        yield results, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def wide_run(wide_run_started):
    results, process = wide_run_started
    return results, results.finish("wide", process)


def test_a_thousand_foreach_tasks_in_a_few_batched_reads(wide_run):
    results, pathspec = wide_run
    store = results.store
    calls = []
    get_many = store.backend.get_many

    def counting(paths):
        paths = list(paths)
        calls.append(len(paths))
        return get_many(paths)

    store.backend.get_many = counting
    try:
        run = Run(pathspec, store=store, namespace=None)
        seen = {task.index: task.data.out for task in run["work"]}
    finally:
        store.backend.get_many = get_many
    assert seen == {index: index * 2 for index in range(1000)}
    manifest_reads = calls[-7:]
    assert manifest_reads == [8, 16, 32, 64, 128, 256, 496]  # seven batches for 1,000 manifests
    assert len(calls) <= 12  # and the rest: the run's records and the step's task records
    assert run.data is not None and Run(pathspec, store=store, namespace=None)["join"].task.data.total == 999000


END_FAILS = """
import os, time
from mflow import FlowSpec, step

class EndFlow(FlowSpec):
    @step
    def start(self):
        if os.environ.get("SLEEP"):
            time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        raise RuntimeError("end fails")
"""


def test_run_finished_follows_the_end_step_and_state_tells_every_stop(tmp_path):
    import signal

    from test_run import Runner

    runner = Runner(tmp_path)
    path = runner.write(END_FAILS)
    result = runner.run(path)
    assert result.returncode == 1, result.stderr
    store = runner.store()
    (failed,) = list(Flow("EndFlow", store=store, namespace=None))
    # Its end step ran and failed: finished (as in Metaflow), not successful.
    assert failed.finished and not failed.successful and failed.state == "failed"
    assert failed.finished_at == failed.end_task.finished_at and failed.ended_at >= failed.finished_at
    # Interrupted while start sleeps: killed, never finished.
    process = subprocess.Popen([mflow(), "run", str(path)], env=dict(runner.env, SLEEP="1"), cwd=str(runner.dir),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(list(Flow("EndFlow", store=store, namespace=None))) < 2 or not Flow("EndFlow", store=store, namespace=None).latest_run["start"]:
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.1)
    running = Flow("EndFlow", store=store, namespace=None).latest_run
    assert running.state == "running" and not running.finished and running.ended_at is None
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    killed = Run(running.pathspec, store=store, namespace=None)
    assert killed.state == "killed" and killed.status == "interrupted"
    assert not killed.finished and killed.finished_at is None and isinstance(killed.ended_at, datetime)
