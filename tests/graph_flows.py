"""Build small flow files for graph tests: a header, then steps written compactly."""

import textwrap

HEADER = "from mflow import FlowSpec, step, Parameter, JSONType, IncludeFile, retry, catch, timeout, resources, environment\n\n\n"


def write_flow(tmp_path, body, name="flow.py", header=HEADER, cls="class TestFlow(FlowSpec):\n"):
    """Write a flow file whose class body is `body` (dedented, indented into the class).

    Returns the path; line numbers in the file are those of `body` plus
    `body_offset()` (header and class lines).
    """
    text = header + cls + textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", "    ")
    path = tmp_path / name
    path.write_text(text)
    return path


def body_offset(header=HEADER):
    """Line number in the file of line 1 of the class body."""
    return header.count("\n") + 2


def line_of(path, needle, nth=1):
    """1-based line number of the nth line of `path` containing `needle`."""
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return number
    raise AssertionError("%r not in %s" % (needle, path))


LINEAR = """
@step
def start(self):
    self.next(self.middle)

@step
def middle(self):
    self.next(self.end)

@step
def end(self):
    pass
"""
