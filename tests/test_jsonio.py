"""mflow.jsonio reads and writes exactly what the json package does, without importing it."""

import json
import math
import random
import subprocess
import sys

import pytest

from mflow import jsonio

VALUES = [
    {},
    [],
    "",
    "plain",
    "ünïcödé ☃ 😀 \u2028 \x00 \x1f \"quoted\" \\ /",
    "\ud800 lone surrogate",
    0,
    -1,
    2**80,
    -(2**70),
    0.1,
    -1e-300,
    1e300,
    3.0,
    True,
    False,
    None,
    {"b": 1, "a": [1, 2.5, {"z": None, "y": "x"}], "c": {"nested": {"deep": [[], {}]}}},
    {"é": "ß", "\u00e9": 1},
    [float("inf"), float("-inf")],
    {"schema": 1, "pathspec": "Flow/1/start/1", "tags": ["a", "b"], "ended_at": "2026-01-01T00:00:00.000Z"},
]


def _random_value(rng, depth=0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.randrange(-(10**20), 10**20)
    if kind == 1:
        return rng.uniform(-1e10, 1e10)
    if kind == 2:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x2FFF)])) for _ in range(rng.randrange(8)))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.random()
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {"k%d%s" % (i, chr(rng.randrange(0x80, 0x3000))): _random_value(rng, depth + 1) for i in range(rng.randrange(5))}


@pytest.mark.parametrize("value", VALUES + [_random_value(random.Random(seed)) for seed in range(40)])
def test_text_is_the_json_packages(value):
    for options in ({}, {"sort_keys": True, "separators": (",", ":")}, {"ensure_ascii": False},
                    {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":")}):
        text = jsonio.dumps(value, **options)
        assert text == json.dumps(value, **options)
        back = jsonio.loads(text)
        expected = json.loads(text)
        assert back == expected or (isinstance(back, list) and any(isinstance(v, float) and math.isnan(v) for v in back))
        assert jsonio.loads(text.encode("utf-8", "surrogatepass")) == json.loads(text.encode("utf-8", "surrogatepass"))


def test_reads_what_json_reads_and_refuses_what_it_refuses():
    for text in ("  {\"a\": 1}\n", "\t[1, 2]\r\n", "NaN", "-Infinity", "[1e5, -0.0, 1E-3]", '"\\u00e9\\ud83d\\ude00"'):
        value = jsonio.loads(text)
        assert repr(value) == repr(json.loads(text))
    for bad in ("", "   ", "{", "[1,]", "{\"a\" 1}", "[1] x", "\ufeff[1]", "'single'", "[1, 2", "tru"):
        with pytest.raises(json.JSONDecodeError) as ours:
            jsonio.loads(bad)
        with pytest.raises(json.JSONDecodeError) as theirs:
            json.loads(bad)
        assert str(ours.value) == str(theirs.value)
    assert jsonio.loads("\ufeff[1]".encode("utf-8")) == [1]  # bytes with a BOM, as json reads them
    assert jsonio.loads('{"a": [1]}'.encode("utf-16")) == {"a": [1]}


def test_writing_refuses_what_json_refuses():
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsonio.dumps({"a": object()})
    with pytest.raises(ValueError, match="Out of range float"):
        jsonio.dumps([float("nan")], allow_nan=False)
    circular = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        jsonio.dumps(circular)
    assert jsonio.dumps({"a": {1, 2}}, default=sorted) == json.dumps({"a": {1, 2}}, default=sorted)
    assert jsonio.dumps({"x": object}, default=repr) == json.dumps({"x": object}, default=repr)
    assert jsonio.dumps({1: 2, 2.5: True, None: 0}) == json.dumps({1: 2, 2.5: True, None: 0})


def test_using_it_imports_neither_json_nor_re():
    code = ("import sys\nfrom mflow import jsonio\n"
            "jsonio.loads(jsonio.dumps({'a': [1, 2.5, 'x', None]}, sort_keys=True))\n"
            "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_malformed_input_raises_jsons_error_in_a_process_without_json():
    # The C scanner alone cannot build its JSONDecodeError for some input (CPython 3.11 gave
    # a SystemError for `{bad`); in a fresh process, as every task is, json's error comes.
    code = ("from mflow import jsonio\n"
            "for text in ('{bad', '[1,', '{\"a\" 1}', 'nul', '\"x'):\n"
            "    try:\n"
            "        jsonio.loads(text)\n"
            "    except ValueError as exc:\n"
            "        print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "JSONDecodeError Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "JSONDecodeError Expecting value: line 1 column 4 (char 3)",
        "JSONDecodeError Expecting ':' delimiter: line 1 column 6 (char 5)",
        "JSONDecodeError Expecting value: line 1 column 1 (char 0)",
        "JSONDecodeError Unterminated string starting at: line 1 column 1 (char 0)",
    ]
