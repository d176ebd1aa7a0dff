"""Slurm: a task attempt as one batch job running `mflow-task` with the cluster's Python.

Attempts submitted together that differ only in their task (a foreach's) go as one job
array: one sbatch instead of one each, and Slurm starts the array's jobs in one pass. Each
element is a job of its own to squeue and scancel (`123_4`); the array's comment maps
element indexes to task ids.

Slurm's own commands (sbatch, squeue, scancel, sinfo, scontrol, sacct) with timeouts; they
find the cluster as they always do (slurm.conf, SLURM_CONF). The nodes reach the store
(S3, or a folder on a shared filesystem) and mflow through the shared filesystem.
"""

import math
import os
import subprocess
import sys
import time
from urllib.parse import parse_qsl, urlencode

from mflow.errors import ExecutorError

from . import positive_float
from .base import CANCELLED, FAILED, JOB_PREFIX, PENDING, RUNNING, SUCCEEDED, Executor, JobInfo, JobState
from .base import job_name, parse_job_name

NAME = "slurm"
DEFAULT_POLL_SECONDS = 0.5
#: Seconds a Slurm command may take; a controller that does not answer takes about 10.
COMMAND_TIMEOUT = 30.0
#: Slurm's job states by what they mean to mflow; the finished ones carry their own reason.
WAITING_STATES = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD")
ACTIVE_STATES = ("RUNNING", "COMPLETING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING", "STOPPED")
FAILED_REASONS = {
    "FAILED": "exited with a failure",
    "TIMEOUT": "ran past its time limit",
    "NODE_FAIL": "its node failed",
    "OUT_OF_MEMORY": "used more memory than it asked for",
    "PREEMPTED": "was preempted by a job of higher priority",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "could not finish by its deadline",
    "REVOKED": "was revoked by another cluster of its federation",
    "SPECIAL_EXIT": "ended in a special exit state",
}
#: Most elements in one job array (Slurm's default MaxArraySize allows indexes up to 1000);
#: MFLOW_SLURM_ARRAY_MAX sets it, 1 (or 0) submits every attempt as a job of its own.
ARRAY_MAX = 1000
#: The fields poll and jobs read from squeue, `|`-separated; the free text comes last.
#: JobArrayID is a job's id as sbatch gave it, `123`, or an array element's `123_4`.
POLL_FIELDS = ("JobArrayID", "State", "exit_code", "TimeLimit", "MinMemory", "Reason", "STDOUT")
LIST_FIELDS = ("JobArrayID", "State", "exit_code", "TimeLimit", "MinMemory", "Name", "UserName", "SubmitTime", "Comment",
               "Reason", "STDOUT")
#: A driver inside a Slurm job (salloc, an interactive job) keeps these of its SLURM_*
#: variables for the jobs it submits; the others describe its own job, not the new one.
KEPT_SLURM_VARIABLES = ("SLURM_CONF", "SLURM_CLUSTERS", "SLURM_TIME_FORMAT")
GONE_WORDS = ("Invalid job id",)
DONE_WORDS = ("Invalid job id", "already completing or completed", "Job/step already")
UNREACHABLE_WORDS = ("Unable to contact slurm controller", "Socket timed out", "Connection refused")
#: What the job's Python runs: mflow-task's main(), without `-m` and its runpy (with
#: importlib.util and contextlib: about 3 ms of every job). sys.path[0] is the job's starting
#: folder, as `-m` makes it; -c's '' would follow every chdir (mflow-task's into the unpacked
#: package, a step's own).
TASK_PROGRAM = "import os, sys; sys.path[0] = sys.path[0] or os.getcwd(); from mflow.cli.task import main; main()"
#: The commands check() runs: both at once, their failures reported in this order.
PING = ("reach the Slurm controller", ["scontrol", "ping"])
LIST_PARTITIONS = ("list the Slurm partitions", ["sinfo", "--noheader", "--all", "-o", "%P|%a"])


def job_command(task, environ):
    """The job's program: mflow-task run by the cluster's shared Python (MFLOW_SLURM_PYTHON,
    else the driver's own), with the task's arguments."""
    python = environ.get("MFLOW_SLURM_PYTHON") or sys.executable
    return [python, "-c", TASK_PROGRAM] + [str(a) for a in task.arguments]


class SlurmExecutor(Executor):
    """Submits, polls, cancels and lists mflow's jobs on the Slurm cluster of this machine.

    Settings: MFLOW_SLURM_PARTITION and MFLOW_SLURM_ACCOUNT (defaults @slurm overrides),
    MFLOW_SLURM_PYTHON, MFLOW_SLURM_OUTPUT, MFLOW_SLURM_EXTRA and MFLOW_SLURM_POLL_SECONDS.
    """

    name = NAME

    def __init__(self, environ):
        super().__init__(environ)
        self.poll_interval = positive_float(environ, "MFLOW_SLURM_POLL_SECONDS", DEFAULT_POLL_SECONDS)
        self.output = environ.get("MFLOW_SLURM_OUTPUT") or _default_output(environ)
        self.extra = _split(environ.get("MFLOW_SLURM_EXTRA") or "")
        self.array_max = _array_max(environ)
        self._folders = set()  # output folders made already

    # --- Slurm's commands ---------------------------------------------------------------------

    def _run(self, action, args, stdin=None, environ=None, ok_words=()):
        """Run one Slurm command; its stdout. Every failure a one-line ExecutorError naming
        `action`; a failure whose message has one of `ok_words` is none (its stdout)."""
        return self._finish(self._start(action, args, stdin is not None, environ), stdin, ok_words)

    def _start(self, action, args, stdin=False, environ=None):
        """Start one Slurm command for _finish to wait for: (action, args, process).
        ExecutorError if it is not installed."""
        try:
            process = subprocess.Popen(
                args, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=environ if environ is not None else self.environ,
            )
        except FileNotFoundError as exc:
            raise ExecutorError(
                "cannot %s: Slurm's %s is not installed here (not on PATH)" % (action, args[0]),
                "Run where Slurm's client commands are installed (Debian: slurm-client), or add them to PATH",
                executor=NAME,
            ) from exc
        return action, args, process

    def _finish(self, started, stdin=None, ok_words=()):
        """Wait for a command _start started, as subprocess.run would; its stdout, or _run's errors."""
        action, args, process = started
        with process:
            try:
                stdout, stderr = process.communicate(stdin, timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                process.kill()
                process.wait()
                raise ExecutorError(
                    "cannot %s: Slurm's %s did not answer within %.0f s" % (action, args[0], COMMAND_TIMEOUT),
                    "Check that the Slurm controller is up (scontrol ping)", executor=NAME,
                ) from exc
            except BaseException:
                process.kill()
                raise
        if process.returncode != 0:
            said = _one_line(stderr) or _one_line(stdout) or "exit status %d" % process.returncode
            if any(word in said for word in ok_words):
                return stdout
            raise ExecutorError("cannot %s: %s said: %s" % (action, args[0], said), _hint(said), executor=NAME)
        return stdout

    def _squeue(self, action, fields, *args):
        """[{field: value}] of the jobs squeue lists with `args`, an array's elements one by
        one; a job's id (JobArrayID) is under "JobID"."""
        out = self._run(action, ["squeue", "--noheader", "--array", "--Format=" + ",".join(f + ":|" for f in fields)]
                        + list(args), ok_words=GONE_WORDS)
        names = ["JobID" if f == "JobArrayID" else f for f in fields]
        rows = []
        for line in out.splitlines():
            # Every field ends in `|`, the last one too.
            values = (line[:-1] if line.endswith("|") else line).split("|", len(fields) - 1)
            if len(values) == len(fields):
                rows.append(dict(zip(names, (v.strip() for v in values))))
        return rows

    # --- before the run -----------------------------------------------------------------------

    def check(self, store, options_by_step):
        if not _installed("sbatch", self.environ.get("PATH")):
            raise ExecutorError(
                "Slurm's sbatch is not installed here, so @slurm steps cannot be submitted",
                "Run on a machine that can submit to the cluster (a login node), or add Slurm's commands to PATH",
                executor=NAME,
            )
        listed = self._ping_and_list()
        partitions = {}
        for line in listed.splitlines():
            name, _, availability = line.strip().partition("|")
            if name:
                partitions[name.rstrip("*")] = (availability, name.endswith("*"))
        wanted = {}  # partition (None: the cluster's default) -> the steps that use it
        for step, options in sorted(options_by_step.items()):
            wanted.setdefault(self.partition(options), []).append(step)
        for partition, steps in sorted(wanted.items(), key=lambda item: item[0] or ""):
            which = "step%s %s" % ("s" if len(steps) > 1 else "", ", ".join(steps))
            if partition is None:
                if not any(default for _, default in partitions.values()):
                    raise ExecutorError(
                        "%s names no Slurm partition and the cluster has no default one" % which,
                        "Give @slurm(partition=...) or set MFLOW_SLURM_PARTITION (partitions: %s)"
                        % ", ".join(sorted(partitions)), executor=NAME,
                    )
            elif partition not in partitions:
                raise ExecutorError(
                    "Slurm partition %s (%s) does not exist" % (partition, which),
                    "Use one of: %s" % ", ".join(sorted(partitions)), executor=NAME,
                )
            elif partitions[partition][0] != "up":
                raise ExecutorError(
                    "Slurm partition %s (%s) is %s, so its jobs would not start"
                    % (partition, which, partitions[partition][0]),
                    "Use another partition, or ask the cluster's admins", executor=NAME,
                )

    def _ping_and_list(self):
        """sinfo's list of partitions, asked while scontrol ping asks for the controller (the
        two take as long as one). A failure of the ping comes first, as when one ran after
        the other; then sinfo's."""
        ping = self._start(*PING)
        try:
            listing = self._start(*LIST_PARTITIONS)
        except Exception:
            self._finish(ping)
            raise
        try:
            self._finish(ping)
        except BaseException:
            with listing[2] as process:
                process.kill()
            raise
        return self._finish(listing)

    def partition(self, options):
        return options.get("partition") or self.environ.get("MFLOW_SLURM_PARTITION") or None

    # --- submitting ---------------------------------------------------------------------------

    def sbatch_options(self, task):
        """sbatch's options for one RemoteTask, without the job's script."""
        return (["--parsable", "--job-name=" + task.job_name, "--comment=" + job_comment(task.labels),
                 "--output=" + self._output_path(task)] + self._shared_options(task))

    def _shared_options(self, task):
        """The options that do not name the task: the same for every element of an array."""
        options = task.options or {}
        resources = task.resources or {}
        # mflow retries a task itself, as a new attempt with a new job.
        args = ["--export=ALL", "--no-requeue"]
        partition = self.partition(options)
        if partition:
            args.append("--partition=" + partition)
        account = options.get("account") or self.environ.get("MFLOW_SLURM_ACCOUNT")
        if account:
            args.append("--account=" + account)
        if options.get("qos"):
            args.append("--qos=" + options["qos"])
        if options.get("constraint"):
            args.append("--constraint=" + options["constraint"])
        args.append("--cpus-per-task=%d" % math.ceil(resources.get("cpu") or options.get("cpus") or 1))
        memory = resources.get("memory") or options.get("memory")
        if memory:
            args.append("--mem=%dM" % math.ceil(memory))
        gpus = resources.get("gpu") or options.get("gpus")
        if gpus:
            args.append("--gres=gpu:%d" % gpus)
        minutes = time_limit_minutes(task.timeout, options.get("time"))
        if minutes:
            args.append("--time=%d" % minutes)
        return args + self.extra + list(options.get("extra") or ())

    def _output_path(self, task, array=False):
        """Where the job's own output goes: FOLDER/FLOW/RUN_ID/STEP.TASK.ATTEMPT.JOBID.out, for
        an array's element STEP.array.ATTEMPT.ARRAYID_INDEX.out (the store gets the task's
        logs; this keeps what happens before mflow-task starts)."""
        if self.output == os.devnull:
            return os.devnull
        folder = os.path.join(self.output, task.flow, task.run_id)
        if folder not in self._folders:
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise ExecutorError(
                    "cannot create the folder for Slurm job output %s: %s" % (folder, exc.strerror),
                    "Set MFLOW_SLURM_OUTPUT to a folder every node can write, or to /dev/null", executor=NAME,
                ) from exc
            self._folders.add(folder)
        if array:
            return os.path.join(folder, "%s.array.%d.%%A_%%a.out" % (task.step, task.attempt))
        return os.path.join(folder, "%s.%s.%d.%%j.out" % (task.step, task.task_id, task.attempt))

    def job_environment(self, task):
        """The environment sbatch runs in (and, by --export=ALL, the job's): the driver's own
        plus the task's, without the driver's own job's SLURM_* variables."""
        environ = {k: v for k, v in self.environ.items()
                   if not k.startswith("SLURM_") or k in KEPT_SLURM_VARIABLES}
        environ.update({k: str(v) for k, v in (task.environment or {}).items()})
        return environ

    def submit(self, task):
        script = "#!/bin/sh\nexec %s\n" % _shell_join(job_command(task, self.environ))
        return self._sbatch(task.job_name, self.sbatch_options(task), script, self.job_environment(task))

    def submit_many(self, tasks):
        """Submit RemoteTasks; their job ids, in order. Tasks that differ only in their task
        id go as job arrays of up to ARRAY_MAX elements."""
        job_ids = [None] * len(tasks)
        groups = {}
        for index, task in enumerate(tasks):
            environment = self.job_environment(task)
            key = (task.flow, task.run_id, task.step, task.attempt, task.user, tuple(self._shared_options(task)),
                   tuple(sorted(environment.items())))
            groups.setdefault(key, []).append(index)
        for indexes in groups.values():
            for start in range(0, len(indexes), self.array_max):
                chunk = indexes[start:start + self.array_max]
                if len(chunk) == 1:
                    job_ids[chunk[0]] = self.submit(tasks[chunk[0]])
                    continue
                array_id = self._submit_array([tasks[i] for i in chunk])
                for element, index in enumerate(chunk):
                    job_ids[index] = "%s_%d" % (array_id, element)
        return job_ids

    def _submit_array(self, tasks):
        """One job array running `tasks` (alike but for their task ids); the array's job id.
        Element i runs tasks[i], picked by the script from SLURM_ARRAY_TASK_ID."""
        first = tasks[0]
        name = array_name(first)
        labels = dict(first.labels)
        del labels["mflow.task"]
        labels["mflow.tasks"] = compact_ids(task.task_id for task in tasks)
        lines = ["#!/bin/sh", 'case "$SLURM_ARRAY_TASK_ID" in']
        lines += ["%d) exec %s ;;" % (i, _shell_join(job_command(t, self.environ))) for i, t in enumerate(tasks)]
        lines += ["esac", 'echo "mflow: job array %s has no task for index $SLURM_ARRAY_TASK_ID" >&2' % name,
                  "exit 1", ""]
        options = (["--parsable", "--array=0-%d" % (len(tasks) - 1), "--job-name=" + name,
                    "--comment=" + job_comment(labels), "--output=" + self._output_path(first, array=True)]
                   + self._shared_options(first))
        return self._sbatch(name, options, "\n".join(lines), self.job_environment(first))

    def _sbatch(self, name, options, script, environ):
        out = self._run("submit job %s" % name, ["sbatch"] + options, stdin=script, environ=environ)
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise ExecutorError(
                "cannot submit job %s: sbatch answered %r instead of a job id" % (name, out.strip()[:200]),
                "Check the cluster's sbatch (sbatch --parsable --wrap true)", executor=NAME,
            )
        return job_id

    # --- watching, stopping, listing ----------------------------------------------------------

    def poll(self, job_ids):
        job_ids = [str(i) for i in job_ids]
        if not job_ids:
            return {}
        # --user has the controller pick this user's jobs itself instead of sending every job
        # of the cluster to squeue to filter: the driver's jobs are its user's. Jobs it misses
        # (another user's, for mflow batch kill) are asked about without it.
        found = {}
        for user in (["--user=%d" % os.getuid()], []):
            wanted = [i for i in job_ids if i not in found]
            if wanted:
                rows = self._squeue("ask Slurm about %d job(s)" % len(wanted), POLL_FIELDS, "--states=all", *user,
                                    "--jobs=" + ",".join(wanted))
                found.update((row["JobID"], job_state(row)) for row in rows if row["JobID"] in wanted)
        gone = [i for i in job_ids if i not in found]
        if gone:
            found.update(self._accounted(gone))
        return found

    def _accounted(self, job_ids):
        """States of jobs squeue no longer shows (finished more than MinJobAge ago): from
        sacct where the cluster keeps accounting, else FAILED saying Slurm forgot them."""
        found = {}
        try:
            out = self._run("ask Slurm's accounting about %d job(s)" % len(job_ids),
                            ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs=" + ",".join(job_ids),
                             "--format=JobID,JobIDRaw,State,ExitCode,Timelimit"])
        except ExecutorError:
            out = ""  # accounting is off (no slurmdbd): nothing more to learn
        for line in out.splitlines():
            values = line.split("|")
            # An array's element is `123_4` in JobID; a plain job is its JobIDRaw as well.
            job_id = next((v for v in values[:2] if v in job_ids), None) if len(values) == 5 else None
            if job_id is not None:
                state = values[2].split()[0] if values[2] else ""
                code, _, signal = values[3].partition(":")
                found[job_id] = job_state({"JobID": job_id, "State": state, "TimeLimit": values[4],
                                           "exit_code": "%s:%s" % (code, signal or "0")})
        for job_id in job_ids:
            if job_id not in found:
                found[job_id] = JobState(job_id, FAILED, None, "Slurm no longer knows job %s (it finished longer "
                                         "ago than the cluster's MinJobAge, and the cluster keeps no accounting)"
                                         % job_id)
        return found

    def cancel(self, job_ids, reason="cancelled by mflow"):
        job_ids = [str(i) for i in job_ids]
        if job_ids:
            # scancel stops a job in any state; one that has finished is no error.
            self._run("cancel %d Slurm job(s)" % len(job_ids), ["scancel"] + job_ids, ok_words=DONE_WORDS)

    def jobs(self, job_filter):
        states = [] if job_filter.active_only else ["--states=all"]
        infos = []
        for row in self._squeue("list Slurm jobs", LIST_FIELDS, *states):
            if not row["Name"].startswith(JOB_PREFIX + "-"):
                continue
            info = job_info(row)
            if job_filter.matches(info):
                infos.append(info)
        return sorted(infos, key=lambda i: (i.submitted_at or "", i.name))


def job_comment(labels):
    """The job's identity as its Slurm comment: flow=F&run=R&step=S&task=T&attempt=A&user=U
    (a job array: tasks=2-21 or 2-5,9, its elements' task ids in index order)."""
    return urlencode([(key.split(".", 1)[-1], value) for key, value in labels.items()])


def array_name(task):
    """A job array's name: its tasks' job name with `array` for the task id."""
    return job_name(task.flow, task.run_id, task.step, "array", task.attempt)


def compact_ids(task_ids):
    """Task ids as a comment carries them: runs of consecutive numbers as `first-last`."""
    parts = []
    for task_id in task_ids:
        text = str(task_id)
        last = parts[-1] if parts else None
        if last is not None and text.isdigit() and last[1].isdigit() and int(text) == int(last[1]) + 1:
            parts[-1] = (last[0], text)
        else:
            parts.append((text, text))
    return ",".join(first if first == last else "%s-%s" % (first, last) for first, last in parts)


def expand_ids(text):
    """The task ids compact_ids wrote, in order."""
    ids = []
    for part in (text or "").split(","):
        first, _, last = part.partition("-")
        if last and first.isdigit() and last.isdigit():
            ids.extend(str(n) for n in range(int(first), int(last) + 1))
        elif part:
            ids.append(part)
    return ids


def time_limit_minutes(timeout_seconds, decorator_minutes):
    """The job's --time in whole minutes (Slurm's unit, at least 1): the smaller of the task's
    timeout and @slurm(time=...); None when neither is set."""
    limits = [v / 60.0 for v in (timeout_seconds,) if v] + [v for v in (decorator_minutes,) if v]
    return max(1, int(math.ceil(min(limits)))) if limits else None


def job_state(row):
    """The JobState of one job from squeue's (or sacct's) fields."""
    job_id, state = row["JobID"], row.get("State", "").split()[0] if row.get("State") else ""
    if state in WAITING_STATES:
        return JobState(job_id, PENDING)
    if state in ACTIVE_STATES:
        return JobState(job_id, RUNNING)
    exit_code, signal = _exit_status(row.get("exit_code"))
    if state == "COMPLETED":
        return JobState(job_id, SUCCEEDED, exit_code if exit_code is not None else 0)
    if signal:
        exit_code = 128 + signal  # as a shell reports a process a signal ended
    if state == "CANCELLED":
        return JobState(job_id, CANCELLED, exit_code, "CANCELLED: cancelled in Slurm (scancel)")
    words = FAILED_REASONS.get(state, "ended in state %s" % (state or "unknown"))
    if state == "FAILED" and exit_code is not None:
        words = "exited with code %d" % exit_code
    elif state == "TIMEOUT" and row.get("TimeLimit"):
        words += " of %s" % row["TimeLimit"]
    elif state == "OUT_OF_MEMORY" and row.get("MinMemory"):
        words += " (%s)" % row["MinMemory"]
    reason = "%s: %s" % (state or "UNKNOWN", words)
    output = _output_of(row)
    if output:
        reason += "; its Slurm output: %s" % output
    return JobState(job_id, FAILED, exit_code, reason)


def job_info(row):
    """The JobInfo of one of mflow's jobs from squeue's fields: identity from its comment,
    else from its name; the user is mflow's (from the comment), else Slurm's."""
    from urllib.parse import parse_qsl

    labels = dict(parse_qsl(row.get("Comment") or "")) if row.get("Comment") not in (None, "", "(null)") else {}
    identity = parse_job_name(row["Name"]) or (None,) * 5
    if "tasks" in labels:  # an element of a job array: its task by its index
        _, _, index = row["JobID"].partition("_")
        tasks = expand_ids(labels["tasks"])
        labels["task"] = tasks[int(index)] if index.isdigit() and int(index) < len(tasks) else None
        identity = identity[:3] + (None,) + identity[4:]
    attempt = labels.get("attempt")
    state = job_state(row)
    return JobInfo(
        executor=NAME,
        job_id=row["JobID"],
        name=row["Name"],
        flow=labels.get("flow") or identity[0],
        run_id=labels.get("run") or identity[1],
        step=labels.get("step") or identity[2],
        task_id=labels.get("task") or identity[3],
        attempt=int(attempt) if attempt and attempt.isdigit() else identity[4],
        user=labels.get("user") or row.get("UserName") or None,
        state=state.state,
        submitted_at=_utc(row.get("SubmitTime")),
        reason=state.reason or (row.get("Reason") if row.get("Reason") not in ("None", "") else None),
    )


def _exit_status(text):
    """(exit code, signal) from squeue's raw wait status (`768`) or sacct's `3:0`."""
    text = (text or "").strip()
    try:
        if ":" in text:
            code, signal = text.split(":", 1)
            return int(code), int(signal)
        status = int(text)
    except ValueError:
        return None, None
    return (status >> 8) & 0xFF, status & 0x7F


def _output_of(row):
    """The job's Slurm output file, its %j and %x filled in; None for /dev/null."""
    path = row.get("STDOUT") or ""
    if not path or path == os.devnull or path == "(null)":
        return None
    array_id, _, index = row["JobID"].partition("_")
    return (path.replace("%j", row["JobID"]).replace("%A", array_id).replace("%a", index or "%a")
            .replace("%x", row.get("Name") or "%x"))


def _utc(text):
    """Slurm's local `2024-05-01T12:00:00` as ISO 8601 in UTC; None when unknown."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))))
    except (TypeError, ValueError, OverflowError):
        return None


def _one_line(text):
    # scontrol ping frames its news in lines of asterisks.
    lines = [line.strip() for line in (text or "").splitlines() if line.strip() and not line.startswith("*")]
    return " ".join(lines[-2:])[:500]


def _hint(said):
    if any(word in said for word in UNREACHABLE_WORDS) or "DOWN" in said:
        return "Check that slurmctld is running and that SLURM_CONF (or /etc/slurm/slurm.conf) names it: scontrol ping"
    if "partition" in said.lower():
        return "Give an existing partition with @slurm(partition=...) or MFLOW_SLURM_PARTITION (sinfo lists them)"
    if "node configuration is not available" in said:
        return "Ask for fewer CPUs, less memory or no GPUs than the partition's nodes have (sinfo -N -l)"
    if "account" in said.lower() or "qos" in said.lower():
        return "Give an account and QOS you may use: @slurm(account=..., qos=...) or MFLOW_SLURM_ACCOUNT"
    return "Check the @slurm settings and the cluster (sinfo, squeue)"


# Small exact stand-ins, held to the originals by the tests: for shutil.which (shutil imports
# bz2 and lzma: ~4 ms on the driver's way to its first sbatch) and shlex's quoting.


def _installed(program, path):
    """Whether shutil.which(program, path=path) finds `program` (a bare name)."""
    if path is None:
        path = os.environ.get("PATH")
        if path is None:
            try:
                path = os.confstr("CS_PATH")
            except (AttributeError, ValueError):
                path = os.defpath
    if not path:
        return False
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder, program)
        if os.path.exists(candidate) and os.access(candidate, os.F_OK | os.X_OK) and not os.path.isdir(candidate):
            return True
    return False


_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def _shell_join(words):
    """shlex.join(words): each word quoted for sh where it needs it."""
    return " ".join(_shell_quote(word) for word in words)


def _shell_quote(word):
    if not word:
        return "''"
    if all(c in _SHELL_SAFE for c in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def _split(text):
    """shlex.split(text), imported only when there is something to split."""
    if not text:
        return []
    import shlex

    return shlex.split(text)


def _array_max(environ):
    text = environ.get("MFLOW_SLURM_ARRAY_MAX", "").strip()
    if not text:
        return ARRAY_MAX
    if not text.isdigit():
        raise ExecutorError(
            "MFLOW_SLURM_ARRAY_MAX is %r, not a whole number" % text,
            "Set it to the most tasks one Slurm job array may hold (1 or 0: no arrays)", executor=NAME,
        )
    return max(1, int(text))


def _default_output(environ):
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "mflow", "slurm")


EXECUTOR_CLASS = SlurmExecutor
