"""Real processes against a local folder and the S3 test server: run ids allocated by many
processes at once, a writer killed with SIGKILL (its run goes stale), nothing half-written."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mflow.meta import MetaStore

ALLOCATOR = r"""
import os, sys, time
from mflow.store import open_store
from mflow.meta import MetaStore
url, go, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = MetaStore(open_store(url))
meta.backend.exists("warm-up")  # connect before the start signal, so that all race at once
open(go + ".ready.%d" % os.getpid(), "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
print(" ".join(meta.allocate_run_id("RaceFlow") for _ in range(count)), flush=True)
"""

LIVE_WRITER = r"""
import os, sys, time
from mflow.store import open_store
from mflow.meta import MetaStore
meta = MetaStore(open_store(sys.argv[1]))
run_id = meta.allocate_run_id("LiveFlow")
meta.start_run("LiveFlow", run_id, params={})
task = "LiveFlow/%s/start/1" % run_id
meta.start_attempt(task, 0, pid=os.getpid())
meta.run_heartbeat("LiveFlow", run_id)
meta.attempt_heartbeat(task, 0)
print(run_id, flush=True)
time.sleep(600)
"""

BUSY_WRITER = r"""
import sys
from mflow.store import open_store
from mflow.meta import MetaStore
meta = MetaStore(open_store(sys.argv[1]))
first = True
while True:
    run_id = meta.allocate_run_id("BusyFlow")
    meta.start_run("BusyFlow", run_id, params={"x": "y" * 2000}, user_tags=["t"])
    task = "BusyFlow/%s/start/1" % run_id
    meta.start_attempt(task, 0, pid=1, foreach_stack=[0], parent_tasks=[])
    meta.add_tags("BusyFlow", run_id, ["u"])
    meta.end_attempt(task, 0, "successful", exit_code=0)
    meta.end_run("BusyFlow", run_id, "successful")
    if first:  # killed from now on, in the middle of whatever it is writing
        print("started", flush=True)
        first = False
"""


def spawn(code, target, *args, **env):
    return subprocess.Popen(
        [sys.executable, "-c", code, target.url] + [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=target.process_env(MFLOW_USER="alice", **env),
    )


def test_many_processes_allocate_unique_run_ids(store_under_test, tmp_path):
    processes, count = 8, 4
    go = str(tmp_path / "go")
    children = [spawn(ALLOCATOR, store_under_test, go, count) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 60
        while len([n for n in os.listdir(tmp_path) if n.startswith("go.ready.")]) < processes:
            assert time.monotonic() < deadline, "allocators did not start"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children]
            time.sleep(0.01)
        open(go, "w").close()  # every process allocates from this moment on
        outputs = [c.communicate(timeout=60) for c in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert all(c.returncode == 0 for c in children), [err for _out, err in outputs]
    per_process = [out.split() for out, _err in outputs]
    ids = [run_id for allocated in per_process for run_id in allocated]
    assert len(ids) == processes * count and len(set(ids)) == len(ids)
    for allocated in per_process:  # each process's ids in its own start order
        assert [int(i) for i in allocated] == sorted(int(i) for i in allocated)
    # The ids were claimed at nearly the same moment, so many collided and were bumped.
    assert max(int(i) for i in ids) - min(int(i) for i in ids) < 60_000


def test_killed_writer_goes_stale(store_under_test):
    child = spawn(LIVE_WRITER, store_under_test, MFLOW_HEARTBEAT_INTERVAL="0.2")
    try:
        run_id = child.stdout.readline().strip()
        assert run_id, child.stderr.read()
        store = store_under_test.open(MFLOW_USER="alice")
        meta = MetaStore(store, stale_after=1.0)
        task = "LiveFlow/%s/start/1" % run_id
        time.sleep(1.3)  # past the threshold: only the heartbeats keep it running
        assert meta.run("LiveFlow", run_id).status == "running"
        assert meta.task(task).status == "running"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        time.sleep(1.3)
        info = meta.run("LiveFlow", run_id)
        assert info.status == "stale" and info.heartbeat_at is not None
        assert meta.task(task).status == "stale"
        assert [i.run_id for i in meta.runs("LiveFlow", status="stale", namespace=None)] == [run_id]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)


@pytest.mark.parametrize("delay", [0.3, 0.7])
def test_a_killed_writer_leaves_nothing_misread(store_under_test, delay):
    child = spawn(BUSY_WRITER, store_under_test)
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    store = store_under_test.open(MFLOW_USER="alice")
    meta = MetaStore(store)
    for info in store.backend.list("meta/"):
        if info.path.endswith(".json"):
            json.loads(store.backend.get(info.path))  # every record visible is whole
    infos = meta.runs("BusyFlow", namespace=None)
    assert infos, "the writer wrote no run before it was killed"
    for info in infos:
        assert info.status in ("successful", "running")
        assert info.record.params == {"x": "y" * 2000}
        assert meta.tasks("BusyFlow", info.run_id) is not None
    finished = [i for i in infos if i.status == "successful"]
    if finished:
        assert meta.latest("BusyFlow", successful=True, namespace=None).run_id == finished[0].run_id
