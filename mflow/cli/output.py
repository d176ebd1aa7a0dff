"""Output and input helpers the listing commands share: tables or JSON Lines, `-` for stdin.

Rows are streamed as JSON Lines; on a terminal they become one tabulate table.
"""


def open_store(console, url):
    """The store of --store/MFLOW_STORE/.mflow, announced on stderr with -v."""
    from mflow.store import open_store as open_

    store = open_(url, environ=console.environ)
    console.debug("Using %s" % store.describe())
    return store


def arguments(console, values):
    """Command-line values, with `-` replaced by the lines of stdin."""
    for value in values:
        if value == "-":
            yield from console.stdin_lines()
        else:
            yield value


def emit_rows(console, rows, columns, as_json, formats=None):
    """Rows as a table on a terminal, else (or with --json) as JSON Lines, streamed."""
    formats = formats or {}
    if as_json or not console.stdout_isatty:
        import orjson

        for row in rows:
            console.out(orjson.dumps(row).decode("utf-8"))
        return
    from tabulate import tabulate

    rows = list(rows)
    if not rows:
        return
    table = [[formats.get(c, _plain)(row.get(c)) for c in columns] for row in rows]
    numeric = [all(isinstance(row.get(c), (int, float)) and not isinstance(row.get(c), bool) for row in rows) for c in columns]
    console.out(
        tabulate(
            table,
            headers=[c.replace("_", " ") for c in columns],
            disable_numparse=True,
            colalign=["right" if n else "left" for n in numeric],
        )
    )


def _plain(value):
    return "" if value is None else str(value)


def human_size(value):
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024


def binary_stdin(console):
    buffer = getattr(console.stdin, "buffer", None)
    if buffer is not None:
        return buffer
    import io

    return io.BytesIO(console.stdin.read().encode("utf-8"))
