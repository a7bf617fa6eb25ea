"""Reading a file inside a container root filesystem as the container would see it.

Image files such as /etc/passwd may be symlinks, and an absolute symlink inside an
image means a path inside that image, never the host's. openat2(RESOLVE_IN_ROOT)
makes the kernel resolve every component as if `root` were `/`.
"""

import ctypes
import errno
import os
from pathlib import Path

from cdfs.errors import InvalidArgument

_SYS_OPENAT2 = 437  # the same number on x86_64 and arm64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _open_in_root(root_fd: int, path: str) -> int:
    how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY, 0,
                   _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, path.encode(), ctypes.byref(how),
                       ctypes.sizeof(how))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def read_in_root(root: Path, path: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of `path` under `root` resolved as inside it, or None if it does not
    exist (or is not a regular file). InvalidArgument past `limit` bytes."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = _open_in_root(root_fd, path.lstrip("/"))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return None
            raise
        try:
            if not os.path.isfile(f"/proc/self/fd/{fd}"):
                return None
            data = os.read(fd, limit + 1)
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    if len(data) > limit:
        raise InvalidArgument(f'"{path}" in the image is larger than {limit} bytes')
    return data
