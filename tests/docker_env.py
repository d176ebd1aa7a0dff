"""A Docker daemon of the test run's own, and an image with mflow in it, built offline.

Fixtures (session-scoped; import them into a test module, or into conftest.py to share one daemon
between modules):

  docker_daemon -> DockerDaemon
      .env        {"DOCKER_HOST": "unix://..."}: give it to the docker CLI, the docker SDK
                  (docker.from_env()) or a server that starts containers (moto's Batch)
      .run(image, argv, env=None, network="host", timeout=300)
                  run one container to its end (removed after): a CompletedProcess with
                  returncode, stdout and stderr as text
      .docker(*args, timeout=300)
                  the docker CLI against this daemon: a CompletedProcess (check=True)
      .with_env(image, name, env)
                  a new image `name`: `image` with these ENV variables (e.g. the credentials
                  a job role would give a real job), made without a registry
  mflow_image -> str
      the name of a local image holding this machine's Python (its own interpreter and
      standard library, copied) with mflow and its requirements installed; `mflow`,
      `mflow-task`, `mflow-meta`, `mflow-store`, `mflow-graph` and `python3` are on its
      PATH. No shell. Containers share the host's network (network="host") to reach the
      test servers on 127.0.0.1.

The daemon is Debian's docker.io (scripts/system-packages installs it), started with its data
root, exec root, pidfile and socket in a temporary folder and no bridge or iptables, so it
needs no network; it is stopped by its PID at the end. The image is `docker import` of a root
file system tarball made here, kept in pytest's cache folder and made again only when its
inputs (the files that go in it) changed. If the daemon cannot start or the image cannot be
built, every test that needs them fails (never skips).
"""

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest
from s3_server import S3Server, _die_with_parent

START_TIMEOUT = 60.0
IMAGE_NAME = "mflow-test"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the image leaves out of the standard library: tests, GUIs, build files.
SKIPPED_STDLIB = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "unittest",
                  "pydoc_data"}
EXECUTABLES = ("mflow", "mflow-task", "mflow-meta", "mflow-store", "mflow-graph")


class DockerDaemon:
    """A running dockerd: its socket, the environment that reaches it, ways to run containers."""

    def __init__(self, process, folder, socket_path, log_path):
        self.process = process
        self.pid = process.pid
        self.folder = folder
        self.host = "unix://" + socket_path
        self.log_path = log_path
        self.env = {"DOCKER_HOST": self.host}

    def docker(self, *args, timeout=300, check=True, input=None):
        command = [docker_cli()] + [str(a) for a in args]
        result = subprocess.run(command, env=dict(os.environ, **self.env), capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            pytest.fail("docker %s failed (%d):\n%s%s" % (" ".join(command[1:3]), result.returncode, result.stdout,
                                                          result.stderr))
        return result

    def run(self, image, argv, env=None, network="host", timeout=300):
        args = ["run", "--rm", "--network", network]
        for key, value in sorted((env or {}).items()):
            args += ["-e", "%s=%s" % (key, value)]
        return self.docker(*(args + [image] + list(argv)), timeout=timeout, check=False)

    def with_env(self, image, name, env):
        if self.docker("image", "inspect", name, check=False).returncode == 0:
            return name
        container = self.docker("create", image, "true").stdout.strip()
        try:
            changes = []
            for key, value in sorted(env.items()):
                changes += ["--change", "ENV %s=%s" % (key, value)]
            self.docker("commit", *changes, container, name)
        finally:
            self.docker("rm", container, check=False)
        return name

    # A subprocess with a log file, as the S3 server is.
    log_tail = S3Server.log_tail

    def stop(self):
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(10)
        self._unmount()

    def _unmount(self):
        """Undo the mounts dockerd leaves behind (its network namespace), so the folder can go."""
        try:
            with open("/proc/mounts") as mounts:
                points = [line.split()[1] for line in mounts]
        except OSError:
            return
        for point in reversed(points):
            if point.startswith(self.folder.rstrip("/") + "/"):
                subprocess.run(["umount", "-l", point], capture_output=True)


def docker_cli():
    found = shutil.which("docker")
    if not found:
        pytest.fail("the docker command is not installed: run scripts/system-packages (it installs docker.io)")
    return found


def dockerd_binary():
    for path in (shutil.which("dockerd"), "/usr/sbin/dockerd", "/usr/bin/dockerd"):
        if path and os.access(path, os.X_OK):
            return path
    pytest.fail("dockerd is not installed: run scripts/system-packages (it installs Debian's docker.io)")


def start_daemon(folder):
    """Start dockerd with everything of its own under `folder`; a DockerDaemon once it answers."""
    os.makedirs(folder, exist_ok=True)
    socket_path = os.path.join(folder, "docker.sock")
    log_path = os.path.join(folder, "dockerd.log")
    args = [
        dockerd_binary(),
        "--data-root", os.path.join(folder, "data"),
        "--exec-root", os.path.join(folder, "exec"),
        "--pidfile", os.path.join(folder, "docker.pid"),
        "--host", "unix://" + socket_path,
        "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
        "--containerd-namespace", "mflow-test-%d" % os.getpid(),
        "--containerd-plugins-namespace", "mflow-test-plugins-%d" % os.getpid(),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                   start_new_session=True, preexec_fn=_die_with_parent)
    daemon = DockerDaemon(process, folder, socket_path, log_path)
    try:
        _wait_until_ready(daemon)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def _wait_until_ready(daemon):
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail("dockerd exited with %s before it answered:\n%s" % (daemon.process.returncode,
                                                                          daemon.log_tail()))
        if os.path.exists(daemon.host[len("unix://"):]):
            result = daemon.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
            if result.returncode == 0:
                return
            last = result.stderr
        time.sleep(0.2)
    pytest.fail("dockerd did not answer within %.0f s (%s):\n%s" % (START_TIMEOUT, last.strip(), daemon.log_tail()))


# --- the image -----------------------------------------------------------------------------


def image_files():
    """[(path on this machine, path in the image)] of everything the image holds."""
    import sysconfig
    from importlib import metadata

    prefix = sys.base_prefix
    python = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths(vars={"installed_base": prefix, "base": prefix})["stdlib"]
    site = sysconfig.get_paths()["purelib"]  # this venv's: where mflow's requirements are
    image_site = os.path.join(stdlib, "site-packages")
    files = [(python, python)]
    for name in sorted(os.listdir(stdlib)):
        if name in SKIPPED_STDLIB or name.startswith("config-"):
            continue
        files.extend(_tree(os.path.join(stdlib, name), os.path.join(stdlib, name)))
    for dist in _requirements("mflow", metadata):
        for entry in dist.files or ():
            source = os.path.realpath(os.path.join(site, str(entry)))
            if os.path.isfile(source) and not str(entry).startswith(".."):
                files.append((source, os.path.join(image_site, str(entry))))
    files.extend(_tree(os.path.join(REPO, "mflow"), os.path.join(image_site, "mflow")))
    libraries = set()
    for source, _ in files:
        if source == python or (".so" in os.path.basename(source) and "_tkinter" not in source):
            libraries.update(_shared_libraries(source))
    files.extend((library, library) for library in sorted(libraries))
    return python, image_site, files


def _tree(source, target):
    found = []
    if os.path.isfile(source):
        return [(source, target)]
    for root, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d != "tests")
        for name in sorted(names):
            path = os.path.join(root, name)
            found.append((path, os.path.join(target, os.path.relpath(path, source))))
    return found


def _requirements(name, metadata):
    """The distributions `name` needs (its install_requires, transitively), not itself."""
    import re

    seen, todo, found = {name.lower()}, [name], []
    while todo:
        for requirement in metadata.distribution(todo.pop()).requires or ():
            if "extra ==" in requirement:
                continue
            dep = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")
            if dep in seen:
                continue
            seen.add(dep)
            try:
                dist = metadata.distribution(dep)
            except metadata.PackageNotFoundError:
                continue  # an environment marker left it out here
            todo.append(dep)
            found.append(dist)
    return found


def _shared_libraries(path):
    result = subprocess.run(["ldd", path], capture_output=True, text=True)
    found = set()
    for line in result.stdout.splitlines():
        parts = line.split()
        if "=>" in parts and parts.index("=>") + 1 < len(parts) and parts[parts.index("=>") + 1].startswith("/"):
            found.add(parts[parts.index("=>") + 1])
        elif parts and parts[0].startswith("/"):
            found.add(parts[0])  # the dynamic loader itself
    return found


#: Part of the image's cache key: change it when write_rootfs() changes.
ROOTFS_FORMAT = "2"


def _digest(files):
    digest = hashlib.sha256((ROOTFS_FORMAT + sys.version).encode("utf-8"))
    for source, target in files:
        info = os.stat(source)
        digest.update(("%s\0%s\0%d\0%d\n" % (source, target, info.st_size, info.st_mtime_ns)).encode("utf-8"))
    return digest.hexdigest()[:16]


def write_rootfs(path, python, image_site, files):
    """The image's root file system as a tarball at `path` (written next to it, then moved)."""
    partial = path + ".partial"
    with tarfile.open(partial, "w", dereference=True) as tar:
        added = set()
        for source, target in files:
            if target in added:
                continue
            added.add(target)
            tar.add(source, arcname=target.lstrip("/"), recursive=False)
        for name in EXECUTABLES:
            with open(os.path.join(REPO, "bin", name), "rb") as script:
                body = script.read().split(b"\n", 1)[1]
            _add_bytes(tar, "usr/local/bin/" + name, b"#!" + python.encode("utf-8") + b"\n" + body, mode=0o755)
        link = tarfile.TarInfo("usr/local/bin/python3")
        link.type, link.linkname = tarfile.SYMTYPE, python
        tar.addfile(link)
        _add_bytes(tar, os.path.join(image_site, "mflow-0.0.0.dist-info", "METADATA").lstrip("/"),
                   b"Metadata-Version: 2.1\nName: mflow\nVersion: 0.0.0\n")
        _add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/root:/usr/local/bin/python3\n")
        _add_bytes(tar, "etc/group", b"root:x:0:\n")
        for folder, mode in (("tmp", 0o1777), ("root", 0o700)):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
    os.replace(partial, path)


def _add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def build_image(daemon, cache_dir):
    """The mflow image's name, imported from the cached tarball (made first when its inputs
    changed)."""
    python, image_site, files = image_files()
    digest = _digest(files)
    name = "%s:%s" % (IMAGE_NAME, digest)
    if daemon.docker("image", "inspect", name, check=False).returncode == 0:
        return name
    os.makedirs(cache_dir, exist_ok=True)
    tarball = os.path.join(cache_dir, "rootfs-%s.tar" % digest)
    if not os.path.exists(tarball):
        for old in os.listdir(cache_dir):
            if old.startswith("rootfs-"):
                os.unlink(os.path.join(cache_dir, old))
        write_rootfs(tarball, python, image_site, files)
    daemon.docker("import", "--change", "ENV PATH=/usr/local/bin:/usr/bin:/bin", "--change", "ENV LANG=C.UTF-8",
                  "--change", "ENV HOME=/root", "--change", "WORKDIR /tmp", tarball, name)
    return name


@pytest.fixture(scope="session")
def docker_daemon(tmp_path_factory):
    """A dockerd of this test run's own (see the module's docstring)."""
    daemon = start_daemon(str(tmp_path_factory.mktemp("dockerd")))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def mflow_image(docker_daemon, request):
    """The name of the local image with this machine's Python and mflow (see the module's docstring)."""
    cache = getattr(request.config, "cache", None)  # none with -p no:cacheprovider: build it afresh
    folder = cache.mkdir("mflow-image") if cache is not None else request.getfixturevalue("tmp_path_factory").mktemp(
        "mflow-image")
    return build_image(docker_daemon, str(folder))
