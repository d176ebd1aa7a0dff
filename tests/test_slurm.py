"""The Slurm executor against a real one-node cluster (tests/slurm_cluster.py): submitting,
polling to an end, exit codes and reasons, time limits, cancelling, listing, and check()
refusing what cannot work, each in one line."""

import os
import sys
import time

import pytest

from mflow.errors import ExecutorError, ExitCode
from mflow.runtime.executors import base, make_executor
from mflow.runtime.executors import slurm as slurm_module
from mflow.runtime.executors.base import JobFilter, RemoteTask
from mflow.runtime.executors.slurm import job_comment, job_state, time_limit_minutes


def remote_task(task_id, run_id="1700", user="tester", attempt=0, step="work", options=None, resources=None,
                timeout=None, environment=None):
    return RemoteTask(
        flow="SlurmTestFlow", run_id=run_id, step=step, task_id=str(task_id), attempt=attempt, user=user,
        arguments=(), environment=environment or {}, resources=resources or {"cpu": 1, "memory": 100},
        options=options or {}, timeout=timeout,
    )


@pytest.fixture
def programs(monkeypatch):
    """{task_id: argv}: what each submitted job runs instead of mflow-task."""
    commands = {}
    monkeypatch.setattr(slurm_module, "job_command", lambda task, environ: commands[task.task_id])
    return commands


@pytest.fixture
def executor(slurm_cluster, tmp_path):  # noqa: F811
    environ = dict(os.environ, MFLOW_SLURM_OUTPUT=str(tmp_path / "slurm-output"), **slurm_cluster.env)
    made = make_executor("slurm", environ)
    yield made
    made.close()


def wait_for(executor, job_ids, finished=True, timeout=60):
    """Poll until every job has finished (or, with finished=False, is running)."""
    deadline = time.monotonic() + timeout
    while True:
        states = executor.poll(job_ids)
        if all(states[i].finished if finished else states[i].state == base.RUNNING for i in job_ids):
            return states
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


# A job that outlives its time limit: Slurm checks limits every 30 s and a limit is at least
# a minute, so it is submitted as the module starts and looked at by the last test.
@pytest.fixture(scope="module")
def time_limited_job(slurm_cluster, tmp_path_factory):  # noqa: F811
    environ = dict(os.environ, MFLOW_SLURM_OUTPUT=str(tmp_path_factory.mktemp("timeout-output")), **slurm_cluster.env)
    executor = make_executor("slurm", environ)
    original = slurm_module.job_command
    slurm_module.job_command = lambda task, environ: ["sleep", "600"]
    try:
        job_id = executor.submit(remote_task(1, run_id="1600", timeout=5))
    finally:
        slurm_module.job_command = original
    return executor, job_id, time.monotonic()


@pytest.fixture(autouse=True)
def _time_limited_job_first(time_limited_job):
    """Start the time-limited job before anything else, so its minute passes meanwhile."""


def test_a_job_runs_mflow_task_with_the_task_environment(executor, programs, tmp_path, slurm_cluster):  # noqa: F811
    programs["1"] = ["sh", "-c", 'echo "store=$MFLOW_STORE job=$SLURM_JOB_ID cpus=$SLURM_CPUS_PER_TASK"']
    task = remote_task(1, environment={"MFLOW_STORE": "s3://bucket/prefix"},
                       resources={"cpu": 2, "memory": 200}, options={"partition": "other"})
    job_id = executor.submit(task)
    assert job_id.isdigit()
    (line,) = slurm_cluster.command("squeue", "-h", "--states=all", "-j", job_id, "-o", "%j|%P|%k").stdout.splitlines()
    assert line == "mflow-SlurmTestFlow-1700-work-1-0|other|" + job_comment(task.labels)
    states = wait_for(executor, [job_id])
    assert states[job_id] == base.JobState(job_id, base.SUCCEEDED, 0, None)
    output = tmp_path / "slurm-output" / "SlurmTestFlow" / "1700" / ("work.1.0.%s.out" % job_id)
    assert output.read_text() == "store=s3://bucket/prefix job=%s cpus=2\n" % job_id


def test_the_real_program_is_mflow_task_in_the_shared_python():
    task = remote_task(1)._replace(arguments=("--package", "flow.py", "start", "--attempt", 0))
    argv = slurm_module.job_command(task, {"MFLOW_SLURM_PYTHON": "/shared/venv/bin/python"})
    assert argv == ["/shared/venv/bin/python", "-c", slurm_module.TASK_PROGRAM,
                    "--package", "flow.py", "start", "--attempt", "0"]
    assert slurm_module.TASK_PROGRAM.endswith("from mflow.cli.task import main; main()")
    assert slurm_module.job_command(task, {})[0] == sys.executable


def test_a_failing_job_reports_its_exit_code_and_where_its_output_is(executor, programs, tmp_path):
    programs["2"] = ["sh", "-c", "echo going wrong; exit 3"]
    job_id = executor.submit(remote_task(2))
    state = wait_for(executor, [job_id])[job_id]
    output = tmp_path / "slurm-output" / "SlurmTestFlow" / "1700" / ("work.2.0.%s.out" % job_id)
    assert (state.state, state.exit_code) == (base.FAILED, 3)
    assert state.reason == "FAILED: exited with code 3; its Slurm output: %s" % output
    assert output.read_text() == "going wrong\n"


def test_cancel_stops_a_running_job_and_is_idempotent(executor, programs, slurm_cluster):  # noqa: F811
    programs["3"] = ["sleep", "300"]
    job_id = executor.submit(remote_task(3))
    wait_for(executor, [job_id], finished=False)
    executor.cancel([job_id])
    state = wait_for(executor, [job_id], timeout=20)[job_id]
    assert state.state == base.CANCELLED and "CANCELLED" in state.reason
    executor.cancel([job_id, "999999"])  # finished and unknown jobs are no error
    assert slurm_cluster.job_ids("RUNNING,PENDING,COMPLETING").count(job_id) == 0


def test_a_job_slurm_forgot_is_failed_with_a_reason(executor):
    state = executor.poll(["999998"])["999998"]
    assert state.state == base.FAILED and "Slurm no longer knows job 999998" in state.reason
    assert executor.poll([]) == {}


def test_poll_finds_jobs_of_another_user(executor, slurm_cluster):  # noqa: F811
    theirs = slurm_cluster.command("sbatch", "--parsable", "--uid=65534", "--gid=65534", "--chdir=/tmp",
                                   "--output=/dev/null", "--wrap", "sleep 300").stdout.strip()
    try:
        assert executor.poll([theirs])[theirs].state in (base.PENDING, base.RUNNING)
    finally:
        executor.cancel([theirs])


def test_jobs_lists_mflow_jobs_by_run_and_user(executor, programs, slurm_cluster):  # noqa: F811
    for task_id in ("10", "11", "12"):
        programs[task_id] = ["sleep", "300"]
    mine = [executor.submit(remote_task(10, run_id="1801")), executor.submit(remote_task(11, run_id="1801"))]
    other = executor.submit(remote_task(12, run_id="1802", user="someone-else"))
    outsider = slurm_cluster.command("sbatch", "--parsable", "--job-name=not-mflow", "--output=/dev/null",
                                     "--wrap", "sleep 300").stdout.strip()
    try:
        listed = executor.jobs(JobFilter(run_id="1801"))
        assert sorted(j.job_id for j in listed) == sorted(mine)
        job = [j for j in listed if j.job_id == mine[0]][0]
        assert (job.flow, job.run_id, job.step, job.task_id, job.attempt, job.user) == (
            "SlurmTestFlow", "1801", "work", "10", 0, "tester")
        assert job.pathspec == "SlurmTestFlow/1801/work/10" and job.state in (base.PENDING, base.RUNNING)
        assert job.submitted_at.endswith("Z") and job.name == "mflow-SlurmTestFlow-1801-work-10-0"
        assert [j.job_id for j in executor.jobs(JobFilter(user="someone-else"))] == [other]
        assert executor.jobs(JobFilter(flow="OtherFlow")) == []
        everyone = {j.job_id for j in executor.jobs(JobFilter())}
        assert set(mine + [other]) <= everyone and outsider not in everyone

        executor.cancel(mine)
        wait_for(executor, mine, timeout=20)
        assert executor.jobs(JobFilter(run_id="1801")) == []  # active only, by default
        finished = executor.jobs(JobFilter(run_id="1801", active_only=False))
        assert sorted(j.job_id for j in finished) == sorted(mine)
        assert {j.state for j in finished} == {base.CANCELLED}
    finally:
        executor.cancel([other, outsider] + mine)


def test_sbatch_options_follow_decorator_environment_and_resources():
    executor = make_executor("slurm", {"MFLOW_SLURM_PARTITION": "short", "MFLOW_SLURM_ACCOUNT": "lab",
                                       "MFLOW_SLURM_OUTPUT": os.devnull, "MFLOW_SLURM_EXTRA": "--exclusive --nice=5"})
    task = remote_task(4, resources={"cpu": 2.5, "memory": 1000.5, "gpu": 2}, timeout=130,
                       options={"qos": "high", "constraint": "avx2", "time": 60, "extra": ["--nice=9"]})
    args = executor.sbatch_options(task)
    assert args[:6] == ["--parsable", "--job-name=mflow-SlurmTestFlow-1700-work-4-0",
                        "--comment=flow=SlurmTestFlow&run=1700&step=work&task=4&attempt=0&user=tester",
                        "--output=/dev/null", "--export=ALL", "--no-requeue"]
    assert args[6:] == ["--partition=short", "--account=lab", "--qos=high", "--constraint=avx2", "--cpus-per-task=3",
                        "--mem=1001M", "--gres=gpu:2", "--time=3", "--exclusive", "--nice=5", "--nice=9"]
    decorated = executor.sbatch_options(remote_task(5, options={"partition": "long", "account": "other"}))
    assert "--partition=long" in decorated and "--account=other" in decorated and not any(
        a.startswith("--time") for a in decorated)


@pytest.mark.parametrize("timeout, minutes, expected", [
    (None, None, None), (5, None, 1), (130, None, 3), (None, 90, 90), (7200, 30, 30), (600, 60.5, 10), (None, 0.2, 1),
])
def test_time_limit_is_the_smaller_in_whole_minutes(timeout, minutes, expected):
    assert time_limit_minutes(timeout, minutes) == expected


def test_the_job_environment_drops_the_driver_own_job_variables():
    executor = make_executor("slurm", {"SLURM_CONF": "/etc/slurm/x.conf", "SLURM_JOB_ID": "7", "SLURM_MEM_PER_CPU": "9",
                                       "HOME": "/home/me", "MFLOW_STORE": "/old"})
    environ = executor.job_environment(remote_task(1, environment={"MFLOW_STORE": "/shared/store", "N": 3}))
    assert environ == {"SLURM_CONF": "/etc/slurm/x.conf", "HOME": "/home/me", "MFLOW_STORE": "/shared/store", "N": "3"}


@pytest.mark.parametrize("row, expected", [
    ({"State": "PENDING"}, (base.PENDING, None, None)),
    ({"State": "CONFIGURING"}, (base.PENDING, None, None)),
    ({"State": "RUNNING"}, (base.RUNNING, None, None)),
    ({"State": "COMPLETING"}, (base.RUNNING, None, None)),
    ({"State": "COMPLETED", "exit_code": "0"}, (base.SUCCEEDED, 0, None)),
    ({"State": "FAILED", "exit_code": "2560", "STDOUT": "/out/%j.out"},
     (base.FAILED, 10, "FAILED: exited with code 10; its Slurm output: /out/42.out")),
    ({"State": "TIMEOUT", "exit_code": "15", "TimeLimit": "1:00"}, (base.FAILED, 143,
                                                                    "TIMEOUT: ran past its time limit of 1:00")),
    ({"State": "CANCELLED", "exit_code": "9"}, (base.CANCELLED, 137, "CANCELLED: cancelled in Slurm (scancel)")),
    ({"State": "CANCELLED by 0", "exit_code": "0:15"},
     (base.CANCELLED, 143, "CANCELLED: cancelled in Slurm (scancel)")),
    ({"State": "NODE_FAIL", "exit_code": "0"}, (base.FAILED, 0, "NODE_FAIL: its node failed")),
    ({"State": "OUT_OF_MEMORY", "exit_code": "0:125", "MinMemory": "4G"},
     (base.FAILED, 253, "OUT_OF_MEMORY: used more memory than it asked for (4G)")),
    ({"State": "PREEMPTED", "exit_code": "0"},
     (base.FAILED, 0, "PREEMPTED: was preempted by a job of higher priority")),
    ({"State": "BOOT_FAIL"}, (base.FAILED, None, "BOOT_FAIL: its node failed to boot")),
    ({"State": "DEADLINE"}, (base.FAILED, None, "DEADLINE: could not finish by its deadline")),
    ({"State": "FAILED", "exit_code": "256", "STDOUT": "/dev/null"}, (base.FAILED, 1, "FAILED: exited with code 1")),
])
def test_slurm_states_map_to_job_states(row, expected):
    state = job_state(dict(row, JobID="42"))
    assert (state.state, state.exit_code, state.reason) == expected


def test_check_passes_quickly_on_a_working_cluster(executor):
    started = time.monotonic()
    executor.check(None, {"start": {"partition": None}, "train": {"partition": "other"}})
    assert time.monotonic() - started < 1.0


def one_line_error(executor, options):
    with pytest.raises(ExecutorError) as caught:
        executor.check(None, options)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == ExitCode.EXECUTOR == 6
    return message


def test_check_refuses_a_partition_that_does_not_exist(executor):
    message = one_line_error(executor, {"train": {"partition": "gpu-huge"}})
    assert message == "Slurm partition gpu-huge (step train) does not exist. Use one of: debug, other."
    executor.environ["MFLOW_SLURM_PARTITION"] = "nope"
    assert "partition nope (step start)" in one_line_error(executor, {"start": {"partition": None}})


def test_check_refuses_an_unreachable_controller(slurm_cluster, tmp_path):  # noqa: F811
    dead = slurm_cluster.unreachable_conf(tmp_path / "dead.conf")
    executor = make_executor("slurm", dict(os.environ, SLURM_CONF=dead))
    started = time.monotonic()
    message = one_line_error(executor, {"start": {}})
    assert time.monotonic() - started < 5
    assert message.startswith("cannot reach the Slurm controller: scontrol said: ") and "DOWN" in message
    assert message.endswith("scontrol ping.")


def test_check_refuses_without_sbatch(slurm_cluster, tmp_path):  # noqa: F811
    executor = make_executor("slurm", dict(os.environ, PATH=str(tmp_path), **slurm_cluster.env))
    message = one_line_error(executor, {"start": {}})
    assert message.startswith("Slurm's sbatch is not installed here")


def test_a_refused_submission_is_one_line(executor, programs):
    programs["6"] = ["true"]
    with pytest.raises(ExecutorError) as caught:
        executor.submit(remote_task(6, options={"partition": "nope"}))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot submit job mflow-SlurmTestFlow-1700-work-6-0: sbatch said:")
    assert "partition" in message


def test_alike_tasks_go_as_one_job_array(executor, programs, tmp_path, slurm_cluster):  # noqa: F811
    for task_id in ("20", "21", "22", "24"):
        programs[task_id] = ["sh", "-c", 'echo "task %s index $SLURM_ARRAY_TASK_ID"; exit %d'
                             % (task_id, 4 if task_id == "22" else 0)]
    programs["23"] = ["sleep", "300"]
    tasks = [remote_task(n, run_id="1900") for n in (20, 21, 22, 23)]
    # Another attempt and another step are jobs of their own.
    tasks += [remote_task(24, run_id="1900", attempt=1), remote_task(25, run_id="1900", step="other")]
    programs["25"] = ["true"]
    job_ids = executor.submit_many(tasks)
    array_id = job_ids[0].split("_")[0]
    assert job_ids[:4] == ["%s_%d" % (array_id, i) for i in range(4)]
    assert all(job_id.isdigit() for job_id in job_ids[4:]) and len(set(job_ids)) == 6
    (line,) = set(slurm_cluster.command("squeue", "-h", "--states=all", "-r", "-j", array_id, "-o", "%j|%k")
                  .stdout.splitlines())
    assert line == "mflow-SlurmTestFlow-1900-work-array-0|flow=SlurmTestFlow&run=1900&step=work&attempt=0" \
                   "&user=tester&tasks=20-23"
    wait_for(executor, job_ids[3:4], finished=False)
    executor.cancel(job_ids[3:4])  # one element alone
    states = wait_for(executor, job_ids)
    assert [states[i].state for i in job_ids] == [base.SUCCEEDED, base.SUCCEEDED, base.FAILED, base.CANCELLED,
                                                  base.SUCCEEDED, base.SUCCEEDED]
    output = tmp_path / "slurm-output" / "SlurmTestFlow" / "1900" / ("work.array.0.%s.out" % job_ids[2])
    assert states[job_ids[2]].exit_code == 4
    assert states[job_ids[2]].reason == "FAILED: exited with code 4; its Slurm output: %s" % output
    assert output.read_text() == "task 22 index 2\n"
    listed = {info.job_id: info for info in executor.jobs(JobFilter(run_id="1900", active_only=False))}
    assert {job_id: (listed[job_id].task_id, listed[job_id].attempt, listed[job_id].step) for job_id in job_ids} == {
        job_ids[0]: ("20", 0, "work"), job_ids[1]: ("21", 0, "work"), job_ids[2]: ("22", 0, "work"),
        job_ids[3]: ("23", 0, "work"), job_ids[4]: ("24", 1, "work"), job_ids[5]: ("25", 0, "other"),
    }


def test_array_size_is_capped_by_the_setting(slurm_cluster, programs, tmp_path):  # noqa: F811
    for task_id in range(30, 35):
        programs[str(task_id)] = ["true"]
    environ = dict(os.environ, MFLOW_SLURM_OUTPUT=os.devnull, MFLOW_SLURM_ARRAY_MAX="2", **slurm_cluster.env)
    job_ids = make_executor("slurm", environ).submit_many([remote_task(n, run_id="1901") for n in range(30, 35)])
    arrays = [job_id.split("_")[0] for job_id in job_ids]
    assert arrays[0] == arrays[1] != arrays[2] == arrays[3] != arrays[4] and "_" not in job_ids[4]
    environ["MFLOW_SLURM_ARRAY_MAX"] = "1"
    assert all("_" not in job_id for job_id in
               make_executor("slurm", environ).submit_many([remote_task(n, run_id="1902") for n in (30, 31)]))
    environ["MFLOW_SLURM_ARRAY_MAX"] = "many"
    with pytest.raises(ExecutorError, match="MFLOW_SLURM_ARRAY_MAX is 'many', not a whole number"):
        make_executor("slurm", environ)


@pytest.mark.parametrize("ids, text", [
    (["2", "3", "4", "5"], "2-5"),
    (["7", "2", "3", "9", "10", "11", "x1"], "7,2-3,9-11,x1"),
    (["1"], "1"),
])
def test_task_ids_of_an_array_are_written_compactly(ids, text):
    assert slurm_module.compact_ids(ids) == text
    assert slurm_module.expand_ids(text) == ids


def test_zz_a_job_past_its_time_limit_times_out(time_limited_job):
    """Last in the module: the job submitted first has had its minute meanwhile."""
    executor, job_id, submitted = time_limited_job
    try:
        state = wait_for(executor, [job_id], timeout=150)[job_id]
    finally:
        executor.cancel([job_id])
    assert (state.state, state.exit_code) == (base.FAILED, 143)
    assert state.reason.startswith("TIMEOUT: ran past its time limit of 1:00; its Slurm output: ")
    assert time.monotonic() - submitted >= 60
