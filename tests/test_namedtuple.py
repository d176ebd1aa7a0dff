"""mflow.namedtuple.NamedTuple behaves as typing.NamedTuple does for mflow's plain-data classes."""

from __future__ import annotations

import copy
import pickle
import typing

import pytest

from mflow.namedtuple import NamedTuple


class Point(NamedTuple):
    """A point, with a method and a constant beside its fields."""

    x: int
    y: int
    label: typing.Optional[str] = None
    tags: tuple = ()

    ORIGIN_NAME = "origin"

    def moved(self, dx):
        return self._replace(x=self.x + dx)


class TypingPoint(typing.NamedTuple):
    x: int
    y: int
    label: typing.Optional[str] = None
    tags: tuple = ()


def test_constructs_like_typing_namedtuple():
    for args, kwargs in (((1, 2), {}), ((1,), {"y": 2, "tags": ("a",)}), ((), {"x": 1, "y": 2, "label": "p"}),
                         ((1, 2, "p", ("t",)), {})):
        ours, theirs = Point(*args, **kwargs), TypingPoint(*args, **kwargs)
        assert tuple(ours) == tuple(theirs) and ours == theirs
        assert (ours.x, ours.y, ours.label, ours.tags) == (theirs.x, theirs.y, theirs.label, theirs.tags)
    assert Point._fields == TypingPoint._fields == ("x", "y", "label", "tags")
    assert Point._field_defaults == TypingPoint._field_defaults == {"label": None, "tags": ()}
    assert repr(Point(1, 2)) == "Point(x=1, y=2, label=None, tags=())"
    assert Point(1, 2).moved(3) == Point(4, 2) and Point.ORIGIN_NAME == "origin"
    assert Point._make([1, 2, "a", ()])._asdict() == {"x": 1, "y": 2, "label": "a", "tags": ()}
    assert isinstance(Point(1, 2), tuple) and hash(Point(1, 2)) == hash((1, 2, None, ()))
    x, y, _, _ = Point(5, 6)
    assert (x, y) == (5, 6)


def test_copies_and_pickles():
    point = Point(1, 2, "p", ("a", "b"))
    assert pickle.loads(pickle.dumps(point)) == point and type(pickle.loads(pickle.dumps(point))) is Point
    assert copy.copy(point) == point and copy.deepcopy(point) == point


def test_is_immutable():
    point = Point(1, 2)
    with pytest.raises(AttributeError):
        point.x = 3
    with pytest.raises(AttributeError):
        point.other = 3


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Point(1), "missing argument 'y'"),
        (lambda: Point(1, 2, "a", (), 5), "takes 4 arguments, 5 given"),
        (lambda: Point(1, 2, z=3), "unexpected argument 'z'"),
        (lambda: Point(1, 2, x=3), "multiple values for 'x'"),
        (lambda: Point._make([1, 2]), "expects 4 values, got 2"),
    ],
)
def test_refuses_wrong_arguments(make, words):
    with pytest.raises(TypeError, match=words):
        make()


def test_replace_refuses_unknown_fields():
    with pytest.raises(ValueError, match="no fields"):
        Point(1, 2)._replace(z=1)


def test_refuses_bad_definitions():
    with pytest.raises(TypeError, match="without a default"):

        class Bad(NamedTuple):
            a: int = 1
            b: int

    with pytest.raises(TypeError, match="underscore"):

        class Private(NamedTuple):
            _a: int


def test_a_subclass_keeps_its_base_fields():
    class Labelled(Point):
        def __new__(cls, point, note):
            self = super().__new__(cls, *point)
            self.note = note
            return self

    labelled = Labelled(Point(1, 2), "n")
    assert labelled == (1, 2, None, ()) and labelled.y == 2 and labelled.note == "n"
    assert Labelled._fields == Point._fields
