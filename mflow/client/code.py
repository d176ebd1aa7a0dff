"""A run's code package as the client shows it: the flow's source, the archive as a tarfile,
and extraction into a folder (Metaflow's MetaflowCode).
"""

import io
import re


class FlowCode:
    """The code a run ran: the folder of its flow file as archived when the run started."""

    def __init__(self, store, flow, run_id, package):
        self._store = store
        self._flow = flow
        self._run_id = run_id
        self._package = package
        self._data = None
        self._tarball = None
        self._script = False  # not looked for yet

    @property
    def key(self):
        """The blob key of the archive in the store."""
        return self._package.key

    @property
    def path(self):
        """Where the archive lives in the store (a blob path)."""
        from mflow.store import layout

        return layout.blob_path(self._package.key)

    @property
    def info(self):
        """What is known of the package: flow, run, key, size, files, suffixes, script."""
        return {
            "flow": self._flow,
            "run_id": self._run_id,
            "key": self._package.key,
            "size": self._package.size,
            "files": self._package.files,
            "suffixes": list(self._package.suffixes),
            "script": self.script_name,
        }

    def _bytes(self):
        if self._data is None:
            self._data = self._store.blobs.get(self._package.key)
        return self._data

    @property
    def tarball(self):
        """The archive as an open tarfile.TarFile (uncompressed tar)."""
        if self._tarball is None:
            import tarfile

            self._tarball = tarfile.open(fileobj=io.BytesIO(self._bytes()), mode="r:")
        return self._tarball

    @property
    def files(self):
        """The paths in the archive, '/'-separated, sorted."""
        return sorted(member.name for member in self.tarball.getmembers() if member.isfile())

    def read(self, name):
        """The text of one file of the archive."""
        member = self.tarball.extractfile(name)
        if member is None:
            raise KeyError(name)
        with member:
            return member.read().decode("utf-8", "replace")

    @property
    def script_name(self):
        """The file that defines the flow's class (the one `mflow run` was given), or None."""
        if self._script is False:
            self._script = None
            pattern = re.compile(r"^class\s+%s\b" % re.escape(self._flow), re.M)
            for name in self.files:
                if name.endswith(".py") and pattern.search(self.read(name)):
                    self._script = name
                    break
        return self._script

    @property
    def flowspec(self):
        """The source of the flow file, or None when no file of the archive defines the flow."""
        script = self.script_name
        return self.read(script) if script else None

    def extract(self, path=None):
        """Unpack the archive: into folder `path` (returned), or, without one, into a new
        tempfile.TemporaryDirectory, returned for use in a `with` block as Metaflow's is."""
        from mflow.store.code import extract_code_package

        if path is not None:
            extract_code_package(self._bytes(), path)
            return path
        import tempfile

        folder = tempfile.TemporaryDirectory(prefix="mflow-code-")
        extract_code_package(self._bytes(), folder.name)
        return folder

    def __str__(self):
        return "<FlowCode: %s/%s, %d files>" % (self._flow, self._run_id, self._package.files)

    __repr__ = __str__
