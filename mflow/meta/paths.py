"""Where each metadata record lives under meta/ in a store: the one place that names them.

man/mflow-meta.1 (LAYOUT) documents the same layout; change both together.
"""

from mflow.store.layout import META

# Names beside run folders start with '.', which no run id can (mflow.store.pathspec), and
# names inside a run or task folder contain a '.', which no step name can: nothing collides.
FLOW_RECORD = ".flow.json"
LATEST = ".latest"
LATEST_SUCCESSFUL = ".latest-successful"
POINTER_HINT = "hint"
BY_USER = "-by-user"
INDEX = ".index"
TAG_MARKERS = ".tag-changes"

CLAIM = "claim.json"
RUN = "run.json"
RUN_END = "end.json"
RUN_HEARTBEAT = "heartbeat"
TAGS_PREFIX = "tags."
TASK = "task.json"


def flow_prefix(flow):
    return "%s%s/" % (META, flow)


def flow_record_path(flow):
    return flow_prefix(flow) + FLOW_RECORD


def pointer_prefix(flow, successful=False, user=None):
    """The flow's latest (successful) run pointer; with `user`, that user's own."""
    name = LATEST_SUCCESSFUL if successful else LATEST
    if user is None:
        return "%s%s/" % (flow_prefix(flow), name)
    from urllib.parse import quote

    # User names are whatever the login says; quoted (dots too, for "." and ".."), any of
    # them is one safe folder name.
    folder = quote(user, safe="").replace(".", "%2E")
    return "%s%s%s/%s/" % (flow_prefix(flow), name, BY_USER, folder)


def pointer_slot_path(prefix, slot):
    # Zero-padded so that a listing of the folder is in slot order.
    return "%s%012d" % (prefix, slot)


def run_prefix(flow, run_id):
    return "%s%s/%s/" % (META, flow, run_id)


def claim_path(flow, run_id):
    return run_prefix(flow, run_id) + CLAIM


def run_path(flow, run_id):
    return run_prefix(flow, run_id) + RUN


def run_end_path(flow, run_id):
    return run_prefix(flow, run_id) + RUN_END


def run_heartbeat_path(flow, run_id):
    return run_prefix(flow, run_id) + RUN_HEARTBEAT


def tags_path(flow, run_id, seq):
    return "%s%s%06d.json" % (run_prefix(flow, run_id), TAGS_PREFIX, seq)


def task_prefix(flow, run_id, step, task_id):
    return "%s%s/%s/%s/%s/" % (META, flow, run_id, step, task_id)


def task_path(prefix):
    return prefix + TASK


def attempt_start_path(prefix, attempt):
    return "%s%d.start.json" % (prefix, attempt)


def attempt_end_path(prefix, attempt):
    return "%s%d.end.json" % (prefix, attempt)


def attempt_heartbeat_path(prefix, attempt):
    return "%s%d.heartbeat" % (prefix, attempt)


def parse_task_file(name):
    """(kind, attempt) of a file name inside a task folder: ("task", None), ("start", 0),
    ("end", 0), ("heartbeat", 0); None for anything else."""
    if name == TASK:
        return "task", None
    head, _, kind = name.partition(".")
    if not head.isdigit():
        return None
    if kind == "start.json":
        return "start", int(head)
    if kind == "end.json":
        return "end", int(head)
    if kind == "heartbeat":
        return "heartbeat", int(head)
    return None


def index_prefix(flow):
    """Where the packs of finished runs' records are cached (see mflow.meta.index)."""
    return flow_prefix(flow) + INDEX + "/"


def tag_marker_prefix(flow):
    return flow_prefix(flow) + TAG_MARKERS + "/"


def tag_marker_path(flow, run_id, seq):
    return "%s%s.%d" % (tag_marker_prefix(flow), run_id, seq)
