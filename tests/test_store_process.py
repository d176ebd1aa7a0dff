"""`mflow-store` and the store API as real processes: killed writers, memory, start-up
imports, and every way a store can be unusable, each a one-line error within seconds."""

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

from s3_server import ISOLATED_AWS, free_ports


def mflow_store(args, env, stdin=None, timeout=60):
    return subprocess.run(
        ["mflow-store"] + [str(a) for a in args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
    )


def one_line_error(result):
    text = result.stderr.decode()
    assert text.startswith("Error: ") and text.count("\n") == 1, text
    return text


def test_pipeline_through_real_pipes(store_under_test, tmp_path):
    env = store_under_test.process_env(MFLOW_STORE=store_under_test.url)
    data = os.urandom(5 << 20) + bytes(5 << 20)
    put = mflow_store(["put", "-"], env, stdin=data)
    key = put.stdout.decode().strip()
    assert put.returncode == 0 and key == hashlib.sha256(data).hexdigest()
    got = mflow_store(["get", key], env)
    assert got.returncode == 0 and got.stdout == data
    head = subprocess.run(
        "mflow-store get %s | head -c 10 > /dev/null; echo ${PIPESTATUS[0]}" % key,
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert head.stdout.decode().strip() in ("0", "141") and head.stderr == b""


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_writer_killed_mid_write_leaves_nothing_visible(store_under_test):
    """SIGKILL while a large blob is being written: no blob, no partial object, and gc
    clears what the writer left behind (a temp file, or an incomplete multipart upload)."""
    env = store_under_test.process_env(MFLOW_STORE=store_under_test.url, MFLOW_S3_WORKERS="2")
    store = store_under_test.open()
    writer = subprocess.Popen(["mflow-store", "put", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    chunk = os.urandom(1 << 20)
    if store_under_test.kind == "local":
        for _ in range(40):
            writer.stdin.write(chunk)
        writer.stdin.flush()
        assert wait_for(lambda: len(store.backend.stale_uploads(time.time() + 60)) > 0)
    else:
        for _ in range(120):  # past the single-PUT size: a multipart upload
            writer.stdin.write(chunk)
        writer.stdin.close()
        backend = store.backend

        def uploading():
            uploads = backend.client.list_multipart_uploads(Bucket=backend.bucket, Prefix=backend.prefix + "/")
            return bool(uploads.get("Uploads"))

        assert wait_for(uploading), "the writer never started its multipart upload"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert list(store.backend.list("")) == []  # nothing visible anywhere in the store
    stale = store.backend.stale_uploads(time.time() + 60)
    assert stale
    from mflow.store.maintenance import collect_garbage

    rows = list(collect_garbage(store, grace=60, now=time.time() + 120))
    assert [r["kind"] for r in rows] == ["upload"] * len(stale)
    assert store.backend.stale_uploads(time.time() + 60) == []


def test_task_killed_while_saving_artifacts_leaves_no_manifest(tmp_path):
    """A task process killed after some blobs but before its manifest: no artifacts appear."""
    store_dir = tmp_path / "store"
    script = textwrap.dedent(
        """
        import os, sys, time
        from mflow.store import open_store
        store = open_store(sys.argv[1])
        writer = store.artifact_writer("F/1/start/1", 0)
        writer.save("first", os.urandom(20 << 20))
        print("saved", flush=True)
        time.sleep(60)
        writer.commit()
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(store_dir)], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"saved\n"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    from mflow.store import open_store

    store = open_store(str(store_dir))
    result = mflow_store(["ls", "F/1/start/1", "--store", store_dir], dict(os.environ))
    assert result.returncode == 4
    assert not [i for i in store.backend.list("data/")]


MEMORY_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys
    from mflow.store import open_store
    store = open_store(sys.argv[1])
    size = int(sys.argv[3])
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if sys.argv[2] == "save":
        value = bytearray(os.urandom(size))
        base = peak()
        writer = store.artifact_writer("F/1/start/1", 0)
        writer.save("big", value)
        writer.commit()
    else:
        base = peak()
        value = store.artifacts("F/1/start/1")["big"]
        assert len(value) == size
    print(base, peak())
    """
)


def test_large_artifact_is_written_and_read_holding_one_copy(tmp_path):
    """Peak RSS of saving and of loading a 300 MB artifact stays close to one copy of it."""
    size = 300 << 20
    store_dir = str(tmp_path / "store")
    peaks = {}
    for phase in ("save", "load"):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, store_dir, phase, str(size)],
            capture_output=True,
            check=True,
            timeout=120,
        )
        base, peak = map(int, out.stdout.split())
        peaks[phase] = (base, peak)
    save_base, save_peak = peaks["save"]
    # Saving: the value already in memory, and at most a few frames on top of it.
    assert save_peak - save_base < 0.1 * size, peaks
    load_base, load_peak = peaks["load"]
    # Loading: one copy of the value, plus frames in flight.
    assert load_peak - load_base < 1.1 * size, peaks


def test_local_store_does_not_import_boto3(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from mflow.store import open_store
        store = open_store(sys.argv[1])
        writer = store.artifact_writer("F/1/start/1", 0)
        writer.save("x", {"a": 1})
        writer.commit()
        assert store.artifacts("F/1/start/1")["x"] == {"a": 1}
        heavy = [m for m in ("boto3", "botocore", "cloudpickle", "click") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s")], capture_output=True, check=True)
    assert out.stdout.decode().strip() == ""


def test_full_disk_is_a_clean_error(tmp_path):
    """A write that hits the file size limit (EFBIG, as ENOSPC would) fails with exit 5 and
    leaves neither a blob nor a temporary file."""
    store_dir = tmp_path / "store"

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))

    env = dict(os.environ, MFLOW_STORE=str(store_dir))
    result = subprocess.run(
        ["mflow-store", "put", "-"],
        input=os.urandom(32 << 20),
        capture_output=True,
        env=env,
        preexec_fn=limit_file_size,
        timeout=60,
    )
    assert result.returncode == 5
    text = one_line_error(result)
    assert "is full" in text and str(store_dir) in text
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(store_dir) for f in files]
    assert leftovers == []


def test_unreachable_endpoint_fails_within_seconds(tmp_path):
    (port,) = free_ports(1)  # nothing listens there
    env = dict(
        os.environ,
        **ISOLATED_AWS,
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
        MFLOW_S3_ENDPOINT_URL="http://127.0.0.1:%d" % port,
    )
    for args in (["put", "-"], ["ls", "F/1/start/1"], ["get", "a" * 64]):
        started = time.monotonic()
        result = mflow_store(args + ["--store", "s3://bucket/prefix"], env, stdin=b"data")
        elapsed = time.monotonic() - started
        assert result.returncode == 5
        text = one_line_error(result)
        assert "cannot reach" in text and "s3://bucket/prefix" in text
        assert elapsed < 15, elapsed


def test_missing_bucket_fails_at_once(s3_server):
    env = dict(os.environ, **s3_server.env)
    for args in (["put", "-"], ["ls", "F/1/start/1"], ["has", "a" * 64], ["get", "a" * 64], ["du"]):
        started = time.monotonic()
        result = mflow_store(args + ["--store", "s3://no-such-bucket/p"], env, stdin=b"data")
        assert result.returncode == 5, (args, result)
        text = one_line_error(result)
        assert "bucket no-such-bucket" in text and "does not exist" in text
        assert time.monotonic() - started < 5


def test_credentials_missing_rejected_or_not_allowed(s3_server):
    url = s3_server.url()
    admin = dict(os.environ, **s3_server.env)
    key = mflow_store(["put", "-", "--store", url], admin, stdin=b"shared").stdout.decode().strip()
    bare = {k: v for k, v in admin.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    result = mflow_store(["put", "-", "--store", url], bare, stdin=b"x")
    assert result.returncode == 5 and "no usable AWS credentials" in one_line_error(result)
    wrong = dict(admin, AWS_SECRET_ACCESS_KEY="wrong")
    result = mflow_store(["get", key, "--store", url], wrong)
    assert result.returncode == 5 and "rejected the AWS credentials" in one_line_error(result)
    reader = dict(os.environ, **s3_server.reader_env)
    result = mflow_store(["put", "-", "--store", url], reader, stdin=b"not allowed")
    assert result.returncode == 5
    text = one_line_error(result)
    assert "permission denied" in text and url in text
    got = mflow_store(["get", key, "--store", url], reader)
    assert got.returncode == 0 and got.stdout == b"shared"


def test_exit_codes_of_the_installed_command(tmp_path):
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"))
    assert mflow_store(["get", "0" * 64], env).returncode == 4
    assert mflow_store(["get", "zz"], env).returncode == 2
    assert mflow_store(["ls", "F/1"], env).returncode == 2
    assert mflow_store(["ls", "F/1/start/1"], env).returncode == 4
    assert mflow_store(["nope"], env).returncode == 2
    help_text = mflow_store(["ls", "--help"], env)
    assert help_text.returncode == 0 and b"--attempt" in help_text.stdout
    bad = mflow_store(["put", "-"], dict(env, MFLOW_STORE="s3://b/p", MFLOW_S3_WORKERS="zero"), stdin=b"x")
    assert bad.returncode == 2 and b"MFLOW_S3_WORKERS" in bad.stderr


def test_gc_json_lines_from_a_pipe(tmp_path):
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"))
    mflow_store(["put", "-"], env, stdin=b"orphan")
    result = mflow_store(["gc", "--grace", "0", "--dry-run"], env)
    assert result.returncode == 1
    row = json.loads(result.stdout)
    assert row["schema"] == 1 and row["action"] == "would-delete" and row["kind"] == "blob"
