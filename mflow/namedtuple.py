"""NamedTuple for mflow's plain-data classes, cheap to define.

Written as typing.NamedTuple is (`class TaskSpec(NamedTuple):` with annotated fields and
defaults, in a module with `from __future__ import annotations`), and the same to use: a
tuple, with fields by name, `_fields`, `_field_defaults`, `_make`, `_replace`, `_asdict`,
equality, hashing, repr and pickling. What differs is the cost of defining one. typing
imports about 3 ms of modules and typing.NamedTuple compiles code for each class, about
0.3 ms; every mflow-task process defines some twenty-five, at every task's start. These
classes share one generic constructor instead, and need no typing at all.
"""

from operator import itemgetter

__all__ = ["NamedTuple"]


class _NamedTupleMeta(type):
    def __new__(mcls, name, bases, namespace):
        if bases == (tuple,) or NamedTuple not in bases:
            # NamedTuple itself, or a plain subclass of a named tuple class: as in typing,
            # it keeps its base's fields (and may add attributes of its own).
            return super().__new__(mcls, name, bases, namespace)
        fields = tuple(namespace.get("__annotations__", {}))
        defaults = {}
        for field in fields:
            if field.startswith("_"):
                raise TypeError("%s: field names cannot start with an underscore: %r" % (name, field))
            if field in namespace:
                defaults[field] = namespace.pop(field)
            elif defaults:
                raise TypeError("%s: field %r without a default follows fields with one" % (name, field))
        namespace["__slots__"] = ()
        namespace["_fields"] = fields
        namespace["_field_defaults"] = defaults
        namespace["_size"] = len(fields)
        for index, field in enumerate(fields):
            namespace[field] = property(itemgetter(index), doc="Alias for field number %d" % index)
        return super().__new__(mcls, name, bases, namespace)


class NamedTuple(tuple, metaclass=_NamedTupleMeta):
    __slots__ = ()
    _fields = ()
    _field_defaults = {}
    _size = 0

    def __new__(cls, *args, **kwargs):
        if not kwargs and len(args) == cls._size:
            return tuple.__new__(cls, args)
        return tuple.__new__(cls, cls._bind(args, kwargs))

    @classmethod
    def _bind(cls, args, kwargs):
        if len(args) > cls._size:
            raise TypeError("%s takes %d arguments, %d given" % (cls.__name__, cls._size, len(args)))
        values = list(args)
        for field in cls._fields[len(args):]:
            if field in kwargs:
                values.append(kwargs.pop(field))
            elif field in cls._field_defaults:
                values.append(cls._field_defaults[field])
            else:
                raise TypeError("%s() missing argument %r" % (cls.__name__, field))
        if kwargs:
            word = "got multiple values for" if set(kwargs) & set(cls._fields) else "got an unexpected argument"
            raise TypeError("%s() %s %r" % (cls.__name__, word, sorted(kwargs)[0]))
        return values

    @classmethod
    def _make(cls, iterable):
        values = tuple.__new__(cls, iterable)
        if len(values) != cls._size:
            raise TypeError("%s expects %d values, got %d" % (cls.__name__, cls._size, len(values)))
        return values

    def _replace(self, **changes):
        values = self._make(map(changes.pop, self._fields, self))
        if changes:
            raise ValueError("%s has no fields %r" % (type(self).__name__, sorted(changes)))
        return values

    def _asdict(self):
        return dict(zip(self._fields, self))

    def __getnewargs__(self):
        return tuple(self)

    def __repr__(self):
        return "%s(%s)" % (
            type(self).__name__, ", ".join("%s=%r" % pair for pair in zip(self._fields, self))
        )
