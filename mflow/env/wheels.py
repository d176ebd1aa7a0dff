"""The wheel files of locked environments: kept on this machine by SHA-256, fetched from
the store (where the driver put them) before the package index, and put in the store so
that workers without an index can build the same environment."""

import hashlib
import os
import shutil
import tempfile

from mflow.errors import EnvironmentBuildError, MflowError

from .cache import cache_path

_DOWNLOAD_THREADS = 8


def local_wheel(package, environ=None):
    """The path of the package's wheel in this machine's cache, or None."""
    if not package.key or not package.wheel:
        return None
    path = cache_path("wheels", package.key, package.wheel, environ=environ)
    return path if os.path.exists(path) else None


def fetch_wheels(packages, installer, interp, store=None, scratch=None, environ=None):
    """([LockedPackage] with wheel, key and size filled in, [wheel path]) for `packages`:
    each from this machine's cache, else the store, else its URL (an sdist built here)."""
    if not packages:
        return [], []
    from concurrent.futures import ThreadPoolExecutor

    def one(package):
        return _fetch(package, installer, interp, store, scratch, environ)

    with ThreadPoolExecutor(max_workers=min(_DOWNLOAD_THREADS, len(packages))) as pool:
        done = list(pool.map(one, packages))
    return [package for package, _ in done], [path for _, path in done]


def _fetch(package, installer, interp, store, scratch, environ):
    path = local_wheel(package, environ)
    if path is not None:
        return package, path
    if package.key and store is not None and _store_has(store, package.key):
        return package, _from_store(package, store, environ)
    if not package.url:
        raise EnvironmentBuildError(
            "wheel %s of %s %s is neither in the store nor on this machine, and the lock has no URL"
            % (package.wheel, package.name, package.version),
            "Build the environment where the package index is reachable first (mflow env build)",
        )
    return _from_url(package, installer, interp, scratch, environ)


def _store_has(store, key):
    try:
        return store.blobs.has(key)
    except MflowError:
        return False


def _place(source, package, key, wheel, environ):
    """Move a verified wheel file into the cache: wheels/<sha256>/<file name>."""
    folder = cache_path("wheels", key, environ=environ)
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, wheel)
    os.replace(source, target)
    return package._replace(wheel=wheel, key=key, size=os.path.getsize(target)), target


def _from_store(package, store, environ):
    folder = cache_path("wheels", environ=environ)
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".download-")
    try:
        with os.fdopen(handle, "wb") as out, store.blobs.open(package.key) as blob:
            shutil.copyfileobj(blob, out, 1 << 20)
        return _place(temp, package, package.key, package.wheel, environ)[1]
    except BaseException:
        _remove(temp)
        raise


def _from_url(package, installer, interp, scratch, environ):
    import urllib.error
    import urllib.request

    folder = cache_path("wheels", environ=environ)
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".download-")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(package.url, timeout=120) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        _remove(temp)
        raise EnvironmentBuildError(
            "cannot download %s %s from %s: %s" % (package.name, package.version, package.url, exc),
            "Check that the package index is reachable",
        ) from None
    if package.sha256 and digest.hexdigest() != package.sha256:
        _remove(temp)
        raise EnvironmentBuildError(
            "%s from %s does not match its locked SHA-256" % (package.filename, package.url),
            "The index serves other bytes than when the environment was locked; resolve it again",
        )
    if package.filename.endswith(".whl"):
        package, path = _place(temp, package, digest.hexdigest(), package.filename, environ)
        return package, path
    return _build_from_sdist(package, temp, installer, interp, scratch, environ)


def _build_from_sdist(package, sdist_temp, installer, interp, scratch, environ):
    with tempfile.TemporaryDirectory(prefix="mflow-sdist-") as tmp:
        sdist = os.path.join(tmp, package.filename)
        os.replace(sdist_temp, sdist)
        out = os.path.join(tmp, "wheel")
        os.makedirs(out)
        installer.build_wheel(interp, sdist, out, scratch=scratch)
        built = [name for name in os.listdir(out) if name.endswith(".whl")]
        if len(built) != 1:
            raise EnvironmentBuildError("building %s gave no single wheel" % package.filename)
        path = os.path.join(out, built[0])
        return _place(path, package, file_sha256(path), built[0], environ)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload_wheels(store, packages, paths):
    """Put each wheel in the store (once: a blob already there is not sent again); the
    number of wheels sent."""
    sent = 0
    for package, path in zip(packages, paths):
        if _store_has(store, package.key):
            continue
        with open(path, "rb") as handle:
            info = store.blobs.put_stream(handle)
        if info.key != package.key:
            raise EnvironmentBuildError("wheel %s changed while it was stored" % path, "Build the environment again")
        sent += 1
    return sent


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass
