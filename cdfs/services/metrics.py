"""Containers' resource usage (containers/<id>/stats/) and their OOM kills (/tasks/oom).

Stats are read from the container's cgroup, named by the spec's linux.cgroupsPath.
A container without a cgroup — no task yet, or deleted — answers NotFound, as
containerd's `ctr task metrics` errors for a task that does not run; a stopped task
whose cgroup runc has not deleted yet still shows its last counters (oom_kills
among them). Opened cgroups are cached by path, so a read costs one worker-thread
hop and a few small file reads. A group's sample serves for SAMPLE_REUSE seconds:
one read of a stats file asks for its value four times together (the open's
permission check, the open, and a stat or two of the open file, each wanting the
size), and so all four see the one sample, whose length is the st_size they report.

OOM kills: the service follows the event bus, and for every /tasks/create (or a
/tasks/start it has no watcher for) opens an OOM watcher on the task's cgroup and
waits on its file descriptor; each wakeup that counts new kills publishes
/tasks/oom. Whoever publishes /tasks/exit first awaits `before_exit`, which drains
the watcher, so an OOM kill is on the events streams before the exit it caused.
A watcher ends when its cgroup goes, or at /tasks/delete or /containers/delete.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from base.clock import rfc3339
from base.errors import CdfsError, InvalidArgument, NotFound
from cdfs.events import Event, EventBus
from runtime.cgroups import CGROUP_ROOT, Cgroup, Stats, open_cgroup
from runtime.oom import OomWatcher, watch_oom

log = logging.getLogger(__name__)

GROUPS: Final = ("cpu", "memory", "pids", "io")
DEFAULT_INTERVAL: Final = 1.0
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
SAMPLE_REUSE: Final = 0.005  # seconds: a stats file's stat, open and read see one sample
# How long `before_exit` may hold up an exit event while a watcher is being set up.
BEFORE_EXIT_TIMEOUT: Final = 2.0

CgroupsPath = Callable[[str, str], str]
"""(namespace, container id) -> the container's linux.cgroupsPath."""


# --- pure helpers ----------------------------------------------------------------------


def render(stats: Stats) -> str:
    """`key value` lines, the format of stats/cpu, stats/memory, …"""
    return "".join(f"{key} {value}\n" for key, value in stats.items())


def parse_interval(text: str) -> float:
    """Seconds between stream objects: a number from 0.1 to 3600."""
    try:
        seconds = float(text.strip())
    except ValueError:
        raise InvalidArgument(f'bad interval (want seconds): "{text.strip()}"') from None
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise InvalidArgument(
            f'interval out of range ({MIN_INTERVAL:g} to {MAX_INTERVAL:g} s): "{text.strip()}"')
    return seconds


def stream_line(sample: dict[str, Any]) -> bytes:
    return json.dumps(sample, separators=(",", ":")).encode() + b"\n"


# --- the service -----------------------------------------------------------------------


@dataclass(eq=False)
class _OomWatch:
    """One task's OOM watcher and the task that waits on it. `lock` makes a read and
    the publication of what it found one step, shared with `before_exit`."""

    fresh: bool
    ready: trio.Event = field(default_factory=trio.Event)
    lock: trio.Lock = field(default_factory=trio.Lock)
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    watcher: OomWatcher | None = None


class Metrics:
    """Stats of containers' cgroups, stats streams, and OOM events."""

    def __init__(self, bus: EventBus, cgroups_path: CgroupsPath,
                 cgroup_root: Path = CGROUP_ROOT) -> None:
        self._bus = bus
        self._cgroups_path = cgroups_path
        self._root = cgroup_root
        self._cgroups: dict[str, Cgroup] = {}
        self._intervals: dict[tuple[str, str], float] = {}
        self._samples: dict[tuple[str, str, str], tuple[float, Stats]] = {}
        self._watches: dict[tuple[str, str], _OomWatch] = {}
        self._nursery: trio.Nursery | None = None
        self._unstarted: list[tuple[tuple[str, str], _OomWatch]] = []
        bus.listen(self._on_event)

    # -- stats --------------------------------------------------------------------------
    def _cgroup(self, namespace: str, container_id: str) -> Cgroup:
        """The container's cgroup, opened once. Blocking (stat calls)."""
        try:
            path = self._cgroups_path(namespace, container_id)
        except InvalidArgument:  # an empty slot: no config.json, so no task
            raise _no_task(container_id) from None
        cgroup = self._cgroups.get(path)
        if cgroup is None:
            try:
                cgroup = open_cgroup(path, self._root)
            except NotFound:
                raise _no_task(container_id) from None
            self._cgroups[path] = cgroup
        return cgroup

    def _read(self, namespace: str, container_id: str, read: Callable[[Cgroup], Any]) -> Any:
        cgroup = self._cgroup(namespace, container_id)
        try:
            return read(cgroup)
        except NotFound:
            self._cgroups.pop(cgroup.cgroups_path, None)
            raise _no_task(container_id) from None

    async def stats(self, namespace: str, container_id: str, group: str) -> Stats:
        """One group of a container's stats: cpu, memory, pids or io (runtime/cgroups.py
        has the keys). NotFound when the container has no cgroup."""
        if group not in GROUPS:
            raise InvalidArgument(f'no stats group "{group}"')
        key, now = (namespace, container_id, group), trio.current_time()
        kept = self._samples.get(key)
        if kept is not None and now - kept[0] < SAMPLE_REUSE:
            return kept[1]
        stats: Stats = await trio.to_thread.run_sync(
            self._read, namespace, container_id, lambda cgroup: getattr(cgroup, group)())
        self._samples = {k: v for k, v in self._samples.items() if now - v[0] < SAMPLE_REUSE}
        self._samples[key] = (now, stats)
        return stats

    async def sample(self, namespace: str, container_id: str) -> dict[str, Any]:
        """Every group at once with the time they were read: one stats/stream object."""
        groups = await trio.to_thread.run_sync(
            self._read, namespace, container_id, Cgroup.all)
        return {"timestamp": rfc3339(), "id": container_id, **groups}

    def interval(self, namespace: str, container_id: str) -> float:
        return self._intervals.get((namespace, container_id), DEFAULT_INTERVAL)

    def set_interval(self, namespace: str, container_id: str, text: str) -> None:
        """Set the container's stream interval from its text (seconds); streams already
        open take it from their next object on."""
        self._intervals[(namespace, container_id)] = parse_interval(text)

    async def stream(self, namespace: str, container_id: str) -> "StatsStream":
        """A reader of stats/stream. NotFound when the container has no cgroup."""
        await trio.to_thread.run_sync(self._cgroup, namespace, container_id)
        return StatsStream(self, namespace, container_id)

    # -- OOM ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Run the OOM watchers until cancelled (the daemon stops); tasks are learnt of
        from the bus (`_on_event`)."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for key, entry in self._unstarted:
                    nursery.start_soon(self._watch, key, entry)
                self._unstarted.clear()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    def _on_event(self, event: Event) -> None:
        key = (event.namespace, event.container_id)
        topic = event.topic
        if topic == "/tasks/create" or (topic == "/tasks/start" and key not in self._watches):
            self.watch(*key, fresh=topic == "/tasks/create")
        elif topic in ("/tasks/delete", "/containers/delete"):
            self._unwatch(key)
        if topic == "/containers/delete":
            self._intervals.pop(key, None)

    def watch(self, namespace: str, container_id: str, fresh: bool = True) -> None:
        """Watch the container's task for OOM kills, replacing an older watcher. With
        `fresh` (a task just created), kills its cgroup counted already are published too;
        without (a task found running at startup), only new ones. Before `run` starts,
        the watch is kept until it does. A container without a cgroup is let go quietly."""
        key = (namespace, container_id)
        self._unwatch(key)
        entry = self._watches[key] = _OomWatch(fresh)
        if self._nursery is None:
            self._unstarted.append((key, entry))
        else:
            self._nursery.start_soon(self._watch, key, entry)

    def _unwatch(self, key: tuple[str, str]) -> None:
        entry = self._watches.pop(key, None)
        if entry is not None:
            entry.cancel.cancel()

    async def _watch(self, key: tuple[str, str], entry: _OomWatch) -> None:
        namespace, container_id = key
        try:
            with entry.cancel:
                path = self._cgroups_path(namespace, container_id)
                watcher = entry.watcher = await trio.to_thread.run_sync(
                    watch_oom, path, self._root)
                entry.ready.set()
                if entry.fresh:
                    self._publish_oom(namespace, container_id, watcher.total)
                while True:
                    await trio.lowlevel.wait_readable(watcher.fileno())
                    await self._drain(namespace, container_id, entry)
        except CdfsError as exc:  # no cgroup (the task is gone already), or it went
            log.debug("OOM watch of %s/%s ends: %s", namespace, container_id, exc)
        finally:
            entry.ready.set()
            if self._watches.get(key) is entry:
                del self._watches[key]
            with trio.CancelScope(shield=True):
                async with entry.lock:
                    if entry.watcher is not None:
                        # In a thread: closing the cgroup's event files took about half
                        # a millisecond of the loop at every container's end.
                        await trio.to_thread.run_sync(entry.watcher.close)
                        entry.watcher = None

    async def _drain(self, namespace: str, container_id: str, entry: _OomWatch) -> None:
        """Read the watcher and publish what it counted (NotFound once the cgroup is gone)."""
        async with entry.lock:
            if entry.watcher is not None:
                kills = await trio.to_thread.run_sync(entry.watcher.read)
                self._publish_oom(namespace, container_id, kills)

    def _publish_oom(self, namespace: str, container_id: str, kills: int) -> None:
        if kills > 0:
            log.info("OOM kill in %s/%s (%d)", namespace, container_id, kills)
            self._bus.publish(namespace, "/tasks/oom", container_id, container_id=container_id)

    async def before_exit(self, namespace: str, container_id: str) -> None:
        """Publish a pending OOM kill of the container's task now. Await this before
        publishing /tasks/exit, so /tasks/oom comes first. Never raises."""
        entry = self._watches.get((namespace, container_id))
        if entry is None:
            return
        with trio.move_on_after(BEFORE_EXIT_TIMEOUT):
            await entry.ready.wait()
            try:
                await self._drain(namespace, container_id, entry)
            except (CdfsError, OSError) as exc:
                log.debug("draining the OOM watch of %s/%s: %s", namespace, container_id, exc)


def _no_task(container_id: str) -> NotFound:
    return NotFound(f'no cgroup for container "{container_id}": its task is not running')


class StatsStream:
    """One reader of stats/stream: an object at once, then one each interval. It ends
    after the first object that counts no process (the task has exited), or when the
    cgroup goes. Cancel-safe: a sample is kept until it has been returned, and a
    cancelled wait loses nothing."""

    def __init__(self, metrics: Metrics, namespace: str, container_id: str) -> None:
        self._metrics = metrics
        self._namespace = namespace
        self._id = container_id
        self._pending = b""
        self._due = trio.current_time()
        self._ended = False

    async def read(self, size: int) -> bytes:
        if not self._pending and not self._ended:
            await trio.sleep_until(self._due)
            try:
                sample = await self._metrics.sample(self._namespace, self._id)
            except NotFound:
                self._ended = True
                return b""
            self._pending = stream_line(sample)
            self._ended = sample["pids"]["current"] == 0
            self._due = trio.current_time() + self._metrics.interval(self._namespace, self._id)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        self._ended = True
