"""mflow inside an environment: a folder that exposes mflow and its own dependencies, put
on the environment's sys.path by a .pth file, so after the environment's site-packages.

That order is the point: the step's pinned packages always win (six 1.15.0 in the
environment shadows the six boto3 pulls in), while mflow still imports. The folder holds
symlinks into this interpreter's installation (no copy, no download); for an environment
on another Python version, mflow's dependencies are installed into it instead.
"""

import hashlib
import json
import os
import re
import sys
import threading

from .cache import cache_path, read_json

PTH_NAME = "_mflow_runtime.pth"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _mflow_dir():
    import mflow

    return os.path.dirname(os.path.abspath(mflow.__file__))


def _fingerprint(interp):
    """What the runtime folder depends on, cheaply: this interpreter's site folders (their
    mtimes change when a package is installed or upgraded), mflow's folder, the target."""
    dirs = sorted(p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p))
    parts = [sys.executable, sys.prefix, _mflow_dir(), interp.key]
    parts += ["%s:%d" % (d, os.stat(d).st_mtime_ns) for d in dirs]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:24]


def runtime_site(interp, installer=None, scratch=None, environ=None):
    """The folder exposing mflow and its dependencies to environments on `interp`."""
    from .interpreter import current

    index = cache_path("runtime", "index", _fingerprint(interp) + ".json", environ=environ)
    known = read_json(index)
    if known and os.path.isdir(known.get("site", "")):
        return known["site"]
    same_python = current().key == interp.key
    links = _links() if same_python else _links(only_mflow=True)
    requirements = [] if same_python else _pins()
    identity = json.dumps([interp.key, sorted(links.items()), requirements]).encode("utf-8")
    root = cache_path("runtime", hashlib.sha256(identity).hexdigest()[:16], environ=environ)
    site = os.path.join(root, "site-packages")
    if not os.path.isdir(site):
        from .cache import FileLock

        with FileLock(root + ".lock"):
            if not os.path.isdir(site):
                _make_runtime(root, links, requirements, interp, installer, scratch)
    from .cache import write_json

    write_json(index, {"site": site})
    return site


def _make_runtime(root, links, requirements, interp, installer, scratch):
    import shutil

    temp = "%s.tmp.%d" % (root, os.getpid())
    shutil.rmtree(temp, ignore_errors=True)
    temp_site = os.path.join(temp, "site-packages")
    os.makedirs(temp_site)
    if requirements:
        installer.install_target(interp, requirements, temp_site, scratch=scratch)
    for name, target in links.items():
        os.symlink(target, os.path.join(temp_site, name))
    os.rename(temp, root)


def link_runtime(site_packages, runtime):
    """Point the environment at the runtime folder (rewritten only when it changed)."""
    path = os.path.join(site_packages, PTH_NAME)
    line = runtime + "\n"
    try:
        with open(path) as handle:
            if handle.read() == line:
                return
    except OSError:
        pass
    temp = "%s.tmp.%d.%d" % (path, os.getpid(), threading.get_ident())
    with open(temp, "w") as handle:
        handle.write(line)
    os.replace(temp, path)


def _closure():
    """{normalized name: Distribution} of mflow and what it requires, as installed here."""
    from importlib import metadata

    from .spec import normalize

    found, todo = {}, ["mflow"]
    while todo:
        name = normalize(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker does not apply here
        found[name] = dist
        for requirement in dist.requires or ():
            if "extra" in requirement.partition(";")[2]:
                continue
            match = _NAME.match(requirement.strip())
            if match:
                todo.append(match.group(0))
    return found


def _links(only_mflow=False):
    """{entry name: absolute path} of every top-level module, package and .dist-info folder
    of mflow's closure (only mflow's own for another Python version)."""
    links = {"mflow": _mflow_dir()}
    for name, dist in _closure().items():
        if only_mflow and name != "mflow":
            continue
        for entry in {str(f).split("/", 1)[0] for f in dist.files or ()}:
            if entry.startswith((".", "__editable__", "__pycache__")) or entry.endswith(".pth") or entry in links:
                continue
            if name == "mflow" and not entry.endswith(".dist-info"):
                continue  # the package itself is linked above, wherever an editable install keeps it
            path = os.path.abspath(str(dist.locate_file(entry)))
            if os.path.exists(path):
                links[entry] = path
    return links


def _pins():
    """name==version of mflow's dependencies as installed here, for another Python version."""
    return ["%s==%s" % (dist.metadata["Name"], dist.version) for name, dist in sorted(_closure().items())
            if name != "mflow"]
