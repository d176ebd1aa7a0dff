"""mflow.graph.syntax gives what the ast module would, and parsing a flow does not import ast."""

import ast
import inspect
import re
import subprocess
import sys

import pytest

from mflow.graph import parse as parse_module
from mflow.graph import syntax

LITERALS = [
    "1", "-1", "+1", "-1.5", "+2.5", "1e999", "-0.0", "0x1F", "2j", "-2j", "+2j", "1+2j", "1-2j", "-1-2j",
    "'text'", "'''two\nlines'''", "b'bytes'", "-b'x'", "None", "True", "False", "...", "-True", "+None",
    "()", "(1,)", "[]", "{}", "[1, [2, (3, {4: 'x'})]]", "{'a': [1, -2], 'b': {'c': (None, b'')}}",
    "{1, 2, 3}", "{(1, 2), -3}", "set()", "{'a': {1, 2}, 'b': set()}", "[set(), {()}]",
    "(1, 'a', b'b', 2.5, -3j, None, True)", "{-1: -1.0, +2: ..., 'k': [{}]}",
]
NON_LITERALS = [
    "x", "-x", "not 1", "~1", "- -1", "1+1", "1+x", "x+1j", "f'{x}'", "[1, x]", "(1, f())", "{**a}",
    "{'a': b}", "{b: 'a'}", "set([1])", "set(x=1)", "set(*a)", "frozenset()", "a.b", "f()",
    "lambda: 1", "[i for i in ()]", "{[1]: 2}", "{[1]}", "{{}: x}", "{x: []}", "1 if 2 else 3",
]
# Sources for a string literal_eval: spaces, bad syntax and a NUL byte too.
SOURCES = [" 1", "\t[1, 2]", " \t-1", "1 ", "1 +", "", "(", "1; 2", "x = 1", "\x00", "'\\x00'", "\n1"]


def outcome(function, *args):
    """(kind, value or message) of a call; addresses in messages left out, as each parse has its own."""
    try:
        value = function(*args)
    except Exception as exc:
        return type(exc), re.sub(r" at 0x[0-9a-fA-F]+", "", str(exc))
    return "value", type(value), repr(value)


@pytest.mark.parametrize("text", LITERALS + NON_LITERALS + SOURCES)
def test_literal_eval_of_source_is_asts(text):
    assert outcome(syntax.literal_eval, text) == outcome(ast.literal_eval, text)


@pytest.mark.parametrize("text", LITERALS + NON_LITERALS)
def test_literal_eval_of_node_is_asts(text):
    expression = ast.parse(text, mode="eval")
    for node in (expression, expression.body, syntax.parse(text).body[0].value):
        # The same node to both, so even the repr in a ValueError's message is the same.
        assert outcome(syntax.literal_eval, node) == outcome(ast.literal_eval, node)


def test_literal_eval_of_odd_nodes_is_asts():
    unequal = ast.Dict(keys=[ast.Constant(1)], values=[])
    for node in (unequal, ast.Expression(body=ast.Constant(3)), 5, None, ast.Module(body=[], type_ignores=[])):
        assert outcome(syntax.literal_eval, node) == outcome(ast.literal_eval, node)


def test_literal_eval_raises_valueerror_for_a_name():
    with pytest.raises(ValueError):
        syntax.literal_eval("x")


def test_walk_is_asts_order():
    with open(parse_module.__file__, encoding="utf-8") as handle:
        source = handle.read()
    for tree in (ast.parse(source), syntax.parse(source), ast.parse("x = [1, {2: (3,)}]; f(*a, k=-1)")):
        ours, theirs = list(syntax.walk(tree)), list(ast.walk(tree))
        assert len(ours) == len(theirs) > 1
        assert all(a is b for a, b in zip(ours, theirs))


def test_parse_is_asts():
    source = "import os\n\nclass A(B):\n    '''Doc.'''\n    x: int = -1\n"
    assert ast.dump(syntax.parse(source, "f.py"), include_attributes=True) == ast.dump(
        ast.parse(source, "f.py"), include_attributes=True
    )
    for bad in ("def (:\n", "x = 1\n\x00"):
        assert outcome(syntax.parse, bad, "f.py") == outcome(ast.parse, bad, "f.py")


DOCSTRINGS = [
    "One line.",
    "  Leading spaces, trailing too.  ",
    "",
    "   ",
    "\n",
    "First line.\n\n    Indented body.\n      More indented.\n    ",
    "\n    Starts on the second line.\n\n    Blank line above.\n",
    "Tabs.\n\tOne tab.\n\t\tTwo tabs.\n    Four spaces.",
    "Mixed.\n  \t Tab after spaces.\n        Eight spaces.",
    "Blank lines at the ends.\n\n\n    x\n\n\n",
    "\n\n\n",
    "Whitespace lines.\n    \n  a\n \t \n    b",
    "Other whitespace.\n\x0c  form feed\n\xa0 no-break space\n  end",
    "First\n no common margin\nat all",
    "Unicode: é ü ☃\n    indented ☃",
]


def _doc_sources():
    for doc in DOCSTRINGS:
        literal = repr(doc)
        yield "%s\n\nx = 1\n" % literal
        yield "def f():\n    %s\n    return 1\n" % literal
        yield "async def f():\n    %s\n" % literal
        yield "class C:\n    %s\n    x = 1\n" % literal
    yield "def f():\n    return 1\n"
    yield "class C:\n    1\n"
    yield "class C:\n    b'bytes'\n"
    yield "class C:\n    f'{x}'\n"
    yield "class C:\n    x = 'not a docstring'\n"
    yield ""


@pytest.mark.parametrize("source", list(_doc_sources()))
def test_get_docstring_is_asts(source):
    tree = ast.parse(source)
    for node in [tree] + tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            for clean in (True, False):
                assert outcome(syntax.get_docstring, node, clean) == outcome(ast.get_docstring, node, clean)
        else:
            assert outcome(syntax.get_docstring, node) == outcome(ast.get_docstring, node)


@pytest.mark.parametrize("doc", DOCSTRINGS)
def test_cleandoc_is_inspects(doc):
    assert syntax.cleandoc(doc) == inspect.cleandoc(doc)


def test_unparse_and_source_segment_are_asts():
    source = "x = f(a,  b)  # call\n"
    node = syntax.parse(source).body[0].value
    assert syntax.unparse(node) == ast.unparse(node) == "f(a, b)"
    assert syntax.get_source_segment(source, node) == "f(a,  b)"


SMALL_FLOW = '''\
"""A small flow."""
from mflow import FlowSpec, Parameter, retry, step


class SmallFlow(FlowSpec):
    """Says hello.

        Indented line.
    Less indented.
    """

    alpha = Parameter("alpha", help="A number", default=-0.5)
    names = Parameter("names", default=["a", "b"])

    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        """Begin."""
        self.next(self.fan)

    @step
    def fan(self):
        self.items = [1, 2]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SmallFlow()
'''

CHECK = """\
import sys
import mflow.graph.parse, mflow.task.decorators
from mflow.graph import load_graph
graph = load_graph(sys.argv[1])
withs = mflow.task.decorators.parse_with(["retry:times=3,minutes_between_retries=0"])
print(sorted(graph.steps), graph.problems, graph.doc == "Says hello.\\n\\n    Indented line.\\nLess indented.")
print([(p.name, p.default) for p in graph.parameters], graph.steps["start"].decorators[0].args, withs)
print("ast" in sys.modules, "inspect" in sys.modules)
"""


def test_parsing_a_flow_imports_neither_ast_nor_inspect(tmp_path, repo):
    flow = tmp_path / "small_flow.py"
    flow.write_text(SMALL_FLOW)
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(flow)], capture_output=True, text=True, cwd=str(repo)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "['end', 'fan', 'start'] [] True",
        "[('alpha', -0.5), ('names', ['a', 'b'])] {'times': 2, 'minutes_between_retries': 0} "
        "{'retry': {'times': 3, 'minutes_between_retries': 0}}",
        "False False",
    ]
