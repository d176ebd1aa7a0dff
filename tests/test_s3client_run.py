"""S3(run=self) in real runs: `mflow run` on an S3 store keeps a run's objects beside its
artifacts; on a local store it needs MFLOW_S3_ROOT, or says so."""

import os
import shutil
import subprocess
import textwrap

import pytest

from mflow.errors import S3URLError
from mflow.store import open_store
from mflow.store.pathspec import Pathspec

FLOW = textwrap.dedent(
    """
    import os
    from mflow import FlowSpec, S3, step


    class DataFlow(FlowSpec):
        @step
        def start(self):
            with S3(run=self) as s3:
                self.root = s3.root
                self.url = s3.put("greeting.txt", "hello")
                s3.put_many([("parts/%d.bin" % i, b"x" * i) for i in range(5)])
            self.next(self.end)

        @step
        def end(self):
            with S3(run=self) as s3:
                self.text = s3.get("greeting.txt").text
                objects = s3.get_all()
                self.keys = [o.key for o in objects]
                self.local = objects[0].path
            self.cleaned = not os.path.exists(self.local)
            print(self.text)


    if __name__ == "__main__":
        DataFlow()
    """
)


def run_flow(tmp_path, env):
    mflow = shutil.which("mflow")
    assert mflow, "mflow is not on PATH; run the tests through scripts/test"
    path = tmp_path / "dataflow.py"
    path.write_text(FLOW)
    return subprocess.run(
        [mflow, "run", str(path)], capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env
    )


def artifacts(store, run, step, task):
    flow, run_id = run.split("/")
    return store.artifacts(Pathspec.task(flow, run_id, step, task))


def test_a_step_keeps_its_objects_beside_the_run_on_an_s3_store(s3_server, tmp_path):
    store_url = s3_server.url()
    env = dict(os.environ, **s3_server.env, MFLOW_STORE=store_url, MFLOW_USER="tester")
    env.pop("MFLOW_S3_ROOT", None)
    result = run_flow(tmp_path, env)
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    run_id = run.split("/")[1]
    root = "%s/s3/DataFlow/%s" % (store_url, run_id)

    with open_store(store_url, environ=env) as store:
        start = artifacts(store, run, "start", "1")
        assert start["root"] == root and start["url"] == root + "/greeting.txt"
        end = artifacts(store, run, "end", "2")
        assert end["text"] == "hello"
        assert end["keys"] == ["greeting.txt"] + ["parts/%d.bin" % i for i in range(5)]
        assert end["cleaned"] is True
    bucket, prefix = store_url[len("s3://") :].split("/", 1)
    listed = s3_server.client().list_objects_v2(Bucket=bucket, Prefix="%s/s3/" % prefix)["Contents"]
    assert sorted(item["Key"] for item in listed) == sorted(
        "%s/s3/DataFlow/%s/%s" % (prefix, run_id, key) for key in end["keys"]
    )


def test_on_a_local_store_the_root_comes_from_mflow_s3_root(s3_server, tmp_path):
    base = s3_server.url()
    store = tmp_path / "store"
    env = dict(os.environ, **s3_server.env, MFLOW_STORE=str(store), MFLOW_USER="tester", MFLOW_S3_ROOT=base)
    result = run_flow(tmp_path, env)
    assert result.returncode == 0, result.stderr
    run = result.stdout.strip()
    with open_store(str(store), environ={}) as opened:
        assert artifacts(opened, run, "start", "1")["root"] == "%s/DataFlow/%s" % (base, run.split("/")[1])

    del env["MFLOW_S3_ROOT"]
    failed = run_flow(tmp_path, env)
    assert failed.returncode != 0
    assert "S3(run=...) needs an S3 location, and the run's store %s is a local folder" % store in failed.stderr
    assert "Set MFLOW_S3_ROOT=s3://BUCKET/PREFIX" in failed.stderr


def test_run_outside_a_step_and_other_runs(s3_server):
    from mflow import FlowSpec, S3

    class Idle(FlowSpec):
        pass

    env = dict(os.environ, **s3_server.env, MFLOW_S3_ROOT="s3://bucket/base")
    with pytest.raises(S3URLError, match=r"S3\(run=self\) works only inside a running step"):
        S3(run=Idle(use_cli=False), environ=env)

    class PastRun:  # what the client API's Run offers
        pathspec = "DataFlow/1700000000"

    assert S3(run=PastRun(), environ=env).root == "s3://bucket/base/DataFlow/1700000000"
    assert S3(run=PastRun(), bucket="other", environ=env).root == "s3://other/base/DataFlow/1700000000"
    assert S3(run=PastRun(), prefix="/p/q/", environ=env).root == "s3://bucket/p/q/DataFlow/1700000000"
    with pytest.raises(S3URLError, match="neither a step's self nor a Run"):
        S3(run="DataFlow/1", environ=env)
    with pytest.raises(S3URLError, match="MFLOW_S3_ROOT 'bucket/x' is not an s3:// URL"):
        S3(run=PastRun(), environ=dict(env, MFLOW_S3_ROOT="bucket/x"))
