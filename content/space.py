"""Room on the disk: writing blobs and unpacking layers stops while a reserve is left.

A pull that fills the disk to the last block leaves nothing for sqlite, and then not
even the removal of what it wrote can be recorded. So the store's writers and the
layer extractor ask before each write whether it leaves the reserve free (a
thirty-second of the filesystem, between 1 and 64 MiB) and refuse with NoSpace
otherwise; the reserve is what the daemon's databases, and the clean-up, write into.
"""

import errno
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from base.errors import NoSpace

MIN_RESERVE = 1 << 20
MAX_RESERVE = 64 << 20
MIN_INODES = 64


def reserve(filesystem_bytes: int) -> int:
    """The bytes kept free on a filesystem of `filesystem_bytes`."""
    return min(max(filesystem_bytes // 32, MIN_RESERVE), MAX_RESERVE)


def free_bytes(fd: int) -> tuple[int, int]:
    """(bytes free to unprivileged writers, the reserve) on the filesystem of `fd`."""
    st = os.fstatvfs(fd)
    return st.f_bavail * st.f_frsize, reserve(st.f_blocks * st.f_frsize)


def require_room(fd: int, size: int) -> None:
    """NoSpace unless writing `size` more bytes (and a file for them) on the
    filesystem of `fd` leaves the reserve free."""
    st = os.fstatvfs(fd)
    free = st.f_bavail * st.f_frsize
    kept = reserve(st.f_blocks * st.f_frsize)
    if free - size < kept or (st.f_files and st.f_favail < MIN_INODES):
        raise NoSpace(f"{size} bytes needed, {free} free, {kept} kept in reserve")


def no_space_message(path: Path, doing: str) -> str:
    """What a refusal for a full disk says: where, while doing what, and how much was
    free then (blocking: statvfs)."""
    st = os.statvfs(path)
    return f"no space left on {path} while {doing}: {st.f_bavail * st.f_frsize} bytes free"


def is_out_of_space(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it, says the disk is full: NoSpace, ENOSPC or
    EDQUOT from a system call, or sqlite's SQLITE_FULL."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NoSpace):
            return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, sqlite3.OperationalError) and "full" in str(current):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend((current.__cause__, current.__context__))
    return False


@dataclass(frozen=True)
class Space:
    """How full the filesystem holding `path` is, as statvfs says (what kubelet's image
    garbage collection weighs against its thresholds)."""

    path: Path
    bytes_used: int
    bytes_free: int
    inodes_used: int
    inodes_free: int

    def render(self) -> str:
        return (f"path {self.path}\nbytes-used {self.bytes_used}\nbytes-free {self.bytes_free}\n"
                f"inodes-used {self.inodes_used}\ninodes-free {self.inodes_free}\n")


def space_of(path: Path) -> Space:
    st = os.statvfs(path)
    return Space(path, (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize,
                 st.f_files - st.f_ffree, st.f_favail)
