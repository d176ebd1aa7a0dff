"""mflow as a user installs it: a wheel built from this tree holds every module and data file."""

import shutil
import subprocess
import sys
import zipfile

#: What a clean checkout lacks: earlier builds would hide a module the build itself misses.
NOT_SOURCE = ("build", "dist", "*.egg-info", ".venv*", ".git", "__pycache__", ".mflow*", ".pytest_cache")


def test_the_wheel_holds_every_module(repo, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(repo, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("mflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {path.relative_to(repo).as_posix() for path in (repo / "mflow").rglob("*") if path.suffix in (".py", ".csv")}
    assert wanted, "no modules found under mflow/"
    assert sorted(wanted - names) == [], "modules a wheel install would lack (a folder without __init__.py?)"
