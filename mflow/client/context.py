"""Which store the client reads: the one set_store() chose, else the one every mflow command
would use (MFLOW_STORE, else the nearest .mflow folder), resolved when an object is made.
"""

import os


class StoreContext:
    """One store and its metadata, shared by every client object read from it."""

    def __init__(self, store):
        from mflow.meta import MetaStore

        self.store = store
        self.meta = MetaStore(store)

    @property
    def url(self):
        return self.store.url


_chosen = None  # the StoreContext set_store() picked, or None for the default
_by_url = {}  # resolved URL -> StoreContext, so each store's connections are made once


def _context_of_url(url, environ=None):
    from mflow.store import open_store, resolve_store_url

    environ = os.environ if environ is None else environ
    resolved = resolve_store_url(url, environ).url
    context = _by_url.get(resolved)
    if context is None:
        context = _by_url[resolved] = StoreContext(open_store(resolved, environ=environ))
    return context


def context_for(store=None):
    """The StoreContext for a Store, a store URL or folder, or None (the store in use)."""
    if store is None:
        return _chosen if _chosen is not None else _context_of_url(None)
    if isinstance(store, StoreContext):
        return store
    if isinstance(store, (str, os.PathLike)):
        return _context_of_url(os.fspath(store))
    if hasattr(store, "backend") and hasattr(store, "blobs"):
        return StoreContext(store)
    raise TypeError("store must be a Store, a folder or an s3:// URL, not %r" % (store,))


def set_store(store):
    """Read results from `store` from now on: a Store, a folder, or s3://bucket/prefix
    (reached with the environment's settings); its URL. None goes back to the default."""
    global _chosen
    if store is None:
        _chosen = None
        return None
    _chosen = context_for(store)
    return _chosen.url


def get_store():
    """The Store the client reads: the one set_store() chose, else MFLOW_STORE, else the
    nearest .mflow folder."""
    return context_for(None).store


def default_store():
    """Forget set_store()'s choice and return the default Store (MFLOW_STORE, else the
    nearest .mflow folder)."""
    global _chosen
    _chosen = None
    return get_store()
