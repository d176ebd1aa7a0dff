"""Flows run by the real `mflow` commands in a test's folder, and what they left in the store:
the helpers the tests of every compute engine (AWS Batch, Slurm) share."""

import json
import shutil
import subprocess
import textwrap
import time

HEADER = "from mflow import FlowSpec, step, batch, slurm, resources, retry, timeout, current\n\n"


def mflow(program="mflow"):
    path = shutil.which(program)
    assert path, "%s is not on PATH; run the tests through scripts/test" % program
    return path


class FlowRuns:
    """Flow files in `folder`, run with environment `env` against the store `store_url`."""

    def __init__(self, folder, env, store_url):
        self.dir = folder
        self.env = dict(env, MFLOW_STORE=store_url)
        self.store_url = store_url

    def write(self, source, name="flow.py"):
        path = self.dir / name
        path.write_text(HEADER + textwrap.dedent(source).lstrip())
        return path

    def command(self, *args, program="mflow", timeout=180, env=None):
        return subprocess.run([mflow(program), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              cwd=str(self.dir), env=dict(self.env, **(env or {})))

    def start(self, path, *args):
        """`mflow run` in the background; (process, run id) once the run exists."""
        run_id_file = self.dir / "run-id"
        process = subprocess.Popen([mflow(), "run", str(path), "--run-id-file", str(run_id_file), *map(str, args)],
                                   cwd=str(self.dir), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.monotonic() + 60
        while not (run_id_file.exists() and run_id_file.read_text().strip()):
            assert time.monotonic() < deadline and process.poll() is None, process.communicate()
            time.sleep(0.1)
        return process, run_id_file.read_text().strip()

    def artifact(self, pathspec):
        result = self.command("cat", pathspec, program="mflow-store")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def tasks(self, run_pathspec):
        result = self.command("tasks", run_pathspec, "--json", program="mflow-meta")
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]


def retry_flow(engine, name):
    """A flow whose start step, on `engine`, fails its first attempt and succeeds on a retry."""
    return """
class %s(FlowSpec):
    @%s
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        if current.retry_count < 1:
            raise RuntimeError("the first attempt fails")
        self.attempt_seen = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass
""" % (name, engine)
