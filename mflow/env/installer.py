"""pip and uv behind one interface: make a bare venv, resolve a spec to exact files, build a
wheel from an sdist, install wheel files. uv is used when it is installed (much faster),
pip otherwise; MFLOW_ENV_INSTALLER=pip|uv chooses."""

import os
import re
import subprocess
import sys

from mflow.errors import EnvironmentBuildError, EnvironmentSpecError

from .interpreter import describe_steps, uv_binary
from .lock import LockedPackage
from .spec import base_name


def pick_installer(environ=None):
    """The installer to build with: MFLOW_ENV_INSTALLER (pip, uv or auto), auto meaning uv
    when it is installed, else pip."""
    environ = os.environ if environ is None else environ
    wanted = (environ.get("MFLOW_ENV_INSTALLER") or "auto").strip().lower()
    if wanted not in ("auto", "pip", "uv"):
        raise EnvironmentBuildError(
            "MFLOW_ENV_INSTALLER=%s names no installer" % wanted, "Set it to pip, uv or auto (uv when installed)"
        )
    uv = uv_binary(environ) if wanted in ("auto", "uv") else None
    if uv:
        return UvInstaller(uv)
    if wanted == "uv":
        raise EnvironmentBuildError("MFLOW_ENV_INSTALLER=uv, but uv is not installed", "pip install uv, or unset it")
    return PipInstaller()


def _run(command, what, stdin=None):
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True)
    except OSError as exc:
        raise EnvironmentBuildError("cannot run %s: %s" % (command[0], exc), "Check that it is installed") from None
    return done


def _tail(text, lines=3):
    kept = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


class Installer:
    name = None

    def describe(self):
        return "%s %s" % (self.name, self.version)

    def site_packages(self, venv, interp):
        return os.path.join(venv, "lib", "python%s" % interp.short, "site-packages")

    def venv_python(self, venv):
        return os.path.join(venv, "bin", "python")

    def _check(self, done, what):
        if done.returncode != 0:
            raise EnvironmentBuildError(
                "%s failed while %s: %s" % (self.name, what, _tail(done.stderr or done.stdout)),
                "Rerun with -v, or try MFLOW_ENV_INSTALLER=%s" % ("pip" if self.name == "uv" else "uv"),
            )
        return done

    def install_target(self, interp, requirements, target, scratch=None):
        """Install `requirements` (with their dependencies) into folder `target` for `interp`;
        the exact versions if they exist for it, else the newest that do."""
        done = _run(self._target_command(interp, requirements, target, scratch), "installing")
        if done.returncode != 0:
            loose = [re.split(r"[<>=!~]", r, 1)[0] for r in requirements]
            self._check(_run(self._target_command(interp, loose, target, scratch), "installing"),
                        "installing mflow's dependencies for Python %s" % interp.short)

    def resolve(self, interp, requirements, constraints, steps):
        """[LockedPackage] (without wheel keys) that `requirements` resolve to on `interp`;
        EnvironmentSpecError naming the step and package when they cannot."""
        raise NotImplementedError

    def spec_error(self, output, requirements, steps, constraints=()):
        """The one-line EnvironmentSpecError for a failed resolution's output."""
        detail = _resolution_problem(output)
        named = _named(detail, requirements)
        needed = [c for c in constraints if _named(c, [r for r in named])]
        if needed:
            detail = detail.rstrip(".") + " (mflow itself needs %s)" % ", ".join(needed)
        where = describe_steps(steps)
        if "conflict" in detail.lower() or len(named) > 1:
            message = "%s: @pypi packages %s conflict: %s" % (where, " and ".join(named) or "", detail)
        elif named:
            message = "%s: @pypi package %s cannot be installed: %s" % (where, named[0], detail)
        else:
            message = "%s: @pypi packages cannot be resolved: %s" % (where, detail)
        return EnvironmentSpecError(
            message.replace("packages  conflict", "packages conflict"),
            "Check the names and versions on the package index (pip index versions NAME)",
            steps=steps,
            package=named[0] if named else None,
        )


class PipInstaller(Installer):
    name = "pip"

    def __init__(self):
        self._version = None

    @property
    def version(self):
        if self._version is None:
            try:
                import pip

                self._version = pip.__version__
            except ImportError:
                raise EnvironmentBuildError(
                    "neither uv nor pip is installed for %s" % sys.executable, "pip install uv (or pip)"
                ) from None
        return self._version

    def _pip(self, python, *args):
        self.version  # noqa: B018 - fails early and clearly without pip
        return [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check", "--no-input", *args]

    def _target_command(self, interp, requirements, target, scratch):
        return self._pip(scratch, "install", "--quiet", "--no-compile", "--target", target, *requirements)

    def create_venv(self, interp, path):
        done = _run([interp.path, "-m", "venv", "--without-pip", path], "creating a venv")
        self._check(done, "creating a venv at %s" % path)

    def resolve(self, interp, requirements, constraints, steps, scratch=None):
        import json
        import tempfile

        with tempfile.TemporaryDirectory(prefix="mflow-resolve-") as tmp:
            report = os.path.join(tmp, "report.json")
            reqs = _write_lines(tmp, "requirements.txt", requirements)
            cons = _write_lines(tmp, "constraints.txt", constraints)
            done = _run(
                # Not --quiet: pip says which requirements conflict only at its normal level.
                self._pip(scratch, "install", "--dry-run", "--ignore-installed", "--report", report,
                          "-c", cons, "-r", reqs),
                "resolving",
            )
            if done.returncode != 0:
                output = (done.stderr + "\n" + done.stdout).replace(reqs, "requirements")
                output = re.sub(r"-r requirements \(line (\d+)\)", lambda m: requirements[int(m.group(1)) - 1], output)
                raise self.spec_error(output, requirements, steps, constraints)
            with open(report) as handle:
                data = json.load(handle)
        found = []
        for item in data.get("install", ()):
            info = item.get("download_info") or {}
            archive = info.get("archive_info")
            if archive is None:
                raise EnvironmentSpecError(
                    "%s: @pypi package %s is not from a package index (%s)"
                    % (describe_steps(steps), item["metadata"]["name"], info.get("url")),
                    "Give packages by name and version",
                    steps=steps,
                    package=item["metadata"]["name"],
                )
            sha256 = (archive.get("hashes") or {}).get("sha256") or archive.get("hash", "").partition("=")[2]
            found.append(LockedPackage(item["metadata"]["name"], item["metadata"]["version"], info["url"], sha256))
        return found

    def build_wheel(self, interp, sdist, out_dir, scratch=None):
        done = _run(self._pip(scratch, "wheel", "--no-deps", "--quiet", "-w", out_dir, sdist), "building a wheel")
        self._check(done, "building a wheel of %s" % os.path.basename(sdist))

    def install(self, venv, wheels):
        if not wheels:
            return
        done = _run(
            self._pip(self.venv_python(venv), "install", "--no-index", "--no-deps", "--no-compile", "--quiet", *wheels),
            "installing",
        )
        self._check(done, "installing into %s" % venv)


class UvInstaller(Installer):
    name = "uv"

    def __init__(self, binary):
        self.binary = binary
        self._version = None

    @property
    def version(self):
        if self._version is None:
            done = _run([self.binary, "--version"], "asking its version")
            self._version = (done.stdout.split() + ["?", "?"])[1]
        return self._version

    def _target_command(self, interp, requirements, target, scratch):
        return [self.binary, "pip", "install", "--quiet", "--python", interp.path, "--target", target, *requirements]

    def create_venv(self, interp, path):
        done = _run([self.binary, "venv", "--quiet", "--no-project", "--python", interp.path, path], "creating a venv")
        self._check(done, "creating a venv at %s" % path)

    def resolve(self, interp, requirements, constraints, steps, scratch=None):
        import tempfile

        try:
            import tomllib
        except ImportError:  # Python < 3.11: pip reads its own report
            return PipInstaller().resolve(interp, requirements, constraints, steps, scratch)
        with tempfile.TemporaryDirectory(prefix="mflow-resolve-") as tmp:
            out = os.path.join(tmp, "pylock.toml")
            reqs = _write_lines(tmp, "requirements.in", requirements)
            cons = _write_lines(tmp, "constraints.txt", constraints)
            done = _run(
                [self.binary, "pip", "compile", reqs, "-c", cons, "--python", interp.path, "--format", "pylock.toml",
                 "-o", out, "--quiet", "--no-header", "--no-progress"],
                "resolving",
            )
            if done.returncode != 0:
                raise self.spec_error(done.stderr + "\n" + done.stdout, requirements, steps, constraints)
            with open(out, "rb") as handle:
                data = tomllib.load(handle)
        tags = supported_tags(interp)
        found = []
        for package in data.get("packages", ()):
            chosen = _best_wheel(package.get("wheels") or (), tags) or package.get("sdist")
            if not chosen or not chosen.get("url"):
                raise EnvironmentSpecError(
                    "%s: @pypi package %s %s has no file for Python %s on %s"
                    % (describe_steps(steps), package["name"], package.get("version"), interp.short, interp.platform),
                    "Pick a version that publishes a wheel for this platform",
                    steps=steps,
                    package=package["name"],
                )
            found.append(LockedPackage(package["name"], str(package["version"]), chosen["url"],
                                       (chosen.get("hashes") or {}).get("sha256", "")))
        return found

    def build_wheel(self, interp, sdist, out_dir, scratch=None):
        done = _run([self.binary, "build", "--wheel", "--quiet", "--python", interp.path, "--out-dir", out_dir, sdist],
                    "building a wheel")
        self._check(done, "building a wheel of %s" % os.path.basename(sdist))

    def install(self, venv, wheels):
        if not wheels:
            return
        done = _run(
            [self.binary, "pip", "install", "--quiet", "--no-index", "--no-deps", "--python", self.venv_python(venv),
             *wheels],
            "installing",
        )
        self._check(done, "installing into %s" % venv)


def _write_lines(folder, name, lines):
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


# --- which wheel fits an interpreter -----------------------------------------------------------

_TAGS = {}
_TAG_SCRIPT = (
    "import sys\nsys.path.append(sys.argv[1])\n"
    "try:\n    from packaging.tags import sys_tags\n"
    "except ImportError:\n    from pip._vendor.packaging.tags import sys_tags\n"
    "print('\\n'.join(str(t) for t in sys_tags()))\n"
)


def supported_tags(interp):
    """The wheel tags `interp` accepts, best first (as pip and uv rank them)."""
    if interp.path not in _TAGS:
        pip_parent = ""
        try:
            import pip

            pip_parent = os.path.dirname(os.path.dirname(pip.__file__))
        except ImportError:
            pass
        done = _run([interp.path, "-I", "-c", _TAG_SCRIPT, pip_parent], "listing wheel tags")
        tags = done.stdout.split() if done.returncode == 0 else []
        if not tags:
            raise EnvironmentBuildError(
                "cannot tell which wheels suit %s (neither packaging nor pip is importable)" % interp.path,
                "Set MFLOW_ENV_INSTALLER=pip",
            )
        _TAGS[interp.path] = {tag: rank for rank, tag in enumerate(tags)}
    return _TAGS[interp.path]


def _wheel_rank(filename, tags):
    parts = filename[: -len(".whl")].split("-")
    if len(parts) < 5:
        return None
    pythons, abis, platforms = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    ranks = [tags[t] for t in ("%s-%s-%s" % (p, a, s) for p in pythons for a in abis for s in platforms) if t in tags]
    return min(ranks) if ranks else None


def _best_wheel(wheels, tags):
    best = None
    for wheel in wheels:
        name = wheel.get("name") or wheel.get("url", "").rsplit("/", 1)[-1]
        rank = _wheel_rank(name, tags)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, wheel)
    return best[1] if best else None


# --- what a failed resolution says -----------------------------------------------------------------

_FROM_VERSIONS = re.compile(r"\s*\(from versions:[^)]*\)")


def _resolution_problem(output):
    """One line out of pip's or uv's account of why a resolution failed."""
    lines = [line.rstrip() for line in (output or "").splitlines()]
    errors = [_FROM_VERSIONS.sub("", line[len("ERROR:"):]).strip() for line in lines if line.startswith("ERROR:")]
    errors = [e for e in errors if e and not e.startswith("ResolutionImpossible") and "dependency conflicts" not in e]
    caused = []
    if any("conflict is caused by" in line for line in lines):
        start = next(i for i, line in enumerate(lines) if "conflict is caused by" in line)
        for line in lines[start + 1:]:
            if not line.strip():
                break
            caused.append(line.strip())
    if errors:
        detail = errors[-1] if not caused else errors[0].rstrip(".")
        return detail + ("; " + "; ".join(caused) if caused else "")
    # uv: "error: No solution found when resolving dependencies\n  cause: Because ..., we
    # can conclude that ..." (on a terminal: "× ...:\n  ╰─▶ Because ...")
    text = " ".join(line.strip(" ╰─▶│×") for line in lines if line.strip(" ╰─▶│×"))
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(error: )?No solution found when resolving dependencies:?\s*(cause:\s*)?", "", text)
    return text or "the installer gave no reason"


def _named(detail, requirements):
    """The requirements (as the user wrote them) whose packages `detail` mentions, in the
    order it mentions them."""
    lowered = detail.lower()
    found = []
    for requirement in requirements:
        name = base_name(re.split(r"[<>=!~\[; ]", requirement, 1)[0])
        starts = [
            match.start()
            for variant in {name, name.replace("-", "_"), name.replace("-", ".")}
            for match in [re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(variant), lowered)]
            if match
        ]
        if starts:
            found.append((min(starts), requirement))
    return [requirement for _, requirement in sorted(found)]
