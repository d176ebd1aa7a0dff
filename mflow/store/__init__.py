"""mflow's store: content-addressed blobs, task artifacts, code packages and logs, on a
local folder or S3. The Python API behind `mflow-store`; see man/mflow-store.1.

    from mflow.store import open_store
    store = open_store()                       # --store > MFLOW_STORE > nearest .mflow
    writer = store.artifact_writer("Flow/1/start/1", attempt=0)
    writer.save("x", 42); writer.commit()
    store.artifacts("Flow/1/start/1")["x"]     # 42, loaded lazily

Only light modules load here: boto3 is imported by the S3 backend, on first use.
"""

from .pathspec import Pathspec
from .store import STORE_DIR, Store, StoreLocation, open_backend, open_store, resolve_store_url

__all__ = [
    "Pathspec",
    "STORE_DIR",
    "Store",
    "StoreLocation",
    "open_backend",
    "open_store",
    "resolve_store_url",
]
