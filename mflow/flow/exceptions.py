"""Exceptions a step meets at run time: what @catch stores, what @timeout raises.

Both pickle by value and import from mflow alone, so a notebook can load a caught failure.
"""


class TimeoutException(Exception):
    """Raised inside a step that ran longer than its @timeout allows."""


class CaughtException:
    """A failure @catch stored in its `var`: the exception's type, message and traceback.

    Not an exception itself, so that loading it never raises; `str()` gives the message.
    """

    def __init__(self, type, message, traceback=""):
        self.type = type
        self.message = message
        self.traceback = traceback

    def __str__(self):
        return "%s: %s" % (self.type, self.message) if self.message else self.type

    def __repr__(self):
        return "CaughtException(%s)" % str(self)

    def __eq__(self, other):
        return isinstance(other, CaughtException) and (self.type, self.message, self.traceback) == (
            other.type,
            other.message,
            other.traceback,
        )

    def as_dict(self):
        return {"type": self.type, "message": self.message, "traceback": self.traceback}
