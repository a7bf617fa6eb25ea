"""The overlay snapshotter: each snapshot stores only its own changes (the upper dir)
and a mount stacks its ancestors as overlayfs lower dirs."""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from base.errors import InvalidArgument
from base.mount import Mount
from content.snapshots.metadata import Row
from content.snapshots.snapshotter import Snapshotter


class OverlaySnapshotter(Snapshotter):
    """Snapshots as overlayfs layers under `root`. Long chains give long lowerdir
    options; runtime.mounts.mount_all shortens them when they pass a page."""

    whiteouts = "overlay"
    detached_layers = True

    def __init__(self, root: Path) -> None:
        if any(c in str(root) for c in ",:"):
            raise InvalidArgument(f'overlay snapshotter root may not contain "," or ":": "{root}"')
        super().__init__(root)

    def apply_lowers(self, key: str) -> list[Path]:
        """The parents' upper dirs, nearest first."""
        return [self._fs(i) for i in self._meta.get(key).ancestors]

    def _layers(self, row: Row) -> list[Path]:
        return [self._fs(row.id), *(self._fs(i) for i in row.ancestors)]

    def _populate(self, new: Path, parent_fs: Path | None) -> None:
        (new / "fs").mkdir(mode=0o755)
        (new / "work").mkdir(mode=0o700)

    def _mounts(self, row: Row) -> list[Mount]:
        lowers = [str(self._fs(i)) for i in row.ancestors]
        fs = str(self._fs(row.id))
        if row.info.kind == "view":
            if not lowers:
                return [Mount("bind", fs, ("rbind", "ro"))]
            if len(lowers) == 1:
                return [Mount("bind", lowers[0], ("rbind", "ro"))]
            return [Mount("overlay", "overlay", ("lowerdir=" + ":".join(lowers),))]
        if not lowers:
            return [Mount("bind", fs, ("rbind", "rw"))]
        work = str(self._dir(row.id) / "work")
        return [Mount("overlay", "overlay",
                      ("lowerdir=" + ":".join(lowers), f"upperdir={fs}", f"workdir={work}"))]


def overlay_supported(root: Path) -> bool:
    """Whether overlayfs (with whiteouts and opaque dirs) works with upper dirs on
    `root`'s filesystem: tried with a real tiny mount in a temp dir under it."""
    root.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".overlay-probe-", dir=root))
    lower, upper, work, merged = (probe / n for n in ("lower", "upper", "work", "merged"))
    try:
        for path in (lower, upper, work, merged):
            path.mkdir()
        (lower / "hidden").write_text("x")
        os.mknod(upper / "hidden", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options,
                                  str(merged)], capture_output=True, timeout=30).returncode == 0
        if not mounted:
            return False
        try:
            return not (merged / "hidden").exists()
        finally:
            subprocess.run(["umount", str(merged)], capture_output=True, timeout=30)
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)
