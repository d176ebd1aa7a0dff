"""Run tags: the rules for user tags, the system tags every run gets, and namespaces (a
namespace is one tag, `user:<name>` by default; the functions mirror Metaflow's).
"""

import os
import sys

from mflow.errors import TagError

MAX_TAG_LENGTH = 500

# Prefixes of the tags mflow gives a run at start; no user can remove them.
SYSTEM_TAG_PREFIXES = ("user:", "runtime:", "python_version:", "mflow_version:", "date:", "project:",
                       "project_branch:", "scheduler:", "production:")


def validate_tag(tag):
    """`tag` itself when it is a valid user tag: text of 1 to 500 characters, any Unicode that
    can be written as UTF-8; TagError otherwise."""
    if not isinstance(tag, str):
        raise TagError("tag %r is not text" % (tag,), "Give tags as strings")
    if not tag:
        raise TagError("a tag cannot be empty", "Give a tag of 1 to %d characters" % MAX_TAG_LENGTH)
    if len(tag) > MAX_TAG_LENGTH:
        raise TagError(
            "tag %r... is %d characters long, more than %d" % (tag[:20], len(tag), MAX_TAG_LENGTH),
            "Shorten it",
        )
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise TagError("tag %r is not valid Unicode text" % (tag,), "Check the shell's encoding") from None
    return tag


def is_system_tag(tag):
    """True for a tag in a system tag's form (user:..., runtime:..., ...): users can neither
    add nor remove those, so that a namespace always means who started the run."""
    return tag.startswith(SYSTEM_TAG_PREFIXES)


def validate_tags(tags, action="add"):
    """A tuple of the valid user tags, in order, without repeats; TagError on the first bad
    one, or on a system tag (`action` names what was tried in the message)."""
    if isinstance(tags, str):
        tags = (tags,)
    seen = []
    for tag in tags:
        validate_tag(tag)
        if is_system_tag(tag):
            raise TagError(
                "cannot %s %r: it is a system tag" % (action, tag),
                "Tags beginning with %s belong to mflow; nothing was changed" % ", ".join(SYSTEM_TAG_PREFIXES),
            )
        if tag not in seen:
            seen.append(tag)
    return tuple(seen)


def system_tags(user, runtime="mflow", started=None):
    """The tags mflow gives every run: user:NAME, runtime:..., python_version:X.Y.Z,
    mflow_version:V and date:YYYY-MM-DD (UTC)."""
    import time

    from mflow import __version__

    version = "%d.%d.%d" % sys.version_info[:3]
    tags = ["user:%s" % (user or "unknown"), "runtime:%s" % runtime, "python_version:%s" % version]
    tags.append("mflow_version:%s" % __version__)
    tags.append("date:%s" % time.strftime("%Y-%m-%d", time.gmtime(time.time() if started is None else started)))
    return tuple(tags)


def apply_changes(user_tags, changes):
    """The user tags after replaying TagChangeRecords in order: each removes, then adds."""
    current = list(user_tags)
    for change in changes:
        current = [t for t in current if t not in change.remove]
        current.extend(t for t in change.add if t not in current)
    return tuple(current)


# --- namespaces --------------------------------------------------------------------------------

_UNSET = object()
_current = _UNSET


def user_namespace(environ=None):
    """`user:<name>` for the user the environment names (see mflow.flow.current), or None."""
    from mflow.flow.current import resolve_username

    name = resolve_username(os.environ if environ is None else environ)
    return "user:%s" % name if name else None


def namespace(ns):
    """Look at runs carrying tag `ns` from now on (None: every run); returns `ns`."""
    global _current
    if ns is not None:
        validate_tag(ns)
    _current = ns
    return ns


def get_namespace(environ=None):
    """The namespace in use: the one set by namespace(), else the default, `user:<name>`
    for the user `environ` (default: this process's environment) names."""
    if _current is _UNSET:
        return user_namespace(environ)
    return _current


def default_namespace():
    """Go back to the default namespace, `user:<name>`, and return it."""
    global _current
    _current = _UNSET
    return user_namespace()


def in_namespace(tags, ns):
    """True when a run with these tags is in namespace `ns` (None: every run is)."""
    return ns is None or ns in tags
