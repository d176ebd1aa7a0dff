"""Where each kind of object lives inside a store: the one place that names store paths.

man/mflow-store.1 (LAYOUT) documents the same layout; change both together.
"""

BLOBS = "blobs/"  # blobs/<first two hex digits>/<sha256 hex>: content-addressed blobs
DATA = "data/"  # data/<Flow>/<run>/...: artifact manifests, logs records, code package records
META = "meta/"  # meta/<Flow>/...: reserved for the metadata records (runs, tasks, attempts, tags)
TMP = "tmp/"  # local folders only: writes in progress, renamed into place when complete
S3_DATA = "s3/"  # s3/<Flow>/<run>/<key>: objects steps write with S3(run=self); gc leaves them

LAYOUT_VERSION = 1

_HEX_DIGITS = "0123456789abcdef"

MANIFEST_NAME = "artifacts.json"
LOGS_NAME = "logs.json"
CODE_NAME = "code.json"


def is_key(text):
    """True when `text` is a blob key: 64 lower-case hex digits of a SHA-256."""
    return isinstance(text, str) and len(text) == 64 and not text.strip(_HEX_DIGITS)


def blob_path(key):
    # Two hex digits of fan-out keep a local folder's directories small (256 of them).
    return "%s%s/%s" % (BLOBS, key[:2], key)


def key_of_blob_path(path):
    """The key of a blob path, or None for anything else under blobs/."""
    name = path.rsplit("/", 1)[-1]
    return name if path.startswith(BLOBS) and is_key(name) else None


def data_prefix(pathspec):
    """data/<Flow>[/<run>[/<step>[/<task>]]]/ for a pathspec of depth 1 to 4."""
    return DATA + "/".join(pathspec.parts[:4]) + "/"


def meta_prefix(pathspec):
    """meta/<Flow>[/<run>...]/: where the metadata records of that pathspec belong."""
    return META + "/".join(pathspec.parts[:4]) + "/"


def attempt_prefix(task, attempt):
    return "%s%d/" % (data_prefix(task), attempt)


def manifest_path(task, attempt):
    return attempt_prefix(task, attempt) + MANIFEST_NAME


def logs_path(task, attempt):
    return attempt_prefix(task, attempt) + LOGS_NAME


def code_path(flow, run_id):
    # Step names are identifiers, so "code.json" can never collide with a step's folder.
    return "%s%s/%s/%s" % (DATA, flow, run_id, CODE_NAME)


ENVIRONMENTS_NAME = "environments.json"


def environments_path(flow, run_id):
    """The lock of a run's @pypi environments (see mflow.env.lock); beside code.json."""
    return "%s%s/%s/%s" % (DATA, flow, run_id, ENVIRONMENTS_NAME)
