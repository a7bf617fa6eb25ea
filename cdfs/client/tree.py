"""The mounted tree as a client sees it: paths, values, verbs, and refusals in words.

Everything the `cdfs` command does goes through here, and all of it is plain file
I/O on the mount: this module is the example of driving cdfs from any language. A
refused write fails with an errno; the directory's `err` file says why, and that line
is what the user is shown.
"""

import errno
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from base import identifiers
from base.errors import InvalidArgument

DEFAULT_MOUNT = "/mnt/cdfs"
DEFAULT_NAMESPACE = "default"


def ctl_line(verb: str, *words: str) -> str:
    """One ctl line, each word quoted as the tree's parser unquotes it (as sh), so a
    host path with spaces stays one argument."""
    return " ".join([verb, *map(shlex.quote, words)]) + "\n"


class TreeError(Exception):
    """A request the daemon refused (or a mount that is not there), in one line, with
    the errno of the refusal when there was one."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True)
class Tree:
    """One namespace of a mounted cdfs tree."""

    mount: Path
    namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def at(cls, mount: str | None, namespace: str | None) -> "Tree":
        tree = cls(Path(mount or os.environ.get("CDFS_MOUNT", DEFAULT_MOUNT)),
                   namespace or os.environ.get("CDFS_NAMESPACE", DEFAULT_NAMESPACE))
        if not (tree.mount / "version").is_file():
            raise TreeError(f"no cdfs tree at {tree.mount} (is `cdfs serve` running?)")
        if not tree.home.is_dir():
            raise TreeError(f'no namespace "{tree.namespace}" in {tree.mount}')
        return tree

    @property
    def home(self) -> Path:
        return self.mount / "namespaces" / self.namespace

    @property
    def containers(self) -> Path:
        return self.home / "containers"

    @property
    def images(self) -> Path:
        return self.home / "images"

    def images_listed(self) -> list[dict[str, str]]:
        """The namespace's ready images, one per name, in one read of images/list:
        each row by its column (REF, DIGEST, CONFIG, SIZE, PLATFORM)."""
        header, *rows = self.read(self.images / "list").splitlines()
        columns = header.split()
        return [dict(zip(columns, row.split(), strict=True)) for row in rows]

    def container_names(self) -> list[str]:
        """The names of the namespace's containers, sorted (files beside them, the
        directory's ctl and err, left out)."""
        try:
            return sorted(entry.name for entry in self.containers.iterdir() if entry.is_dir())
        except OSError as exc:
            raise TreeError(f"{self.containers}: {exc.strerror}", exc.errno) from None

    def container(self, container_id: str) -> Path:
        """The directory of container `container_id`. An id that is no container name
        (`..`, a slash, an empty one) is refused (EINVAL) before it becomes a path: a
        request naming `../../other/containers/x` must not reach another namespace."""
        try:
            identifiers.validate(container_id, "container id")
        except InvalidArgument as exc:
            raise TreeError(str(exc), errno.EINVAL) from None
        return self.containers / container_id

    def netns(self, name: str) -> Path:
        """The directory of the named network namespace `name` (netns/<name>/), refused
        (EINVAL) when the name is no tree name, as a container id is: a name read from
        labels people may edit must not become `netns/../namespaces/x`."""
        try:
            identifiers.validate(name, "netns name")
        except InvalidArgument as exc:
            raise TreeError(str(exc), errno.EINVAL) from None
        return self.mount / "netns" / name

    # -- file operations, each failing with the daemon's own words --------------------
    def write(self, path: Path, text: str | bytes) -> None:
        """Write `text` to `path` in one write(), as `echo text > path` does."""
        data = text.encode() if isinstance(text, str) else text
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        except OSError as exc:  # no such file, or not writable: nothing was refused
            raise TreeError(f"{path}: {exc.strerror}", exc.errno) from None
        try:
            os.write(fd, data)
        except OSError as exc:
            os.close(fd)
            raise self._refused(path, exc) from None
        try:
            os.close(fd)
        except OSError as exc:  # a value file without a newline is taken at close
            raise self._refused(path, exc) from None

    def read(self, path: Path) -> str:
        try:
            return path.read_text()
        except OSError as exc:
            raise TreeError(f"{path}: {exc.strerror}", exc.errno) from None

    def mkdir(self, path: Path) -> None:
        try:
            path.mkdir()
        except OSError as exc:
            raise self._refused(path, exc, err_dir=path.parent) from None

    def rmdir(self, path: Path, *, missing_ok: bool = False) -> None:
        """rmdir; with missing_ok, an object already gone is what was wanted (the
        idempotent removes kubelet expects), not a refusal."""
        try:
            path.rmdir()
        except OSError as exc:
            if missing_ok and exc.errno == errno.ENOENT:
                return
            raise self._refused(path, exc, err_dir=path.parent) from None

    @staticmethod
    def _refused(path: Path, exc: OSError, err_dir: Path | None = None) -> TreeError:
        """The err line of the directory that refused, else the errno's text."""
        err = (err_dir or path.parent) / "err"
        try:
            line = err.read_text().strip()
        except OSError:
            line = ""
        return TreeError(line or f"{path}: {exc.strerror}", exc.errno)

