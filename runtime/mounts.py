"""Mounting a container's rootfs from the snapshotter's `Mount`s, and unmounting it.

mount(8) does the work: it knows every filesystem's option syntax (overlay's lowerdir
lists, bind+ro needing a remount), and a rootfs mount happens once per container.
"""

import ctypes
import ctypes.util
import errno
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cdfs.errors import InvalidArgument, Unavailable
from cdfs.types import Mount

MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount_command(mount: Mount, target: Path) -> list[str]:
    """The mount(8) command line for one Mount onto `target`."""
    options = list(mount.options)
    if mount.type == "bind" and not {"bind", "rbind"} & set(options):
        options.insert(0, "rbind")
    argv = ["mount", "--no-mtab"]
    if mount.type != "bind":
        argv += ["-t", mount.type]
    if options:
        argv += ["-o", ",".join(options)]
    return [*argv, "--", mount.source, str(target)]


def mount_all(mounts: Sequence[Mount], target: Path) -> None:
    """Mount each of `mounts` onto `target` in order (as containerd's mount.All); on a
    failure the ones done are undone, so nothing is left half-mounted."""
    done = 0
    try:
        for mount in mounts:
            if not mount.type or not mount.source:
                raise InvalidArgument(f"rootfs mount: type and source are required: {mount}")
            result = subprocess.run(
                mount_command(mount, target), capture_output=True, text=True, close_fds=True
            )
            if result.returncode != 0:
                raise Unavailable(f"mount {mount.type} on {target}: {result.stderr.strip()}")
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: Path) -> None:
    """Unmount one mount from `target`, lazily if it is busy."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
        return
    if err not in (errno.EINVAL, errno.ENOENT):
        raise Unavailable(f"umount {target}: {os.strerror(err)}")


def is_mounted(target: Path) -> bool:
    """Whether something is mounted at `target` (bind mounts included, which
    os.path.ismount misses when they come from the same filesystem)."""
    wanted = os.path.realpath(target)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = line.split(b" ")[4].decode("unicode_escape")
            if point == wanted:
                return True
    return False


def unmount_all(target: Path) -> None:
    """Unmount everything stacked on `target` (nothing mounted is not an error)."""
    while is_mounted(target):
        unmount(target)
