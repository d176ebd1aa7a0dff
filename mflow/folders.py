"""Private temporary folders, made and removed without tempfile and shutil: importing those
(with random, bz2, lzma, fnmatch and more) would cost every task and every run a few ms.
"""

import os


def make_private_folder(prefix):
    """A new folder only this user can enter, named `prefix` and random characters, in
    TMPDIR, TEMP or TMP (the first set), else /tmp; where tempfile.mkdtemp would put it when
    that fails."""
    folder = next((os.environ[name] for name in ("TMPDIR", "TEMP", "TMP") if os.environ.get(name)), "/tmp")
    try:
        path = os.path.join(os.path.abspath(folder), prefix + os.urandom(8).hex())
        os.mkdir(path, 0o700)
        return path
    except OSError:
        import tempfile

        return tempfile.mkdtemp(prefix=prefix)


def remove_tree(path):
    """Remove folder `path` and all in it, as far as possible; links are removed, not followed."""
    if not path:
        return
    for root, folders, files in os.walk(path, topdown=False):
        for name in files:
            _ignore_oserror(os.unlink, os.path.join(root, name))
        for name in folders:
            folder = os.path.join(root, name)
            _ignore_oserror(os.unlink if os.path.islink(folder) else os.rmdir, folder)
    _ignore_oserror(os.rmdir, path)


def _ignore_oserror(action, path):
    try:
        action(path)
    except OSError:
        pass
