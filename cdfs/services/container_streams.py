"""Following tasks' files without spinning: one inotify watcher for every task, and the
readers behind the output files (stdout, stderr, log), follow/ and wait.

conmon writes each task's log and exit file into the task's own directory. The daemon
watches every such directory with ONE inotify instance (a watch costs a few hundred
bytes of kernel memory; an instance per reader would cost a descriptor per `cat`),
and one trio task turns its events into per-directory change counters. A reader notes
the counter, reads, and if there was nothing new sleeps until the counter moves: no
wakeup can be lost between its read and its sleep.

A container that logs outside its directory (a CRI log path) has its `log` there as a
symlink; the watcher then also watches the log's own directory and counts changes to
that file as changes to `log` in the task's directory (`watch`'s `link`).

Adding a watch walks its path, which can block (a log directory on a hung NFS or FUSE
server), so it runs in a thread; the events are read under the same lock, so none
comes before its watch is known (it would be dropped) and their order is the kernel's.
The kernel queues an event before the call that made the change returns, so
`catch_up` (reading what is queued now) makes a counter current for whoever asks after
that call returned. An overflowed queue counts as a change of every watched directory.

Readers are cancel-safe (the filesystem cancels a waiting read every 0.2 s to look
for signals): their position moves only when bytes are returned.
"""

from collections.abc import Callable
from pathlib import Path

import trio

from runtime.conmon import MonitorFiles
from runtime.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    Inotify,
)
from runtime.logs import LogIndex

_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO
ChangeCallback = Callable[[Path, set[str]], None]


class DirWatcher:
    """Change counters for watched directories, fed by one inotify instance."""

    def __init__(self) -> None:
        self._inotify = Inotify()
        self._by_wd: dict[int, Path] = {}
        self._wd: dict[Path, int] = {}
        self._version: dict[Path, int] = {}
        self._changed: dict[Path, trio.Event] = {}
        self._moved_in: dict[tuple[Path, str], int] = {}
        # Per directory watched for links: file name -> (task directory, its name there).
        self._links: dict[Path, dict[str, tuple[Path, str]]] = {}
        self._adding = trio.Lock()  # held while watches are added, and while events are read
        self._on_change: ChangeCallback | None = None  # while `run` runs

    async def watch(self, path: Path, link: Path | None = None, name: str = "log",
                    mask: int = _MASK) -> None:
        """Start counting changes in `path` (idempotent): by default the events of
        a task's directory, else those of `mask`; with `link`, count changes to
        that file (in another directory, watched too, once for all the links into
        it) as changes to `name` in `path`."""
        async with self._adding:
            for directory in (path, link.parent if link is not None else None):
                if directory is None or directory in self._wd:
                    continue
                wd = await trio.to_thread.run_sync(self._inotify.add_watch, directory,
                                                   mask if directory == path else _MASK)
                self._by_wd[wd] = directory
                self._wd[directory] = wd
                self._version.setdefault(directory, 0)
            if link is not None:
                self._links.setdefault(link.parent, {})[link.name] = (path, name)

    def unwatch(self, path: Path) -> None:
        """Stop watching `path` and wake its readers, who then find it gone."""
        wd = self._wd.pop(path, None)
        if wd is not None:
            self._by_wd.pop(wd, None)
            self._inotify.remove_watch(wd)
        self._version.pop(path, None)
        for key in [key for key in self._moved_in if key[0] == path]:
            del self._moved_in[key]
        self._wake(path)

    def unfollow_link(self, target: Path) -> None:
        links = self._links.get(target.parent, {})
        links.pop(target.name, None)
        if not links:
            self._links.pop(target.parent, None)
            self.unwatch(target.parent)

    def watching(self, path: Path) -> bool:
        return path in self._wd

    def moved_in(self, path: Path, name: str) -> int:
        """How many times a file was renamed to `name` in `path` (conmon starting a
        new log at its cap does that), counted since the watch began."""
        return self._moved_in.get((path, name), 0)

    def version(self, path: Path) -> int:
        return self._version.get(path, -1)

    async def wait_changed(self, path: Path, version: int) -> None:
        """Sleep until `path` changed since `version` was read (or is unwatched)."""
        while self._version.get(path, -1) == version and path in self._wd:
            event = self._changed.get(path)
            if event is None:
                event = self._changed[path] = trio.Event()
            await event.wait()

    def _wake(self, path: Path) -> None:
        event = self._changed.pop(path, None)
        if event is not None:
            event.set()

    async def run(self, on_change: ChangeCallback) -> None:
        """Forever: wait for events, bump counters, wake readers, and tell `on_change`
        which names changed in which directory (how exits are noticed)."""
        fd = self._inotify.fileno()
        self._on_change = on_change
        try:
            while True:
                await trio.lowlevel.wait_readable(fd)
                async with self._adding:  # a watch being added is known before its events
                    self._dispatch(on_change)
        finally:
            self._on_change = None

    async def catch_up(self) -> bool:
        """Handle the events queued now, as `run` would a moment later: every change
        whose call returned before this one shows in the counters. False (nothing
        read) while `run` is not running."""
        async with self._adding:
            if self._on_change is None:
                return False
            self._dispatch(self._on_change)
            return True

    def _dispatch(self, on_change: ChangeCallback) -> None:
        """The events queued now: counters, wakeups and `on_change`, in their order."""
        names: dict[Path, set[str]] = {}
        for event in self._inotify.drain():
            if event.mask & IN_Q_OVERFLOW:  # events were lost: anything may have changed
                for watched in self._wd:  # "" for states, "log" for outputs
                    names.setdefault(watched, set()).update(("", "log"))
                continue
            path = self._by_wd.get(event.wd)
            if path is None:
                continue
            if event.mask & IN_IGNORED:  # the directory is gone
                self._by_wd.pop(event.wd, None)
                self._wd.pop(path, None)
            link = self._links.get(path, {}).get(event.name)
            if link is not None:
                path, name = link
            else:
                name = event.name
            names.setdefault(path, set()).add(name)
            if event.mask & IN_MOVED_TO:  # never coalesced: each rename has its cookie
                key = (path, name)
                self._moved_in[key] = self._moved_in.get(key, 0) + 1
        for path, changed in names.items():
            self._version[path] = self._version.get(path, 0) + 1
            self._wake(path)
            on_change(path, changed)

    def close(self) -> None:
        self._inotify.close()


class _Follower:
    """What the readers share: follow a task's directory until its process exited.
    `on_exit` is told when a read finds the exit recorded, which may be before the
    watcher's event about it is handled: whoever remembers the task's state must not
    answer "running" to the next read after a `cat wait`."""

    def __init__(self, watcher: DirWatcher, files: MonitorFiles,
                 on_exit: Callable[[], None] | None = None) -> None:
        self._watcher = watcher
        self._files = files
        self._on_exit = on_exit
        self._closed = False

    async def _next(self, read_now: Callable[[], bytes]) -> bytes:
        """Bytes from `read_now` (run in a thread) as soon as there are some; b"" once
        the process has exited and all it wrote was read, or the task is gone."""
        path = self._files.dir
        while not self._closed:
            version = self._watcher.version(path)
            exited, data = await trio.to_thread.run_sync(self._exited_then_read, read_now)
            if exited and self._on_exit is not None:
                self._on_exit()
                self._on_exit = None
            if data or exited or not self._watcher.watching(path):
                return data
            await self._watcher.wait_changed(path, version)
        return b""

    def _exited_then_read(self, read_now: Callable[[], bytes]) -> tuple[bool, bytes]:
        # conmon writes the exit file after the last output: reading after seeing it
        # gets everything.
        exited = self._files.exit.exists()
        return exited, read_now()

    def close(self) -> None:
        self._closed = True


class FollowReader(_Follower):
    """follow/stdout, follow/stderr, follow/log (and a terminal): an output file of
    the task from byte `start`, waiting for more while the process runs. When conmon
    cut the log at its cap, the reader goes on at the start of the new one, whose
    dropped marker says how much is gone."""

    def __init__(self, watcher: DirWatcher, files: MonitorFiles, index: LogIndex,
                 output: str, start: int = 0,
                 on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(watcher, files, on_exit)
        self._index = index
        self._output = output
        self._offset = start
        self._generation = index.generation

    def _read_now(self, size: int) -> bytes:
        generation, data = self._index.read(self._output, self._offset, size,
                                            self._generation)
        if generation != self._generation:
            self._generation, self._offset = generation, 0
        self._offset += len(data)
        return data

    async def read(self, size: int) -> bytes:
        return await self._next(lambda: self._read_now(size))


class OutputFile:
    """stdout, stderr or log as a growing file: its size and mtime now, and its bytes
    at any offset, never waiting (the index is brought up to date in a thread). The
    size comes without a thread while the index has read every write the watcher saw
    (`LogIndex.known_size`): `ls -l` of a container would hop three times."""

    def __init__(self, index: LogIndex, output: str) -> None:
        self._index = index
        self._output = output

    async def stat(self) -> tuple[int, int]:
        size = self._index.known_size(self._output)
        if size is None:
            size = await trio.to_thread.run_sync(self._index.size, self._output)
        return size, self._index.mtime_ns

    async def read(self, offset: int, size: int) -> bytes:
        _, data = await trio.to_thread.run_sync(self._index.read, self._output, offset, size)
        return data


class ExitReader(_Follower):
    """`wait`: nothing until the process exited, then its exit status and a newline."""

    def __init__(self, watcher: DirWatcher, files: MonitorFiles,
                 exit_status: Callable[[], int | None],
                 on_exit: Callable[[], None] | None = None) -> None:
        super().__init__(watcher, files, on_exit)
        self._exit_status = exit_status
        self._text: bytes | None = None

    def _read_now(self) -> bytes:
        if self._text is None:
            status = self._exit_status() if self._files.exit.exists() else None
            if status is None:
                return b""
            self._text = f"{status}\n".encode()
        return self._text

    async def read(self, size: int) -> bytes:
        if self._text == b"":
            return b""  # the status was all read: end of file, no thread to ask
        data = (await self._next(self._read_now))[:size]
        if self._text is not None:
            self._text = self._text[len(data):]
        return data
