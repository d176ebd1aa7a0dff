"""Task artifacts, code packages and logs, on a local folder and on S3."""

import io
import os
import threading

import pytest

from mflow.errors import ArtifactSerializationError, CorruptBlobError, NotFoundError, StoreError
from mflow.store.artifacts import value_as_json
from mflow.store.layout import blob_path, manifest_path
from mflow.store.pathspec import Pathspec

TASK = "TrainFlow/17/start/1"


@pytest.fixture
def store(store_under_test):
    store = store_under_test.open()
    yield store
    store.close()


def save(store, task, values, attempt=0):
    writer = store.artifact_writer(task, attempt)
    writer.save_many(values)
    return writer.commit()


def test_values_round_trip(store):
    def make_adder(n):
        return lambda x: x + n

    class Local:
        def __init__(self, v):
            self.v = v

    values = {
        "number": 42,
        "params": {"alpha": 0.5, "layers": [64, 32]},
        "payload": os.urandom(10 << 20),
        "adder": make_adder(3),
        "local": Local("x"),
        "nothing": None,
    }
    manifest = save(store, TASK, values)
    assert manifest.artifacts["adder"].serializer == "cloudpickle"
    assert manifest.artifacts["local"].serializer == "cloudpickle"
    assert manifest.artifacts["number"].serializer == "pickle"
    assert manifest.artifacts["number"].type == "int"
    assert manifest.artifacts["local"].type.endswith("Local")
    loaded = store.artifacts(TASK)
    assert sorted(loaded) == sorted(values)
    assert loaded["number"] == 42 and loaded["params"] == values["params"]
    assert loaded["payload"] == values["payload"]
    assert loaded["adder"](1) == 4 and loaded["local"].v == "x" and loaded["nothing"] is None


def test_unpicklable_value_names_artifact_and_step(store):
    writer = store.artifact_writer(TASK, 0)
    with pytest.raises(ArtifactSerializationError) as caught:
        writer.save("lock", threading.Lock())
    message = str(caught.value)
    assert "'lock'" in message and "'start'" in message and "\n" not in message
    assert caught.value.artifact == "lock" and caught.value.step == "start"
    with pytest.raises(ArtifactSerializationError):
        writer.save("gen", (i for i in range(3)))


def test_reads_are_lazy(store):
    """Loading one artifact touches only its blob: another's corrupt blob goes unnoticed."""
    manifest = save(store, TASK, {"wanted": list(range(100)), "other": "x" * 5000})
    other = manifest.artifacts["other"].key
    store.backend.put(blob_path(other), b"MFB1garbage")
    loaded = store.artifacts(TASK)
    assert loaded["wanted"] == list(range(100))
    with pytest.raises(CorruptBlobError):
        loaded["other"]


def test_manifest_appears_only_at_commit_and_only_once(store):
    writer = store.artifact_writer(TASK, 0)
    writer.save("x", 1)
    with pytest.raises(NotFoundError):
        store.artifacts(TASK)
    writer.commit()
    assert store.artifacts(TASK)["x"] == 1
    again = store.artifact_writer(TASK, 0)
    again.save("x", 2)
    with pytest.raises(StoreError, match="already has artifacts"):
        again.commit()
    assert store.artifacts(TASK, 0)["x"] == 1


def test_latest_attempt_with_artifacts(store):
    save(store, TASK, {"x": "first"}, attempt=0)
    save(store, TASK, {"x": "second"}, attempt=1)
    store.save_logs(TASK, 2, stdout=b"crashed before saving\n")  # attempt 2 has logs only
    loaded = store.artifacts(TASK)
    assert loaded.attempt == 1 and loaded["x"] == "second"
    assert store.artifacts(TASK, 0)["x"] == "first"
    assert store.attempts(TASK) == [0, 1, 2]
    with pytest.raises(NotFoundError):
        store.artifacts(TASK, 2)
    with pytest.raises(NotFoundError):
        store.artifacts("TrainFlow/17/start/999")


def test_equal_values_are_stored_once_across_flows(store):
    data = os.urandom(3 << 20)
    first = save(store, "FlowA/1/start/1", {"data": data})
    second = save(store, "FlowB/9/train/4", {"copy": data})
    assert first.artifacts["data"].key == second.artifacts["copy"].key
    assert len(list(store.blobs.list())) == 1
    from mflow.store.maintenance import usage

    total = usage(store)[-1]
    assert total["references"] == 2 and total["blobs"] == 1
    assert total["dedup_saved_bytes"] == first.artifacts["data"].size


def test_code_package_is_deterministic(store, tmp_path):
    project = tmp_path / "project"
    (project / "lib").mkdir(parents=True)
    (project / "flow.py").write_text("print('flow')\n")
    (project / "lib" / "util.py").write_text("X = 1\n")
    (project / "notes.txt").write_text("not code\n")
    (project / ".hidden").mkdir()
    (project / ".hidden" / "secret.py").write_text("no\n")
    first = store.save_code_package("TrainFlow", "17", str(project))
    os.utime(project / "flow.py", (1, 1))  # timestamps must not change the key
    second = store.save_code_package("TrainFlow", "18", str(project))
    assert first.key == second.key and first.files == 2
    with_txt = store.save_code_package("TrainFlow", "19", str(project), suffixes=[".py", ".txt"])
    assert with_txt.files == 3 and with_txt.key != first.key
    again = store.save_code_package("TrainFlow", "17", str(project), suffixes=[".txt"])
    assert again.key == first.key  # stored once per run: the first record stands
    from mflow.store.code import extract_code_package

    out = tmp_path / "out"
    names = extract_code_package(store.load_code_package("TrainFlow", "17"), str(out))
    assert names == ["flow.py", "lib/util.py"]
    assert (out / "lib" / "util.py").read_text() == "X = 1\n"
    with pytest.raises(NotFoundError):
        store.code_package("TrainFlow", "404")



def test_code_package_leaves_out_a_store_and_virtualenvs_inside_the_flow_folder(tmp_path):
    from mflow.store.store import open_store

    project = tmp_path / "project"
    (project / "venv" / "lib").mkdir(parents=True)
    (project / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / "venv" / "lib" / "site.py").write_text("no\n")
    (project / "flow.py").write_text("print('flow')\n")
    # The run's own folder store in the flow's folder (MFLOW_STORE=./store) is not packaged,
    # however many runs it holds.
    inside = open_store(str(project / "store"))
    inside.backend.put("meta/Other/1/helper.py", b"no\n")
    package = inside.save_code_package("TrainFlow", "1", str(project))
    assert package.files == 1
    from mflow.store.code import extract_code_package

    assert extract_code_package(inside.load_code_package("TrainFlow", "1"), str(tmp_path / "out")) == ["flow.py"]
    # Another store's folder is code like any other folder.
    outside = open_store(str(tmp_path / "elsewhere"))
    assert outside.save_code_package("TrainFlow", "1", str(project)).files == 2


def test_code_package_unpacks_long_names_and_modes(tmp_path):
    from mflow.store.code import build_code_package, extract_code_package

    project = tmp_path / "project"
    deep = project / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / "module.py").write_text("Y = 2\n")
    (project / "run.py").write_text("#!/bin/sh\n")
    (project / "run.py").chmod(0o755)
    data, count = build_code_package(str(project))
    out = tmp_path / "out"
    names = extract_code_package(data, str(out))
    long_name = "%s/%s/module.py" % ("d" * 60, "e" * 60)
    assert count == 2 and names == [long_name, "run.py"]
    assert (out / long_name).read_text() == "Y = 2\n"
    assert os.access(out / "run.py", os.X_OK) and not os.access(out / long_name, os.X_OK)


def _tar(add):
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        add(archive, tarfile)
    return buffer.getvalue()


def _file(archive, tarfile, name, data=b"x = 1\n"):
    entry = tarfile.TarInfo(name)
    entry.size = len(data)
    archive.addfile(entry, io.BytesIO(data))


@pytest.mark.parametrize("entry", ["../evil.py", "/abs.py", "a/../../evil.py", "link", "folder"])
def test_code_package_refuses_unsafe_entries_before_writing(tmp_path, entry):
    from mflow.store.code import extract_code_package

    def add(archive, tarfile):
        _file(archive, tarfile, "flow.py")
        if entry == "link":
            link = tarfile.TarInfo("link.py")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(link)
        elif entry == "folder":
            folder = tarfile.TarInfo("folder")
            folder.type = tarfile.DIRTYPE
            archive.addfile(folder)
        else:
            _file(archive, tarfile, entry)

    out = tmp_path / "out"
    with pytest.raises(StoreError, match="unsafe entry"):
        extract_code_package(_tar(add), str(out))
    assert not out.exists() and not (tmp_path / "evil.py").exists()



def test_code_package_is_not_written_through_a_link_in_the_destination(tmp_path):
    from mflow.store.code import extract_code_package

    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "lib").symlink_to(outside)
    data = _tar(lambda archive, tarfile: _file(archive, tarfile, "lib/util.py"))
    with pytest.raises(StoreError, match="outside"):
        extract_code_package(data, str(out))
    assert list(outside.iterdir()) == []

def test_code_package_damaged_is_refused(tmp_path):
    from mflow.store.code import extract_code_package

    data = _tar(lambda archive, tarfile: _file(archive, tarfile, "flow.py", b"y" * 2000))
    flipped = bytearray(data)
    flipped[10] ^= 0x01  # a byte of the first header's name
    for damaged, why in ((bytes(flipped), "checksum"), (data[:1024], "truncated")):
        with pytest.raises(StoreError, match="damaged: .*" + why):
            extract_code_package(damaged, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()

def test_logs_are_kept_verbatim(store, tmp_path):
    stdout = b"step start\n    indented line\n\ttabbed\ntrailing spaces   \n\n\nno newline at end"
    stderr = b"\x1b[31mred\x1b[0m\r\nprogress 10%\rprogress 100%\n\xff\xfe binary"
    path = tmp_path / "stderr.log"
    path.write_bytes(stderr)
    store.save_logs(TASK, 0, stdout=stdout, stderr=str(path))
    assert store.load_log(TASK, 0, "stdout") == stdout
    assert store.load_log(TASK, 0, "stderr") == stderr
    with pytest.raises(NotFoundError):
        store.load_log(TASK, 1)


def test_value_as_json():
    assert value_as_json({"a": [1, 2.5, "x", None, True]}) == '{"a": [1, 2.5, "x", null, true]}'
    assert value_as_json((1, 2)) == "[1, 2]"
    assert value_as_json("héllo") == '"héllo"'
    assert value_as_json({1: "int key"}) is None  # JSON would silently turn 1 into "1"
    assert value_as_json(float("nan")) is None
    assert value_as_json(b"bytes") is None
    assert value_as_json({"s": {1, 2}}) is None


def test_pathspec_parsing():
    spec = Pathspec.parse("F/1/start/2/x")
    assert spec.depth == 5 and str(spec.parent()) == "F/1/start/2"
    from mflow.errors import PathspecError

    for bad in ("", "F/1/start/2/x/y", "F/../start/2", "1F/1", "F/1/st-art/2", "F/.hidden"):
        with pytest.raises(PathspecError):
            Pathspec.parse(bad)
    with pytest.raises(PathspecError):
        Pathspec.parse("F/1/start", 4, 4)


def test_manifest_names_blobs_that_exist(store):
    """Every key in a committed manifest is stored: blobs go out before the manifest."""
    save(store, TASK, {"a%d" % i: "%d" % i * 2000 for i in range(30)})
    record = store.read_record(manifest_path(Pathspec.parse(TASK), 0))
    assert record["schema"] == 1 and record["pathspec"] == TASK and record["attempt"] == 0
    for name, item in record["artifacts"].items():
        assert store.blobs.has(item["key"]) and "inline" not in item, name


def test_small_values_live_in_the_manifest(store):
    manifest = save(store, TASK, {"n": 7, "name": "alpha", "big": "y" * 2000})
    assert manifest.artifacts["n"].inline is not None and manifest.artifacts["big"].inline is None
    assert [key for key, _ in store.blobs.list()] == [manifest.artifacts["big"].key]
    loaded = store.artifacts(TASK)
    assert loaded["n"] == 7 and loaded["name"] == "alpha"
    assert loaded.load_many() == {"n": 7, "name": "alpha", "big": "y" * 2000}
    import hashlib

    with loaded.open_raw("name") as stream:
        raw = stream.read()
    assert hashlib.sha256(raw).hexdigest() == manifest.artifacts["name"].key
    # A damaged inline value is caught like a damaged blob.
    path = manifest_path(Pathspec.parse(TASK), 0)
    record = store.read_record(path)
    import base64

    record["artifacts"]["n"]["inline"] = base64.b64encode(b"\x80\x05K\x08.").decode()
    store.write_record(path, record)
    with pytest.raises(CorruptBlobError):
        store.artifacts(TASK)["n"]


def test_inherited_artifacts_are_reused_not_rewritten(store):
    data = os.urandom(9 << 20)
    first = save(store, "F/1/start/1", {"data": data, "small": [1, 2], "note": "x", "text": "z" * 5000})
    loaded = store.artifacts("F/1/start/1")
    blobs_before = sorted(i.path for i in store.backend.list("blobs/"))
    writer = store.artifact_writer("F/1/train/2", 0)
    kept = writer.save("data", loaded["data"], previous=loaded.record("data"))
    assert kept == first.artifacts["data"]
    changed = loaded["small"] + [3]
    assert writer.save("small", changed, previous=loaded.record("small")).key != first.artifacts["small"].key
    writer.carry(loaded.record("note"))  # never loaded at all
    writer.carry(loaded.record("note"), name="renamed")
    assert writer.save("text", loaded["text"], previous=loaded.record("text")) == first.artifacts["text"]
    manifest = writer.commit()
    assert sorted(manifest.artifacts) == ["data", "note", "renamed", "small", "text"]
    after = store.artifacts("F/1/train/2")
    assert after["data"] == data and after["small"] == [1, 2, 3] and after["renamed"] == "x"
    assert sorted(i.path for i in store.backend.list("blobs/")) == blobs_before  # nothing new


def test_load_many_fetches_together(store):
    save(store, TASK, {"a%d" % i: {"i": i} for i in range(25)})
    loaded = store.artifacts(TASK)
    values = loaded.load_many(["a3", "a7"])
    assert values == {"a3": {"i": 3}, "a7": {"i": 7}}
    everything = loaded.load_many()
    assert len(everything) == 25 and everything["a24"] == {"i": 24}
