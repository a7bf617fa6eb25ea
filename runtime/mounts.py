"""Performing mounts (base.mount.Mount, what snapshotters emit) and reading mountinfo.

Mounting goes straight to mount(2): mount(8) costs a
process (~20 ms here) for what the kernel does in a fraction of a millisecond. Only a
deep overlay whose lowerdir list outgrows the kernel's one-page option limit takes
mount(8), run in the layers' common directory with relative paths, since changing the
working directory of a threaded daemon is not an option.
"""

import ctypes
import errno
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from base.errors import InvalidArgument, Unavailable
from base.mount import Mount

_libc = ctypes.CDLL(None, use_errno=True)
_PAGE = os.sysconf("SC_PAGE_SIZE")

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

# Options mount(8) turns into flags rather than passing them to the filesystem.
_FLAGS = {"ro": MS_RDONLY, "rw": 0, "nosuid": MS_NOSUID, "nodev": MS_NODEV,
          "noexec": MS_NOEXEC, "bind": MS_BIND, "rbind": MS_BIND | MS_REC}


def split_options(options: Sequence[str]) -> tuple[int, str]:
    """mount(2)'s flags and filesystem data for mount(8)-style options."""
    flags, data = 0, []
    for option in options:
        if option in _FLAGS:
            flags |= _FLAGS[option]
        else:
            data.append(option)
    return flags, ",".join(data)


def compact_lowerdirs(options: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """Options that fit in a page, and the directory mount must run in (None when the
    options fit already): lower dirs relative to their common parent, as containerd's
    mount_linux.go does."""
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


def _syscall_mount(source: str, target: Path, kind: str | None, flags: int, data: str) -> None:
    result = _libc.mount(source.encode(), os.fsencode(target),
                         kind.encode() if kind else None, flags,
                         data.encode() if data else None)
    if result != 0:
        code = ctypes.get_errno()
        raise Unavailable(f'mount of "{source}" on "{target}" failed: {os.strerror(code)}')


def _mount_one(mount: Mount, target: Path) -> None:
    if not mount.type or not mount.source:
        raise InvalidArgument(f"mount: type and source are required: {mount}")
    options, cwd = compact_lowerdirs(mount.options)
    if cwd is not None:
        result = subprocess.run(["mount", "-t", mount.type, "-o", ",".join(options),
                                 mount.source, str(target)],
                                cwd=cwd, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise Unavailable(f'mount of "{mount.source}" on "{target}" failed: '
                              f"{result.stderr.strip()}")
        return
    flags, data = split_options(options)
    if mount.type == "bind":
        flags |= MS_BIND
    if flags & MS_BIND:
        _syscall_mount(mount.source, target, None, flags & (MS_BIND | MS_REC), "")
        if flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC):
            # A bind mount takes its flags only when remounted (as mount(8) does it).
            _syscall_mount(mount.source, target, None, flags | MS_REMOUNT, "")
        return
    _syscall_mount(mount.source, target, mount.type, flags, data)


def mount_all(mounts: Sequence[Mount], target: Path) -> None:
    """Mount each of `mounts` onto `target` in order (containerd's mount.All); on a
    failure the ones done are undone, so nothing is left half-mounted."""
    done = 0
    try:
        for mount in mounts:
            _mount_one(mount, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: Path) -> bool:
    """Unmount the top mount at `target`, lazily if it is busy; False if nothing was
    mounted there."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EBUSY and _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
        return True
    if code in (errno.EINVAL, errno.ENOENT):
        return False
    raise Unavailable(f'umount of "{target}" failed: {os.strerror(code)}')


def mounted_type(target: Path) -> str | None:
    """The filesystem type of the topmost mount at `target`, or None if nothing is
    mounted there (bind mounts of the same filesystem included, which
    os.path.ismount misses)."""
    wanted = os.path.realpath(target)
    found = None
    with open("/proc/self/mountinfo", "rb") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if fields[4].decode("unicode_escape") == wanted:
                found = fields[fields.index(b"-") + 1].decode()
    return found


def is_mounted(target: Path) -> bool:
    return mounted_type(target) is not None


def unmount_all(target: Path) -> None:
    """Unmount everything stacked on `target` (nothing mounted is not an error). Each
    umount2 says itself when nothing is left (EINVAL: not a mount point), so no
    mountinfo is read: it grows with every container's rootfs."""
    while unmount(target):
        pass
