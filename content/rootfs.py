"""A root filesystem seen from outside it, as the container sees it from inside.

Image files are hostile: a symlink or `..` in an image means a path inside that
image, never the host's, and cdfs runs as root. So every path is resolved here
below the root, component by component, by the kernel: openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS) opens the parent directory of a name (a symlink or `..` on the
way fails with ELOOP/EXDEV instead of leaving the root), and the name itself is then
used relative to that directory fd with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW. A
directory swapped for a symlink while a client holds it (a live container can do
that) is refused the same way.

A `RootView` stacks one or more directories, top first: an image's overlay layers
(a 0/0 character device is a whiteout, `trusted.overlay.opaque=y` hides the layers
below a directory), or one directory (a native snapshot, a container's mounted
root). Only a one-directory view can be writable. Every method blocks: callers run
them in worker threads.
"""

import ctypes
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from base.errors import InvalidArgument

_SYS_OPENAT2 = 437  # the same number on x86_64 and arm64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPAQUE = "trusted.overlay.opaque"

Parts = tuple[str, ...]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def open_in_root(root_fd: int, path: str, flags: int, resolve: int = _RESOLVE_IN_ROOT) -> int:
    """openat2 below `root_fd`: by default symlinks resolve as if the root were `/`."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, os.fsencode(path or "."), ctypes.byref(how),
                       ctypes.sizeof(how))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _opaque(fd: int) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{fd}", _OPAQUE) == b"y"
    except OSError:
        return False


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.EIO, "no mnt_id in fdinfo")


def _close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


class RootView:
    """The merged tree of `layers` (top first); see the module doc. With `mounted`,
    the single directory must be a mount point (a container's rootfs while it is
    mounted), so nothing is ever written into the empty directory beneath it."""

    def __init__(self, layers: Sequence[Path], writable: bool = False,
                 mounted: bool = False) -> None:
        if not layers or (writable and len(layers) != 1):
            raise InvalidArgument("a writable root view has exactly one directory")
        self.layers = tuple(layers)
        self.writable = writable
        self._mounted = mounted
        self._whiteouts = not writable

    @property
    def mounted(self) -> bool:
        """Whether the one directory is a mount point the view requires."""
        return self._mounted

    # -- resolution --------------------------------------------------------------
    def _roots(self) -> list[int]:
        fds: list[int] = []
        try:
            for layer in self.layers:
                fds.append(os.open(layer, _DIR))
            if self._mounted:
                parent = os.open(self.layers[0].parent, _DIR)
                try:
                    if _mount_id(fds[0]) == _mount_id(parent):
                        raise FileNotFoundError(errno.ENOENT, "the root is not mounted")
                finally:
                    os.close(parent)
        except BaseException:
            _close_all(fds)
            raise
        return fds

    def _dirs(self, parts: Parts) -> list[int]:
        """The fds of directory `parts` in each layer that contributes to it, top
        first (FileNotFoundError or NotADirectoryError if it is not a directory)."""
        fds = self._roots()
        if not self._whiteouts:  # one directory: the kernel walks it in one call
            try:
                fd = open_in_root(fds[0], "/".join(parts), _DIR,
                                  _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
            finally:
                os.close(fds[0])
            return [fd]
        try:
            for part in parts:
                below: list[int] = []
                try:
                    for fd in fds:
                        info = _lstat(fd, part)
                        if info is None:
                            continue
                        if _is_whiteout(info) or not stat.S_ISDIR(info.st_mode):
                            if not below:
                                raise (FileNotFoundError if _is_whiteout(info)
                                       else NotADirectoryError)(part)
                            break
                        below.append(os.open(part, _DIR, dir_fd=fd))
                        if _opaque(below[-1]):
                            break
                except BaseException:
                    _close_all(below)
                    raise
                _close_all(fds)
                fds = below
                if not fds:
                    raise FileNotFoundError(errno.ENOENT, "no such directory", part)
        except BaseException:
            _close_all(fds)
            raise
        return fds

    def _find(self, parts: Parts) -> tuple[list[int], int, os.stat_result]:
        """The parent's dirs, the one holding the name's topmost entry, and its stat."""
        if not parts:
            dirs = self._dirs(())
            return dirs, dirs[0], os.fstat(dirs[0])
        dirs = self._dirs(parts[:-1])
        for fd in dirs:
            info = _lstat(fd, parts[-1])
            if info is None:
                continue
            if self._whiteouts and _is_whiteout(info):
                break
            return dirs, fd, info
        _close_all(dirs)
        raise FileNotFoundError(errno.ENOENT, "no such file", "/".join(parts))

    def _writable_parent(self, parts: Parts) -> int:
        if not self.writable:
            raise OSError(errno.EROFS, "read-only root")
        if not parts:
            raise PermissionError(errno.EPERM, "the root itself")
        return self._dirs(parts[:-1])[0]

    # -- reading -----------------------------------------------------------------
    def lstat(self, parts: Parts) -> os.stat_result:
        dirs, _, info = self._find(parts)
        _close_all(dirs)
        return info

    def listdir(self, parts: Parts) -> list[str]:
        dirs = self._dirs(parts)
        seen: set[str] = set()
        names: list[str] = []
        try:
            for fd in dirs:
                listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                try:
                    for entry in os.scandir(listing):
                        if entry.name in seen:
                            continue
                        seen.add(entry.name)
                        info = entry.stat(follow_symlinks=False)
                        if not (self._whiteouts and _is_whiteout(info)):
                            names.append(entry.name)
                finally:
                    os.close(listing)
        finally:
            _close_all(dirs)
        return sorted(names)

    def readlink(self, parts: Parts) -> str:
        dirs, fd, _ = self._find(parts)
        try:
            return os.readlink(parts[-1], dir_fd=fd) if parts else ""
        finally:
            _close_all(dirs)

    def open(self, parts: Parts, flags: int) -> int:
        """An fd of regular file `parts`; a symlink, device or fifo is refused."""
        writing = flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC
        if writing and not self.writable:
            raise OSError(errno.EROFS, "read-only root")
        dirs, parent, info = self._find(parts)
        try:
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.ELOOP if stat.S_ISLNK(info.st_mode) else errno.EACCES,
                              "not a regular file")
            keep = os.O_ACCMODE | os.O_TRUNC | os.O_APPEND
            fd = os.open(parts[-1], (flags & keep) | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=parent)
        finally:
            _close_all(dirs)
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
            os.close(fd)
            raise OSError(errno.EACCES, "not a regular file")
        return fd

    # -- writing (a writable view only) --------------------------------------------
    def create(self, parts: Parts, mode: int, flags: int, uid: int, gid: int) -> int:
        parent = self._writable_parent(parts)
        try:
            keep = os.O_ACCMODE | os.O_APPEND
            fd = os.open(parts[-1], (flags & keep) | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC,
                         stat.S_IMODE(mode), dir_fd=parent)
        finally:
            os.close(parent)
        os.fchown(fd, uid, gid)
        return fd

    def mkdir(self, parts: Parts, mode: int, uid: int, gid: int) -> None:
        parent = self._writable_parent(parts)
        try:
            os.mkdir(parts[-1], stat.S_IMODE(mode), dir_fd=parent)
            os.chown(parts[-1], uid, gid, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def unlink(self, parts: Parts) -> None:
        parent = self._writable_parent(parts)
        try:
            os.unlink(parts[-1], dir_fd=parent)
        finally:
            os.close(parent)

    def rmdir(self, parts: Parts) -> None:
        parent = self._writable_parent(parts)
        try:
            os.rmdir(parts[-1], dir_fd=parent)
        finally:
            os.close(parent)

    def setattr(self, parts: Parts, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, size: int | None = None,
                times_ns: tuple[int, int] | None = None) -> os.stat_result:
        """Change what is given, without following a symlink: chmod and truncate
        only reach regular files and directories."""
        if not self.writable:
            raise OSError(errno.EROFS, "read-only root")
        dirs, parent, info = self._find(parts)
        name = parts[-1] if parts else "."
        try:
            if uid is not None or gid is not None:
                os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid,
                         dir_fd=parent, follow_symlinks=False)
            if mode is not None and not stat.S_ISLNK(info.st_mode):
                os.chmod(name, stat.S_IMODE(mode), dir_fd=parent, follow_symlinks=False)
            if times_ns is not None:
                os.utime(name, ns=times_ns, dir_fd=parent, follow_symlinks=False)
            if size is not None:
                fd = self.open(parts, os.O_WRONLY)
                try:
                    os.ftruncate(fd, size)
                finally:
                    os.close(fd)
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        finally:
            _close_all(dirs)


def read_from_layers(layers: Sequence[Path], path: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of `path` as the container will see it, where symlinks on the way
    resolve inside the root (e.g. /etc/passwd for resolving a user), or None if it is
    not a regular file there. InvalidArgument past `limit` bytes."""
    for layer in layers:
        found = _read_in_root(layer, path, limit)
        if found is _HIDDEN:
            return None
        if isinstance(found, bytes):
            return found
    return None


_HIDDEN = object()  # a whiteout or a non-file above: lower layers do not show through


def _read_in_root(root: Path, path: str, limit: int) -> bytes | object | None:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, path.lstrip("/"), os.O_PATH)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return _HIDDEN
            with open(f"/proc/self/fd/{fd}", "rb") as file:
                data = file.read(limit + 1)
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    if len(data) > limit:
        raise InvalidArgument(f'"{path}" in the image is larger than {limit} bytes')
    return data
