"""Package attributes that import their module on first use (PEP 562), so that importing a
package costs nothing for the names a process never touches."""

import sys


def lazy_getattr(package, exports, namespace):
    """A module `__getattr__` for `package`: `exports` maps a name to the module that defines
    it; the value found is kept in `namespace` (the package's globals) for later lookups."""

    def __getattr__(name):
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError("module %r has no attribute %r" % (package, name))
        __import__(module_name)  # importlib.import_module's work, without importing importlib
        value = getattr(sys.modules[module_name], name)
        namespace[name] = value
        return value

    return __getattr__
