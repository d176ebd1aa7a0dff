"""Apache Airflow 3 for the tests: its own venv (scripts/airflow-env, installed once and kept
until its pins change), a home with a SQLite database, and `airflow dags test` of the DAG
files `mflow airflow create` writes, every task for real.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: mflow's own executables: the DAGs the tests write call them by absolute path.
MFLOW_BIN = os.path.dirname(sys.executable)


class Airflow:
    """An Airflow installation (`venv`) with its home `home`; `dags_test` runs a DAG file."""

    def __init__(self, venv, home):
        self.venv, self.home = Path(venv), Path(home)

    def env(self, dags_folder, extra=None):
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.update(extra or {})
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///%s" % (self.home / "airflow.db"),
            PATH=os.pathsep.join([MFLOW_BIN, str(self.venv / "bin"), os.environ.get("PATH", "")]),
        )
        return env

    def command(self, *args, dags_folder, timeout=120, env=None):
        return subprocess.run([str(self.venv / "bin" / "airflow"), *map(str, args)], capture_output=True, text=True,
                              env=self.env(dags_folder, env), timeout=timeout)

    def dags_test(self, dag_file, dag_id, conf=None, timeout=600, env=None):
        """`airflow dags test DAG_ID` of `dag_file`, its workers' environment with `env`:
        (completed process, DAG run id, state)."""
        import json

        dag_file = Path(dag_file).resolve()
        args = ["dags", "test", dag_id, "-f", dag_file]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        done = self.command(*args, dags_folder=dag_file.parent, timeout=timeout, env=env)
        output = done.stdout + done.stderr
        finished = re.search(r"DagRun Finished: dag_id=%s, .*?run_id=([^,]+),.*?state=(\w+)" % re.escape(dag_id),
                             output)
        assert finished, "airflow dags test did not finish a run (exit %d):\n%s" % (done.returncode, output[-6000:])
        return done, finished.group(1), finished.group(2)

    def python(self, source, *args):
        """Run `source` with the Airflow venv's interpreter (to load a DAG file as Airflow does)."""
        return subprocess.run([str(self.venv / "bin" / "python"), "-c", source, *map(str, args)],
                              capture_output=True, text=True, env=self.env(self.home), timeout=120)


@pytest.fixture(scope="session")
def airflow(tmp_path_factory):
    """Airflow 3.3.2 in .venv-airflow (installed on first use, about 5 s with uv, 30 s with
    pip), with a fresh home and database for this session (airflow db migrate, 5 s)."""
    started = time.monotonic()
    made = subprocess.run([str(REPO / "scripts" / "airflow-env")], capture_output=True, text=True, timeout=1200)
    assert made.returncode == 0, "scripts/airflow-env failed:\n%s" % made.stderr[-4000:]
    if "Installing" in made.stderr:
        sys.stderr.write("installed Airflow into %s in %.0f s\n" % (made.stdout.strip(), time.monotonic() - started))
    home = tmp_path_factory.mktemp("airflow-home")
    found = Airflow(made.stdout.strip().splitlines()[-1], home)
    migrated = found.command("db", "migrate", dags_folder=home, timeout=300)
    assert migrated.returncode == 0, "airflow db migrate failed:\n%s" % (migrated.stdout + migrated.stderr)[-4000:]
    return found
