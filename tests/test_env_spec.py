"""@pypi / @pypi_base as written (decorators, lint, merging) and the pieces of mflow.env that
need no package index: error messages, wheel tags, the interpreter inventory."""

import json
import textwrap

import pytest

from mflow.decospec import FLOW_DECORATORS, STEP_DECORATORS, requirement
from mflow.errors import FlowDefinitionError


def load(tmp_path, source, name="flow.py"):
    from mflow.graph import load_graph
    from mflow.task.loader import load_flow_class

    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip())
    graph = load_graph(str(path))
    return graph, path


def flow_class(tmp_path, source):
    from mflow.graph import check_graph
    from mflow.task.loader import load_flow_class

    graph, path = load(tmp_path, source)
    check_graph(graph)
    return graph, load_flow_class(str(path), graph.name)


FLOW = '''
from mflow import FlowSpec, step, pypi, pypi_base

@pypi_base(packages={"six": "1.16.0", "Idna": ">=3,<4"}, python="3.11")
class EnvFlow(FlowSpec):
    @pypi(packages={"six": "1.15.0"})
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self):
        self.next(self.end)

    @pypi(disabled=True)
    @step
    def end(self):
        pass
'''


def test_pypi_arguments_are_checked():
    spec = STEP_DECORATORS["pypi"]
    assert spec.problems({"packages": {"six": "1.16.0", "requests[socks]": ">=2,<3", "any": ""}}) == []
    problems = spec.problems({"packages": {"bad name": "1", "six": 1.16, "x": "1 2"}, "python": "3"})
    assert any("invalid package name 'bad name'" in p for p in problems)
    assert any("packages['six'] must be a version string" in p for p in problems)
    assert any("invalid version '1 2'" in p for p in problems)
    assert any("python must be a version" in p for p in problems)
    assert spec.problems({"packages": ["six"]})[0].startswith("packages must be a dict")
    assert FLOW_DECORATORS["pypi_base"].problems({"disabled": True})[0].startswith("has no argument 'disabled'")


def test_requirement_lines():
    assert requirement("six", "1.16.0") == "six==1.16.0"
    assert requirement("six", " >=1.2, <2 ") == "six>=1.2,<2"
    assert requirement("six", "") == "six"
    assert requirement("numpy", "2.*") == "numpy==2.*"


def test_flow_and_step_specs_merge_step_values_win(tmp_path):
    from mflow.env.spec import EnvSpec, step_specs

    graph, cls = flow_class(tmp_path, FLOW)
    specs = step_specs(cls, graph)
    assert set(specs) == {"start", "middle"}  # end: @pypi(disabled=True)
    assert specs["start"] == EnvSpec.make({"six": "1.15.0", "idna": ">=3,<4"}, "3.11")
    assert specs["middle"] == EnvSpec.make({"six": "1.16.0", "idna": ">=3,<4"}, "3.11")
    assert specs["start"].requirements() == ["idna>=3,<4", "six==1.15.0"]
    with_python = step_specs(cls, graph, {"pypi": {"packages": {}, "python": "3.12"}})
    assert with_python["start"].python == "3.11"  # the step's own @pypi wins over --with
    assert with_python["middle"].python == "3.12"  # --with reaches the steps that lack @pypi
    assert "end" not in with_python


def test_flow_without_decorators_has_no_environments(tmp_path):
    from mflow.env.spec import step_specs

    graph, cls = flow_class(tmp_path, FLOW.replace('@pypi_base(packages={"six": "1.16.0", "Idna": ">=3,<4"}, '
                                                   'python="3.11")\n', "").replace(
        '    @pypi(packages={"six": "1.15.0"})\n', ""))
    assert step_specs(cls, graph) == {}


def test_pypi_base_is_a_class_decorator(tmp_path):
    from mflow.flow.decorators import flow_decorators, pypi_base

    graph, cls = flow_class(tmp_path, FLOW)
    assert flow_decorators(cls)["pypi_base"].attributes["python"] == "3.11"
    with pytest.raises(FlowDefinitionError, match="not to a flow class"):
        pypi_base(packages={})(lambda self: None)
    with pytest.raises(FlowDefinitionError, match="@pypi_base on flow X: packages"):
        pypi_base(packages={"a b": "1"})(type("X", (cls,), {}))
    with pytest.raises(FlowDefinitionError, match="keyword arguments only"):
        pypi_base({"six": "1"})


def test_lint_judges_literal_arguments_and_placement(tmp_path):
    from mflow.graph.analyze import analyze

    source = '''
    from mflow import FlowSpec, step, pypi, pypi_base

    @pypi_base(packages={"six": 1})
    @pypi(packages={})
    class LintFlow(FlowSpec):
        @pypi(packages={"ok": "1.0"}, python="three")
        @step
        def start(self):
            self.next(self.end)

        @pypi_base(packages={})
        @step
        def end(self):
            pass
    '''
    graph, _ = load(tmp_path, source)
    messages = [p.message for p in analyze(graph).problems]
    assert any("@pypi_base on flow LintFlow: packages['six'] must be a version string" in m for m in messages)
    assert any("@pypi is a step decorator" in m for m in messages)
    assert any("@pypi on step start: python must be a version" in m for m in messages)
    assert any("@pypi_base on step end belongs on the flow class" in m for m in messages)


def test_environment_is_a_parameter_name():
    # Metaflow does not reserve it: a flow's --environment parameter wins after FLOW.py.
    from mflow.naming import is_reserved_parameter

    assert not is_reserved_parameter("environment")


# --- what pip and uv say when a spec cannot be met --------------------------------------------

UV_MISSING = """error: No solution found when resolving dependencies
  cause: Because there is no version of six==99.1 and you require six==99.1, we can conclude that your requirements are unsatisfiable.
"""
PIP_MISSING = """ERROR: Could not find a version that satisfies the requirement six==99.1 (from versions: 1.0.0, 1.16.0)
ERROR: No matching distribution found for six==99.1
"""
PIP_CONFLICT = """ERROR: Cannot install requests==2.31.0 and urllib3==1.20 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested urllib3==1.20
    requests 2.31.0 depends on urllib3<3 and >=1.21.1

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io
"""


@pytest.mark.parametrize(
    "output, requirements, expected",
    [
        (UV_MISSING, ["six==99.1"], "step start: @pypi package six==99.1 cannot be installed: Because there is no "
                                    "version of six==99.1"),
        (PIP_MISSING, ["idna", "six==99.1"], "step start: @pypi package six==99.1 cannot be installed: No matching "
                                             "distribution found for six==99.1"),
        (PIP_CONFLICT, ["requests==2.31.0", "urllib3==1.20"],
         "step start: @pypi packages requests==2.31.0 and urllib3==1.20 conflict: Cannot install"),
    ],
)
def test_resolution_errors_are_one_line_naming_step_and_package(output, requirements, expected):
    from mflow.env.installer import PipInstaller

    error = PipInstaller().spec_error(output, requirements, ["start"])
    text = str(error)
    assert text.startswith(expected)
    assert "\n" not in text and "(from versions" not in text
    assert error.exit_code == 3


def test_constraint_of_mflow_is_named():
    from mflow.env.installer import PipInstaller

    output = "error: No solution found when resolving dependencies\n  cause: Because you require click==7.1.2 and " \
             "click>=8.0, we can conclude that your requirements are unsatisfiable.\n"
    text = str(PipInstaller().spec_error(output, ["click==7.1.2"], ["a", "b"], ["click>=8.0", "orjson>=3.6"]))
    assert text.startswith("steps a, b: @pypi package click==7.1.2 cannot be installed")
    assert "(mflow itself needs click>=8.0)" in text


def test_best_wheel_follows_tag_priority():
    from mflow.env.installer import _best_wheel

    tags = {"cp311-cp311-manylinux_2_17_x86_64": 0, "cp311-abi3-manylinux_2_17_x86_64": 1, "py3-none-any": 2}
    wheels = [
        {"url": "https://x/pkg-1.0-py3-none-any.whl"},
        {"url": "https://x/pkg-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"},
        {"url": "https://x/pkg-1.0-cp312-cp312-win_amd64.whl"},
    ]
    assert _best_wheel(wheels, tags)["url"].endswith("manylinux_2_17_x86_64.whl")
    assert _best_wheel(wheels[2:], tags) is None


def test_locked_env_id_ignores_how_it_was_asked(tmp_path):
    from mflow.env.lock import LockedEnv, LockedPackage

    package = LockedPackage("six", "1.16.0", "https://x/six-1.16.0-py2.py3-none-any.whl", "ab" * 32)
    a = LockedEnv({"packages": {"six": "1.16.0"}}, "3.11", "cpython", "linux-x86_64", "uv 0.9", (package,))
    b = a._replace(spec={"packages": {"six": ">=1.16,<1.17"}}, resolver="pip 26")
    assert a.env_id == b.env_id
    assert a.env_id != a.with_packages([package._replace(version="1.15.0")]).env_id
    assert LockedEnv.from_json(json.loads(json.dumps(a.to_json()))) == a


# --- the interpreter inventory every attempt records ----------------------------------------------


def test_inventory_is_listed_once_and_stored_once(tmp_path, monkeypatch):
    import mflow.env.inventory as inventory
    from mflow.store import open_store

    environ = {"MFLOW_ENV_CACHE": str(tmp_path / "cache")}
    store = open_store(str(tmp_path / "store"), environ={})
    first = inventory.interpreter_record(store, environ)
    assert first["python"] and len(first["key"]) == 64 and first["env_id"] is None
    data = inventory.load_inventory(store, first["key"])
    names = {name.lower() for name, _ in data["distributions"]}
    assert {"click", "orjson", "mflow"} <= names

    def listing_again(*args):
        raise AssertionError("listed the distributions again")

    monkeypatch.setattr(inventory, "inventory", listing_again)
    puts = []
    monkeypatch.setattr(type(store.blobs), "put", lambda self, data: puts.append(data))
    assert inventory.interpreter_record(store, environ) == first  # cache hit, blob already stored
    assert puts == []
    other = open_store(str(tmp_path / "other"), environ={})
    monkeypatch.undo()
    assert inventory.interpreter_record(other, environ)["key"] == first["key"]  # stored once more, not listed
    assert other.blobs.has(first["key"])


def test_inventory_failure_never_fails_a_task(tmp_path):
    from mflow.env.inventory import interpreter_record

    class Broken:
        url = "broken"

        @property
        def blobs(self):
            raise OSError("no store")

    assert interpreter_record(Broken(), {"MFLOW_ENV_CACHE": str(tmp_path)}) is None


def test_show_and_diff_of_plain_runs(tmp_path, cli):
    """Every attempt records its interpreter, @pypi or not; a changed installation shows in
    `mflow env diff` once for all steps."""
    import os
    import subprocess
    import sys

    mflow = os.path.join(os.path.dirname(sys.executable), "mflow")
    cache = tmp_path / "cache"
    env = dict(os.environ, MFLOW_STORE=str(tmp_path / "store"), MFLOW_ENV_CACHE=str(cache), MFLOW_USER="tester")
    flow = tmp_path / "plain.py"
    flow.write_text(textwrap.dedent('''
        from mflow import FlowSpec, step

        class PlainFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
    ''').lstrip())

    def call(*args):
        done = subprocess.run([mflow, *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run_a = call("run", str(flow), "-q").strip()
    # The same interpreter, as if a package had been upgraded and one installed since:
    # edit the cached inventory the next tasks pick up.
    (entry,) = (cache / "inventory").glob("*.json")
    cached = json.loads(entry.read_text())
    cached["inventory"]["distributions"] = [
        [name, "0.0.1" if name.lower() == "click" else version] for name, version in cached["inventory"]["distributions"]
    ] + [["zzz-new-package", "1.0"]]
    cached["stores"] = []
    entry.write_text(json.dumps(cached))
    run_b = call("run", str(flow), "-q").strip()
    shown = [json.loads(line) for line in call("env", "show", run_a).splitlines()]
    assert {tuple(sorted(row["steps"])) for row in shown} == {("end", "start")}
    assert any(row["name"] == "mflow" for row in shown)
    diff = [json.loads(line) for line in call("env", "diff", run_a, run_b).splitlines()]
    assert [(row["step"], row["change"], row["name"], row["b"]) for row in diff] == [
        (None, "changed", "click", "0.0.1"),
        (None, "added", "zzz-new-package", "1.0"),
    ]
    from mflow.cli.main import cli as main

    table = cli(main, ["env", "diff", run_a, run_b], environ=env, tty=True)
    assert table.code == 0
    assert table.stdout.splitlines()[0].split() == ["step", "change", "name", "a", "b"]
    assert table.stdout.splitlines()[2].split()[:3] == ["*", "changed", "click"]
    missing = cli(main, ["env", "show", "PlainFlow/123"], environ=env)
    assert missing.code == 4 and missing.stderr.startswith("Error: ")
