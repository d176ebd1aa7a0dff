"""MetaStore, the Python API behind mflow-meta: records, run ids, pointers, statuses, tags,
namespaces and the run index, against a local folder and the S3 test server alike."""

import json
import subprocess
import sys
import threading
import time

import pytest

from mflow.errors import AlreadyExistsError, NotFoundError, PathspecError, TagError
from mflow.meta import MetaStore, default_namespace, get_namespace, namespace
from mflow.meta import index as run_index
from mflow.meta import paths
from mflow.meta.heartbeat import Heartbeat
from mflow.meta.records import iso_time, parse_time

START = 1_800_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now=START):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def local_store(tmp_path):
    from mflow.store import open_store

    store = open_store(str(tmp_path / "store"), environ={"MFLOW_USER": "alice"})
    yield store
    store.close()


@pytest.fixture
def meta(local_store, clock):
    return MetaStore(local_store, clock=clock)


@pytest.fixture
def shared_meta(store_under_test, clock):
    """A MetaStore on the local folder and on S3 (each test runs twice)."""
    store = store_under_test.open(MFLOW_USER="alice")
    yield MetaStore(store, clock=clock)
    store.close()


def new_run(meta, flow="TrainFlow", clock=None, **kwargs):
    if clock is not None:
        clock.advance(1)
    run_id = meta.allocate_run_id(flow)
    kwargs.setdefault("params", {})
    meta.start_run(flow, run_id, **kwargs)
    return run_id


# --- run ids -------------------------------------------------------------------------------------


def test_run_ids_are_start_times_unique_and_ordered(meta, clock):
    first = meta.allocate_run_id("TrainFlow")
    assert first == str(int(START * 1000))
    # Same millisecond: the next free one, so ids stay unique and in start order.
    assert meta.allocate_run_id("TrainFlow") == str(int(START * 1000) + 1)
    clock.advance(5)
    assert meta.allocate_run_id("TrainFlow") == str(int((START + 5) * 1000))
    assert json.loads(meta.backend.get(paths.claim_path("TrainFlow", first)))["type"] == "run-claim"


def test_explicit_run_id_is_claimed_or_refused(meta):
    assert meta.allocate_run_id("TrainFlow", "nightly-1") == "nightly-1"
    with pytest.raises(AlreadyExistsError) as error:
        meta.allocate_run_id("TrainFlow", "nightly-1")
    assert str(error.value) == (
        "run TrainFlow/nightly-1 already exists in store %s. Choose another run id, or leave it out to get a new one."
        % meta.url
    )
    assert error.value.exit_code == 2
    with pytest.raises(PathspecError):
        meta.allocate_run_id("TrainFlow", "../x")
    with pytest.raises(PathspecError):
        meta.allocate_run_id("Train Flow")


def test_concurrent_allocation_in_threads(meta):
    ids, errors = [], []

    def allocate():
        try:
            for _ in range(4):
                ids.append(meta.allocate_run_id("RaceFlow"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=allocate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(ids) == 24 and len(set(ids)) == 24


# --- run records and statuses ----------------------------------------------------------------------


def test_run_record_fields(meta):
    run_id = meta.allocate_run_id("TrainFlow")
    record = meta.start_run(
        "TrainFlow", run_id, params={"alpha": 0.5, "when": object}, user_tags=["exp", "exp", "ünïcode ✓"], code_key="k" * 64
    )
    assert record.user == "alice" and record.user_tags == ("exp", "ünïcode ✓")
    assert record.system_tags[:2] == ("user:alice", "runtime:mflow")
    assert any(t.startswith("python_version:3.") for t in record.system_tags)
    assert record.params["alpha"] == 0.5 and record.params["when"] == repr(object)
    stored = json.loads(meta.backend.get(paths.run_path("TrainFlow", run_id)))
    assert stored["schema"] == 1 and stored["type"] == "run" and stored["pathspec"] == "TrainFlow/" + run_id
    assert stored["started_at"] == iso_time(START) == "2027-01-15T08:00:00.000Z"
    with pytest.raises(AlreadyExistsError):
        meta.start_run("TrainFlow", run_id, params={})
    with pytest.raises(TagError):
        meta.start_run("TrainFlow", meta.allocate_run_id("TrainFlow"), params={}, user_tags=[""])


def test_status_running_stale_and_ended(meta, clock):
    run_id = new_run(meta)
    assert meta.run("TrainFlow", run_id).status == "running"
    clock.advance(59)
    meta.heartbeat_run("TrainFlow", run_id)
    clock.advance(59)
    info = meta.run("TrainFlow", run_id)
    assert info.status == "running" and info.heartbeat_at == iso_time(START + 59)
    clock.advance(2)
    assert meta.run("TrainFlow", run_id).status == "stale"
    meta.heartbeat_run("TrainFlow", run_id)  # a stale run that beats again is running again
    assert meta.run("TrainFlow", run_id).status == "running"
    end = meta.end_run("TrainFlow", run_id, "interrupted")
    assert end.status == "interrupted"
    # The first end wins, even against a later, different one.
    assert meta.end_run("TrainFlow", run_id, "successful").status == "interrupted"
    clock.advance(3600)
    assert meta.run("TrainFlow", run_id).status == "interrupted"
    with pytest.raises(ValueError):
        meta.end_run("TrainFlow", run_id, "done")


def test_stale_threshold_from_environment(local_store, clock):
    local_store.environ = dict(local_store.environ, MFLOW_STALE_AFTER="5s")
    meta = MetaStore(local_store, clock=clock)
    assert meta.stale_after == 5
    run_id = new_run(meta)
    clock.advance(6)
    assert meta.run("TrainFlow", run_id).status == "stale"
    assert MetaStore(local_store, stale_after="2m", clock=clock).run("TrainFlow", run_id).status == "running"


def test_unknown_flow_and_run(meta):
    with pytest.raises(NotFoundError) as error:
        meta.runs("NoSuchFlow")
    assert str(error.value) == "store %s has no flow NoSuchFlow. `mflow-meta flows` lists the flows it has." % meta.url
    new_run(meta)
    with pytest.raises(NotFoundError) as error:
        meta.run("TrainFlow", "123")
    assert str(error.value) == (
        "store %s has no run TrainFlow/123. `mflow-meta runs TrainFlow --all-namespaces` lists its runs." % meta.url
    )
    # Allocated but never started: not a run yet.
    allocated = meta.allocate_run_id("TrainFlow")
    with pytest.raises(NotFoundError):
        meta.run("TrainFlow", allocated)
    assert allocated not in [i.run_id for i in meta.runs("TrainFlow", namespace=None)]


# --- pointers ------------------------------------------------------------------------------------------


def test_pointers_move_forward_only(shared_meta, clock):
    meta = shared_meta
    older = new_run(meta, clock=clock)
    newer = new_run(meta, clock=clock)
    assert meta.pointer("TrainFlow") == newer  # moved at start
    meta.end_run("TrainFlow", newer, "successful")
    meta.end_run("TrainFlow", older, "successful")  # ends last, but started first
    assert meta.pointer("TrainFlow") == newer
    assert meta.pointer("TrainFlow", successful=True) == newer
    failed = new_run(meta, clock=clock)
    meta.end_run("TrainFlow", failed, "failed")
    assert meta.latest("TrainFlow").run_id == failed
    assert meta.latest("TrainFlow", successful=True).run_id == newer
    # A resume is a new run: it moves both pointers (Metaflow's resume moves neither).
    resumed = new_run(meta, clock=clock, origin_run_id=failed)
    meta.end_run("TrainFlow", resumed, "successful")
    latest = meta.latest("TrainFlow", successful=True)
    assert latest.run_id == resumed and latest.record.origin_run_id == failed


def test_pointer_never_moves_back_under_concurrent_ends(shared_meta, clock):
    meta = shared_meta
    runs = [new_run(meta, clock=clock) for _ in range(8)]
    errors = []

    def end(run_id):
        try:
            meta.end_run("TrainFlow", run_id, "successful")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=end, args=(r,)) for r in reversed(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert meta.pointer("TrainFlow", successful=True) == runs[-1]
    # Every slot of the pointer's log is newer than the one before it.
    slots = [
        json.loads(data)
        for _path, data in sorted(
            (i.path, meta.backend.get(i.path))
            for i in meta.backend.list(paths.pointer_prefix("TrainFlow", True))
            if not i.path.endswith(paths.POINTER_HINT)
        )
    ]
    assert [s["run_id"] for s in slots] == sorted(s["run_id"] for s in slots)
    assert len({s["run_id"] for s in slots}) == len(slots)


def test_latest_respects_namespace(meta, clock):
    mine = new_run(meta, clock=clock)
    theirs = new_run(meta, clock=clock, user="bob")
    meta.end_run("TrainFlow", mine, "successful")
    meta.end_run("TrainFlow", theirs, "successful")
    assert meta.pointer("TrainFlow") == theirs
    assert meta.latest("TrainFlow", namespace="user:alice").run_id == mine
    assert meta.latest("TrainFlow", namespace=None).run_id == theirs
    with pytest.raises(NotFoundError) as error:
        meta.latest("TrainFlow", namespace="user:carol")
    assert str(error.value) == (
        "flow TrainFlow has no run in namespace user:carol in store %s. Use --all-namespaces to look at everyone's runs."
        % meta.url
    )


def test_pointer_hint_may_lag_or_be_garbage(meta, clock):
    runs = [new_run(meta, clock=clock) for _ in range(3)]
    prefix = paths.pointer_prefix("TrainFlow")
    meta.backend.put(prefix + paths.POINTER_HINT, b"1\n")  # lagging: readers probe forward
    assert meta.pointer("TrainFlow") == runs[-1]
    meta.backend.put(prefix + paths.POINTER_HINT, b"not a number")
    assert meta.pointer("TrainFlow") == runs[-1]
    meta.backend.put(prefix + paths.POINTER_HINT, b"99\n")  # ahead of the log (never written so)
    assert meta.pointer("TrainFlow") == runs[-1]


# --- tasks and attempts ------------------------------------------------------------------------------


def test_tasks_attempts_and_statuses(meta, clock):
    run_id = new_run(meta)
    task = "TrainFlow/%s/start/1" % run_id
    meta.start_attempt(task, 0, pid=11, parent_tasks=[])
    meta.end_attempt(task, 0, "successful", exit_code=0, duration=0.25)
    # A foreach task with a retry: attempt 0 failed, attempt 1 still running.
    train = "TrainFlow/%s/train/2" % run_id
    meta.register_task("TrainFlow", run_id, "train", "2", foreach_stack=[{"step": "start", "index": 1, "num_splits": 3}])
    meta.start_attempt(train, 0, pid=12, parent_tasks=[task])
    meta.end_attempt(train, 0, "failed", exit_code=10, reason="ValueError: boom")
    meta.start_attempt(train, 1, pid=13, parent_tasks=[task])
    # A task cloned by resume has no attempts of its own.
    meta.register_task("TrainFlow", run_id, "train", "3", origin_pathspec="TrainFlow/1/train/3")
    # A task registered by the driver whose process never started.
    meta.register_task("TrainFlow", run_id, "train", "4", foreach_stack=[2])
    clock.advance(1)
    tasks = {t.task_id: t for t in meta.tasks("TrainFlow", run_id)}
    assert [t.pathspec for t in meta.tasks("TrainFlow", run_id)][0] == task
    assert tasks["1"].status == "successful" and tasks["1"].attempts[0].duration_s == 0.25
    two = tasks["2"]
    assert two.status == "running" and [a.status for a in two.attempts] == ["failed", "running"]
    assert two.record.foreach_index == 1 and two.record.parent_tasks == (task,)  # task.json and start record merged
    assert two.attempts[0].end.reason == "ValueError: boom"
    assert tasks["3"].status == "successful" and tasks["3"].record.origin_pathspec == "TrainFlow/1/train/3"
    assert tasks["4"].status == "pending" and tasks["4"].record.foreach_index == 2
    assert [s.step for s in meta.steps("TrainFlow", run_id)] == ["start", "train"]
    assert [s.status for s in meta.steps("TrainFlow", run_id)] == ["successful", "running"]
    # Without heartbeats, a running attempt goes stale; with them it stays running.
    clock.advance(61)
    assert meta.task(train).status == "stale"
    meta.heartbeat_attempt(train, 1)
    assert meta.task(train).status == "running"
    # Once the run has ended, an attempt that never ended is stale at once.
    meta.end_run("TrainFlow", run_id, "failed")
    assert meta.task(train).status == "stale"
    with pytest.raises(AlreadyExistsError):
        meta.start_attempt(train, 1, pid=14)
    assert meta.end_attempt(task, 0, "failed").status == "successful"  # the first end wins
    with pytest.raises(NotFoundError):
        meta.tasks("TrainFlow", run_id, "nostep")
    with pytest.raises(NotFoundError):
        meta.task("TrainFlow/%s/train/99" % run_id)
    assert [a.attempt for a in meta.attempts(train)] == [0, 1]


def test_an_attempt_of_a_live_run_is_running(meta, clock):
    run_id = new_run(meta)
    task = "TrainFlow/%s/start/1" % run_id
    meta.start_attempt(task, 0, pid=1)
    clock.advance(100)
    meta.heartbeat_run("TrainFlow", run_id)  # the driver is alive, so it will end the attempt
    assert meta.task(task).status == "running"
    clock.advance(100)
    assert meta.task(task).status == "stale"


def test_two_writes_per_attempt(meta):
    run_id = new_run(meta)
    before = {i.path for i in meta.backend.list("meta/")}
    task = "TrainFlow/%s/start/1" % run_id
    meta.start_attempt(task, 0, pid=1, foreach_stack=[0], parent_tasks=[])
    meta.end_attempt(task, 0, "successful", exit_code=0)
    written = {i.path for i in meta.backend.list("meta/")} - before
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["0.end.json", "0.start.json"]
    assert meta.task(task).record.foreach_index == 0  # the start record carried the task record


def test_task_record_checks_its_input(meta):
    with pytest.raises(TypeError):
        meta.task_record("F", "1", "s", "1", foreach_stack=["x"])
    with pytest.raises(PathspecError):
        meta.task_record("F", "1", "s", "1", parent_tasks=["F/1/s"])
    with pytest.raises(PathspecError):
        meta.start_attempt("F/1/s", 0, pid=1)


# --- tags and namespaces ---------------------------------------------------------------------------------


def test_tag_rules(meta):
    run_id = new_run(meta, user_tags=["a"])
    assert meta.add_tags("TrainFlow", run_id, ["b", "c"]).user == ("a", "b", "c")
    assert meta.remove_tags("TrainFlow", run_id, ["a", "absent"]).user == ("b", "c")
    assert meta.replace_tags("TrainFlow", run_id, ["b"], ["d"]).user == ("c", "d")
    assert meta.add_tags("TrainFlow", run_id, "x" * 500).user[-1] == "x" * 500
    assert meta.add_tags("TrainFlow", run_id, ["日本語 tag ✓"]).user[-1] == "日本語 tag ✓"
    before = meta.tags("TrainFlow", run_id)
    for bad, message in [
        ("", "a tag cannot be empty. Give a tag of 1 to 500 characters."),
        ("y" * 501, "tag 'yyyyyyyyyyyyyyyyyyyy'... is 501 characters long, more than 500. Shorten it."),
        ("\udc80", "tag '\\udc80' is not valid Unicode text. Check the shell's encoding."),
        (5, "tag 5 is not text. Give tags as strings."),
    ]:
        with pytest.raises(TagError) as error:
            meta.add_tags("TrainFlow", run_id, [bad])
        assert str(error.value) == message
    with pytest.raises(TagError) as error:
        meta.remove_tags("TrainFlow", run_id, ["c", "user:alice"])
    assert str(error.value).startswith("cannot remove 'user:alice': it is a system tag.")
    with pytest.raises(TagError):
        meta.add_tags("TrainFlow", run_id, ["runtime:other"])
    with pytest.raises(TagError):
        meta.replace_tags("TrainFlow", run_id, ["date:2020-01-01"], ["x"])
    assert meta.tags("TrainFlow", run_id) == before  # nothing changed, not even "c"
    changes = [i.path for i in meta.backend.list(paths.run_prefix("TrainFlow", run_id)) if "/tags." in i.path]
    assert len(changes) == 5
    # A no-op change writes nothing.
    meta.remove_tags("TrainFlow", run_id, ["never-there"])
    assert len([i for i in meta.backend.list(paths.run_prefix("TrainFlow", run_id)) if "/tags." in i.path]) == 5


def test_concurrent_tag_changes_are_all_kept(shared_meta):
    meta = shared_meta
    run_id = new_run(meta)
    threads = [threading.Thread(target=meta.add_tags, args=("TrainFlow", run_id, ["t%d" % i])) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(meta.tags("TrainFlow", run_id).user) == ["t%d" % i for i in range(8)]


def test_namespace_functions(monkeypatch):
    monkeypatch.setenv("MFLOW_USER", "dora")
    try:
        assert default_namespace() == "user:dora" == get_namespace()
        assert namespace(None) is None and get_namespace() is None
        assert namespace("team:x") == "team:x" and get_namespace() == "team:x"
        with pytest.raises(TagError):
            namespace("")
    finally:
        default_namespace()


def test_runs_filters_and_order(meta, clock):
    a = new_run(meta, clock=clock, user_tags=["exp"])
    b = new_run(meta, clock=clock, user="bob", user_tags=["exp", "big"])
    c = new_run(meta, clock=clock)
    meta.end_run("TrainFlow", a, "successful")
    meta.end_run("TrainFlow", b, "failed")
    ids = lambda infos: [i.run_id for i in infos]  # noqa: E731
    namespace("user:alice")
    try:
        assert ids(meta.runs("TrainFlow")) == [c, a]  # DEFAULT: the namespace in use
    finally:
        default_namespace()
    assert ids(meta.runs("TrainFlow", namespace=None)) == [c, b, a]
    assert ids(meta.runs("TrainFlow", namespace="user:bob")) == [b]
    assert ids(meta.runs("TrainFlow", tags=["exp"], namespace=None)) == [b, a]
    assert ids(meta.runs("TrainFlow", tags=["exp", "big"], namespace=None)) == [b]
    assert ids(meta.runs("TrainFlow", tags=["user:bob"], namespace=None)) == [b]
    assert ids(meta.runs("TrainFlow", status="failed", namespace=None)) == [b]
    assert ids(meta.runs("TrainFlow", status="running", namespace=None)) == [c]
    assert ids(meta.runs("TrainFlow", limit=2, namespace=None)) == [c, b]
    assert ids(meta.runs("TrainFlow", since=START + 2, namespace=None)) == [c, b]
    assert ids(meta.runs("TrainFlow", since="1.5s", namespace=None)) == [c, b]
    assert ids(meta.runs("TrainFlow", since="2027-01-15T08:00:03Z", namespace=None)) == [c]
    assert ids(meta.runs("TrainFlow", since="2027-01-16", namespace=None)) == []
    # Tag changes never reorder runs (Metaflow's do).
    meta.add_tags("TrainFlow", a, ["late"])
    assert ids(meta.runs("TrainFlow", namespace=None)) == [c, b, a]


# --- the run index ------------------------------------------------------------------------------------------


def _listing(meta):
    return [(i.run_id, i.status, i.user_tags, i.end) for i in meta.runs("TrainFlow", namespace=None)]


def test_index_packs_finished_runs_and_stays_exact(shared_meta, clock, monkeypatch):
    meta = shared_meta
    monkeypatch.setattr(run_index, "PACK_MIN", 5)
    runs = [new_run(meta, clock=clock, user_tags=["r%d" % i]) for i in range(8)]
    for run_id in runs[:6]:
        meta.end_run("TrainFlow", run_id, "successful")
    first = _listing(meta)
    packs = meta.backend.list_children(paths.index_prefix("TrainFlow"))
    assert len(packs) == 1 and packs[0].endswith(".pack")
    assert _listing(meta) == first  # served from the pack now
    # A tag change to a packed run is seen at once, through its marker.
    meta.add_tags("TrainFlow", runs[0], ["after"])
    meta.replace_tags("TrainFlow", runs[0], ["r0"], ["again"])
    listed = {i.run_id: i for i in meta.runs("TrainFlow", namespace=None)}
    assert listed[runs[0]].user_tags == ("after", "again")
    # Runs that end later are read one by one until enough of them make a pack of their own.
    for run_id in runs[6:]:
        meta.end_run("TrainFlow", run_id, "failed")
    assert {i.run_id: i.status for i in meta.runs("TrainFlow", namespace=None)}[runs[7]] == "failed"
    fresh = MetaStore(meta.store, clock=clock)
    assert _listing(fresh) == _listing(meta)
    # A pack that vanished or cannot be read is no pack: the records are read instead.
    for name in meta.backend.list_children(paths.index_prefix("TrainFlow")):
        meta.backend.put(paths.index_prefix("TrainFlow") + name, b"garbage")
    assert _listing(meta) == _listing(fresh)


def test_index_is_not_rewritten_for_changes_that_never_came(meta, clock, monkeypatch):
    monkeypatch.setattr(run_index, "PACK_MIN", 2)
    runs = [new_run(meta, clock=clock) for _ in range(3)]
    for run_id in runs:
        meta.end_run("TrainFlow", run_id, "successful")
    expected = _listing(meta)
    # Markers of tag changes whose writer was killed before writing them.
    for run_id in runs:
        run_index.mark_tag_change(meta.backend, "TrainFlow", run_id, 1)
    for _ in range(3):
        assert _listing(meta) == expected
    assert len(meta.backend.list_children(paths.index_prefix("TrainFlow"))) == 1


def test_a_reader_that_may_not_write_lists_all_the_same(s3_server, clock, monkeypatch):
    from mflow.store import open_store

    monkeypatch.setattr(run_index, "PACK_MIN", 2)
    url = s3_server.url()
    writer = MetaStore(open_store(url, environ=dict(s3_server.env, MFLOW_USER="alice")), clock=clock)
    for _ in range(3):
        run_id = new_run(writer, clock=clock)
        writer.end_run("TrainFlow", run_id, "successful")
    reader = MetaStore(open_store(url, environ=dict(s3_server.reader_env, MFLOW_USER="alice")), clock=clock)
    assert _listing(reader) == _listing(writer)  # its pack write was refused, and ignored
    assert len(reader.runs("TrainFlow", namespace=None)) == 3


def test_index_merges_packs(meta, clock, monkeypatch):
    monkeypatch.setattr(run_index, "PACK_MIN", 2)
    monkeypatch.setattr(run_index, "PACK_MAX", 3)
    expected = None
    for _round in range(6):
        for _ in range(2):
            run_id = new_run(meta, clock=clock)
            meta.end_run("TrainFlow", run_id, "successful")
        expected = _listing(meta)
        assert len(meta.backend.list_children(paths.index_prefix("TrainFlow"))) <= 3
    assert len(expected) == 12 and _listing(meta) == expected


# --- heartbeats, records, import cost ---------------------------------------------------------------------


def test_heartbeat_thread_beats_and_survives_failures():
    calls = []

    def beat():
        calls.append(1)
        if len(calls) == 2:
            raise OSError("store briefly down")

    with Heartbeat(beat, 0.02, first_after=0) as heartbeat:
        while len(calls) < 4:
            time.sleep(0.005)
    assert heartbeat.failures == 1 and heartbeat.beats >= 3 and isinstance(heartbeat.last_error, OSError)
    quiet = Heartbeat(beat, 60).start()  # first beat after a full interval: short tasks write none
    quiet.stop()
    assert quiet.beats == 0


def test_records_of_each_level(meta):
    run_id = new_run(meta)
    task = "TrainFlow/%s/start/1" % run_id
    meta.start_attempt(task, 0, pid=1)
    meta.heartbeat_attempt(task, 0)
    meta.end_attempt(task, 0, "successful")
    meta.add_tags("TrainFlow", run_id, ["x"])
    meta.heartbeat_run("TrainFlow", run_id)
    meta.end_run("TrainFlow", run_id, "successful")
    kinds = lambda spec: [r["type"] for _p, r in meta.records(spec)]  # noqa: E731
    assert kinds("TrainFlow") == ["flow", "pointer", "pointer"]
    assert kinds("TrainFlow/" + run_id) == ["run-claim", "run", "tags", "run-end", "heartbeat"]
    assert kinds("TrainFlow/%s/start" % run_id) == ["attempt-start", "attempt-end", "heartbeat"]
    assert kinds(task) == ["attempt-start", "attempt-end", "heartbeat"]
    assert all(r["schema"] == 1 for _p, r in meta.records(task))
    with pytest.raises(NotFoundError):
        meta.records("TrainFlow/%s/nostep" % run_id)


def test_time_format_round_trips():
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert parse_time(iso_time(START + 0.123)) == pytest.approx(START + 0.123)
    assert parse_time("2027-01-15T09:00:00+01:00") == START
    assert parse_time("2027-01-15") == START - 8 * 3600


def test_import_is_light():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mflow.meta"], capture_output=True, text=True, check=True
    ).stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in out.splitlines()}
    for heavy in ("boto3", "botocore", "click", "tabulate", "orjson"):
        assert heavy not in loaded
