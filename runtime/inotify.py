"""A thin ctypes binding of inotify(7), so followers wait for growth without spinning.

The daemon waits on `fileno()` (trio.lowlevel.wait_readable) and then calls `drain()`;
nothing here blocks unless `wait()` is called with a timeout.
"""

import ctypes
import ctypes.util
import errno
import os
import select
import struct
from pathlib import Path

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000  # these three come whatever the mask
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# Growth of a log, creation of an exit file, replacement of a rotated log.
GROWTH = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF
# Whatever changes a directory's own lstat: its entries (size, nlink, mtime, ctime), its
# mode, owner, times and xattrs, its atime (a listing), and its going.
DIRECTORY_STAT = (IN_ACCESS | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM
                  | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

_EVENT_HEADER = struct.Struct("iIII")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Event(tuple[int, int, str]):
    """(watch descriptor, mask, name within a watched directory or "")."""

    __slots__ = ()

    @property
    def wd(self) -> int:
        return self[0]

    @property
    def mask(self) -> int:
        return self[1]

    @property
    def name(self) -> str:
        return self[2]


class Inotify:
    """One inotify instance; watch files or directories, then wait on `fileno()`."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def add_watch(self, path: Path | str, mask: int = GROWTH) -> int:
        """Watch `path` (a file, or a directory for events on its entries)."""
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
        return int(wd)

    def remove_watch(self, wd: int) -> None:
        _libc.inotify_rm_watch(self._fd, wd)

    def drain(self) -> list[Event]:
        """Every event queued now (possibly none); never blocks."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return events
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(data, offset)
                start = offset + _EVENT_HEADER.size
                name = data[start : start + length].rstrip(b"\0").decode(errors="replace")
                events.append(Event((wd, mask, name)))
                offset = start + length

    def wait(self, timeout: float | None) -> list[Event]:
        """Block up to `timeout` seconds for events (for threads and tests)."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return self.drain() if ready else []

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "Inotify":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
