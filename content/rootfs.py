"""Reading a file of a layered root filesystem as the container would see it,
without mounting it.

Image files such as /etc/passwd may be symlinks, and an absolute symlink inside an
image means a path inside that image, never the host's. openat2(RESOLVE_IN_ROOT)
makes the kernel resolve every component as if the layer's directory were `/`. The
layers are searched top down; an overlay whiteout (a 0/0 character device) above the
file means it was deleted.
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
_RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _open_in_root(root_fd: int, path: str, flags: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0,
                   _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, path.encode(), ctypes.byref(how),
                       ctypes.sizeof(how))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return int(fd)


def read_from_layers(layers: Sequence[Path], path: str, limit: int = 1 << 20) -> bytes | None:
    """The bytes of `path` in the topmost of `layers` (top first) that has it, or None
    if none has it as a regular file, or a whiteout hides it. InvalidArgument past
    `limit` bytes."""
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
            fd = _open_in_root(root_fd, path.lstrip("/"), os.O_PATH)
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
