"""Package attributes that import their module on first use (PEP 562), so that importing a
package costs nothing for the names a process never touches."""


def lazy_getattr(package, exports, namespace):
    """A module `__getattr__` for `package`: `exports` maps a name to the module that defines
    it; the value found is kept in `namespace` (the package's globals) for later lookups."""

    def __getattr__(name):
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError("module %r has no attribute %r" % (package, name))
        import importlib

        value = getattr(importlib.import_module(module_name), name)
        namespace[name] = value
        return value

    return __getattr__
