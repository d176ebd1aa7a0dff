"""Static parse, lint rules and renderers for flow files.

`load_graph(path)` gives an analyzed FlowGraph; nothing here imports the flow itself.
"""

from .model import SCHEMA_VERSION, FlowGraph, Problem, StepNode  # noqa: F401


def load_graph(path, flow_name=None, source=None):
    """Parse and analyze the flow in `path`; graph.problems lists every broken rule."""
    from .analyze import analyze
    from .parse import parse_flow_file

    return analyze(parse_flow_file(path, flow_name=flow_name, source=source))


def graph_record(graph, file_name, source=None):
    """The analyzed graph of flow file `file_name` (its name in the run's code package) as
    the code package record keeps it, so that remote tasks need not parse the flow again:
    {"file", "format", "pickle"}. Only this version of mflow reads it back. With the file's
    `source` (bytes), its compiled code as well ("bytecode", see from_record)."""
    import binascii
    import pickle

    data = pickle.dumps(graph, protocol=5)
    record = {"file": file_name, "format": _record_format(), "pickle": binascii.b2a_base64(data, newline=False).decode()}
    if source is not None:
        import marshal

        from mflow.store.sha import sha256_hex

        try:
            code = compile(source, file_name, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return record
        record["bytecode"] = {"python": _bytecode_tag(), "sha256": sha256_hex(source),
                              "code": binascii.b2a_base64(marshal.dumps(code), newline=False).decode()}
    return record


def from_record(record, file_name, path, flow_name=None):
    """(graph, compiled) as graph_record kept them for `file_name` in the package (unpacked
    at `path`) and flow `flow_name`. The graph is None when there is none to use (another
    file or flow, another mflow); compiled, (SHA-256 of the source, marshalled code), is None
    when there is no graph or this interpreter cannot run that code (another bytecode or
    optimization level). Compiling a flow file costs a task milliseconds, more than this."""
    if not isinstance(record, dict) or record.get("format") != _record_format() or record.get("file") != file_name:
        return None, None
    import binascii

    try:  # the C unpickler, as artifacts are read: no import of pickle.py and re
        from _pickle import loads
    except ImportError:
        from pickle import loads
    try:
        graph = loads(binascii.a2b_base64(record["pickle"]))
    except Exception:  # noqa: BLE001 - a damaged record: parse the flow file instead
        return None, None
    if not isinstance(graph, FlowGraph) or (flow_name is not None and graph.name != flow_name):
        return None, None
    graph.path = path
    bytecode = record.get("bytecode")
    if not isinstance(bytecode, dict) or bytecode.get("python") != _bytecode_tag():
        return graph, None
    try:
        return graph, (bytecode["sha256"], binascii.a2b_base64(bytecode["code"]))
    except (KeyError, TypeError, ValueError):
        return graph, None


def _bytecode_tag():
    import sys

    try:
        from _frozen_importlib_external import MAGIC_NUMBER
    except ImportError:
        from importlib.util import MAGIC_NUMBER
    return "%s-%d" % (MAGIC_NUMBER.hex(), sys.flags.optimize)


def _record_format():
    from mflow import __version__

    return "mflow %s graph %d" % (__version__, SCHEMA_VERSION)


def check_graph(graph):
    """Raise GraphLintError when the analyzed graph breaks any rule."""
    if graph.problems:
        from mflow.errors import GraphLintError

        raise GraphLintError(graph.sorted_problems(), graph.path)
