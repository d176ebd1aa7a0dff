"""Parameter, JSONType and IncludeFile: a flow's inputs, checked when the class is defined.

Each turns the text given on the command line or in the environment into its typed value.
"""

import os
from collections import namedtuple

from mflow.errors import FlowDefinitionError, ParameterError
from mflow.naming import is_parameter_name, is_reserved_parameter


# What a deferred default (`default=lambda ctx: ...`) is called with, as in Metaflow.
ParameterContext = namedtuple("ParameterContext", "flow_name user_name parameter_name logger ds_type")

_TRUE = ("true", "t", "yes", "y", "on", "1")
_FALSE = ("false", "f", "no", "n", "off", "0")


class JSONTypeClass:
    """The `type=JSONType` of a parameter whose value is JSON text, parsed."""

    name = "JSON"

    def convert(self, text):
        """The parsed value of `text`; ValueError when it is not JSON."""
        import json

        return json.loads(text)

    def __repr__(self):
        return "JSONType"


JSONType = JSONTypeClass()

_TYPES = (str, int, float, bool, JSONType)
_TYPE_NAMES = {str: "str", int: "int", float: "float", bool: "bool", JSONType: "JSONType"}
_EXPECTED = {
    str: ("text", "any text"),
    int: ("a whole number", "a whole number such as 10"),
    float: ("a number", "a number such as 0.5"),
    bool: ("true or false", "true, false, yes, no, 1 or 0"),
    JSONType: ("JSON", 'JSON such as {"a": 1} or [1, 2]'),
}


class Parameter:
    """A value given to a run (`--NAME VALUE` or the environment), read in steps as self.ATTRIBUTE.

    `type` is str, int, float, bool or JSONType, inferred from `default` when not given.
    `default` may be a function of a ParameterContext, evaluated when a run starts. A
    `required` parameter with a default is satisfied by the default, as in Metaflow.
    `separator` (str parameters only) splits the value into a list of strings.
    """

    _ARGUMENTS = "default, type, help, required, show_default and separator"

    def __init__(
        self,
        name,
        default=None,
        type=None,
        help=None,
        required=False,
        show_default=True,
        separator=None,
        **kwargs
    ):
        self.name = name
        self._check_name()
        if kwargs:
            self._fail("has no argument %s" % ", ".join(sorted(kwargs)), "It takes %s" % self._ARGUMENTS)
        # Metaflow's signature defaults both to None, so ported code may pass None.
        required = False if required is None else required
        show_default = True if show_default is None else show_default
        for field, value in (("required", required), ("show_default", show_default)):
            if not isinstance(value, bool):
                self._fail("%s= must be True or False, not %r" % (field, value), "Give a literal True or False")
        if help is not None and not isinstance(help, str):
            self._fail("help= must be text, not %r" % (help,), "Give a string")
        self.type = self._resolve_type(type, default)
        if separator is not None:
            if not isinstance(separator, str) or not separator:
                self._fail("separator= must be a non-empty string, not %r" % (separator,), "Give e.g. separator=','")
            if self.type is not str:
                self._fail(
                    "has separator= but type %s" % _TYPE_NAMES[self.type],
                    "A separator is allowed only for str parameters; drop it or use type=str",
                )
        self.separator = separator
        self.help = help
        self.required = required
        self.show_default = show_default
        self._attribute = None
        self.default = default if callable(default) else self._coerce(default, FlowDefinitionError)

    # --- construction ---------------------------------------------------------------------

    @property
    def kind(self):
        return type(self).__name__

    def _fail(self, what, hint):
        raise FlowDefinitionError("%s %r %s" % (self.kind, self.name, what), hint)

    def _check_name(self):
        if not isinstance(self.name, str) or not is_parameter_name(self.name):
            raise FlowDefinitionError(
                "%s name %r is invalid" % (self.kind, self.name),
                "Use letters, digits, _ and -, starting with a letter or _",
            )
        if is_reserved_parameter(self.name):
            raise FlowDefinitionError(
                "%s name %r is reserved, as in Metaflow" % (self.kind, self.name),
                "Rename the parameter",
            )

    def _resolve_type(self, given, default):
        if given is None:
            if default is None or callable(default):
                return str
            for candidate in (bool, int, float, str):
                if isinstance(default, candidate):
                    return candidate
            if isinstance(default, (dict, list)):
                return JSONType
            self._fail(
                "cannot infer its type from default %s" % _short(default),
                "Give type= (str, int, float, bool or JSONType)",
            )
        # By identity: some foreign types (numpy dtypes) compare equal to int or float.
        if not any(given is known for known in _TYPES):
            self._fail("has type %s" % _short(given), "Use type=str, int, float, bool or JSONType")
        return given

    def _coerce(self, value, error):
        """`value` (a default) as this parameter's type; `error` says whose mistake a bad one is.

        Only JSONType parses a string default (as Metaflow's click options do); the other
        types take a default of their own kind, as the static linter expects.
        """
        if value is None:
            return None
        if self.type is JSONType:
            if isinstance(value, str):
                try:
                    return JSONType.convert(value)
                except ValueError:
                    pass
            elif _is_json(value):
                return value
        elif self.type is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif self.type is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif isinstance(value, self.type):
            return value
        raise error(
            "%s %r has default %s, which is not %s" % (self.kind, self.name, _short(value), _EXPECTED[self.type][0]),
            "Give a default of %s" % _EXPECTED[self.type][1],
        )

    # --- values -----------------------------------------------------------------------------

    @property
    def is_deferred(self):
        """True when the default is a function evaluated when a run starts."""
        return callable(self.default)

    @property
    def needs_value(self):
        """True when a run cannot start without a value given for this parameter."""
        return self.required and self.default is None

    def convert(self, text):
        """The typed value of `text` from the command line or environment; ParameterError if invalid."""
        if not isinstance(text, str):
            raise TypeError("convert() takes the text of a value, not %s" % type(text).__name__)
        if self.separator is not None:
            return [self._convert_one(part) for part in text.split(self.separator)] if text else []
        return self._convert_one(text)

    def _convert_one(self, text):
        try:
            return self._convert_text(text)
        except ValueError as exc:
            detail = " (%s)" % exc if self.type is JSONType else ""
            raise ParameterError(
                "parameter %r expects %s, not %s%s" % (self.name, _EXPECTED[self.type][0], _short(text), detail),
                "Give %s" % _EXPECTED[self.type][1],
            )

    def _convert_text(self, text):
        if self.type is str:
            return text
        if self.type is bool:
            word = text.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError(text)
        return self.type.convert(text) if self.type is JSONType else self.type(text.strip())

    def resolve_default(self, context=None):
        """The value a run uses when none is given: the default, evaluated and split as needed.

        A deferred default is called with `context` (a ParameterContext; one naming only this
        parameter and the user when None); what it returns is checked like a literal default.
        """
        value = self.default
        if callable(value):
            if context is None:
                from mflow.flow.current import resolve_username

                context = ParameterContext(None, resolve_username(), self.name, None, None)
            try:
                value = value(context._replace(parameter_name=self.name))
            except Exception as exc:
                raise ParameterError(
                    "the default function of %s %r failed: %s: %s" % (self.kind, self.name, type(exc).__name__, exc),
                    "Fix the function or give a value for %s" % self.name,
                )
            value = self._coerce(value, ParameterError)
        if self.separator is not None and isinstance(value, str):
            return value.split(self.separator) if value else []
        return value

    # --- on a flow instance -------------------------------------------------------------------

    def __set_name__(self, owner, attribute):
        self._attribute = attribute

    def __get__(self, flow, owner=None):
        if flow is None:
            return self
        values = flow.__dict__.get("_parameter_values", {})
        if self._attribute in values:
            return values[self._attribute]
        raise AttributeError(
            "parameter %r (self.%s) has no value outside a run" % (self.name, self._attribute)
        )

    def __set__(self, flow, value):
        raise FlowDefinitionError(
            "a step assigns self.%s, which is parameter %r" % (self._attribute, self.name),
            "Parameters are read-only; store the new value under another name",
        )

    def __delete__(self, flow):
        raise FlowDefinitionError(
            "a step deletes self.%s, which is parameter %r" % (self._attribute, self.name),
            "Parameters are read-only",
        )

    def __repr__(self):
        return "%s(%r, type=%s, default=%s)" % (self.kind, self.name, _TYPE_NAMES[self.type], _short(self.default))


class IncludeFile(Parameter):
    """A parameter whose value is the content of a file given by its path: text, or bytes when is_text=False."""

    _ARGUMENTS = "required, is_text, encoding, help and default"

    def __init__(self, name, required=False, is_text=True, encoding="utf-8", help=None, default=None, **kwargs):
        super().__init__(name, default=default, type=str, help=help, required=required)
        if kwargs:
            self._fail("has no argument %s" % ", ".join(sorted(kwargs)), "It takes %s" % self._ARGUMENTS)
        if not isinstance(is_text, bool):
            self._fail("is_text= must be True or False, not %r" % (is_text,), "Give a literal True or False")
        if not isinstance(encoding, str):
            self._fail("encoding= must be text, not %r" % (encoding,), "Give e.g. encoding='utf-8'")
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError:
            self._fail("has unknown encoding %r" % encoding, "Use an encoding Python knows, such as 'utf-8'")
        self.is_text = is_text
        self.encoding = encoding

    def convert(self, text):
        """The content of the file at path `text`; ParameterError when it cannot be read or decoded."""
        if not isinstance(text, str):
            raise TypeError("convert() takes a path, not %s" % type(text).__name__)
        return self._read(text)

    def resolve_default(self, context=None):
        path = super().resolve_default(context)
        return None if path is None else self._read(path)

    def _read(self, path):
        try:
            with open(os.path.expanduser(path), "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise ParameterError(
                "IncludeFile %r cannot read %r: %s" % (self.name, path, exc.strerror or exc),
                "Give the path of a readable file",
            )
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise ParameterError(
                "IncludeFile %r: %r is not %s text (%s)" % (self.name, path, self.encoding, exc.reason),
                "Give encoding= to match the file, or is_text=False to read bytes",
            )


def _is_json(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
