"""The static parser: node types, what each step and parameter records, finding the flow."""

import json
import re
import textwrap

import pytest

from graph_flows import LINEAR, line_of, write_flow
from mflow.cli.graph import cli as graph_cli
from mflow.graph import load_graph

SHAPES = '''
"""Every kind of node."""
from mflow import FlowSpec, step, Parameter, JSONType, IncludeFile, retry, resources


class ShapesFlow(FlowSpec):
    """Shapes of all kinds."""

    alpha = Parameter("alpha", help="Learning rate", default=0.01)
    config = Parameter("config", type=JSONType, default='{"a": 1}', help="Settings")
    mode = Parameter("mode", default="fast", required=True)
    labels = Parameter("labels", separator=",", default="a,b")
    size = Parameter("size", default=len("abc"))
    data = IncludeFile("data", help="A CSV", default="data.csv")

    @step
    def start(self):
        """Begin."""
        self.items = [1, 2, 3]
        self.next(self.left, self.right)

    @retry(times=2, minutes_between_retries=0)
    @resources(memory=8000, cpu=2)
    @step
    def left(self):
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.each_join)

    @step
    def each_join(self, inputs):
        self.next(self.join)

    @step
    def right(self):
        self.next({"x": self.poll, "y": self.skip}, condition="mode")

    @step
    def poll(self):
        self.next({"again": self.poll, "done": self.merge}, condition="state")

    @step
    def skip(self):
        self.next(self.merge)

    @step
    def merge(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        """Finish."""
        pass


if __name__ == "__main__":
    ShapesFlow()
'''


@pytest.fixture
def shapes(tmp_path):
    path = tmp_path / "shapes.py"
    path.write_text(SHAPES.lstrip("\n"))
    return path


def graph_json(cli, path, *args):
    result = cli(graph_cli, [path, *args])
    assert result.code == 0, result
    return json.loads(result.stdout)


def test_node_types_and_transitions(cli, shapes):
    doc = graph_json(cli, shapes)
    steps = {s["name"]: s for s in doc["steps"]}
    assert {name: s["type"] for name, s in steps.items()} == {
        "start": "split",
        "left": "foreach",
        "each": "linear",
        "each_join": "join",
        "right": "switch",
        "poll": "switch",
        "skip": "linear",
        "merge": "linear",
        "join": "join",
        "end": "end",
    }
    assert steps["start"]["next"] == ["left", "right"]
    assert steps["start"]["join"] == "join"
    assert steps["join"]["split"] == "start"
    assert steps["left"]["foreach"] == "items"
    assert steps["left"]["join"] == "each_join"
    assert steps["each_join"]["split"] == "left"
    assert steps["each"]["split_parents"] == ["start", "left"]
    assert steps["right"]["cases"] == {"x": "poll", "y": "skip"}
    assert steps["right"]["condition"] == "mode"
    assert steps["poll"]["cases"] == {"again": "poll", "done": "merge"}
    assert steps["merge"]["in"] == ["poll", "skip"]
    assert steps["end"]["next"] == [] and steps["end"]["transition"] is None
    assert doc["problems"] == []


def test_linear_start_is_typed_start(tmp_path):
    graph = load_graph(str(write_flow(tmp_path, LINEAR)))
    assert [(n.name, n.type) for n in graph.ordered_steps()] == [("start", "start"), ("middle", "linear"), ("end", "end")]


def test_step_details(cli, shapes):
    doc = graph_json(cli, shapes)
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["start"]["doc"] == "Begin."
    assert steps["start"]["line"] == line_of(shapes, "def start")
    assert steps["left"]["decorators"] == [
        {"name": "retry", "args": {"times": 2, "minutes_between_retries": 0}, "nonliteral": [], "line": line_of(shapes, "@retry")},
        {"name": "resources", "args": {"memory": 8000, "cpu": 2}, "nonliteral": [], "line": line_of(shapes, "@resources")},
    ]
    assert doc["schema"] == 1
    assert doc["flow"] == {"name": "ShapesFlow", "doc": "Shapes of all kinds.", "line": line_of(shapes, "class ShapesFlow"), "decorators": []}


def test_parameters(cli, shapes):
    params = {p["name"]: p for p in graph_json(cli, shapes)["parameters"]}
    assert params["alpha"]["type"] == "float" and params["alpha"]["default"] == 0.01
    assert params["alpha"]["help"] == "Learning rate"
    assert params["config"]["type"] == "JSONType" and params["config"]["default"] == '{"a": 1}'
    assert params["mode"]["required"] is True and params["mode"]["type"] == "str"
    assert params["labels"]["separator"] == ","
    assert params["size"]["default"] == 'len("abc")' and params["size"]["default_literal"] is False
    assert params["data"]["kind"] == "IncludeFile" and params["data"]["type"] == "file"
    assert params["alpha"]["line"] == line_of(shapes, "alpha = ")
    assert list(params) == ["alpha", "config", "mode", "labels", "size", "data"]


def test_the_file_is_never_executed(cli, tmp_path):
    marker = tmp_path / "ran"
    header = "import not_installed_anywhere\nopen(%r, 'w').write('x')\nfrom mflow import FlowSpec, step\n\n\n" % str(marker)
    path = write_flow(tmp_path, LINEAR, header=header)
    assert graph_json(cli, path)["flow"]["name"] == "TestFlow"
    assert not marker.exists()


def test_metaflow_imports_and_aliases(tmp_path):
    header = "import metaflow as mf\nfrom metaflow import step as s\n\n\n"
    body = LINEAR.replace("@step", "@s").replace("@s\ndef middle", "@mf.retry(times=1)\n@s\ndef middle")
    path = write_flow(tmp_path, body, header=header, cls="class PortedFlow(mf.FlowSpec):\n")
    graph = load_graph(str(path))
    assert graph.name == "PortedFlow" and graph.problems == []
    assert [d.name for d in graph["middle"].decorators] == ["retry"]


def test_flow_inherits_steps_from_a_base_in_the_same_file(tmp_path):
    source = textwrap.dedent(
        """
        from mflow import FlowSpec, step

        class Base(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        class Child(Base):
            @step
            def start(self):
                self.next(self.extra)

            @step
            def extra(self):
                self.next(self.end)
        """
    )
    path = tmp_path / "inherit.py"
    path.write_text(source)
    graph = load_graph(str(path))
    assert graph.name == "Child"
    assert [n.name for n in graph.ordered_steps()] == ["start", "extra", "end"]
    assert graph.problems == []
    assert load_graph(str(path), flow_name="Base").name == "Base"


TWO_FLOWS = """
from mflow import FlowSpec, step

class AFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

class BFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_two_flows_need_flow_option(cli, tmp_path):
    path = tmp_path / "two.py"
    path.write_text(TWO_FLOWS)
    result = cli(graph_cli, [path])
    assert result.code == 3
    assert result.stderr == "Error: %s defines 2 flows (AFlow, BFlow). Choose one with --flow NAME.\n" % path
    assert graph_json(cli, path, "--flow", "BFlow")["flow"]["name"] == "BFlow"
    result = cli(graph_cli, [path, "--flow", "CFlow"])
    assert (result.code, result.stderr) == (
        3,
        "Error: %s has no flow named CFlow; it defines AFlow, BFlow. Pass one of those to --flow.\n" % path,
    )


def test_main_block_picks_among_several_flows(cli, tmp_path):
    path = tmp_path / "two.py"
    path.write_text(TWO_FLOWS + "\nif __name__ == '__main__':\n    BFlow()\n")
    assert graph_json(cli, path)["flow"]["name"] == "BFlow"


@pytest.mark.parametrize(
    "content, message",
    [
        ("x = 1\n", "Error: {path} defines no FlowSpec subclass. Define a class that derives from FlowSpec (from mflow import FlowSpec).\n"),
        ("def broken(:\n", "Error: {path}:1: Python syntax error: invalid syntax. Fix the syntax and try again.\n"),
        (b"\xff\xfe bad", "Error: flow file {path} is not UTF-8 text (byte 0). Save it as UTF-8.\n"),
    ],
)
def test_bad_flow_files(cli, tmp_path, content, message):
    path = tmp_path / "bad.py"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    result = cli(graph_cli, [path])
    assert (result.code, result.stdout, result.stderr) == (3, "", message.format(path=path))


def test_missing_file_and_directory(cli, tmp_path):
    result = cli(graph_cli, [tmp_path / "nope.py"])
    assert (result.code, result.stderr) == (3, "Error: flow file %s does not exist. Check the path and try again.\n" % (tmp_path / "nope.py"))
    result = cli(graph_cli, [tmp_path])
    assert result.code == 2  # click refuses a directory for a file argument
    assert "is a directory" in result.stderr


def test_flow_from_stdin(cli, tmp_path):
    source = write_flow(tmp_path, LINEAR).read_text()
    result = cli(graph_cli, ["-", "--format", "text"], stdin=source)
    assert result.code == 0
    assert result.stdout.startswith("Step start\n")
    result = cli(graph_cli, ["--check", "-"], stdin=source.replace("self.next(self.end)", "pass", 1))
    assert result.code == 1
    lines = source.splitlines()
    assert result.stderr == (
        "<stdin>:%d: error: step middle has no self.next() transition; add one as its last statement\n"
        "<stdin>:%d: error: step end cannot be reached from start; connect it or remove it\n"
    ) % (lines.index("    def middle(self):") + 1, lines.index("    def end(self):") + 1)


def test_text_format(cli, shapes):
    result = cli(graph_cli, [shapes, "--format", "text"])
    assert result.code == 0
    text = result.stdout
    assert text.startswith("Shapes of all kinds.\n\nParameter --alpha float  (default: 0.01)\n    Learning rate\n")
    assert "Step start\n    Begin.\n    => left, right  (split, joined at join)\n" in text
    assert "Step left @retry @resources\n    => each  (foreach over items, joined at each_join)\n" in text
    assert "Step right\n    => {x: poll, y: skip}  (switch on mode)\n" in text
    assert text.endswith("Step end\n    Finish.\n    => (end of flow)\n")
    order = re.findall(r"^Step (\w+)", text, re.M)
    assert order.index("each_join") > order.index("each") and order.index("join") > order.index("merge")


def test_dot_format(cli, shapes):
    result = cli(graph_cli, [shapes, "--format", "dot"])
    assert result.code == 0
    dot = result.stdout
    assert dot.startswith('digraph "ShapesFlow" {\n') and dot.endswith("}\n")
    assert '"left" -> "each" [label="foreach items", style=bold];' in dot
    assert '"right" -> "poll" [label="mode == x", style=dashed];' in dot
    assert '"poll" -> "poll" [label="state == again", style=dashed];' in dot
    assert '"join" [label="join\\n(join)", shape=invtrapezium];' in dot
    # Graphviz itself must accept it (scripts/test installs graphviz).
    import shutil
    import subprocess

    assert shutil.which("dot"), "Graphviz `dot` is not installed; run the tests through scripts/test"
    svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60)
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in svg.stdout and ">poll</text>" in svg.stdout


def test_pretty_json_is_the_same_document(cli, shapes):
    assert graph_json(cli, shapes, "--pretty") == graph_json(cli, shapes)


def test_problems_are_in_the_json_but_do_not_fail_the_output(cli, tmp_path):
    path = write_flow(tmp_path, LINEAR.replace("self.next(self.end)", "self.next(self.ends)"))
    doc = graph_json(cli, path)
    assert doc["problems"] == [
        {"line": line_of(path, "self.next(self.ends)"), "message": "step middle goes to unknown step ends; did you mean end?"},
        {"line": line_of(path, "def end"), "message": "step end cannot be reached from start; connect it or remove it"},
    ]
