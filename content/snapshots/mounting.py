"""Performing snapshot mounts with mount(8): what the runtime does with a rootfs.

The kernel takes mount options as one page, so a deep overlay chain's lowerdir can
outgrow it; like containerd (mount_linux.go), the lower dirs are then given relative
to their common parent, with mount(8) run in that directory.
"""

import os
import subprocess
from pathlib import Path

from cdfs.errors import Unavailable
from cdfs.types import Mount

_PAGE = os.sysconf("SC_PAGE_SIZE")


def compact_lowerdirs(options: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """Options that fit in a page, and the directory to run mount in (None if the
    options already fit and need no rewriting)."""
    if len(",".join(options)) < _PAGE - 1:
        return options, None
    lowers = next((o[len("lowerdir="):].split(":") for o in options
                   if o.startswith("lowerdir=")), None)
    if not lowers:
        return options, None
    base = os.path.commonpath(lowers)
    rewritten = tuple("lowerdir=" + ":".join(os.path.relpath(p, base) for p in lowers)
                      if o.startswith("lowerdir=") else o for o in options)
    return rewritten, base


def mount_all(mounts: list[Mount], target: Path) -> None:
    """Mount `mounts` one over the other on `target`; Unavailable if mount(8) fails
    (whatever was mounted already is unmounted again)."""
    done = 0
    try:
        for mount in mounts:
            options, cwd = compact_lowerdirs(mount.options)
            kind = [] if mount.type == "bind" else ["-t", mount.type]
            command = ["mount", *kind, "-o", ",".join(options), mount.source, str(target)]
            result = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                                    timeout=60)
            if result.returncode != 0:
                raise Unavailable(f'mount of "{mount.source}" on "{target}" failed: '
                                  f"{result.stderr.strip()}")
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: Path) -> None:
    """Unmount `target` (recursively, for rbind mounts)."""
    result = subprocess.run(["umount", "-R", str(target)], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise Unavailable(f'umount of "{target}" failed: {result.stderr.strip()}')
