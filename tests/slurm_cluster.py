"""A real one-node Slurm cluster for the tests and the bench: munged, slurmctld and slurmd.

Everything lives in one temporary folder (config, munge key and socket, state, spool, logs)
with free 127.0.0.1 ports, so two test runs on one machine never meet; each daemon runs in
the foreground and is stopped by its PID. If the cluster does not start, the tests that need
it fail (never skip): Slurm is part of the suite. Needs Debian's slurm-wlm and munge
(scripts/system-packages installs them) and root, as slurmd runs jobs as their users.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
from s3_server import _die_with_parent, free_ports

START_TIMEOUT = 30.0
#: Where the daemons are looked for: PATH, then /usr/sbin (which a user's PATH may lack).
DAEMON_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
#: The partitions every test cluster has: `debug` (the default) and `other`.
PARTITIONS = ("debug", "other")
#: How many jobs may share one core: many small tasks on a small machine.
OVERSUBSCRIBE = 32

SLURM_CONF = """\
# A one-node test cluster made by tests/slurm_cluster.py; everything in {base}.
ClusterName={cluster}
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={base}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes (Slurm's default), as on most clusters.
MinJobAge=300
# Seconds between SIGTERM and SIGKILL when a job is cancelled or runs out of time.
KillWait=2
# Start a job as soon as it is submitted: about 1 s instead of 3.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:{share}
PartitionName=other Nodes=ALL MaxTime=INFINITE State=UP OverSubscribe=FORCE:{share}
"""


class ClusterStartError(RuntimeError):
    """The cluster did not start; the message holds the daemons' log tails."""


class SlurmCluster:
    """A running one-node cluster: `env` reaches it (SLURM_CONF), `stop()` ends it."""

    def __init__(self, base):
        self.base = base
        self.conf = os.path.join(base, "slurm.conf")
        self.env = {"SLURM_CONF": self.conf}
        self.node = short_hostname()
        self.processes = {}  # daemon name -> Popen

    def command(self, *args, check=True, timeout=30):
        """Run a Slurm client command against this cluster; its CompletedProcess."""
        return subprocess.run(
            list(args), env=dict(os.environ, **self.env), capture_output=True, text=True, check=check,
            timeout=timeout,
        )

    def job_ids(self, states="all"):
        """Ids of the cluster's jobs in `states` (squeue's --states)."""
        out = self.command("squeue", "-h", "--states=%s" % states, "-o", "%i").stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def unreachable_conf(self, path):
        """Write to `path` this cluster's slurm.conf with a controller port nobody listens on."""
        with open(self.conf) as stream:
            lines = stream.read().splitlines()
        port = "SlurmctldPort=%d" % free_ports(1)[0]
        with open(path, "w") as stream:
            stream.write("\n".join(port if line.startswith("SlurmctldPort=") else line for line in lines) + "\n")
        return str(path)

    def log_tail(self, lines=20):
        tails = []
        for name in ("munged", "slurmctld", "slurmd"):
            path = os.path.join(self.base, name + ".log")
            try:
                with open(path, errors="replace") as stream:
                    text = "".join(stream.readlines()[-lines:])
            except OSError:
                text = "(no log)\n"
            tails.append("--- %s (%s)\n%s" % (name, path, text))
        return "".join(tails)

    def _start(self, name, args):
        # In the foreground each daemon logs to its stderr: NAME.log in the folder.
        log = open(os.path.join(self.base, name + ".log"), "ab")
        try:
            self.processes[name] = subprocess.Popen(
                [daemon(args[0])] + args[1:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.base, env=dict(os.environ, **self.env), start_new_session=True, preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def _check_alive(self, waiting_for):
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ClusterStartError(
                    "%s exited with %s while waiting for %s:\n%s"
                    % (name, process.returncode, waiting_for, self.log_tail())
                )

    def _wait(self, waiting_for, ready):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive(waiting_for)
            if ready():
                return
            time.sleep(0.1)
        raise ClusterStartError("%s within %.0f s:\n%s" % (waiting_for, START_TIMEOUT, self.log_tail()))

    def _node_idle(self):
        try:
            result = self.command("sinfo", "-h", "-N", "-o", "%N %t", check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0 and "%s idle" % self.node in result.stdout.splitlines()

    def stop(self):
        """Cancel every job, stop the daemons by PID, and remove the folder."""
        controller = self.processes.get("slurmctld")
        if controller is not None and controller.poll() is None:
            try:
                ids = self.job_ids("PENDING,RUNNING,SUSPENDED,COMPLETING")
                if ids:
                    self.command("scancel", *ids, check=False, timeout=10)
                    deadline = time.monotonic() + 10
                    while self.job_ids("RUNNING,COMPLETING") and time.monotonic() < deadline:
                        time.sleep(0.2)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for pid in self._job_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def _job_processes(self):
        """PIDs of slurmstepd and job processes of this cluster that outlived the daemons:
        their environment names this cluster's slurm.conf."""
        marker = ("SLURM_CONF=%s" % self.conf).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % entry, "rb") as stream:
                    environ = stream.read().split(b"\0")
                with open("/proc/%s/comm" % entry, "rb") as stream:
                    comm = stream.read().strip()
            except OSError:
                continue
            if marker in environ and (comm == b"slurmstepd" or any(v.startswith(b"SLURM_JOB_ID=") for v in environ)):
                found.append(int(entry))
        return found


def daemon(name):
    """The path of a Slurm or munge program: on PATH, or in /usr/sbin; None if neither."""
    return shutil.which(name, path=DAEMON_PATH)


def short_hostname():
    """The node's name as slurmd finds it: the host name up to its first dot."""
    return socket.gethostname().split(".")[0]


def node_line():
    """`NodeName=... CPUs=... RealMemory=...`: this machine as `slurmd -C` reports it."""
    out = subprocess.run([daemon("slurmd"), "-C"], capture_output=True, text=True, check=True, timeout=30).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    return line.strip()


def start_cluster(base=None):
    """Start a one-node cluster in `base` (a new temporary folder by default); the running
    SlurmCluster once its node is idle. ClusterStartError, with the logs, if it is not."""
    missing = [name for name in ("munged", "slurmctld", "slurmd", "sbatch") if daemon(name) is None]
    if missing:
        raise ClusterStartError(
            "%s not installed: install Debian's slurm-wlm and munge (scripts/system-packages does)" % ", ".join(missing)
        )
    if os.geteuid() != 0:
        raise ClusterStartError("the test Slurm cluster runs its daemons as root: run the Slurm tests as root")
    try:
        node = node_line()
    except (subprocess.SubprocessError, OSError, StopIteration) as error:
        raise ClusterStartError("`slurmd -C` cannot describe this machine: %s" % error) from error
    base = base or tempfile.mkdtemp(prefix="mflow-slurm-")
    munge = os.path.join(base, "munge")
    for folder in (munge, os.path.join(base, "state"), os.path.join(base, "spool")):
        os.makedirs(folder, exist_ok=True)
    # munged wants its socket's folders open to everyone (only its key private).
    os.chmod(base, 0o755)
    os.chmod(munge, 0o755)
    key = os.path.join(munge, "munge.key")
    with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as stream:
        stream.write(os.urandom(1024))
    ctld_port, slurmd_port = free_ports(2)
    cluster = SlurmCluster(base)
    with open(cluster.conf, "w") as stream:
        stream.write(SLURM_CONF.format(
            base=base, cluster="mflow" + uuid.uuid4().hex[:8], ctld_port=ctld_port, slurmd_port=slurmd_port,
            node=node, share=OVERSUBSCRIBE,
        ))
    try:
        cluster._start("munged", [
            "munged", "--foreground", "--socket=%s" % os.path.join(munge, "munge.socket"), "--key-file=%s" % key,
            "--pid-file=%s" % os.path.join(munge, "munged.pid"), "--seed-file=%s" % os.path.join(munge, "munged.seed"),
            "--num-threads=4",
        ])
        cluster._wait("munged to create its socket", lambda: os.path.exists(os.path.join(munge, "munge.socket")))
        cluster._start("slurmctld", ["slurmctld", "-D", "-i"])
        cluster._start("slurmd", ["slurmd", "-D"])
        cluster._wait("the node to be idle in sinfo", cluster._node_idle)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster():
    """The one-node Slurm cluster shared by the whole test run (started on first use)."""
    try:
        cluster = start_cluster()
    except ClusterStartError as error:
        pytest.fail("the test Slurm cluster did not start: %s" % error, pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
