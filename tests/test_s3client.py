"""`from mflow import S3` against a real S3-compatible server: every method, scoped and not,
missing keys, ranges, large multipart objects, many small ones, and every kind of bad input."""

import hashlib
import io
import os
import shutil
import subprocess
import sys

import pytest

from mflow.errors import (
    ExitCode,
    S3AccessDeniedError,
    S3Error,
    S3LocalFileError,
    S3NotFoundError,
    S3URLError,
    S3ValueError,
)
from mflow.s3 import S3, S3GetObject, S3PutObject
from s3_server import free_ports


@pytest.fixture
def env(s3_server):
    return dict(os.environ, **s3_server.env)


@pytest.fixture
def root(s3_server):
    return s3_server.url()


@pytest.fixture
def s3(root, env, tmp_path):
    with S3(s3root=root, environ=env, tmproot=str(tmp_path)) as client:
        yield client


def test_put_and_get_one_object_of_each_kind(s3, root, tmp_path):
    assert s3.root == root
    assert s3.put("a/bytes.bin", b"\x00\x01") == root + "/a/bytes.bin"
    s3.put("a/text.txt", "h\u00e9llo", content_type="text/plain", metadata={"rows": 3, "source": ["x", "y"]})
    s3.put("a/file.bin", io.BytesIO(b"from a file"))
    s3.put("a/view.bin", memoryview(b"a view"))

    obj = s3.get("a/text.txt")
    assert (obj.key, obj.url, obj.exists, obj.downloaded) == ("a/text.txt", root + "/a/text.txt", True, True)
    assert obj.text == "h\u00e9llo" and obj.blob == "h\u00e9llo".encode() and obj.size == 6
    assert obj.content_type == "text/plain"
    assert obj.metadata == {"rows": 3, "source": ["x", "y"]}
    assert obj.last_modified > 1_600_000_000
    assert obj.range_info == (6, 0, 6) and obj.has_info
    assert os.path.dirname(os.path.dirname(obj.path)) == str(tmp_path)
    assert obj.path.endswith("-text.txt")  # the extension survives, for tools that look at it
    assert s3.get("a/bytes.bin").blob == b"\x00\x01"
    assert s3.get(root + "/a/file.bin").blob == b"from a file"  # a whole URL inside the root
    assert s3.get("/a/view.bin").key == "a/view.bin"


def test_keys_with_any_characters(s3):
    # Each is signed as sent: the server checks every signature.
    keys = ["sp ace/a+b=c&d?e#f.csv", "\u00fcnic\u00f6de/\u6570\u636e.txt", "per%20cent~tilde/x", "dots/a..b/.hidden"]
    s3.put_many([(key, key.encode()) for key in keys])
    assert [o.blob for o in s3.get_many(keys)] == [key.encode() for key in keys]
    assert sorted(o.key for o in s3.list_recursive()) == sorted(keys)
    assert [o.size for o in s3.info_many(keys)] == [len(key.encode()) for key in keys]


def test_unscoped_client_takes_whole_urls_only(root, env):
    with S3(environ=env) as s3:
        assert s3.root is None
        url = s3.put(root + "/x/y.txt", "y")
        assert url == root + "/x/y.txt"
        obj = s3.get(url)
        assert (obj.key, obj.url, obj.text) == (url, url, "y")
        assert [o.url for o in s3.list_recursive([root + "/x"])] == [url]
        with pytest.raises(S3URLError, match=r"'x/y.txt' is not an s3:// URL.*s3root"):
            s3.get("x/y.txt")
        with pytest.raises(S3URLError, match=r"s3:///x names no bucket"):
            s3.get("s3:///x")
        with pytest.raises(S3URLError, match=r"names no bucket"):
            s3.put("s3://", b"")
        with pytest.raises(S3URLError, match=r"s3://%s names a bucket, not an object" % root[5:].split("/")[0]):
            s3.get("s3://" + root[5:].split("/")[0])
        with pytest.raises(S3URLError, match="get_all.. needs a root"):
            s3.get_all()


def test_keys_outside_the_root_are_refused(s3, root):
    outside = root + "-other/key"
    for key in (outside, "../escape", "a/../../b"):
        with pytest.raises(S3URLError) as caught:
            s3.put(key, b"1")
        assert key in str(caught.value) and root in str(caught.value)
        assert caught.value.exit_code == ExitCode.USAGE and "\n" not in str(caught.value)
    with pytest.raises(S3URLError, match="s3root 'bucket/prefix' is not an s3:// URL"):
        S3(s3root="bucket/prefix")
    with pytest.raises(S3URLError, match="s3root 's3:///prefix' names no bucket|s3:///prefix names no bucket"):
        S3(s3root="s3:///prefix")
    with pytest.raises(S3URLError, match="must be text"):
        s3.get(42)
    with pytest.raises(S3URLError, match="expected a list of keys, got the string 'a/b'"):
        s3.get_many("a/b")


def test_missing_keys(s3, root, s3_server, env):
    s3.put("here", b"1")
    with pytest.raises(S3NotFoundError) as caught:
        s3.get("gone/key.csv")
    assert str(caught.value).startswith("no object at %s/gone/key.csv." % root)
    assert caught.value.exit_code == ExitCode.NOT_FOUND
    got = s3.get_many(["gone", "here"], return_missing=True)
    assert [(o.key, o.exists, o.downloaded, o.size, o.path, o.blob) for o in got] == [
        ("gone", False, False, None, None, None),
        ("here", True, True, 1, got[1].path, b"1"),
    ]
    assert s3.get("gone", return_missing=True).exists is False
    with pytest.raises(S3NotFoundError, match="gone"):
        s3.info("gone")
    assert s3.info("gone", return_missing=True).exists is False
    with pytest.raises(S3NotFoundError, match="no object at .*/missing2"):
        s3.get_many(["here", "missing2"])
    # A missing bucket is an error even with return_missing: it is never a "missing key".
    with S3(s3root="s3://no-such-bucket-mflow/p", environ=env) as other:
        for call in (lambda: other.get("k", return_missing=True), lambda: other.info("k", return_missing=True)):
            missing = "bucket no-such-bucket-mflow of s3://no-such-bucket-mflow/p/k does not exist"
            with pytest.raises(S3NotFoundError, match=missing):
                call()


def test_listings(s3, root):
    s3.put_many(
        [
            ("data/0.txt", "0"),
            ("data/b/1.txt", "11"),
            ("data/c/2.txt", "222"),
            ("data/d/e/3.txt", "3333"),
            ("database.txt", "not data"),
            ("f/4.txt", "44444"),
        ]
    )
    paths = s3.list_paths(["data", "f"])
    assert [(o.key, o.exists, o.size) for o in paths] == [
        ("data/0.txt", True, 1),
        ("data/b", False, None),
        ("data/c", False, None),
        ("data/d", False, None),
        ("f/4.txt", True, 5),
    ]
    assert paths[1].url == root + "/data/b/"
    assert [o.key for o in s3.list_paths()] == ["data", "database.txt", "f"]
    recursive = s3.list_recursive(["data"])
    assert [o.key for o in recursive] == ["data/0.txt", "data/b/1.txt", "data/c/2.txt", "data/d/e/3.txt"]
    assert all(o.exists and not o.downloaded and o.last_modified for o in recursive)
    assert [o.key for o in s3.list_recursive(["database.txt", "data/d/"])] == ["database.txt", "data/d/e/3.txt"]
    assert len(s3.list_recursive()) == 6
    assert s3.list_recursive(["nothing"]) == [] and s3.list_paths(["nothing"]) == []

    got = s3.get_recursive(["data/b", "data/d"])
    assert [(o.key, o.text) for o in got] == [("data/b/1.txt", "11"), ("data/d/e/3.txt", "3333")]
    every = s3.get_all()
    assert sorted((o.key, o.size) for o in every) == sorted((o.key, o.size) for o in s3.list_recursive())

    infos = s3.info_many(["f/4.txt", "data/0.txt"])
    assert [(o.key, o.size, o.exists, o.downloaded) for o in infos] == [
        ("f/4.txt", 5, True, False),
        ("data/0.txt", 1, True, False),
    ]
    assert infos[0].last_modified and infos[0].blob is None
    assert [o.exists for o in s3.info_many(["f/4.txt", "nope"], return_missing=True)] == [True, False]


def test_ranges(s3):
    data = bytes(range(256)) * 4
    s3.put("r", data)
    assert s3.get(S3GetObject("r", 10, 5)).blob == data[10:15]
    assert s3.get(S3GetObject("r", 1000)).blob == data[1000:]
    tail = s3.get(S3GetObject("r", None, -24))
    assert tail.blob == data[-24:] and tail.range_info == (1024, 1000, 24)
    assert s3.get(S3GetObject("r", 5, 0)).blob == b""
    assert s3.get(S3GetObject("r", 0, 10_000)).blob == data  # past the end: what there is
    s3.put("empty", b"")
    assert s3.get("empty").blob == b"" and s3.get("empty").size == 0
    with pytest.raises(S3Error, match="outside the object"):
        s3.get(S3GetObject("r", 5000, 10))


def test_put_many_put_files_and_overwrite(s3, root, tmp_path):
    written = s3.put_many([("k1", b"one"), S3PutObject("k2", value="two", content_type="text/csv", metadata={"a": 1})])
    assert written == [("k1", root + "/k1"), ("k2", root + "/k2")]
    again = s3.put_many([("k1", b"new"), ("k3", b"three")], overwrite=False)
    assert again == [("k3", root + "/k3")]
    assert s3.get("k1").blob == b"one"
    assert s3.put("k1", b"newer", overwrite=False) == root + "/k1"
    assert s3.get("k1").blob == b"one"
    k2 = s3.info("k2")
    assert (k2.content_type, k2.metadata) == ("text/csv", {"a": 1})

    files = []
    for i in range(3):
        path = tmp_path / ("f%d.csv" % i)
        path.write_text("x" * i)
        files.append(("files/%d.csv" % i, str(path)))
    files.append(S3PutObject("files/typed", path=str(path), content_type="text/csv"))
    assert [k for k, _ in s3.put_files(files)] == ["files/0.csv", "files/1.csv", "files/2.csv", "files/typed"]
    assert [o.size for o in s3.get_many(["files/0.csv", "files/1.csv", "files/2.csv"])] == [0, 1, 2]
    assert s3.info("files/typed").content_type == "text/csv"


def test_bad_local_files_and_values(s3, root, tmp_path):
    present = tmp_path / "present"
    present.write_bytes(b"1")
    with pytest.raises(S3LocalFileError) as caught:
        s3.put_files([("ok", str(present)), ("lost", str(tmp_path / "vanished.csv"))])
    message = str(caught.value)
    assert "vanished.csv" in message and root + "/lost" in message and caught.value.exit_code == ExitCode.BAD_INPUT
    assert s3.list_recursive() == []  # checked before anything was sent
    with pytest.raises(S3ValueError, match="cannot upload a int to .*/n"):
        s3.put("n", 42)
    with pytest.raises(S3ValueError, match="not a readable, seekable binary file"):
        s3.put("t", io.StringIO("text"))
    with pytest.raises(S3ValueError, match="metadata of .*/m is not JSON"):
        s3.put("m", b"", metadata={"x": object()})
    with pytest.raises(S3ValueError, match="neither a \\(key, value\\) pair"):
        s3.put_many(["just-a-key"])
    assert isinstance(S3ValueError("x"), TypeError)


def test_large_objects_go_in_parts(s3, tmp_path):
    from mflow.s3 import transport

    data = os.urandom(transport.PART_SIZE * 2 + 12345)  # three ranged GETs; a multipart upload
    digest = hashlib.sha256(data).hexdigest()
    s3.put("big/bytes", data, metadata={"kind": "big"})
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    s3.put_files([("big/file", str(path))])
    for key in ("big/bytes", "big/file"):
        obj = s3.get(key)
        assert obj.size == len(data)
        with open(obj.path, "rb") as stream:
            assert hashlib.sha256(stream.read()).hexdigest() == digest
    assert s3.info("big/bytes").metadata == {"kind": "big"}
    start = transport.PART_SIZE - 10
    across = s3.get(S3GetObject("big/file", start, transport.PART_SIZE + 20))
    assert across.blob == data[start : start + transport.PART_SIZE + 20]
    tail = s3.get(S3GetObject("big/file", None, -(transport.PART_SIZE + 5)))
    assert tail.blob == data[-(transport.PART_SIZE + 5) :]


def test_a_thousand_small_objects(s3, tmp_path):
    items = [("many/%04d" % i, b"%d" % i * 50) for i in range(1000)]
    assert len(s3.put_many(items)) == 1000
    assert len(s3.list_recursive(["many"])) == 1000
    got = s3.get_many([key for key, _ in items])
    assert [o.blob for o in got] == [value for _, value in items]
    assert len({o.path for o in got}) == 1000
    assert len(s3.get_all()) == 1000


def test_downloads_are_removed_on_close(root, env, tmp_path):
    with S3(s3root=root, environ=env, tmproot=str(tmp_path)) as s3:
        s3.put_many([("x/%d" % i, b"1") for i in range(5)])
        paths = [o.path for o in s3.get_all()]
        assert all(os.path.exists(p) for p in paths)
    assert not any(os.path.exists(p) for p in paths)
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(ValueError, match="closed"):
        s3.get("x/1")
    # Without close(), the folder goes with the object.
    s3 = S3(s3root=root, environ=env, tmproot=str(tmp_path))
    s3.get("x/1")
    del s3
    assert os.listdir(str(tmp_path)) == []
    # Puts and listings alone make no folder at all.
    with S3(s3root=root, environ=env, tmproot=str(tmp_path)) as s3:
        s3.put("y", b"1")
        s3.list_paths()
        s3.info("y")
    assert os.listdir(str(tmp_path)) == []


def local_files(folder):
    """The files in the S3 clients' temporary folders under `folder`."""
    return sorted(os.path.join(d, f) for d, _, files in os.walk(str(folder)) for f in files)


def test_small_downloads_stay_in_memory_until_their_path_is_asked_for(root, env, tmp_path):
    with S3(s3root=root, environ=env, tmproot=str(tmp_path)) as s3:
        data = os.urandom(100_000)
        s3.put_many([("m/a.csv", data), ("m/b.txt", "b\u00e9"), ("m/empty", b"")])
        got = s3.get_many(["m/a.csv", "m/b.txt", "m/empty", S3GetObject("m/a.csv", 10, 20), "m/gone"], True)
        a, b, empty, part, gone = got
        assert local_files(tmp_path) == []  # no file yet: the bytes are in memory
        assert (a.blob, b.text, empty.blob, part.blob) == (data, "b\u00e9", b"", data[10:30])
        assert (a.size, a.range_info) == (100_000, (100_000, 0, 100_000))
        assert (part.size, part.range_info) == (20, (100_000, 10, 20))
        assert all(o.downloaded for o in (a, b, empty, part)) and not gone.downloaded and gone.path is None
        assert str(a) == "<S3Object %s/m/a.csv (100000 bytes, local)>" % root

        path = a.path  # written now, at the name it would have had
        assert path.endswith("-a.csv") and os.path.dirname(os.path.dirname(path)) == str(tmp_path)
        assert local_files(tmp_path) == [path] and a.path == path
        with open(path, "rb") as stream:
            assert stream.read() == data == a.blob
        with open(empty.path, "rb") as stream:
            assert stream.read() == b""
        assert s3._downloads.memory_used == len(b.blob) + 20  # a's and empty's bytes left memory
        paths = [o.path for o in got[:4]]
        assert local_files(tmp_path) == sorted(paths) and s3._downloads.memory_used == 0
        b_path = s3.get("m/b.txt").path  # a fresh copy of b: another file
        assert b_path != b.path and os.path.exists(b_path)
        every = s3.get_all()
        assert [(o.key, o.blob) for o in every] == [("m/a.csv", data), ("m/b.txt", b.blob), ("m/empty", b"")]
        assert len(local_files(tmp_path)) == 5 and s3._downloads.memory_used == 100_003
        kept = s3.get("m/b.txt")
    assert local_files(tmp_path) == [] and os.listdir(str(tmp_path)) == []
    # After close every download is gone, whether it was a file or only bytes in memory:
    # `path` still names where it was; `blob` says what happened.
    for obj in (a, kept):
        assert obj.downloaded and obj.path.startswith(str(tmp_path)) and not os.path.exists(obj.path)
        with pytest.raises(S3LocalFileError) as caught:
            obj.blob
        message = str(caught.value)
        assert message.startswith("the download of %s/m/" % root) and "is closed" in message and "\n" not in message
    assert local_files(tmp_path) == []


def test_the_memory_budget_sends_the_rest_to_files(root, env, tmp_path):
    items = [("k/%d" % i, os.urandom(100_000)) for i in range(5)]
    small = dict(env, MFLOW_S3_MEMORY_MB="0.25")  # 262,144 bytes: room for two of them
    with S3(s3root=root, environ=small, tmproot=str(tmp_path)) as s3:
        s3.put_many(items)
        got = s3.get_many([key for key, _ in items])
        assert [o.blob for o in got] == [value for _, value in items]
        assert len(local_files(tmp_path)) == 3 and s3._downloads.memory_used == 200_000
        for obj in got:
            obj.path
        assert len(local_files(tmp_path)) == 5 and s3._downloads.memory_used == 0  # written: room again
        with pytest.raises(S3NotFoundError):
            s3.get_many(["k/0", "k/nothing"])
        assert s3._downloads.memory_used == 0  # a failed batch's bytes are dropped, and not counted
        files = local_files(tmp_path)
        again = s3.get_many(["k/0", "k/1"])
        assert local_files(tmp_path) == files and [o.blob for o in again] == [items[0][1], items[1][1]]
        assert s3._downloads.memory_used == 200_000
    with S3(s3root=root, environ=dict(env, MFLOW_S3_MEMORY_MB="0"), tmproot=str(tmp_path)) as s3:
        assert [o.blob for o in s3.get_many(["k/0", "k/1"])] == [items[0][1], items[1][1]]
        assert len(local_files(tmp_path)) == 2  # 0: every download is a file, as before
    with pytest.raises(Exception, match="MFLOW_S3_MEMORY_MB='lots' is not a number of MiB"):
        S3(s3root=root, environ=dict(env, MFLOW_S3_MEMORY_MB="lots"))


def test_large_downloads_still_go_straight_to_files(s3, tmp_path):
    from mflow.s3.client import MEMORY_OBJECT_SIZE

    data = os.urandom(MEMORY_OBJECT_SIZE + 1)
    s3.put("l/over", data)
    s3.put("l/limit", data[:MEMORY_OBJECT_SIZE])
    over, limit, part = s3.get_many(["l/over", "l/limit", S3GetObject("l/over", 1, MEMORY_OBJECT_SIZE)])
    files = local_files(tmp_path)
    assert len(files) == 1 and files[0].endswith("-over")  # written while it arrived
    assert over.path == files[0] and over.blob == data
    assert limit.blob == data[:MEMORY_OBJECT_SIZE] and part.blob == data[1 : MEMORY_OBJECT_SIZE + 1]
    assert len(local_files(tmp_path)) == 1


def test_a_late_file_that_cannot_be_written_is_a_clear_error(s3, root, tmp_path):
    s3.put("v/x.csv", b"1,2")
    obj = s3.get("v/x.csv")
    folder = os.path.join(str(tmp_path), os.listdir(str(tmp_path))[0])
    shutil.rmtree(folder)  # e.g. a cleaner of old temporary files
    with pytest.raises(S3LocalFileError) as caught:
        obj.path
    message = str(caught.value)
    assert message.startswith("cannot write %s/" % folder) and root + "/v/x.csv: its folder is gone" in message
    assert "\n" not in message and caught.value.exit_code == ExitCode.BAD_INPUT
    assert obj.blob == b"1,2"  # the bytes are still there
    os.mkdir(folder)
    assert open(obj.path, "rb").read() == b"1,2"  # and a later try can write them


def test_downloads_pickle_as_files(s3, root, tmp_path):
    import pickle

    s3.put("p/x", b"pickled")
    obj = s3.get("p/x")
    copy = pickle.loads(pickle.dumps(obj))  # e.g. kept as an artifact
    assert local_files(tmp_path) == [obj.path] == [copy.path]
    assert (copy.key, copy.url, copy.size, copy.blob) == ("p/x", root + "/p/x", 7, b"pickled")


def test_permission_and_credential_errors(s3_server, root, s3):
    s3.put("readable", b"1")
    reader = dict(os.environ, **s3_server.reader_env)
    with S3(s3root=root, environ=reader) as limited:
        assert limited.get("readable").blob == b"1"
        with pytest.raises(S3AccessDeniedError) as caught:
            limited.put("nope.csv", b"1")
        assert str(caught.value).startswith("access denied: cannot write %s/nope.csv (AccessDenied)" % root)
        assert caught.value.exit_code == ExitCode.STORE
    wrong = dict(os.environ, **dict(s3_server.env, AWS_SECRET_ACCESS_KEY="wrong"))
    with S3(s3root=root, environ=wrong) as bad:
        for call in (lambda: bad.get("readable"), lambda: bad.info("readable"), lambda: bad.put("x", b"")):
            with pytest.raises(S3Error, match="rejected the AWS credentials .*(readable|/x)"):
                call()


def test_an_unreachable_endpoint_fails_fast(root, env):
    (port,) = free_ports(1)
    dead = dict(env, MFLOW_S3_ENDPOINT_URL="http://127.0.0.1:%d" % port, MFLOW_S3_RETRIES="2")
    with S3(s3root=root, environ=dead) as s3:
        with pytest.raises(S3Error) as caught:
            s3.get("some/key")
    message = str(caught.value)
    assert "cannot reach http://127.0.0.1:%d to read %s/some/key after 2 attempts" % (port, root) in message
    assert "MFLOW_S3_ENDPOINT_URL" in message and "\n" not in message
    with pytest.raises(Exception, match="MFLOW_S3_WORKERS='zero' is not a positive number"):
        S3(s3root=root, environ=dict(env, MFLOW_S3_WORKERS="zero"))


def test_signature_matches_botocore(monkeypatch):
    import datetime

    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    from mflow.s3.transport import sign_v4, signing_key

    moment = datetime.datetime(2026, 11, 22, 12, 34, 56)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: moment)
    path = "/bucket/" + __import__("urllib.parse").parse.quote("dir/a b+\u00fc=%.csv", safe="/~")
    headers = {
        "host": "s3.example.com:9000",
        "x-amz-date": "20261122T123456Z",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        "x-amz-security-token": "token/+=",
        "content-type": "text/csv",
        "x-amz-meta-metaflow-user-attributes": '{"a": [1,  2]}',
        "range": "bytes=0-99",
    }
    request = AWSRequest(method="PUT", url="https://s3.example.com:9000" + path, headers=dict(headers))
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    botocore.auth.S3SigV4Auth(Credentials("AKID", "SECRET", "token/+="), "s3", "eu-west-1").add_auth(request)
    key = signing_key("SECRET", "20261122", "eu-west-1")
    ours = sign_v4("PUT", path, "", headers, "AKID", key, "20261122T123456Z", "eu-west-1")
    assert ours == request.headers["Authorization"]


def test_transient_failures_are_retried(s3_server, root, env, monkeypatch):
    from flaky_proxy import FlakyProxy

    from mflow.s3 import transport

    monkeypatch.setattr(transport, "BACKOFF_BASE", 0.01)  # the waits, not their lengths, are tested
    keys = ["r/%d" % i for i in range(10)]
    with FlakyProxy(s3_server.endpoint) as proxy:
        flaky = dict(env, MFLOW_S3_ENDPOINT_URL=proxy.url, MFLOW_S3_WORKERS="4")
        with S3(s3root=root, environ=flaky) as s3:
            s3.put_many([(key, key.encode()) for key in keys])
            assert [o.blob for o in s3.get_many(keys)] == [key.encode() for key in keys]
            assert [o.size for o in s3.info_many(keys)] == [len(key) for key in keys]
        assert proxy.failures == 60 and proxy.resets == 30
        proxy.always = True
        with S3(s3root=root, environ=dict(flaky, MFLOW_S3_RETRIES="3")) as s3:
            with pytest.raises(S3Error, match="kept throttling requests for .*/r/1 \\(SlowDown\\) after 3 attempts"):
                s3.get("r/1")


def test_boto3_carries_every_request_where_direct_http_cannot(root, env, monkeypatch, tmp_path):
    from mflow.s3 import transport

    # E.g. behind a proxy: every request goes through boto3, with the same results and errors.
    monkeypatch.setattr(transport.Transport, "_resolve_target", lambda self, bucket, client: None)
    with S3(s3root=root, environ=env, tmproot=str(tmp_path)) as s3:
        data = os.urandom(transport.SINGLE_PUT_SIZE + 1)
        written = s3.put_many([("b/small", b"abc"), ("b/large", data)])
        assert written == [("b/small", root + "/b/small"), ("b/large", root + "/b/large")]
        s3.put("b/meta", "m", content_type="text/plain", metadata={"k": "v"})
        assert s3.put("b/small", b"no", overwrite=False) == root + "/b/small"
        assert s3.get("b/small").blob == b"abc"
        assert s3.get("b/large").blob == data
        assert s3.get(S3GetObject("b/large", 3, 4)).blob == data[3:7]
        meta = s3.get("b/meta")
        assert (meta.text, meta.content_type, meta.metadata) == ("m", "text/plain", {"k": "v"})
        assert [os.path.basename(f)[7:] for f in local_files(tmp_path)] == ["large"]  # the rest in memory
        assert open(meta.path).read() == "m"
        assert s3.info("b/meta").size == 1
        with pytest.raises(S3NotFoundError, match="no object at .*/b/none"):
            s3.get("b/none")
        assert s3.get("b/none", return_missing=True).exists is False


def test_importing_mflow_s3_does_not_import_boto3():
    code = "import sys, mflow, mflow.s3; from mflow import S3; assert S3 is mflow.s3.S3; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
