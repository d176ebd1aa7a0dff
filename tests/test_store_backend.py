"""The byte backend contract, run against a local folder and a real S3 server alike."""

import time

import pytest

from mflow.errors import NotFoundError


@pytest.fixture
def backend(store_under_test):
    store = store_under_test.open()
    yield store.backend
    store.close()


def test_put_get_stat_delete(backend):
    backend.put("a/b/c.bin", b"hello")
    assert backend.get("a/b/c.bin") == b"hello"
    info = backend.stat("a/b/c.bin")
    assert info.path == "a/b/c.bin" and info.size == 5 and abs(info.mtime - time.time()) < 120
    backend.put("a/b/c.bin", bytearray(b"again"))
    assert backend.get("a/b/c.bin") == b"again"
    backend.delete("a/b/c.bin")
    backend.delete("a/b/c.bin")  # deleting a missing object is fine
    assert backend.stat("a/b/c.bin") is None
    with pytest.raises(NotFoundError):
        backend.get("a/b/c.bin")


def test_list_and_children(backend):
    backend.put_many([("d/x/1", b"1"), ("d/x/2", b"22"), ("d/y/3", b"333"), ("e/4", b"4444")])
    assert [i.path for i in backend.list("d/")] == ["d/x/1", "d/x/2", "d/y/3"]
    assert [i.path for i in backend.list("d/x")] == ["d/x/1", "d/x/2"]
    assert sorted(i.path for i in backend.list("")) == ["d/x/1", "d/x/2", "d/y/3", "e/4"]
    assert [i.size for i in backend.list("d/")] == [1, 2, 3]
    assert backend.list_children("d/") == ["x/", "y/"]
    assert backend.list_children("d/x/") == ["1", "2"]
    assert backend.list_children("nothing/") == []
    assert list(backend.list("nothing/")) == []
    fetched = dict(backend.get_many(["d/x/1", "missing"]))
    assert fetched == {"d/x/1": b"1", "missing": None}


def test_put_if_absent_creates_once(backend):
    assert backend.put_if_absent("meta/F/ids/1", b"first") is True
    assert backend.put_if_absent("meta/F/ids/1", b"second") is False
    assert backend.get("meta/F/ids/1") == b"first"


def test_upload_is_invisible_until_commit(backend):
    with backend.begin_upload() as upload:
        upload.write(b"x" * 1000)
        upload.write(memoryview(b"y" * (9 << 20)))  # past the in-memory limit: spooled
        assert backend.stat("big/object") is None
        assert list(backend.list("big/")) == []
    assert backend.stat("big/object") is None  # left without commit: aborted
    with backend.begin_upload() as upload:
        upload.write(b"z" * (20 << 20))  # multipart on S3
        upload.commit("big/object")
    assert backend.stat("big/object").size == 20 << 20
    assert backend.stale_uploads(time.time() + 60) == []


def test_open_range(backend):
    backend.put("r/obj", bytes(range(256)))
    with backend.open("r/obj") as stream:
        assert stream.read() == bytes(range(256))
    with backend.open("r/obj", 10, 5) as stream:
        assert stream.read() == bytes(range(10, 15))
    with backend.open_local("r/obj") as stream:
        stream.seek(250)
        assert stream.read() == bytes(range(250, 256))


def test_touch_refreshes_mtime(backend, store_under_test):
    backend.put("t/obj", b"1")
    before = backend.stat("t/obj").mtime
    time.sleep(1.1 if store_under_test.kind == "s3" else 0.05)  # S3 keeps whole seconds
    assert backend.touch("t/obj") is True
    assert backend.stat("t/obj").mtime > before
    assert backend.get("t/obj") == b"1"
    assert backend.touch("t/missing") is False
