"""The daemon's one inotify watcher (cdfs.services.container_streams.DirWatcher) on
real directories: what a counter says right after a change."""

import os
from pathlib import Path

import trio
import trio.testing

from cdfs.services.container_streams import DirWatcher
from runtime.inotify import DIRECTORY_STAT


async def test_catch_up_counts_a_change_whose_call_returned_before_it(tmp_path: Path) -> None:
    """The change below is made with no checkpoint before `catch_up`, so the running
    watcher has not read its event: only `catch_up` can have counted it."""
    watcher = DirWatcher()
    told: list[tuple[Path, set[str]]] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run, lambda path, names: told.append((path, names)))
            await watcher.watch(tmp_path, mask=DIRECTORY_STAT)
            await trio.testing.wait_all_tasks_blocked()
            version = watcher.version(tmp_path)
            (tmp_path / "made").mkdir()
            assert await watcher.catch_up()
            assert watcher.version(tmp_path) == version + 1
            assert told == [(tmp_path, {"made"})]
            await trio.testing.wait_all_tasks_blocked()
            assert watcher.version(tmp_path) == version + 1  # read once, not again
            nursery.cancel_scope.cancel()
    finally:
        watcher.close()


async def test_catch_up_reads_nothing_while_the_watcher_does_not_run(tmp_path: Path) -> None:
    watcher = DirWatcher()
    try:
        await watcher.watch(tmp_path, mask=DIRECTORY_STAT)
        (tmp_path / "made").mkdir()
        assert not await watcher.catch_up()
        assert watcher.version(tmp_path) == 0
    finally:
        watcher.close()


async def test_an_overflowed_queue_counts_as_a_change_of_every_directory(tmp_path: Path) -> None:
    """More events than the kernel queues (some are lost): every watched directory,
    the untouched one too, counts a change and is told of one."""
    busy, quiet = tmp_path / "busy", tmp_path / "quiet"
    busy.mkdir()
    quiet.mkdir()
    watcher = DirWatcher()
    told: dict[Path, set[str]] = {}
    try:
        for directory in (busy, quiet):
            await watcher.watch(directory, mask=DIRECTORY_STAT)
        files = [busy / "a", busy / "b"]
        for file in files:
            file.touch()
        queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
        for n in range(queued):
            os.utime(files[n % 2])  # never two alike in a row: nothing merges
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher.run, lambda path, names: told.setdefault(path, set())
                               .update(names))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert watcher.version(quiet) == 1 and "" in told[quiet] and "" in told[busy]
    finally:
        watcher.close()
