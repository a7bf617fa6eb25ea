"""Wake up when the OOM killer strikes in a container's cgroup, without polling.

A watcher is a file descriptor the daemon waits on (`trio.lowlevel.wait_readable(
watcher.fileno())`) plus `read()`, which drains the wakeup and answers how many OOM
kills happened since the previous read. Wakeups may be spurious (memory.events also
changes on `high`/`max` events); the count is the truth.

    v1  an eventfd registered through cgroup.event_control on memory.oom_control
        (Documentation/admin-guide/cgroup-v1/memory.rst, "OOM Control"); the kernel
        also signals it when the cgroup is removed, so `read()` then raises NotFound.
    v2  inotify on memory.events, whose oom_kill line counts the kills.
"""

import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from base.errors import NotFound
from runtime.cgroups import CGROUP_ROOT, Cgroup, CgroupV1, CgroupV2, open_cgroup
from runtime.inotify import IN_MODIFY, Inotify

_KILL_POLL_S: Final = 0.005


class OomWatcher(ABC):
    """One cgroup's OOM kills as a pollable file descriptor. Close it when done."""

    def __init__(self, cgroup: Cgroup, fd: int) -> None:
        self._cgroup = cgroup
        self._fd = fd
        self._seen = cgroup.oom_kills()

    def fileno(self) -> int:
        """Readable when an OOM kill may have happened; then call `read()`."""
        return self._fd

    @property
    def total(self) -> int:
        """OOM kills counted up to the last `read()` (or the watcher's creation)."""
        return self._seen

    # How long `read()` waits, after a wakeup, for the kill count to move.
    _settle_s: float = 0.0

    def read(self) -> int:
        """Drain pending wakeups and return the OOM kills since the previous read (0 when
        the wakeup was spurious). Blocks at most ~0.2 s. NotFound once the cgroup is gone."""
        woken = self._drain()
        new = self._take_new_kills()
        deadline = time.monotonic() + self._settle_s
        while woken and new == 0 and time.monotonic() < deadline:
            time.sleep(_KILL_POLL_S)
            new = self._take_new_kills()
        return new

    def _take_new_kills(self) -> int:
        current = self._cgroup.oom_kills()
        new, self._seen = current - self._seen, current
        return new

    @abstractmethod
    def _drain(self) -> bool:
        """Consume whatever made the descriptor readable; False if nothing was pending."""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventfdOomWatcher(OomWatcher):
    """cgroup v1: the memory controller's OOM notification through an eventfd."""

    def __init__(self, cgroup: CgroupV1) -> None:
        memory_dir = cgroup.dirs.get("memory")
        if memory_dir is None:
            raise NotFound(f'no memory cgroup: "{cgroup.cgroups_path}"')
        fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            _register_oom_eventfd(memory_dir, fd, cgroup.cgroups_path)
            super().__init__(cgroup, fd)
        except BaseException:
            os.close(fd)
            raise

    # The eventfd fires as the cgroup goes under OOM, just before the killer runs and
    # counts its kill.
    _settle_s = 0.2

    def _drain(self) -> bool:
        try:
            return os.eventfd_read(self._fd) > 0
        except BlockingIOError:
            return False


def _register_oom_eventfd(memory_dir: str, event_fd: int, cgroups_path: str) -> None:
    """Ask the kernel to signal `event_fd` on OOM in the cgroup at `memory_dir`."""
    try:
        control_fd = os.open(f"{memory_dir}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f'no memory cgroup: "{cgroups_path}"') from None
    try:
        # The kernel takes its own reference during the write; control_fd may close after.
        with open(f"{memory_dir}/cgroup.event_control", "w") as control:
            control.write(f"{event_fd} {control_fd}")
    finally:
        os.close(control_fd)


class InotifyOomWatcher(OomWatcher):
    """cgroup v2: inotify on memory.events, which the kernel touches on every event."""

    def __init__(self, cgroup: CgroupV2) -> None:
        events = f"{cgroup.directory}/memory.events"
        self._inotify = Inotify()
        try:
            self._inotify.add_watch(events, IN_MODIFY)
            super().__init__(cgroup, self._inotify.fileno())
        except FileNotFoundError:
            self._inotify.close()
            raise NotFound(f'no memory controller in cgroup: "{cgroup.cgroups_path}"') from None
        except BaseException:
            self._inotify.close()
            raise

    def _drain(self) -> bool:
        return bool(self._inotify.drain())

    def close(self) -> None:
        self._inotify.close()
        self._fd = -1


def watch_oom(cgroups_path: str, root: Path = CGROUP_ROOT) -> OomWatcher:
    """A watcher of OOM kills in the cgroup `cgroups_path` (as in the OCI spec).

    InvalidArgument for a malformed path; NotFound if the cgroup (or its memory
    controller) is not there."""
    cgroup = open_cgroup(cgroups_path, root)
    if isinstance(cgroup, CgroupV1):
        return EventfdOomWatcher(cgroup)
    if isinstance(cgroup, CgroupV2):
        return InotifyOomWatcher(cgroup)
    raise TypeError(f"unknown cgroup kind: {cgroup!r}")
