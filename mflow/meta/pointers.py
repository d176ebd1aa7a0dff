"""Pointers that only move forward (a flow's latest and latest successful run), kept safely
on any store with nothing but create-if-absent: no locks, no compare-and-swap.
"""

from mflow import jsonio

from . import paths


class PointerLog:
    """One forward-only pointer under `prefix` (ending in '/'). Entries are small dicts;
    `order(entry)` gives the value that must grow from slot to slot.

    The pointer is a log of slots 1, 2, 3, ... each claimed with put_if_absent and holding
    an entry strictly newer than the slot before it; its value is the last slot. A mutable
    hint names a recent slot so that readers need not probe from 1; it may lag, never lead.
    """

    def __init__(self, backend, prefix, order):
        self.backend = backend
        self.prefix = prefix
        self.order = order

    def _get(self, slot):
        data = _get_or_none(self.backend, paths.pointer_slot_path(self.prefix, slot))
        return jsonio.loads(data) if data is not None else None

    def _hint(self):
        data = _get_or_none(self.backend, self.prefix + paths.POINTER_HINT)
        try:
            return max(0, int(data)) if data is not None else 0
        except ValueError:  # unreadable: probing from the start is always correct
            return 0

    def _follow(self, slot, entry):
        """The last slot at or after `slot` and its entry."""
        while True:
            following = self._get(slot + 1)
            if following is None:
                return slot, entry
            slot, entry = slot + 1, following

    def read(self):
        """(slot, entry) of the pointer's current value; (0, None) when it was never set."""
        slot = self._hint()
        entry = self._get(slot) if slot else None
        if entry is None:
            slot = 0
        return self._follow(slot, entry)

    def advance(self, entry):
        """Point at `entry` unless the pointer already holds it or something newer.
        True when this call moved it."""
        slot, current = self.read()
        data = jsonio.dumps(entry, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
        while True:
            if current is not None and self.order(current) >= self.order(entry):
                return False
            if self.backend.put_if_absent(paths.pointer_slot_path(self.prefix, slot + 1), data):
                try:
                    self.backend.put(self.prefix + paths.POINTER_HINT, b"%d\n" % (slot + 1))
                except Exception:  # noqa: BLE001 - the hint only saves readers some probes
                    pass
                return True
            # Another writer claimed that slot first: compare against what it wrote.
            slot, current = self._follow(slot, current)


def _get_or_none(backend, path):
    from mflow.store.backend import ObjectNotFound

    try:
        return backend.get(path)
    except ObjectNotFound:
        return None
