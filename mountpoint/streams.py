"""An open stream file: reads that wait, readiness for poll/select/epoll, O_NONBLOCK.

Each open stream has at most one fetch in flight: a background task awaiting the
reader's next bytes. A blocking read waits for that fetch (and gives up with EINTR
once the reading process has a signal, see interrupt.py); a non-blocking read (the
file was opened with O_NONBLOCK) takes what has arrived or answers EAGAIN; poll
answers POLLIN once bytes or the end are there, and until then keeps the kernel's
poll handle to notify when they come. So readiness is real: `select` on `events`
sleeps until an event.
"""

import contextlib
import errno
import select
from typing import Any

import pyfuse3
import trio

from mountpoint.errors import errno_of
from mountpoint.interrupt import cancel_on_signal
from mountpoint.services import Sink, StreamReader

FETCH_SIZE = 1 << 16
# A non-blocking read lets the fetch it starts finish within this long, so bytes the
# reader already has (a worker-thread hop away) are returned instead of EAGAIN.
NONBLOCK_GRACE = 0.1
READABLE = select.POLLIN | select.POLLRDNORM
WRITABLE = select.POLLOUT | select.POLLWRNORM


class OpenStream:
    """One open of a stream file (see the module doc)."""

    def __init__(self, reader: StreamReader, pid: int, nonblocking: bool,
                 sink: Sink | None = None) -> None:
        self.reader = reader
        self.sink = sink  # opened for reading and writing (a Stream with input)
        self._pid = pid
        self._nonblocking = nonblocking
        self._pending = b""
        self._ended = False
        self._error: int | None = None
        self._fetched: trio.Event | None = None  # set when the fetch in flight is done
        self._cancel: trio.CancelScope | None = None
        self._poll_handle: Any = None
        self._closed = False

    def _ready(self) -> bool:
        return bool(self._pending) or self._ended or self._error is not None

    def _fetch(self) -> trio.Event:
        """The fetch in flight, started if there is none."""
        if self._fetched is None:
            self._fetched = trio.Event()
            trio.lowlevel.spawn_system_task(self._run_fetch, self._fetched)
        return self._fetched

    async def _run_fetch(self, done: trio.Event) -> None:
        with trio.CancelScope() as self._cancel:
            try:
                data = await self.reader.read(FETCH_SIZE)
                self._pending += data
                self._ended = not data
            except Exception as exc:
                self._error = errno_of(exc)
        self._cancel = None
        self._fetched = None
        done.set()
        self._notify()

    def _notify(self) -> None:
        handle, self._poll_handle = self._poll_handle, None
        if handle is not None:
            with contextlib.suppress(OSError):  # the waiter is gone
                handle.notify()

    async def read(self, size: int) -> bytes:
        """What has arrived, else wait for it (or EAGAIN, non-blocking); b"" at the end."""
        while not self._ready() and not self._closed:
            fetched = self._fetch()
            if self._nonblocking:
                with trio.move_on_after(NONBLOCK_GRACE):
                    await fetched.wait()
                if not self._ready():
                    raise pyfuse3.FUSEError(errno.EAGAIN)
                break
            with cancel_on_signal(self._pid) as signalled:
                await fetched.wait()
            if signalled.cancelled_caught and not self._ready():
                raise pyfuse3.FUSEError(errno.EINTR)
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        if self._error is not None:
            code, self._error = self._error, None
            raise pyfuse3.FUSEError(code)
        return b""

    def poll(self, handle: Any) -> int:
        """The readiness mask now; when not readable, `handle` is notified later."""
        writable = WRITABLE if self.sink is not None else 0
        if self._ready() or self._closed:
            return READABLE | writable
        if handle is not None:
            self._poll_handle = handle
        self._fetch()
        return writable

    def close(self) -> None:
        """End the reader and any fetch in flight; a waiting read sees the end."""
        self._closed = True
        self.reader.close()
        if self._cancel is not None:
            self._cancel.cancel()
        self._poll_handle = None
