"""A cache of finished runs' records, so that listing 10,000 runs reads a few packs instead
of 30,000 small records. The records themselves stay the truth; a pack only repeats them.
"""

import os
import time

from mflow.store.backend import ObjectNotFound

from . import paths

PACK_MIN = 50  # finished runs read one by one before a listing packs them
PACK_MAX = 8  # packs before a listing merges them all into one
PACK_SUFFIX = ".pack"


def _json():
    import orjson

    return orjson


class RunIndex:
    """The packs and tag-change markers of one flow.

    Run, end and tag-change records never change once written, so a copy of them in a pack
    is right forever. Only two things can happen to a packed run afterwards, and each is
    caught: a new tag change (every tag change first drops a marker,
    meta/<Flow>/.tag-changes/<run>.<seq>, which one listing of that folder shows) and its
    deletion (then it is no longer listed). A pack that is missing or unreadable is skipped
    and its runs are read one by one.
    """

    def __init__(self, backend, flow):
        self.backend = backend
        self.flow = flow
        self.prefix = paths.index_prefix(flow)
        self.pack_names = []

    def load(self):
        """{run_id: entry} from every readable pack; an entry is {"run": record, "end":
        record, "tags": [tag-change records 1..n]}. A run in several packs keeps the entry
        that has the most tag changes (they only ever grow)."""
        import zlib

        names = [n for n in self.backend.list_children(self.prefix) if n.endswith(PACK_SUFFIX)]
        entries = {}
        self.pack_names = []
        for path, data in self.backend.get_many([self.prefix + n for n in names]):
            if data is None:  # merged away by another listing since we listed it
                continue
            try:
                pack = _json().loads(zlib.decompress(data))
                runs = pack["runs"]
            except Exception:  # noqa: BLE001 - an unreadable cache is no cache
                continue
            self.pack_names.append(path[len(self.prefix) :])
            for run_id, entry in runs.items():
                known = entries.get(run_id)
                if known is None or len(entry["tags"]) > len(known["tags"]):
                    entries[run_id] = entry
        return entries

    def tag_markers(self):
        """{run_id: highest tag-change sequence number announced by a marker}."""
        markers = {}
        for name in self.backend.list_children(paths.tag_marker_prefix(self.flow)):
            run_id, _, seq = name.rpartition(".")
            if run_id and seq.isdigit():
                markers[run_id] = max(markers.get(run_id, 0), int(seq))
        return markers

    def save(self, entries, known=None):
        """Write a new pack of `entries` (finished runs only); when there would be more than
        PACK_MAX packs, write one pack of everything (`known`: the entries loaded) and
        delete the packs it replaces. A failure (a read-only store) is ignored: the cache
        just stays as it was."""
        import zlib

        merge = known is not None and len(self.pack_names) + 1 > PACK_MAX
        if merge:
            everything = dict(known)
            everything.update(entries)
            entries = everything
        pack = {"schema": 1, "type": "run-pack", "flow": self.flow, "runs": entries}
        name = "%013d-%s%s" % (int(time.time() * 1000), os.urandom(4).hex(), PACK_SUFFIX)
        try:
            self.backend.put(self.prefix + name, zlib.compress(_json().dumps(pack), 1))
            if merge:
                for old in self.pack_names:
                    self.backend.delete(self.prefix + old)
        except Exception:  # noqa: BLE001 - see above
            return False
        return True


def mark_tag_change(backend, flow, run_id, seq):
    """Announce tag change `seq` of a run before its record is written, so that a listing
    served from a pack knows to read it (a marker whose record never came is harmless)."""
    backend.put(paths.tag_marker_path(flow, run_id, seq), b"")


def get_or_none(backend, path):
    try:
        return backend.get(path)
    except ObjectNotFound:
        return None
