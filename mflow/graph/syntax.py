"""What mflow.graph.parse needs of `ast`, without importing `ast`.

Importing `ast` (with enum, re and contextlib) costs more CPU than parsing a flow file, and
every task process parses one. The node classes come from the C module `_ast`, the same
classes `ast` has; `walk`, `get_docstring` and `literal_eval` give what ast's do. `unparse`
and `get_source_segment` import `ast` when called: only non-literal arguments and error
messages need them.
"""

import sys

try:
    import _ast as nodes
except ImportError:  # not CPython: the ast module has the node classes, and the helpers
    import ast as nodes

_NUMBERS = (int, float, complex)
_CONTAINERS = ((nodes.Tuple, tuple), (nodes.List, list), (nodes.Set, set))
_HAS_DOCSTRING = (nodes.AsyncFunctionDef, nodes.FunctionDef, nodes.ClassDef, nodes.Module)
# ast.literal_eval takes `set()` from 3.9 on; inspect.cleandoc strips only spaces from 3.13 on.
_SET_CALL = sys.version_info >= (3, 9)
_MARGIN_CHARS = " " if sys.version_info >= (3, 13) else None


def parse(source, filename="<unknown>"):
    """The module tree of `source`, as ast.parse gives it (SyntaxError, ValueError alike)."""
    return compile(source, filename, "exec", nodes.PyCF_ONLY_AST, dont_inherit=True)


def walk(node):
    """`node` and every node below it, breadth first, in the order of ast.walk."""
    todo, index = [node], 0
    while index < len(todo):
        node = todo[index]
        index += 1
        todo.extend(_children(node))
        yield node


def _children(node):
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, nodes.AST):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, nodes.AST):
                    yield item


def get_docstring(node, clean=True):
    """The docstring of a function, class or module node, or None, as ast.get_docstring."""
    if not isinstance(node, _HAS_DOCSTRING):
        raise TypeError("%r can't have docstrings" % node.__class__.__name__)
    if not (node.body and isinstance(node.body[0], nodes.Expr)):
        return None
    value = node.body[0].value
    if not (isinstance(value, nodes.Constant) and isinstance(value.value, str)):
        return None
    return cleandoc(value.value) if clean else value.value


def cleandoc(doc):
    """inspect.cleandoc (which ast.get_docstring imports inspect for): tabs expanded, the
    indentation the lines after the first share removed, blank lines at either end dropped."""
    lines = doc.expandtabs().split("\n")
    margin = None
    for line in lines[1:]:
        content = len(line.lstrip(_MARGIN_CHARS))
        if content:
            indent = len(line) - content
            margin = indent if margin is None else min(margin, indent)
    lines[0] = lines[0].lstrip(_MARGIN_CHARS)
    if margin:
        lines[1:] = [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


class _Unusual(Exception):
    """A node that literal_eval leaves to ast.literal_eval."""


def literal_eval(node_or_string):
    """ast.literal_eval: the common literals here, the rest (and every error) by ast itself."""
    try:
        return _value(_expression(node_or_string))
    except Exception:  # a shape not handled here, or an error: ast gives its own
        pass
    import ast

    return ast.literal_eval(node_or_string)


def _expression(node_or_string):
    if isinstance(node_or_string, str):
        if node_or_string[:1] in (" ", "\t"):
            raise _Unusual  # stripped by ast.literal_eval from 3.10 on only
        node_or_string = compile(node_or_string, "<unknown>", "eval", nodes.PyCF_ONLY_AST, dont_inherit=True)
    if isinstance(node_or_string, nodes.Expression):
        return node_or_string.body
    return node_or_string


def _value(node):
    if isinstance(node, nodes.Constant):
        return node.value
    for kind, make in _CONTAINERS:
        if isinstance(node, kind):
            return make(map(_value, node.elts))
    if isinstance(node, nodes.Dict) and len(node.keys) == len(node.values):
        return dict(zip(map(_value, node.keys), map(_value, node.values)))
    if isinstance(node, nodes.UnaryOp) and isinstance(node.op, (nodes.UAdd, nodes.USub)):
        return _signed_number(node)
    if _SET_CALL and _is_empty_set(node):
        return set()
    raise _Unusual


def _signed_number(node):
    operand = node.operand
    if not (isinstance(operand, nodes.Constant) and type(operand.value) in _NUMBERS):
        raise _Unusual
    return -operand.value if isinstance(node.op, nodes.USub) else +operand.value


def _is_empty_set(node):
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.func, nodes.Name)
        and node.func.id == "set"
        and node.args == node.keywords == []
    )


def unparse(node):
    """ast.unparse; imports ast."""
    import ast

    return ast.unparse(node)


def get_source_segment(source, node, *, padded=False):
    """ast.get_source_segment; imports ast."""
    import ast

    return ast.get_source_segment(source, node, padded=padded)


if nodes.__name__ == "ast":  # ast is loaded anyway: its own helpers
    from ast import get_docstring, literal_eval, walk  # noqa: E402,F401,F811
