"""Import a flow file as a module and find its flow class, once per process.

The file is imported under its own name (not __main__), so `if __name__ == "__main__"`
does not start a second command line inside a task.
"""

import os
import sys

try:  # what importlib.util hands out, without importing it (with contextlib and more) in every task
    from _frozen_importlib import module_from_spec
    from _frozen_importlib_external import SourceFileLoader, spec_from_file_location
except ImportError:
    from importlib.machinery import SourceFileLoader
    from importlib.util import module_from_spec, spec_from_file_location

from mflow.errors import FlowFileError

_LOADED = {}  # (absolute path, flow name) -> class


def load_flow_class(path, flow_name, compiled=None):
    """The FlowSpec subclass `flow_name` defined in the flow file at `path`. `compiled`:
    (SHA-256 of a source, its marshalled code), used if the file holds that source."""
    path = os.path.abspath(path)
    cached = _LOADED.get((path, flow_name))
    if cached is not None:
        return cached
    module = _import_file(path, compiled)
    flow_class = getattr(module, flow_name, None)
    from mflow.flow.spec import FlowSpec

    if not (isinstance(flow_class, type) and issubclass(flow_class, FlowSpec)):
        raise FlowFileError(
            "%s defines no flow class %s when imported" % (path, flow_name),
            "Define it at the module's top level",
            path=path,
        )
    _LOADED[(path, flow_name)] = flow_class
    return flow_class


class _CompiledLoader(SourceFileLoader):
    """The flow file's loader, given its code compiled already (by the driver, for a run's
    packaged tasks): used when the file holds the source it was compiled from, else the file
    is compiled as usual. Writes no bytecode cache beside the file."""

    def __init__(self, name, path, compiled):
        super().__init__(name, path)
        self._compiled = compiled

    def get_code(self, fullname):
        import marshal

        import _imp

        from mflow.store.sha import sha256_hex

        source = self.get_data(self.path)
        digest, data = self._compiled
        if sha256_hex(source) == digest:
            try:
                code = marshal.loads(data)
            except (EOFError, ValueError, TypeError):
                code = None
            if code is not None:
                _imp._fix_co_filename(code, self.path)  # tracebacks name this file, as a .pyc's do
                return code
        return self.source_to_code(source, self.path)


def _import_file(path, compiled=None):
    directory = os.path.dirname(path)
    # As `python flow.py` would: modules beside the flow file are importable.
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = os.path.splitext(os.path.basename(path))[0]
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == path:
        return existing
    if existing is not None or name in getattr(sys, "stdlib_module_names", ()) or not name.isidentifier():
        # Never replace a module that is (or may be) someone else's, e.g. a flow in statistics.py.
        name = "mflow_flow_" + "".join(c if c.isalnum() else "_" for c in name)
    loader = _CompiledLoader(name, path, compiled) if compiled else None
    spec = spec_from_file_location(name, path, loader=loader)
    if spec is None or spec.loader is None:
        raise FlowFileError("cannot import flow file %s" % path, "Give the path of a .py file", path=path)
    module = module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        sys.modules.pop(name, None)
        raise FlowFileError("flow file %s does not exist" % path, "Check the path and try again", path=path)
    except Exception as exc:
        sys.modules.pop(name, None)
        from mflow.errors import MflowError

        if isinstance(exc, MflowError):
            raise
        raise FlowImportError(path, exc) from exc
    return module


class FlowImportError(FlowFileError):
    """Importing the flow file raised: a missing library, an error at module level."""

    def __init__(self, path, exc):
        self.original = exc
        super().__init__(
            "importing flow file %s failed: %s: %s" % (path, type(exc).__name__, exc),
            "Fix the error (run `python %s` to see it) or install what it imports" % os.path.basename(path),
            path=path,
        )
