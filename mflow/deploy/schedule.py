"""@schedule's times in each scheduler's words: crontab's five fields, EventBridge's six.

A flow says when it runs once (`cron=`, or `hourly=`, `daily=`, `weekly=`); each export
writes it the way its scheduler reads it, and a cron no scheduler could read is refused
before anything is deployed.
"""

from __future__ import annotations

from mflow.namedtuple import NamedTuple

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, lowest, highest) of crontab's fields; EventBridge adds a year and counts days 1-7.
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


class Schedule(NamedTuple):
    """When a deployed flow runs: `cron5` for crontab, Airflow and Argo; `eventbridge` as
    `cron(...)` for an EventBridge rule; `timezone` an IANA name or None (UTC)."""

    cron5: str
    eventbridge: str
    timezone: Optional[str] = None

    def to_json(self):
        return {"cron": self.cron5, "eventbridge": self.eventbridge, "timezone": self.timezone}


def schedule_of(attributes):
    """The Schedule of @schedule's attributes (cron wins over weekly, hourly, then daily, as
    in Metaflow); ValueError with a message naming what is wrong."""
    cron = attributes.get("cron")
    timezone = attributes.get("timezone")
    if cron:
        cron5, eventbridge = convert_cron(cron)
    elif attributes.get("weekly"):
        cron5, eventbridge = "0 0 * * 0", "cron(0 0 ? * SUN *)"
    elif attributes.get("hourly"):
        cron5, eventbridge = "0 * * * *", "cron(0 * * * ? *)"
    else:
        cron5, eventbridge = "0 0 * * *", "cron(0 0 * * ? *)"
    return Schedule(cron5, eventbridge, timezone)


def convert_cron(text):
    """(crontab form, EventBridge form) of a cron expression given in either: five fields
    (minute hour day-of-month month day-of-week) or EventBridge's six (with a year, and `?`
    in one of the two day fields). ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("cron must be a non-empty string such as '0 10 * * *', not %r" % (text,))
    body = text.strip()
    if body.startswith("cron(") and body.endswith(")"):
        body = body[len("cron("):-1].strip()
    fields = body.split()
    if len(fields) == 5:
        for field, (name, low, high) in zip(fields, _FIELDS):
            _check_field(text, field, name, low, high, question=False)
        minute, hour, dom, month, dow = fields
        if dom != "*" and dow != "*":
            raise ValueError(
                "cron %r sets both the day of month and the day of week, which EventBridge cannot express; "
                "use * in one of them" % text
            )
        eb_dom, eb_dow = (dom, "?") if dow == "*" else ("?", _shift_days(dow, +1))
        return " ".join(fields), "cron(%s %s %s %s %s *)" % (minute, hour, eb_dom, month, eb_dow)
    if len(fields) == 6:
        minute, hour, dom, month, dow, year = fields
        for field, (name, low, high) in zip(fields[:4], _FIELDS[:4]):
            _check_field(text, field, name, low, high, question=name == "day of month")
        _check_field(text, dow, "day of week", 1, 7, question=True)
        _check_field(text, year, "year", 1970, 2199, question=False)
        if (dom == "?") == (dow == "?"):
            raise ValueError("cron %r needs ? in exactly one of the day-of-month and day-of-week fields, "
                             "as EventBridge does" % text)
        if year != "*":
            raise ValueError("cron %r limits the year, which crontab, Airflow and Argo cannot express; use *" % text)
        cron5 = "%s %s %s %s %s" % (minute, hour, "*" if dom == "?" else dom, month,
                                    "*" if dow == "?" else _shift_days(dow, -1))
        return cron5, "cron(%s)" % " ".join(fields)
    raise ValueError(
        "cron %r has %d fields; give five (minute hour day-of-month month day-of-week, e.g. '0 10 * * *') "
        "or EventBridge's six (e.g. '0 10 * * ? *')" % (text, len(fields))
    )


def _check_field(text, field, name, low, high, question):
    if field == "?" and question:
        return
    names = _MONTHS if name == "month" else _DAYS if name == "day of week" else ()
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError("cron %r: %r is not a valid %s step" % (text, part, name))
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(bounds):
            raise ValueError("cron %r: %r is not a valid %s" % (text, part, name))
        for bound in bounds:
            if bound.upper() in names:
                continue
            if name == "day of week" and bound.endswith("L") and bound[:-1].isdigit():
                bound = bound[:-1]
            if not bound.isdigit() or not low <= int(bound) <= high:
                raise ValueError("cron %r: %s %r is outside %d-%d" % (text, name, bound, low, high))


def _shift_days(field, by):
    """Numeric days of week moved between crontab's 0-7 (0 and 7 Sunday) and EventBridge's
    1-7 (1 Sunday); names stay as they are."""
    def shift(token):
        if not token.isdigit():
            return token
        day = int(token) % 7 if by > 0 else int(token)
        return str(day + by)

    parts = []
    for part in field.split(","):
        base, slash, step = part.partition("/")
        base = "-".join(shift(bound) for bound in base.split("-")) if base != "*" else base
        parts.append(base + slash + step)
    return ",".join(parts)


def crontab_line(schedule, command):
    """One crontab line running `command` (text) on `schedule`; a timezone is given by
    CRON_TZ on the line before, as cronie and systemd's cron read it."""
    line = "%s %s" % (schedule.cron5, command)
    return ("CRON_TZ=%s\n%s" % (schedule.timezone, line)) if schedule.timezone else line
