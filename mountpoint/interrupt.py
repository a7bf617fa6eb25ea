"""Releasing readers (and writers) blocked in a request when they get a signal.

pyfuse3 has no interrupt handler, so a process blocked in read() on a stream would
sit through SIGTERM and Ctrl-C until data came. While a request waits, its opener's
/proc status is polled (docs/fuse-notes.md: measured, ~0.2 s): a pending signal or a
gone process cancels the wait, and the request ends with EINTR, which lets
`timeout 2 cat events` return.

Reading /proc is file I/O, which stays off the trio loop, and hundreds of readers may
wait at once (every `cat events`). So one ticker task, alive while anyone waits,
reads the status of every waiting pid in one worker thread each POLL_SECONDS and
cancels the waits whose process has a signal: the waiters themselves never wake
until their data, their end or their signal comes.
"""

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import trio

POLL_SECONDS = 0.2

log = logging.getLogger(__name__)


def signalled(pid: int) -> bool:
    """Whether the process `pid` has a signal pending, or is gone (blocking: /proc)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith((b"SigPnd:", b"ShdPnd:")) and int(line.split()[1], 16):
                    return True
    except (FileNotFoundError, ProcessLookupError):
        return True
    return False


def _signalled_among(pids: set[int]) -> set[int]:
    return {pid for pid in pids if signalled(pid)}


class SignalWatch:
    """The waits to cancel on a signal, and the ticker that checks them (module doc)."""

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self._waits: dict[trio.CancelScope, int] = {}
        self._ticking = False
        self.checks = 0  # worker-thread checks made, however many waits each covered

    @contextmanager
    def cancel_on_signal(self, pid: int) -> Iterator[trio.CancelScope]:
        """A cancel scope that is cancelled once `pid` has a signal pending or is gone;
        after the block, its `cancelled_caught` says whether that happened."""
        with trio.CancelScope() as scope:
            self._waits[scope] = pid
            if not self._ticking:
                self._ticking = True
                trio.lowlevel.spawn_system_task(self._tick)
            try:
                yield scope
            finally:
                del self._waits[scope]

    async def _tick(self) -> None:
        try:
            while self._waits:
                await trio.sleep(POLL_SECONDS)
                pids = set(self._waits.values())
                if not pids:
                    continue
                self.checks += 1
                try:
                    hit = await trio.to_thread.run_sync(_signalled_among, pids)
                except Exception:  # a system task must not raise: log, try next tick
                    log.exception("checking blocked requests for signals")
                    continue
                for scope, pid in list(self._waits.items()):
                    if pid in hit:
                        scope.cancel()
        finally:
            self._ticking = False


_watch: SignalWatch | None = None


def cancel_on_signal(pid: int) -> AbstractContextManager[trio.CancelScope]:
    """The process-wide SignalWatch's `cancel_on_signal` (one watch per trio run: the
    daemon has one run, the tests many)."""
    global _watch
    if _watch is None or _watch.token is not trio.lowlevel.current_trio_token():
        _watch = SignalWatch()
    return _watch.cancel_on_signal(pid)
