"""The last known state of every task, kept in memory so that status, pid and exit reads
answer without a worker thread or a file read.

A task's state changes in two ways only: through the daemon's own verbs (create,
start, pause, resume, kill, delete), after which the containers service forgets what it
knew (or, for create and start, which answer with the state they made, remembers that:
`changed`), and by its process exiting, which conmon records in the task's directory,
where the one inotify watcher (container_streams.DirWatcher) sees it and the service
forgets again; the service also watches each started process's end itself (a pidfd),
for the one whose conmon was killed (-9) and writes no exit file. The next read after
a change asks the runtime once, in a thread, and remembers.

What no event reports is caught by asking again once a remembered live state is older
than `LIVE_SECONDS`; a stopped task with its exit status is final and kept until
forgotten.

`on_change` hears of every change: each forget, and an answer that differs from the
one it replaces (the case no event reports). The tree lets the kernel keep the
attributes of the files that show a task's state, and withdraws them there.

Forgetting anything bumps one generation: an answer computed across a change (in a
thread already running when it happened) is returned but not remembered. One counter
for all tasks keeps nothing behind for deleted ones.
"""

import time
from collections.abc import Callable

from runtime.state import Status
from runtime.tasks import TaskInfo

TaskKey = tuple[str, str, str | None]  # namespace, container id, exec id (None: the init)
# Told (namespace, container id, exec id, every exec of the container) at each change.
ChangeListener = Callable[[str, str, str | None, bool], None]
LIVE_SECONDS = 1.0


class TaskStates:
    """TaskInfo by task, with the generation that keeps late answers out."""

    def __init__(self, live_seconds: float = LIVE_SECONDS) -> None:
        self._live_seconds = live_seconds
        self._known: dict[TaskKey, tuple[TaskInfo, float]] = {}
        self._generation = 0
        self.on_change: ChangeListener | None = None

    def get(self, key: TaskKey) -> TaskInfo | None:
        """The remembered state, if it is still to be trusted."""
        known = self._known.get(key)
        if known is None:
            return None
        info, at = known
        if not _final(info) and time.monotonic() - at > self._live_seconds:
            return None
        return info

    @property
    def generation(self) -> int:
        """Take before asking the runtime; give to `remember` with the answer."""
        return self._generation

    def remember(self, key: TaskKey, info: TaskInfo, generation: int) -> None:
        if generation != self._generation:
            return
        before = self._known.get(key)
        self._known[key] = (info, time.monotonic())
        if before is not None and before[0] != info and self.on_change is not None:
            self.on_change(*key, False)

    def changed(self, key: TaskKey, info: TaskInfo, generation: int) -> None:
        """The daemon's own verb made the task `info` (a create, a start): forget what
        was known, and remember `info` unless something else changed since
        `generation` was taken, before the verb (an exit seen meanwhile is newer)."""
        unchanged = generation == self._generation
        self.forget(*key)
        if unchanged:
            self.remember(key, info, self._generation)

    def exited(self, key: TaskKey, info: TaskInfo) -> None:
        """`info`, read once conmon recorded the exit, is final: nothing asked meanwhile
        can be newer, so it replaces what was known whatever the generation."""
        self.forget(*key)
        self.remember(key, info, self._generation)

    def final(self, key: TaskKey) -> TaskInfo | None:
        """The remembered state if it is final (`_final`); None otherwise."""
        known = self._known.get(key)
        return known[0] if known is not None and _final(known[0]) else None

    def forget(self, namespace: str, container_id: str, exec_id: str | None = None,
               every_exec: bool = False) -> None:
        """The task changed (or, with `every_exec`, the container and all its execs)."""
        keys = [k for k in self._known if k[:2] == (namespace, container_id)] \
            if every_exec else [(namespace, container_id, exec_id)]
        for key in keys:
            self._known.pop(key, None)
        self._generation += 1
        if self.on_change is not None:
            self.on_change(namespace, container_id, exec_id, every_exec)


def _final(info: TaskInfo) -> bool:
    """Stopped with its exit status: the state can change no more."""
    return info.status == Status.STOPPED and info.exit_status is not None
