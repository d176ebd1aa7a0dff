"""Crash safety: kill -9 the driver at random moments; the store stays consistent and
resume finishes the run with the right result."""

import os
import random
import signal
import subprocess
import time

from mflow.meta import MetaStore
from mflow.store.pathspec import Pathspec
from test_run import HEADER, Runner, mflow

FLOW = HEADER + """
import os
import random
import time

class CrashFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(16))
        self.payload = os.urandom(1 << 20)  # a real blob to write, not an inline value
        self.next(self.work, foreach="items")

    @step
    def work(self):
        time.sleep(random.uniform(0.15, 0.35))
        self.out = self.input * 2
        self.chunk = bytes([self.input]) * (256 << 10)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        self.sizes = sum(len(i.chunk) for i in inputs)
        self.payload_len = len(inputs[0].payload)
        self.next(self.end)

    @step
    def end(self):
        self.final = (self.total, self.sizes, self.payload_len)
"""

EXPECTED = (2 * sum(range(16)), 16 * (256 << 10), 1 << 20)


def check_store(store):
    """Every visible manifest names blobs that exist and hash to their keys."""
    checked = 0
    data = os.path.join(store.url, "data")
    for folder, _, files in os.walk(data):
        if "artifacts.json" not in files:
            continue
        parts = os.path.relpath(folder, data).split(os.sep)
        task, attempt = Pathspec.task(*parts[:4]), int(parts[4])
        loader = store.artifacts(task, attempt)
        for name in loader:
            record = loader.record(name)
            if getattr(record, "inline", None) is None:
                store.blobs.verify(record.key)
            loader[name]
            checked += 1
    return checked


def test_kill_the_driver_at_random_moments_then_resume(tmp_path):
    runner = Runner(tmp_path)
    path = runner.write(FLOW)
    rng = random.Random(20261122)
    env = dict(runner.env, MFLOW_STALE_AFTER="0.5")
    resumed = 0
    for trial in range(20):
        id_file = tmp_path / ("run_id_%d" % trial)
        driver = subprocess.Popen(
            # Two at a time, so that the run lasts about 2 s and every kill lands mid-run.
            [mflow(), "run", str(path), "-q", "--max-workers", "2", "--run-id-file", str(id_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path), env=env,
        )
        time.sleep(rng.uniform(0.05, 1.4))
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.time() + 20  # its tasks die with it
        while time.time() < deadline and subprocess.run(["pgrep", "-f", "mflow run %s" % path]).returncode == 0:
            time.sleep(0.05)
        store = runner.store()
        check_store(store)
        if not id_file.exists():
            continue
        run_id = id_file.read_text().strip()
        meta = MetaStore(store, stale_after=0.5)
        try:
            info = meta.run("CrashFlow", run_id)
        except Exception:  # killed between claiming the id and writing the run record
            continue
        time.sleep(0.6)  # let the run go stale
        if meta.run("CrashFlow", run_id).status == "successful":
            continue
        assert meta.run("CrashFlow", run_id).status == "stale", info
        result = subprocess.run(
            [mflow(), "resume", str(path), "--origin-run-id", run_id, "-q"],
            capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=120,
        )
        assert result.returncode == 0, (trial, result.stderr)
        assert runner.only(result.stdout.strip(), "end")["final"] == EXPECTED
        resumed += 1
    assert resumed >= 10
    assert check_store(runner.store()) > 0
