"""Metaflow pathspecs (Flow/run_id/step/task_id[/artifact]) parsed and checked in one place.

A malformed pathspec is a usage error before any store is touched; a well-formed one that
the store lacks is a NotFoundError raised by whoever looks it up.
"""

from __future__ import annotations

from mflow.errors import PathspecError
from mflow.namedtuple import NamedTuple
from mflow.naming import WORD_CHARACTERS, is_identifier

# Flow, step and artifact names are Python identifiers; run and task ids are what schedulers
# hand out (digits locally, `sfn-...`, `argo-...`), so they also allow '.' and '-' but never
# '/' or a leading '.', which keeps every pathspec a safe relative path in the store.
_ID_CHARACTERS = WORD_CHARACTERS | {".", "-"}


def _is_id(text):
    """A run or task id: up to 200 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`."""
    return 0 < len(text) <= 200 and text[0] in WORD_CHARACTERS and _ID_CHARACTERS.issuperset(text)

_PARTS = ("flow", "run_id", "step", "task_id", "artifact")
_FORMS = {
    1: "Flow",
    2: "Flow/run_id",
    3: "Flow/run_id/step",
    4: "Flow/run_id/step/task_id",
    5: "Flow/run_id/step/task_id/artifact",
}


class Pathspec(NamedTuple):
    """A parsed pathspec; parts below its depth are None."""

    flow: str
    run_id: Optional[str] = None
    step: Optional[str] = None
    task_id: Optional[str] = None
    artifact: Optional[str] = None

    @classmethod
    def parse(cls, text, min_depth=1, max_depth=5):
        """Parse `text`, requiring between min_depth and max_depth parts."""
        text = str(text).strip()
        parts = text.split("/") if text else []
        want = _FORMS[min_depth] if min_depth == max_depth else "%s to %s" % (_FORMS[min_depth], _FORMS[max_depth])
        if not (min_depth <= len(parts) <= max_depth):
            raise PathspecError("%r is not a pathspec of the form %s" % (text, want), "Check the number of '/' parts")
        for kind, part in zip(_PARTS, parts):
            if not (_is_id(part) if kind in ("run_id", "task_id") else is_identifier(part)):
                raise PathspecError(
                    "%r is not a valid pathspec: %r is not a valid %s" % (text, part, kind.replace("_", " ")),
                    "Write it as %s" % want,
                )
        return cls(*parts)

    @classmethod
    def task(cls, flow, run_id, step, task_id):
        """The pathspec of one task, checked."""
        return cls.parse("/".join(str(p) for p in (flow, run_id, step, task_id)), 4, 4)

    @property
    def depth(self):
        return sum(1 for part in self if part is not None)

    @property
    def parts(self):
        return tuple(part for part in self if part is not None)

    def parent(self):
        """The pathspec one level up (the task of an artifact, the run of a step...)."""
        parts = self.parts[:-1]
        return Pathspec(*parts) if parts else None

    def __str__(self):
        return "/".join(self.parts)


def parse_task_pathspec(text):
    """A Flow/run_id/step/task_id pathspec."""
    return Pathspec.parse(text, 4, 4)


def parse_artifact_pathspec(text):
    """A Flow/run_id/step/task_id/artifact pathspec."""
    return Pathspec.parse(text, 5, 5)
