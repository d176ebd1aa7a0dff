"""gc, du and cp: garbage collection that never loses a referenced or young blob, usage
figures, and copying runs between a local folder and S3."""

import os
import time

import pytest

from mflow.errors import NotFoundError, StoreError
from mflow.store import open_store
from mflow.store.maintenance import collect_garbage, copy_runs, parse_duration, usage
from mflow.store.pathspec import Pathspec

DAY = 86400


@pytest.fixture
def store(store_under_test):
    store = store_under_test.open()
    yield store
    store.close()


def save(store, task, values, attempt=0):
    writer = store.artifact_writer(task, attempt)
    writer.save_many(values)
    return writer.commit()


def keys(store):
    return {key for key, _ in store.blobs.list()}


def test_gc_keeps_referenced_and_young_blobs(store):
    manifest = save(store, "F/1/start/1", {"kept": "x" * 5000, "big": os.urandom(9 << 20), "tiny": 1})
    assert manifest.artifacts["tiny"].inline is not None  # lives in the manifest: no blob
    store.save_logs("F/1/start/1", 0, stdout=b"log line\n")
    orphan = store.blobs.put(b"nobody names me").key
    referenced = {r.key for r in manifest.artifacts.values() if r.inline is None}
    # Now: the orphan is younger than the grace period, so it stays.
    assert list(collect_garbage(store, grace=3600)) == []
    # Two days later: only the orphan goes; a dry run first deletes nothing.
    later = time.time() + 2 * DAY
    rows = list(collect_garbage(store, grace=3600, dry_run=True, now=later))
    assert [(r["action"], r["key"]) for r in rows] == [("would-delete", orphan)]
    assert orphan in keys(store)
    rows = list(collect_garbage(store, grace=3600, now=later))
    assert [(r["action"], r["kind"], r["key"]) for r in rows] == [("deleted", "blob", orphan)]
    assert rows[0]["schema"] == 1 and rows[0]["size"] > 0
    remaining = keys(store)
    assert orphan not in remaining and referenced <= remaining
    assert len(remaining) == len(referenced) + 2  # plus the two log blobs
    assert store.artifacts("F/1/start/1")["kept"] == "x" * 5000
    assert store.artifacts("F/1/start/1")["tiny"] == 1


def test_gc_spares_a_blob_a_writer_just_reused(store, store_under_test):
    """A writer that finds its blob already stored refreshes it, so gc's grace covers it."""
    data = os.urandom(9 << 20)  # large: on S3 the writer probes and touches instead of uploading
    key = store.blobs.put(data).key
    before = store.backend.stat("blobs/%s/%s" % (key[:2], key)).mtime
    time.sleep(1.1 if store_under_test.kind == "s3" else 0.05)
    with store.blobs.writer() as writer:
        writer.write(data)
        writer.commit()
    after = store.backend.stat("blobs/%s/%s" % (key[:2], key)).mtime
    assert after > before
    # A grace period that the old mtime is outside of and the refreshed one inside.
    grace = (after - before) / 2
    assert list(collect_garbage(store, grace=grace, now=after)) == []
    assert len(list(collect_garbage(store, grace=grace, now=after + grace + 1))) == 1


def test_gc_removes_abandoned_uploads(store, store_under_test):
    if store_under_test.kind == "local":
        os.makedirs(os.path.join(store.url, "tmp"), exist_ok=True)
        with open(os.path.join(store.url, "tmp", "123-dead.tmp"), "wb") as stream:
            stream.write(b"half a blob")
    else:
        backend = store.backend
        backend.client.create_multipart_upload(Bucket=backend.bucket, Key=backend._key("blobs/ab/" + "ab" * 32))
    assert [r["kind"] for r in collect_garbage(store, grace=3600)] == []
    rows = list(collect_garbage(store, grace=3600, now=time.time() + 2 * DAY))
    assert [r["kind"] for r in rows] == ["upload"]
    assert list(collect_garbage(store, grace=3600, now=time.time() + 2 * DAY)) == []


def test_gc_stops_on_an_unreadable_record(store):
    save(store, "F/1/start/1", {"x": "x" * 5000})
    store.backend.put("data/F/1/start/1/0/broken.json", b"{not json")
    store.blobs.put(b"orphan")
    with pytest.raises(Exception, match="not valid JSON"):
        list(collect_garbage(store, grace=0, now=time.time() + DAY))
    assert len(keys(store)) == 2


def test_du_rows(store):
    payload = os.urandom(100_000)
    save(store, "F/1/start/1", {"a": payload, "b": bytes(100_000)})
    save(store, "F/2/start/1", {"a": payload})
    save(store, "G/1/end/1", {"z": 1})  # inline: counted, though it has no blob
    rows = usage(store)
    assert [r["scope"] for r in rows] == ["F", "G", "total"]
    f = rows[0]
    assert f["references"] == 3 and f["blobs"] == 2
    assert f["dedup_saved_bytes"] == f["logical_bytes"] - f["unique_bytes"] > 100_000
    assert f["compression_saved_bytes"] > 90_000  # the zeros compress
    runs = usage(store, Pathspec.parse("F"))
    assert [r["scope"] for r in runs] == ["F/1", "F/2", "F"] and runs[-1]["total"]
    steps = usage(store, Pathspec.parse("F/1"))
    assert [r["scope"] for r in steps] == ["F/1/start", "F/1"]


def test_cp_round_trip_local_and_s3(tmp_path, s3_server):
    local = open_store(str(tmp_path / "one"))
    remote = open_store(s3_server.url(), environ=dict(os.environ, **s3_server.env))
    back = open_store(str(tmp_path / "two"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.py").write_text("# flow\n")
    local.save_code_package("F", "1", str(project))
    save(local, "F/1/start/1", {"x": 1, "big": os.urandom(9 << 20)})
    save(local, "F/1/end/2", {"y": [1, 2]})
    local.save_logs("F/1/end/2", 0, stdout=b"  indented\n")
    save(local, "F/2/start/1", {"other": "run"})
    rows = list(copy_runs(local, remote, Pathspec.parse("F/1")))
    assert {r["action"] for r in rows} == {"copied"}
    assert not list(remote.backend.list("data/F/2/"))
    list(copy_runs(remote, back))
    for store in (remote, back):
        assert store.artifacts("F/1/start/1")["x"] == 1
        assert store.artifacts("F/1/end/2")["y"] == [1, 2]
        assert store.load_log("F/1/end/2", 0) == b"  indented\n"
        assert store.code_package("F", "1").key == local.code_package("F", "1").key
    assert keys(back) == keys(remote) <= keys(local)
    assert local.artifacts("F/1/start/1")["big"] == back.artifacts("F/1/start/1")["big"]
    again = list(copy_runs(local, remote, Pathspec.parse("F/1")))
    assert {r["action"] for r in again} == {"present"}


def test_cp_refuses_to_overwrite_a_different_run(store, tmp_path):
    other = open_store(str(tmp_path / "other"))
    save(store, "F/1/start/1", {"x": "mine"})
    save(other, "F/1/start/1", {"x": "theirs"})
    before = sorted(i.path for i in store.backend.list(""))
    with pytest.raises(StoreError, match="different"):
        list(copy_runs(other, store, Pathspec.parse("F/1")))
    assert sorted(i.path for i in store.backend.list("")) == before
    with pytest.raises(NotFoundError):
        list(copy_runs(other, store, Pathspec.parse("F/404")))


def test_parse_duration():
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("6h") == 6 * 3600 and parse_duration("2d") == 2 * DAY
    from mflow.errors import ParameterError

    with pytest.raises(ParameterError):
        parse_duration("soon")
