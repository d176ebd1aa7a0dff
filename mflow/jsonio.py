"""JSON for the records a task reads and writes, without importing the json package.

`import json` brings in re and enum: about 10 ms of CPU in every task process, more than
the task spends on its few records. The json package does its work in CPython's _json
accelerator (the scanner and string quoting); these use it directly, with json's own
settings, so the text read and written is exactly json's. Without _json (another Python),
and for input json would refuse (its error is the one raised), the json package is used.
"""

try:
    from _json import encode_basestring as _quote
    from _json import encode_basestring_ascii as _quote_ascii
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # not CPython: json does it all
    _make_scanner = _make_encoder = None

_WHITESPACE = " \t\n\r"
_scanner = []  # the one scanner, made on first use


class _Settings:
    """json.JSONDecoder's default settings, as the C scanner reads them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name):
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def loads(data):
    """json.loads(data) of str or UTF-8 bytes."""
    if _make_scanner is None:
        return _json_module().loads(data)
    if isinstance(data, (bytes, bytearray)):
        if data[:3] == b"\xef\xbb\xbf" or b"\x00" in data[:4]:
            return _json_module().loads(data)  # UTF-16/32 or a BOM: json detects those
        data = data.decode("utf-8", "surrogatepass")
    if not _scanner:
        _scanner.append(_make_scanner(_Settings))
    start = len(data) - len(data.lstrip(_WHITESPACE))
    try:
        value, end = _scanner[0](data, start)
    except (StopIteration, SystemError):
        # SystemError: on some malformed input (`{bad`) the C scanner, used without the json
        # package, fails to build its JSONDecodeError (CPython 3.11); json's own reading
        # raises the real one.
        return _json_module().loads(data)  # raises json's own message
    if end != len(data) and data[end:].strip(_WHITESPACE):
        return _json_module().loads(data)  # extra data: json's error
    return value


def dumps(value, sort_keys=False, ensure_ascii=True, allow_nan=True, default=None, separators=(", ", ": ")):
    """json.dumps(value, ...) with these of its options (no indent)."""
    if _make_encoder is None:
        return _json_module().dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii, allow_nan=allow_nan,
                                    default=default, separators=separators)
    quote = _quote_ascii if ensure_ascii else _quote
    if isinstance(value, str):
        return quote(value)
    encoder = _make_encoder({}, default or _refuse, quote, None, separators[1], separators[0], sort_keys, False,
                            allow_nan)
    return "".join(encoder(value, 0))


def _refuse(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def _json_module():
    import json

    return json
