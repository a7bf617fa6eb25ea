"""The native snapshotter: every snapshot is a full copy of its parent, bind-mounted.
Slow and large, but it works on any filesystem (no overlayfs, no trusted xattrs)."""

import subprocess
from pathlib import Path

from base.errors import Unavailable
from base.mount import Mount
from content.snapshots.metadata import Row
from content.snapshots.snapshotter import Snapshotter


class NativeSnapshotter(Snapshotter):
    whiteouts = "delete"

    def _populate(self, new: Path, parent_fs: Path | None) -> None:
        fs = new / "fs"
        if parent_fs is None:
            fs.mkdir(mode=0o755)
            return
        # cp -a keeps owners, modes, times, hardlinks, devices and xattrs, and
        # never follows the symlinks it copies.
        copied = subprocess.run(["cp", "-a", "--no-target-directory", str(parent_fs), str(fs)],
                                capture_output=True, text=True)
        if copied.returncode != 0:
            raise Unavailable(f'copying snapshot "{parent_fs}" failed: {copied.stderr.strip()}')

    def _mounts(self, row: Row) -> list[Mount]:
        mode = "ro" if row.info.kind == "view" else "rw"
        return [Mount("bind", str(self._fs(row.id)), ("rbind", mode))]
