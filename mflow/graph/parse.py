"""Read a flow file's syntax tree (see .syntax) into a FlowGraph, without importing or running it.

So a flow whose libraries are not installed still parses, and parsing costs milliseconds.
"""

from mflow.errors import FlowFileError

from . import syntax
from .model import Decorator, FlowGraph, ParameterInfo, Problem, StepNode, Transition
from .syntax import nodes

# Packages whose names a flow imports; `metaflow` too, so an unported flow still parses.
_API_MODULES = ("mflow", "metaflow")
_PARAMETER_KINDS = ("Parameter", "IncludeFile")
_TYPE_NAMES = ("str", "int", "float", "bool", "JSONType")


def read_flow_source(path):
    """The text of a flow file, or a FlowFileError saying why it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise FlowFileError("flow file %s does not exist" % path, "Check the path and try again", path=path)
    except IsADirectoryError:
        raise FlowFileError("%s is a directory, not a flow file" % path, "Give the path of a .py file", path=path)
    except PermissionError:
        raise FlowFileError("cannot read flow file %s: permission denied" % path, "Check its permissions", path=path)
    except OSError as exc:
        raise FlowFileError("cannot read flow file %s: %s" % (path, exc.strerror or exc), path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FlowFileError(
            "flow file %s is not UTF-8 text (byte %d)" % (path, exc.start), "Save it as UTF-8", path=path
        )


def parse_flow_file(path, flow_name=None, source=None):
    """Parse the flow file at `path` into a FlowGraph (not yet analyzed).

    `source` is the file's text when the caller already has it (e.g. read from stdin).
    """
    if source is None:
        source = read_flow_source(path)
    try:
        module = syntax.parse(source, path)
    except SyntaxError as exc:
        line = exc.lineno or 0
        raise FlowFileError(
            "%s:%d: Python syntax error: %s" % (path, line, exc.msg), "Fix the syntax and try again", path=path, line=line
        )
    except ValueError as exc:  # e.g. a NUL byte in the source
        raise FlowFileError("%s is not valid Python source: %s" % (path, exc), path=path)
    return _FlowParser(path, module, source).parse(flow_name)


class _FlowParser:
    def __init__(self, path, module, source):
        self.path = path
        self.module = module
        self.source = source
        self.lines = source.splitlines()
        # Local name -> the mflow/metaflow API name it stands for (`from mflow import step as s`).
        self.api_names = {}
        # Local names bound to the mflow/metaflow module itself (`import mflow as mf`).
        self.api_modules = set()
        self._collect_imports()

    # --- names -------------------------------------------------------------------------

    def _collect_imports(self):
        for node in _module_level(self.module.body):
            if isinstance(node, nodes.ImportFrom) and node.module and node.module.split(".")[0] in _API_MODULES:
                for alias in node.names:
                    self.api_names[alias.asname or alias.name] = alias.name
            elif isinstance(node, nodes.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in _API_MODULES:
                        self.api_modules.add(alias.asname or alias.name.split(".")[0])

    def api_name(self, node):
        """The API name an expression refers to: `s` -> "step" after `from mflow import step
        as s`, `mf.retry` -> "retry"; other names as written; None for other expressions."""
        if isinstance(node, nodes.Name):
            return self.api_names.get(node.id, node.id)
        if isinstance(node, nodes.Attribute):
            base = node.value
            if isinstance(base, nodes.Name) and base.id in self.api_modules:
                return node.attr
            dotted = _dotted(node)
            return dotted
        return None

    def source_text(self, node):
        """The expression as the user wrote it."""
        return syntax.get_source_segment(self.source, node) or syntax.unparse(node)

    # --- the flow class ----------------------------------------------------------------

    def parse(self, flow_name):
        classes = {}
        flow_classes = []
        for node in self.module.body:
            if not isinstance(node, nodes.ClassDef):
                continue
            classes[node.name] = node
            for base in node.bases:
                name = self.api_name(base)
                if name == "FlowSpec" or (isinstance(base, nodes.Name) and base.id in flow_classes):
                    flow_classes.append(node.name)
                    break
        if not flow_classes:
            raise FlowFileError(
                "%s defines no FlowSpec subclass" % self.path,
                "Define a class that derives from FlowSpec (from mflow import FlowSpec)",
                path=self.path,
            )
        if flow_name is not None:
            if flow_name not in flow_classes:
                raise FlowFileError(
                    "%s has no flow named %s; it defines %s" % (self.path, flow_name, ", ".join(flow_classes)),
                    "Pass one of those to --flow",
                    path=self.path,
                )
            chosen = flow_name
        else:
            chosen = self._choose_flow(flow_classes, classes)
        return self._parse_class(chosen, classes, flow_classes)

    def _choose_flow(self, flow_classes, classes):
        bases_used = set()
        for name in flow_classes:
            for base in classes[name].bases:
                if isinstance(base, nodes.Name):
                    bases_used.add(base.id)
        leaves = [name for name in flow_classes if name not in bases_used]
        if len(leaves) == 1:
            return leaves[0]
        # As `python flow.py` would: the flow the file runs under `if __name__ == "__main__"`.
        started = [name for name in leaves if name in self._names_called_in_main()]
        if len(started) == 1:
            return started[0]
        raise FlowFileError(
            "%s defines %d flows (%s)" % (self.path, len(leaves), ", ".join(leaves)),
            "Choose one with --flow NAME",
            path=self.path,
        )

    def _names_called_in_main(self):
        called = set()
        for node in self.module.body:
            if not isinstance(node, nodes.If):
                continue
            test = syntax.unparse(node.test)
            if "__main__" in test and "__name__" in test:
                for sub in syntax.walk(node):
                    if isinstance(sub, nodes.Call) and isinstance(sub.func, nodes.Name):
                        called.add(sub.func.id)
        return called

    def _class_chain(self, name, classes, flow_classes):
        """The flow class and its flow bases defined in this file, base first."""
        chain, current = [], classes[name]
        while current is not None:
            chain.append(current)
            parent = None
            for base in current.bases:
                if isinstance(base, nodes.Name) and base.id in flow_classes and base.id != current.name:
                    parent = classes[base.id]
                    break
            current = parent if parent not in chain else None
        return list(reversed(chain))

    def _parse_class(self, name, classes, flow_classes):
        cls = classes[name]
        graph = FlowGraph(
            path=self.path,
            name=name,
            line=cls.lineno,
            doc=syntax.get_docstring(cls),
            decorators=[self._decorator(d) for d in cls.decorator_list],
        )
        for klass in self._class_chain(name, classes, flow_classes):
            defined_here = {}
            for stmt in klass.body:
                if isinstance(stmt, (nodes.FunctionDef, nodes.AsyncFunctionDef)):
                    node = self._step(stmt, graph)
                    if node is None:
                        continue
                    if node.name in defined_here:
                        graph.problems.append(
                            Problem(
                                stmt.lineno,
                                "step %s is defined twice (lines %d and %d); rename or remove one"
                                % (node.name, defined_here[node.name], stmt.lineno),
                            )
                        )
                    defined_here[node.name] = stmt.lineno
                    graph.steps.pop(node.name, None)  # a redefinition or override replaces the step
                    graph.steps[node.name] = node
                elif isinstance(stmt, (nodes.Assign, nodes.AnnAssign)):
                    self._parameter(stmt, graph)
        return graph

    # --- parameters ----------------------------------------------------------------------

    def _parameter(self, stmt, graph):
        value = stmt.value
        if not isinstance(value, nodes.Call) or self.api_name(value.func) not in _PARAMETER_KINDS:
            return
        targets = stmt.targets if isinstance(stmt, nodes.Assign) else [stmt.target]
        if len(targets) != 1 or not isinstance(targets[0], nodes.Name):
            return
        kind = self.api_name(value.func)
        kwargs = {kw.arg: kw.value for kw in value.keywords if kw.arg}
        name_node = value.args[0] if value.args else kwargs.get("name")
        info = ParameterInfo(
            attribute=targets[0].id,
            name=_literal(name_node) if name_node is not None else None,
            kind=kind,
            line=stmt.lineno,
        )
        for key in ("help", "separator"):
            if key in kwargs:
                setattr(info, key, _literal(kwargs[key]))
        if "required" in kwargs:
            info.required = bool(_literal(kwargs["required"]))
        if "default" in kwargs:
            info.has_default = True
            try:
                info.default = syntax.literal_eval(kwargs["default"])
            except (ValueError, SyntaxError, TypeError):
                info.default = self.source_text(kwargs["default"])
                info.default_literal = False
        if kind == "IncludeFile":
            info.type = "file"
        elif "type" in kwargs:
            type_name = self.api_name(kwargs["type"])
            info.type = type_name if type_name in _TYPE_NAMES else syntax.unparse(kwargs["type"])
        elif info.has_default and info.default_literal:
            info.type = _type_of_default(info.default)
        graph.parameters.append(info)

    # --- steps -----------------------------------------------------------------------------

    def _step(self, func, graph):
        names = [self.api_name(d.func if isinstance(d, nodes.Call) else d) for d in func.decorator_list]
        if "step" not in names:
            return None
        args = func.args
        node = StepNode(
            name=func.name,
            line=func.lineno,
            doc=syntax.get_docstring(func),
            arg_names=[a.arg for a in args.posonlyargs + args.args],
        )
        if args.vararg or args.kwarg or args.kwonlyargs:
            graph.problems.append(
                Problem(func.lineno, "step %s takes extra arguments; a step takes only self, a join (self, inputs)" % func.name)
            )
        step_index = names.index("step")
        step_decorator = func.decorator_list[step_index]
        if isinstance(step_decorator, nodes.Call):
            graph.problems.append(
                Problem(step_decorator.lineno, "@step on %s takes no arguments; write @step" % func.name)
            )
        if names.count("step") > 1:
            graph.problems.append(Problem(func.lineno, "@step is applied twice to %s; keep one" % func.name))
        for position, deco_node in enumerate(func.decorator_list):
            if names[position] == "step":
                continue
            deco = self._decorator(deco_node)
            if position > step_index:
                graph.problems.append(
                    Problem(deco.line, "@%s on step %s is placed below @step; put it above @step" % (deco.name, func.name))
                )
            node.decorators.append(deco)
        node.transition = self._transition(func, node, graph)
        return node

    def _decorator(self, node):
        call = node if isinstance(node, nodes.Call) else None
        deco = Decorator(name=self.api_name(call.func if call else node) or syntax.unparse(node), line=node.lineno)
        if call is not None:
            deco.positional = len(call.args)
            for kw in call.keywords:
                key = kw.arg if kw.arg is not None else "**"
                try:
                    deco.args[key] = syntax.literal_eval(kw.value)
                except (ValueError, SyntaxError, TypeError):
                    deco.args[key] = self.source_text(kw.value)
                    deco.nonliteral.append(key)
        return deco

    # --- transitions -----------------------------------------------------------------------

    def _transition(self, func, node, graph):
        self_name = node.arg_names[0] if node.arg_names else "self"
        body = [stmt for stmt in func.body if not _is_docstring(stmt)]
        last = body[-1] if body else None
        tail = last.value if isinstance(last, nodes.Expr) and _is_next_call(last.value, self_name) else None
        lines = self.lines[func.lineno - 1 : func.end_lineno]
        if tail is not None and node.name != "end" and sum(line.count(".next") for line in lines) == 1:
            calls = [tail]  # the common case, without walking the whole body
        else:
            calls = sorted(
                (sub for sub in syntax.walk(func) if _is_next_call(sub, self_name)),
                key=lambda c: (c.lineno, c.col_offset),
            )
        if node.name == "end":
            for call in calls:
                graph.problems.append(
                    Problem(call.lineno, "step end calls self.next(); end is the last step and goes nowhere")
                )
            return None
        if tail is None:
            if calls:
                graph.problems.append(
                    Problem(
                        calls[-1].lineno,
                        "self.next() must be the last statement of step %s, outside any if, for, with or try" % node.name,
                    )
                )
            else:
                graph.problems.append(
                    Problem(
                        func.lineno,
                        "step %s has no self.next() transition; add one as its last statement" % node.name,
                    )
                )
            return None
        for call in calls:
            if call is not tail:
                graph.problems.append(
                    Problem(call.lineno, "step %s calls self.next() more than once; call it once, last" % node.name)
                )
        return self._parse_next(tail, node, self_name, graph)

    def _parse_next(self, call, node, self_name, graph):
        line = call.lineno

        def invalid(message):
            graph.problems.append(Problem(line, "invalid self.next() in step %s: %s" % (node.name, message)))
            return None

        keywords = {}
        for kw in call.keywords:
            if kw.arg not in ("foreach", "condition"):
                return invalid(
                    "unknown keyword %s; self.next() takes steps, foreach= or condition=" % (kw.arg or "**")
                )
            keywords[kw.arg] = kw.value
        if not call.args:
            return invalid("it names no step; write e.g. self.next(self.%s)" % ("end" if node.name != "end" else "x"))
        if len(call.args) == 1 and isinstance(call.args[0], nodes.Dict):
            return self._parse_switch(call, node, self_name, keywords, invalid)
        if "condition" in keywords:
            return invalid("condition= goes with a dict of cases, e.g. self.next({'a': self.a, 'b': self.b}, condition='var')")
        targets = []
        for arg in call.args:
            target = _step_reference(arg, self_name)
            if target is None:
                return invalid("%s is not a step; name steps as %s.<step>" % (syntax.unparse(arg), self_name))
            if target in targets:
                return invalid("step %s is named twice" % target)
            targets.append(target)
        if "foreach" in keywords:
            var = keywords["foreach"]
            if not (isinstance(var, nodes.Constant) and isinstance(var.value, str) and var.value.isidentifier()):
                return invalid("foreach= must name an artifact as a string, e.g. foreach='items'")
            if len(targets) != 1:
                return invalid("a foreach goes to exactly one step, not %d" % len(targets))
            return Transition("foreach", line, targets, foreach=var.value)
        return Transition("linear" if len(targets) == 1 else "split", line, targets)

    def _parse_switch(self, call, node, self_name, keywords, invalid):
        if "foreach" in keywords:
            return invalid("a switch cannot also be a foreach")
        cases = {}
        mapping = call.args[0]
        for key, value in zip(mapping.keys, mapping.values):
            if key is None or not isinstance(key, nodes.Constant) or not isinstance(key.value, (str, int, bool)):
                return invalid("switch case keys must be literal strings")
            target = _step_reference(value, self_name)
            if target is None:
                return invalid("switch case %r does not name a step; write %s.<step>" % (key.value, self_name))
            case = str(key.value)
            if case in cases:
                return invalid("switch case %r appears twice" % case)
            cases[case] = target
        condition = keywords.get("condition")
        if condition is None:
            return invalid("a switch needs condition='<artifact>' naming the value that picks the case")
        if not (isinstance(condition, nodes.Constant) and isinstance(condition.value, str) and condition.value.isidentifier()):
            return invalid("condition= must name an artifact as a string, e.g. condition='mode'")
        if len(cases) < 2:
            return invalid("a switch needs at least two cases, not %d" % len(cases))
        targets = []
        for target in cases.values():
            if target not in targets:
                targets.append(target)
        return Transition("switch", call.lineno, targets, condition=condition.value, cases=cases)


def _is_next_call(node, self_name):
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.func, nodes.Attribute)
        and node.func.attr == "next"
        and isinstance(node.func.value, nodes.Name)
        and node.func.value.id == self_name
    )


def _module_level(statements):
    """Statements run when the module loads: the body, and inside if/try/with blocks,
    but not inside functions or classes."""
    for stmt in statements:
        yield stmt
        if isinstance(stmt, (nodes.If, nodes.Try, nodes.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _module_level(getattr(stmt, field, []))
        elif isinstance(stmt, nodes.ExceptHandler):
            yield from _module_level(stmt.body)


def _step_reference(node, self_name):
    if isinstance(node, nodes.Attribute) and isinstance(node.value, nodes.Name) and node.value.id == self_name:
        return node.attr
    return None


def _is_docstring(stmt):
    return isinstance(stmt, nodes.Expr) and isinstance(stmt.value, nodes.Constant) and isinstance(stmt.value.value, str)


def _dotted(node):
    parts = []
    while isinstance(node, nodes.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, nodes.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _literal(node):
    try:
        return syntax.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return syntax.unparse(node)


def _type_of_default(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (dict, list)):
        return "JSONType"
    return "str"
