"""Containers: the records in the database, their tasks in runc, their events.

A container is made in steps, as the tree is written: `mkdir` makes an empty slot (a
row, so the namespace counts as in use), `image`, `netns`, `runtime`, `logpath` and `labels` fill
it in, and config.json creates it: the spec is built and validated, the image's
snapshot prepared, and the task created under conmon, stopped before the user's
program (runc's "created"). The spec as created is kept in the row; the task's state
(status, pid, exit, output) lives in the runtime's files, which outlive the daemon.

runc, conmon, sqlite and the task files' reads and writes run in worker threads
(`_thread`); only TaskService.files, which names a task's paths (and stats its
directory), is still called on the loop. Exits are noticed by the
shared inotify watcher (container_streams.DirWatcher) on each task's directory, and
published as /tasks/exit after the task's /tasks/start (or /tasks/exec-started), so
each task's events come in containerd's order.
"""

import contextlib
import functools
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from base import identifiers
from base.clock import rfc3339, seconds_to_ns
from base.errors import AlreadyExists, Busy, CdfsError, InvalidArgument, NoSpace, NotFound
from base.mount import Mount
from cdfs.db import Database, dumps
from cdfs.events import Event, EventBus
from cdfs.services import container_config
from cdfs.services.container_streams import (
    DirWatcher,
    ExitReader,
    FollowReader,
    OutputFile,
)
from cdfs.services.images import Images
from cdfs.services.leases import Hold, Leases
from cdfs.services.namespaces import Namespaces
from cdfs.services.snapshots import Snapshots, layer_dirs
from cdfs.services.task_states import ChangeListener, TaskStates
from content.rootfs import RootView, read_from_layers
from content.space import is_out_of_space, no_space_message
from content.unpacker import EXTRACT_MARK
from runtime import cgroups, netns, runc, spec
from runtime.inotify import DIRECTORY_STAT
from runtime.logs import LogIndex
from runtime.state import LIVE, Status, parse_signal
from runtime.tasks import OWN_FILES, TaskInfo, TaskService

T = TypeVar("T")
log = logging.getLogger(__name__)
DEFAULT_RUNTIME = "runc"
EMPTY = "empty"  # the status of a slot before config.json


def _exited_at(info: TaskInfo) -> str:
    """When the task exited, as events stamp it; "" while it has not."""
    return _stamp(info.exited_at)


@functools.lru_cache(maxsize=4096)  # a task's few times, formatted at each stat
def _stamp(seconds: float | None) -> str:
    return "" if seconds is None else rfc3339(seconds_to_ns(seconds))


@dataclass(frozen=True)
class Times:
    """When a task was created, started and exited (RFC 3339; "" until it happens)."""

    created: str
    started: str
    exited: str

    @classmethod
    def of(cls, info: TaskInfo | None) -> "Times":
        if info is None:
            return cls("", "", "")
        return cls(_stamp(info.created_at), _stamp(info.started_at), _stamp(info.exited_at))


@dataclass
class Container:
    """One row of the containers table, and what the daemon tracks about it."""

    namespace: str
    id: str
    created_at: str
    image: str = ""
    runtime: str = DEFAULT_RUNTIME
    netns: str = ""
    log_path: str = ""  # where conmon logs the init's output ("": the task's directory)
    spec: dict[str, Any] | None = None
    snapshot: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    execs: set[str] = field(default_factory=set)  # every exec id, created or not
    pending_execs: set[str] = field(default_factory=set)  # mkdir'ed, no process.json yet
    lock: trio.Lock = field(default_factory=trio.Lock, repr=False)
    oom_killed: bool | None = None  # the init's, once read or seen by the watcher
    # The snapshot of a failed creation that could not be removed then (a full disk):
    # removed before the next config.json prepares its own of the same name.
    leftover_snapshot: str = ""
    # The mounted rootfs, the watcher's counter of it and its lstat then (`root_stat`).
    root_seen: tuple[Path, int, os.stat_result] | None = field(default=None, repr=False,
                                                               compare=False)
    _spec_text: tuple[object, str] = field(default=(None, ""), repr=False, compare=False)

    def spec_text(self) -> str:
        """config.json as read: the spec rendered once for each spec it is given
        (a spec is replaced whole, never changed in place)."""
        if self._spec_text[0] is not self.spec:
            text = json.dumps(self.spec, indent=2) + "\n" if self.spec is not None else ""
            self._spec_text = (self.spec, text)
        return self._spec_text[1]

    def require_empty(self, what: str) -> None:
        if self.spec is not None:
            raise InvalidArgument(
                f'{what}: container "{self.id}" is created; write it before config.json')

    def require_created(self, what: str) -> dict[str, Any]:
        if self.spec is None:
            raise InvalidArgument(f'{what}: container "{self.id}" has no config.json yet')
        return self.spec


# Names in a task's directory whose changes are output, not state.
_OUTPUT_NAMES = {"log"}


@dataclass
class _Task:
    """A container's init or exec, as the exit watcher sees it. Its exit is published
    once, and only when `ready`: not while its start is being published (an exit seen
    then is `held` for the start to publish after its own event). `publishing` is set
    while that is under way, for rmdir to wait on (its events come after)."""

    namespace: str
    id: str
    exec_id: str | None
    ready: bool = True
    exit_published: bool = False
    publishing: trio.Event | None = None
    held: bool = False


# Awaited with (namespace, container id) before a container's /tasks/exit is published:
# Metrics.before_exit, so that /tasks/oom comes first.
BeforeExit = Callable[[str, str], Awaitable[None]]


class Containers:
    """The service behind containers/: see the module doc. It checks namespaces,
    resolves images and prepares their snapshots for image-based rootfs; `before_exit`
    is the one hook back from a service built after it (metrics, which needs
    `cgroups_path`)."""

    def __init__(self, db: Database, bus: EventBus, tasks: TaskService,
                 namespaces: Namespaces, images: Images, snapshots: Snapshots,
                 leases: Leases, root: Path, cgroup_parent: str) -> None:
        self._namespaces = namespaces
        self.root = root  # the daemon's --root, named when its disk is full
        self.cgroup_parent = cgroup_parent  # the default cgroupsPath is /PARENT/NS/ID
        self._leases = leases
        self._images = images
        self._snapshots = snapshots
        self.before_exit: BeforeExit | None = None
        self.own_mount: Path | None = None  # the daemon's mount: no host path may be in it
        self._db = db
        self._bus = bus
        self.tasks = tasks
        self._watcher = DirWatcher()
        self._states = TaskStates()
        self._containers: dict[tuple[str, str], Container] = {}
        self._watched: dict[Path, _Task] = {}
        self._found_exits: list[_Task] = []  # exits that happened while no daemon ran
        self._found_live: list[tuple[_Task, int]] = []  # processes found at start, by pid
        self._indexes: dict[Path, LogIndex] = {}  # per task directory, while watched
        self._indexing: set[Path] = set()  # an index update is under way or due
        self._nursery: trio.Nursery | None = None
        # Removed containers whose task and snapshot are still being deleted: their
        # name is taken again only once that is done.
        self._teardowns: dict[tuple[str, str], tuple[Container, trio.Event]] = {}
        bus.listen(self._on_event)

    def snapshots(self) -> dict[str, set[str]]:
        """Per namespace, the snapshots containers use (a container's own id included:
        its snapshot is named so while it is being created), and those of removed
        containers until their teardown is done."""
        found: dict[str, set[str]] = {}
        containers = [*self._containers.items(),
                      *((key, container) for key, (container, _) in self._teardowns.items())]
        for (namespace, container_id), container in containers:
            found.setdefault(namespace, set()).update({container_id, container.snapshot} - {""})
        return found

    # --- startup and the watcher --------------------------------------------------------

    async def load(self) -> None:
        """Read the rows, recover the runtime's tasks (after a restart: conmons that died
        are reaped) and watch every task that may still exit."""
        rows = await self._db.query("SELECT * FROM containers")
        await trio.to_thread.run_sync(self.tasks.recover)
        for row in rows:
            container = Container(
                row["namespace"], row["id"], row["created_at"], image=row["image"],
                runtime=row["runtime"], netns=row["netns"], log_path=row["log_path"],
                spec=container_config.spec_or_none(row["spec"]), snapshot=row["snapshot"],
                labels=dict(container_config.json_object(row["labels"])))
            self._containers[(container.namespace, container.id)] = container
            if container.spec is None:
                continue
            try:
                execs = await self._thread(self.tasks.list_execs, container.namespace,
                                           container.id)
            except NotFound:
                continue  # its state was lost (a reboot): it shows as stopped
            container.execs.update(execs)
            for exec_id in (None, *execs):
                info = await self._thread(self.tasks.state, container.namespace, container.id,
                                          exec_id)
                told = info.status == Status.STOPPED and await self._thread(
                    self.tasks.exit_announced, container.namespace, container.id, exec_id)
                task = await self._watch(container.namespace, container.id, exec_id,
                                         exit_published=told)
                if info.status == Status.STOPPED and not told:
                    self._found_exits.append(task)
                if info.status in LIVE and info.pid:
                    self._found_live.append((task, info.pid))
        await self._reclaim()

    async def _reclaim(self) -> None:
        """At start-up, what a daemon killed in the middle of a create or a removal
        left: task directories of containers without a row or without config.json (the
        process killed, the rootfs unmounted) and active snapshots no container uses
        (rmdir deletes the row first and the task and snapshot after it)."""
        created = {key for key, container in self._containers.items()
                   if container.spec is not None}
        for namespace, container_id in await self._thread(self.tasks.bundles):
            if (namespace, container_id) not in created:
                log.info("removing the leftover task of %s/%s", namespace, container_id)
                try:
                    await self._thread(self.tasks.discard, namespace, container_id)
                except (CdfsError, OSError) as e:
                    log.warning("leftover task %s/%s: %s", namespace, container_id, e)
        used = {namespace: {c.snapshot for (ns, _), c in self._containers.items()
                            if ns == namespace and c.spec is not None}
                for namespace in await self._snapshots.namespaces()}
        leased = self._leases.roots().snapshots
        for namespace, keys in used.items():
            for info in await self._snapshots.list(namespace):
                if info.kind == "active" and EXTRACT_MARK not in info.key \
                        and info.key not in keys | leased.get(namespace, set()):
                    log.info("removing the leftover snapshot %s/%s", namespace, info.key)
                    with contextlib.suppress(NotFound, Busy):
                        await self._snapshots.remove(namespace, info.key)

    async def run(self) -> None:
        """The exit and output watcher; runs for the daemon's life."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for task in self._found_exits:
                nursery.start_soon(self._publish_exit, task, True)
            self._found_exits.clear()
            for task, pid in self._found_live:
                nursery.start_soon(self._forget_at_death, task, pid)
            self._found_live.clear()
            await self._watcher.run(self._on_change)

    def close(self) -> None:
        self._watcher.close()

    async def _watch(self, namespace: str, container_id: str, exec_id: str | None,
                     exit_published: bool = False, ready: bool = True) -> _Task:
        path = self.tasks.files(namespace, container_id, exec_id).dir
        task = _Task(namespace, container_id, exec_id, ready, exit_published)
        self._watched[path] = task
        if exec_id is None:
            self.get(namespace, container_id).oom_killed = None  # a new task: ask its files
        log_path = self.get(namespace, container_id).log_path if exec_id is None else ""
        await self._watcher.watch(path, Path(log_path) if log_path else None)
        # From the start, so a log cut at its cap is counted even if nobody reads it.
        files = self.tasks.files(namespace, container_id, exec_id)
        self._indexes.setdefault(path, LogIndex(files.log, self.tasks.log_size_max))
        return task

    def _unwatch(self, namespace: str, container_id: str, exec_id: str | None) -> None:
        bundle = self.tasks.bundle(namespace, container_id)
        path = bundle if exec_id is None else bundle / "execs" / exec_id
        log_path = self.get(namespace, container_id).log_path if exec_id is None else ""
        if log_path:
            self._watcher.unfollow_link(Path(log_path))
        for watched in [p for p in self._watched if p == path or path in p.parents]:
            del self._watched[watched]
            self._watcher.unwatch(watched)
            index = self._indexes.pop(watched, None)
            if index is not None:
                index.close()

    def _on_change(self, path: Path, names: set[str]) -> None:
        index = self._indexes.get(path)
        if index is not None and "log" in names:
            index.note_cuts(self._watcher.moved_in(path, "log"))
        if names & {"log", "log.tmp"} and index is not None:
            index.note_change()  # its sizes are asked of the log until indexed again
        if names & {"log", "log.tmp"} and index is not None and path not in self._indexing:
            assert self._nursery is not None
            self._indexing.add(path)
            self._nursery.start_soon(self._index_update, path)
        task = self._watched.get(path)
        if task is not None and task.exec_id is None and "oom" in names:
            with contextlib.suppress(NotFound):  # conmon's record of an OOM kill
                self.get(task.namespace, task.id).oom_killed = True
        if task is not None and names - _OUTPUT_NAMES - OWN_FILES:
            self._states.forget(task.namespace, task.id, task.exec_id)
        if task is not None and "exit" in names and not task.exit_published:
            if task.ready:
                assert self._nursery is not None
                self._nursery.start_soon(self._publish_exit, task)
            else:
                task.held = True  # for the start under way to publish after its own

    def _on_event(self, event: Event) -> None:
        """An OOM kill the metrics service counted in a container's cgroup is kept as
        conmon's record of it (`TaskService.record_oom`), so info and a restarted
        daemon tell it even when conmon missed it."""
        if event.topic != "/tasks/oom" or self._nursery is None:
            return
        container = self._containers.get((event.namespace, event.container_id))
        if container is None or container.oom_killed is True:
            return
        container.oom_killed = True
        self._nursery.start_soon(self._record_oom, event.namespace, event.container_id)

    async def _record_oom(self, namespace: str, container_id: str) -> None:
        with contextlib.suppress(CdfsError, OSError):  # removed meanwhile: nothing to keep
            await self._thread(self.tasks.record_oom, namespace, container_id)

    async def _forget_at_death(self, task: _Task, pid: int) -> None:
        """Forget the task's state when its process `pid` ends. conmon's exit file
        tells that too, but not once conmon was killed (-9): then nothing reported the
        end, and a stat of status kept the running task's size and time for the
        kernel's attribute timeout (5 s). A pid reused meanwhile costs at most a
        needless forget."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended already
            self._states.forget(task.namespace, task.id, task.exec_id)
            return
        except OSError as exc:  # out of fds (or no pidfds): a live state is asked again soon
            log.warning("not watching the end of %s/%s: %s", task.namespace, task.id, exc)
            return
        try:
            await trio.lowlevel.wait_readable(fd)
        finally:
            os.close(fd)
        self._states.forget(task.namespace, task.id, task.exec_id)

    async def _index_update(self, path: Path) -> None:
        """Index what conmon appended (one update at a time per task), so that a log
        cut at its cap is read to its end before it is gone."""
        index = self._indexes.get(path)
        self._indexing.discard(path)
        if index is not None:
            await trio.to_thread.run_sync(index.update)

    def _index(self, namespace: str, container_id: str, exec_id: str | None) -> LogIndex:
        self._task(namespace, container_id, exec_id)
        path = self.tasks.files(namespace, container_id, exec_id).dir
        index = self._indexes.get(path)
        if index is None:
            raise NotFound(f'no output for container "{container_id}"')
        return index

    async def _publish_exit(self, task: _Task, found: bool = False) -> None:
        """/tasks/exit for `task`, once; for an init after metrics' last word (OOM). An
        exit `found` at start-up (it happened while no daemon ran) is told with its OOM
        kill, which conmon recorded, through the bus's start-up replay."""
        if task.exit_published:
            if task.publishing is not None:
                await task.publishing.wait()
            return
        task.exit_published = True
        publishing = task.publishing = trio.Event()
        try:
            await self._tell_exit(task, found)
        finally:
            publishing.set()
            task.publishing = None

    async def _tell_exit(self, task: _Task, found: bool) -> None:
        key, generation = (task.namespace, task.id, task.exec_id), self._states.generation
        info = self._states.final(key)  # a `cat wait` may have read it first
        if info is None:
            try:
                info = await self._thread(self.tasks.state, *key)
            except CdfsError as e:
                log.warning("no exit status for %s/%s: %s", task.namespace, task.id, e)
                return
            self._states.remember(key, info, generation)
        if info.status != Status.STOPPED:
            task.exit_published = False
            return
        publish = self._bus.publish_found if found else self._bus.publish
        if task.exec_id is None and found:
            if await self._thread(self.tasks.oom_killed, task.namespace, task.id):
                publish(task.namespace, "/tasks/oom", task.id, container_id=task.id)
        elif task.exec_id is None and self.before_exit is not None:
            await self.before_exit(task.namespace, task.id)
        publish(task.namespace, "/tasks/exit", task.exec_id or task.id,
                container_id=task.id, pid=info.pid or 0,
                exit_status=info.exit_status, exited_at=_exited_at(info))
        with contextlib.suppress(CdfsError, OSError):  # deleted meanwhile: nothing to tell
            await self._thread(self.tasks.announce_exit, task.namespace, task.id,
                               task.exec_id)

    async def _after(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        """Run `fn` after the caller returns, in the watcher's nursery; before the
        watcher runs (start-up), at once."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)
        else:
            await fn(*args)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(functools.partial(fn, *args))

    # --- the slots --------------------------------------------------------------------

    def names(self, namespace: str) -> list[str]:
        return sorted(cid for ns, cid in self._containers if ns == namespace)

    def exists(self, namespace: str, container_id: str) -> bool:
        return (namespace, container_id) in self._containers

    def get(self, namespace: str, container_id: str) -> Container:
        container = self._containers.get((namespace, container_id))
        if container is None:
            raise NotFound(f'no container "{container_id}" in namespace "{namespace}"')
        return container

    async def remove_cgroups(self, namespaces: list[str], *, parent: bool = False) -> None:
        """Remove the empty cgroups runc made for `namespaces` (/PARENT/NS and below),
        and with `parent` the daemon's parent if nothing else is in it (at a clean stop).
        Running containers keep theirs."""
        def remove() -> None:
            for namespace in namespaces:
                cgroups.remove_empty(f"/{self.cgroup_parent}/{namespace}")
            if parent:
                cgroups.remove_empty(f"/{self.cgroup_parent}", below=False)
        await self._thread(remove)

    def cgroups_path(self, namespace: str, container_id: str) -> str:
        """The container's cgroup (the spec's linux.cgroupsPath), for stats/."""
        container = self.get(namespace, container_id)
        return container_config.cgroups_path(container.require_created("stats"), namespace,
                                             container_id, self.cgroup_parent)

    async def make(self, namespace: str, container_id: str) -> None:
        """mkdir: an empty slot, a row in the database; a name just removed is taken
        once its teardown is done."""
        self._namespaces.check(namespace)
        identifiers.validate(container_id, "container id")
        await self.torn_down(namespace, container_id)
        if self.exists(namespace, container_id):
            raise AlreadyExists(f'container "{container_id}" exists in "{namespace}"')
        container = Container(namespace, container_id, rfc3339())
        self._containers[(namespace, container_id)] = container
        try:
            await self._db.execute(
                "INSERT INTO containers (namespace, id, runtime, created_at) VALUES (?, ?, ?, ?)",
                (namespace, container_id, container.runtime, container.created_at))
        except BaseException:
            del self._containers[(namespace, container_id)]
            raise

    async def remove(self, namespace: str, container_id: str) -> None:
        """rmdir: Busy while the task runs or is paused (stop it first). The row goes at
        once, so the name is free; the task (runc's state, cgroups, the rootfs mount,
        the bundle) and the snapshot are deleted after rmdir returns, and a new
        container of the same name waits for that (`torn_down`). A daemon killed before
        the teardown is done leaves what start-up reclaims (`_reclaim`)."""
        container = self.get(namespace, container_id)
        async with container.lock:
            info: TaskInfo | None = None
            if container.spec is not None:
                info = await self._end_task(container)
            await self._db.execute("DELETE FROM containers WHERE namespace = ? AND id = ?",
                                    (namespace, container_id))
            del self._containers[(namespace, container_id)]
            self._unwatch_root(namespace, container_id)
            done = trio.Event()
            self._teardowns[(namespace, container_id)] = (container, done)
        if info is not None:
            self._bus.publish(namespace, "/tasks/delete", container_id,
                              container_id=container_id, pid=info.pid or 0,
                              exit_status=info.exit_status, exited_at=_exited_at(info))
        if container.spec is not None:
            self._bus.publish(namespace, "/containers/delete", container_id)
        await self._after(self._tear_down, container, info is not None, done)

    async def torn_down(self, namespace: str | None = None, container_id: str | None = None
                        ) -> None:
        """Return once the removed container `container_id` (or every one of the
        namespace, or every one) is deleted from disk."""
        for (ns, cid), (_, done) in list(self._teardowns.items()):
            if namespace in (None, ns) and container_id in (None, cid):
                await done.wait()

    async def _end_task(self, container: Container) -> TaskInfo | None:
        """The task's last state, once its exit is told and nothing watches it any more;
        Busy while it runs or is paused. None when its state was lost (a reboot)."""
        namespace, container_id = container.namespace, container.id
        # An exit known is final; anything else is asked again (Busy must be true).
        info = self._states.final((namespace, container_id, None))
        if info is None:
            try:
                info = await self._thread(self.tasks.state, namespace, container_id)
            except NotFound:
                return None
        if info.status in (Status.RUNNING, Status.PAUSED):
            raise Busy(f'container "{container_id}" is {info.status}: stop it first')
        for watched in list(self._watched.values()):
            if (watched.namespace, watched.id) == (namespace, container_id) and watched.ready:
                await self._publish_exit(watched)
        self._unwatch(namespace, container_id, None)
        self._states.forget(namespace, container_id, every_exec=True)
        return info

    async def _tear_down(self, container: Container, has_task: bool, done: trio.Event) -> None:
        """Delete a removed container's task, then its snapshot; a failure is logged and
        left to start-up's reclaim."""
        namespace = container.namespace
        try:
            with trio.CancelScope(shield=True):
                if has_task:
                    await self._thread(self.tasks.delete, namespace, container.id)
                if container.snapshot:
                    await self._snapshots.remove(namespace, container.snapshot)
        except Exception as e:  # nobody waits for it: the daemon goes on serving
            log.warning("removing container %s/%s: %s (left for the next start)",
                        namespace, container.id, e)
        finally:
            del self._teardowns[(namespace, container.id)]
            done.set()

    # --- the settings written before config.json --------------------------------------

    async def _update_row(self, container: Container, column: str, value: str) -> None:
        await self._db.execute(
            f"UPDATE containers SET {column} = ? WHERE namespace = ? AND id = ?",
            (value, container.namespace, container.id))

    async def set_image(self, namespace: str, container_id: str, ref: str) -> None:
        """The image to base the rootfs on; refused (NotFound) when the namespace lacks it."""
        container = self.get(namespace, container_id)
        async with container.lock:
            container.require_empty("image")
            name = ""
            if ref:
                name = (await self._images.get(namespace, ref)).name
            await self._update_row(container, "image", name)
            container.image = name

    async def set_netns(self, namespace: str, container_id: str, value: str) -> None:
        """A named network namespace (netns/<name>) or the path of a namespace file."""
        container = self.get(namespace, container_id)
        async with container.lock:
            container.require_empty("netns")
            if value:
                await self._thread(resolve_netns, value)
            await self._update_row(container, "netns", value)
            container.netns = value

    async def set_log_path(self, namespace: str, container_id: str, value: str) -> None:
        """Where conmon logs the init's output (a CRI log path): an absolute host path
        outside cdfs's own mount, its directory made at config.json if missing."""
        container = self.get(namespace, container_id)
        async with container.lock:
            container.require_empty("logpath")
            if value:
                if not os.path.isabs(value) or value.endswith("/"):
                    raise InvalidArgument(f'logpath: "{value}" is not an absolute file path')
                if self.own_mount is not None:
                    await self._thread(_refuse_inside, [("logpath", value)], self.own_mount)
            await self._update_row(container, "log_path", value)
            container.log_path = value

    async def set_runtime(self, namespace: str, container_id: str, runtime: str) -> None:
        container = self.get(namespace, container_id)
        async with container.lock:
            container.require_empty("runtime")
            runtime = runtime or DEFAULT_RUNTIME
            await self._thread(runc.executable, runtime)
            await self._update_row(container, "runtime", runtime)
            container.runtime = runtime

    async def set_labels(self, namespace: str, container_id: str, text: str) -> None:
        container = self.get(namespace, container_id)
        labels = container_config.parse_labels(text)
        await self._update_row(container, "labels", dumps(labels))
        container.labels = labels
        if container.spec is not None:
            self._bus.publish(namespace, "/containers/update", container_id,
                              image=container.image, labels=labels)

    # --- creation -----------------------------------------------------------------------

    async def create(self, namespace: str, container_id: str, data: bytes) -> None:
        """config.json: build and validate the spec, prepare the image's snapshot, and
        create the task, under a lease (the image may be removed meanwhile: gc keeps its
        snapshot chain until the container's snapshot names it). Any refusal leaves the
        slot as it was."""
        container = self.get(namespace, container_id)
        async with self._leases.hold(namespace) as hold:
            await self._create(container, data, hold)

    async def _create(self, container: Container, data: bytes, hold: Hold) -> None:
        namespace, container_id = container.namespace, container.id
        async with container.lock:
            if container.spec is not None:
                raise AlreadyExists(f'config.json: container "{container_id}" is created '
                                    "already")
            user = spec.parse(data)
            if self.own_mount is not None:
                await self._thread(_refuse_inside, container_config.host_paths(user),
                                   self.own_mount)
            netns_path = await self._thread(resolve_netns, container.netns) \
                if container.netns else None
            image = await self._images.get(namespace, container.image) \
                if container.image else None
            if image is not None:  # named before the prepare looks for it
                await hold.name(snapshots=[image.chain_id])
            mounts: list[Mount] = []
            snapshot = ""
            stage = (self.root, "preparing the snapshot of")
            try:
                if container.leftover_snapshot:
                    with contextlib.suppress(NotFound):
                        await self._snapshots.remove(namespace, container.leftover_snapshot)
                    container.leftover_snapshot = ""
                if image is not None and not _own_root(user):
                    mounts = await self._snapshots.prepare(namespace, container_id,
                                                           parent=image.chain_id)
                    snapshot = container_id
                stage = (self.tasks.state_dir, "writing the bundle of")

                def build() -> dict[str, Any]:
                    passwd, group = _read_users(mounts, user)
                    return container_config.build_spec(
                        namespace, container_id, user, spec.host_rlimits(),
                        image_config=_image_config(image), passwd=passwd, group=group,
                        netns_path=netns_path, cgroup_parent=self.cgroup_parent)

                info, created = await self._thread(self._create_task, namespace, container_id,
                                                   build, mounts, container.runtime,
                                                   container.log_path)
                stage = (self.root, "recording")
                try:
                    await self._db.execute(
                        "UPDATE containers SET spec = ?, snapshot = ? WHERE namespace = ? "
                        "AND id = ?", (dumps(created), snapshot, namespace, container_id))
                except BaseException:
                    await self._thread(self.tasks.delete, namespace, container_id, True)
                    raise
            except BaseException as exc:
                with trio.CancelScope(shield=True):
                    await self._discard_snapshot(container, snapshot)
                if not is_out_of_space(exc):
                    raise
                where, doing = stage
                raise NoSpace(await self._thread(
                    no_space_message, where, f"{doing} container {container_id}")) from exc
            container.spec, container.snapshot = created, snapshot
            self._states.forget(namespace, container_id, every_exec=True)
            # The task as created (nothing watches it yet, so nothing can have changed
            # it since): the walk of the `start` that follows asks no thread.
            self._states.remember((namespace, container_id, None), info,
                                  self._states.generation)
            self._bus.publish(namespace, "/containers/create", container_id,
                              image=container.image, runtime=container.runtime)
            await self._watch(namespace, container_id, None)
            self._bus.publish(namespace, "/tasks/create", container_id,
                              container_id=container_id, pid=info.pid or 0,
                              bundle=str(self.tasks.bundle(namespace, container_id)))

    async def _discard_snapshot(self, container: Container, snapshot: str) -> None:
        """Remove the snapshot of a creation that failed. On a full disk even that may
        fail to be recorded: the error that stopped the creation is what the user must
        see, and the next config.json removes it first (it took the slot's name, and
        its prepare was refused with EEXIST); gc frees it once no slot is named so."""
        if not snapshot:
            return
        try:
            await self._snapshots.remove(container.namespace, snapshot)
        except Exception as exc:
            log.warning("removing the snapshot of %s/%s: %r", container.namespace, snapshot,
                        exc)
            container.leftover_snapshot = snapshot

    def _create_task(self, namespace: str, container_id: str,
                     build: Callable[[], dict[str, Any]], mounts: list[Mount], runtime: str,
                     log_path: str) -> tuple[TaskInfo, dict[str, Any]]:
        """The spec `build` makes, the task created with it, and the spec as the bundle
        holds it (its rootfs path filled in): one thread hop on the way of every
        container. A task directory already there is what a failed creation or removal
        of this name could not delete (the slot has no config.json, its name's teardown
        is done): it goes first, as start-up's reclaim would take it, instead of
        refusing with EEXIST."""
        if self.tasks.bundle(namespace, container_id).exists():
            log.info("removing the leftover task of %s/%s", namespace, container_id)
            self.tasks.discard(namespace, container_id)
        info = self.tasks.create(namespace, container_id, build(), rootfs=mounts, stdin=True,
                                 runtime=runtime, log_path=Path(log_path) if log_path else None)
        return info, self.tasks.config(namespace, container_id)

    # --- state --------------------------------------------------------------------------

    async def state(self, namespace: str, container_id: str, exec_id: str | None = None
                    ) -> TaskInfo | None:
        """The task's state; None for a slot without config.json (or an exec without
        process.json); a task whose files were lost (a reboot) reads as stopped."""
        container = self.get(namespace, container_id)
        if container.spec is None or exec_id in container.pending_execs:
            return None
        if exec_id is not None and exec_id not in container.execs:
            raise NotFound(f'no exec "{exec_id}" in container "{container_id}"')
        key = (namespace, container_id, exec_id)
        known = self._states.get(key)
        if known is not None:
            return known
        generation = self._states.generation
        try:
            info = await self._thread(self.tasks.state, namespace, container_id, exec_id)
        except NotFound:
            if exec_id is not None:
                raise
            info = TaskInfo(namespace, container_id, None, Status.STOPPED, None, None, None)
        self._states.remember(key, info, generation)
        return info

    async def times(self, namespace: str, container_id: str, exec_id: str | None = None
                    ) -> Times:
        return Times.of(await self.state(namespace, container_id, exec_id))

    def on_state_change(self, listener: ChangeListener) -> None:
        """Call `listener` whenever what `state` answers of a task may have changed
        (task_states.py)."""
        self._states.on_change = listener

    async def info(self, namespace: str, container_id: str) -> dict[str, Any]:
        """Everything about a container at a glance, as one JSON-ready object: absent
        facts (a pid once stopped, an exit while running) are None."""
        container = self.get(namespace, container_id)
        info = await self.state(namespace, container_id)
        times = Times.of(info)
        live = info is not None and info.status in LIVE
        return {
            "id": container_id, "status": str(info.status) if info is not None else EMPTY,
            "pid": info.pid if live and info is not None else None,
            "image": container.image or None,
            "created": times.created or None, "started": times.started or None,
            "exited": times.exited or None,
            "exit": info.exit_status if info is not None else None,
            "labels": dict(container.labels), "runtime": container.runtime,
            "netns": container.netns or None, "logpath": container.log_path or None,
            "oom_killed": await self._oom_killed(container, info),
        }

    async def _oom_killed(self, container: Container, info: TaskInfo | None) -> bool | None:
        """Whether the kernel OOM-killed in the container (conmon's record, which
        outlives the daemon); None before config.json or once its files are lost. Read
        once per task, then kept: the watcher sees conmon write the record."""
        if info is None:
            return None
        if container.oom_killed is not None:
            return container.oom_killed
        try:
            found = await self._thread(self.tasks.oom_killed, container.namespace, container.id)
        except NotFound:
            return None
        if container.oom_killed is None:  # unless the watcher saw it meanwhile
            container.oom_killed = found
        return container.oom_killed

    async def rootfs(self, namespace: str, container_id: str) -> RootView:
        """The container's live root, writable, while it is there: its mounted snapshot
        (never the empty directory beneath once unmounted), or its own root.path."""
        spec_root = self.get(namespace, container_id).require_created("rootfs")["root"]["path"]
        mounted = Path(spec_root) == self.tasks.bundle(namespace, container_id) / "rootfs"
        return RootView([Path(spec_root)], writable=True, mounted=mounted)

    async def root_stat(self, namespace: str, container_id: str) -> os.stat_result | None:
        """The lstat of the container's rootfs while it is the snapshot the daemon
        mounted, remembered until it changes: an inotify watch on the root sees what
        the container does there as well as what comes through the tree, and the
        events queued before this call are read first (`catch_up`), so an answer
        from memory is as current as an lstat. None for a root.path of the user's
        own (nothing watches it: a parent renamed would change what it names)."""
        container = self.get(namespace, container_id)
        current = await self._watcher.catch_up()
        seen = container.root_seen
        if current and seen is not None and self._watcher.watching(seen[0]) \
                and seen[1] == self._watcher.version(seen[0]):
            return seen[2]
        view = await self.rootfs(namespace, container_id)
        if not view.mounted:
            return None
        path = view.layers[0]
        await self._watcher.watch(path, mask=DIRECTORY_STAT)
        version = self._watcher.version(path)
        info = await self._thread(view.lstat, ())
        if self._containers.get((namespace, container_id)) is not container:
            self._unwatch_root(namespace, container_id)  # removed meanwhile
            raise NotFound(f'no container "{container_id}" in namespace "{namespace}"')
        if current:
            container.root_seen = (path, version, info)
        return info

    def _unwatch_root(self, namespace: str, container_id: str) -> None:
        """Stop watching the mounted rootfs, if `root_stat` watched it."""
        self._watcher.unwatch(self.tasks.bundle(namespace, container_id) / "rootfs")

    def config_json(self, namespace: str, container_id: str) -> str:
        """The spec as config.json reads (empty before it is created)."""
        return self.get(namespace, container_id).spec_text()

    # --- verbs --------------------------------------------------------------------------

    def _task(self, namespace: str, container_id: str, exec_id: str | None) -> _Task:
        container = self.get(namespace, container_id)
        container.require_created("ctl")
        if exec_id in container.pending_execs:
            raise InvalidArgument(f'exec "{exec_id}" has no process.json yet')
        path = self.tasks.bundle(namespace, container_id)
        if exec_id is not None:
            path = path / "execs" / exec_id
        task = self._watched.get(path)
        if task is None:
            raise NotFound(f'no task for container "{container_id}"')
        return task

    async def start(self, namespace: str, container_id: str, exec_id: str | None = None) -> None:
        """Run the user's program; /tasks/start (or /tasks/exec-started) comes before
        its /tasks/exit however quickly it exits."""
        task = self._task(namespace, container_id, exec_id)
        task.ready = False
        key, generation = (namespace, container_id, exec_id), self._states.generation
        try:
            info = await self._thread(self.tasks.start, namespace, container_id, exec_id)
        except BaseException:
            task.ready = True
            self._states.forget(*key)
            raise
        # The task as started, unless its exit was seen meanwhile: a `cat wait` just
        # after asks no thread for the container's times.
        self._states.changed(key, info, generation)
        try:
            if exec_id is None:
                self._bus.publish(namespace, "/tasks/start", container_id,
                                  container_id=container_id, pid=info.pid or 0)
            else:
                self._bus.publish(namespace, "/tasks/exec-started", container_id,
                                  container_id=container_id, exec_id=exec_id,
                                  pid=info.pid or 0)
        finally:
            task.ready = True
        if info.pid:
            assert self._nursery is not None  # a start comes through the mounted tree
            self._nursery.start_soon(self._forget_at_death, task, info.pid)
        # An exit the watcher saw while the start was being published: told after it,
        # without keeping the writer of `start` waiting for it.
        if task.held:
            task.held = False
            await self._after(self._publish_exit, task)

    async def kill(self, namespace: str, container_id: str, signal_name: str | None,
                   exec_id: str | None = None) -> None:
        signum = parse_signal(signal_name) if signal_name else signal.SIGTERM
        self._task(namespace, container_id, exec_id)
        try:
            await self._thread(self.tasks.kill, namespace, container_id, signum, exec_id)
        finally:
            self._states.forget(namespace, container_id, exec_id)

    async def stop(self, namespace: str, container_id: str, grace: float,
                   exec_id: str | None = None, signal_name: str | None = None) -> None:
        """`signal_name`, else the image's StopSignal (TERM without one, and for execs),
        as containerd's WithImageStopSignal, then KILL after `grace` seconds; returns
        once it has exited."""
        named = parse_signal(signal_name) if signal_name else None
        self._task(namespace, container_id, exec_id)
        if named is not None:
            signum = named
        elif exec_id is None:
            signum = self._stop_signal(self.get(namespace, container_id))
        else:
            signum = signal.SIGTERM
        try:
            await self._thread(self.tasks.stop, namespace, container_id, grace, exec_id, signum)
        finally:
            self._states.forget(namespace, container_id, exec_id)

    def _stop_signal(self, container: Container) -> int:
        record = self._images.find(container.namespace, container.image) \
            if container.image else None
        stop_signal = record.config.stop_signal if record is not None else ""
        return parse_signal(stop_signal) if stop_signal else signal.SIGTERM

    async def reopen_log(self, namespace: str, container_id: str) -> None:
        self._task(namespace, container_id, None)
        await self._thread(self.tasks.reopen_log, namespace, container_id)

    async def pause(self, namespace: str, container_id: str) -> None:
        self._task(namespace, container_id, None)
        try:
            await self._thread(self.tasks.pause, namespace, container_id)
        finally:
            self._states.forget(namespace, container_id)
        self._bus.publish(namespace, "/tasks/paused", container_id, container_id=container_id)

    async def resume(self, namespace: str, container_id: str) -> None:
        self._task(namespace, container_id, None)
        try:
            await self._thread(self.tasks.resume, namespace, container_id)
        finally:
            self._states.forget(namespace, container_id)
        self._bus.publish(namespace, "/tasks/resumed", container_id, container_id=container_id)

    async def close_stdin(self, namespace: str, container_id: str,
                          exec_id: str | None = None) -> None:
        self._task(namespace, container_id, exec_id)
        await self._thread(self.tasks.close_stdin, namespace, container_id, exec_id)

    async def update(self, namespace: str, container_id: str, text: str) -> None:
        """New cgroup limits (linux.resources) for the running container; config.json
        shows them afterwards."""
        resources = container_config.parse_resources(text)
        container = self.get(namespace, container_id)
        self._task(namespace, container_id, None)
        async with container.lock:
            await self._thread(self.tasks.update, namespace, container_id, resources)
            updated = container_config.with_resources(container.require_created("update"),
                                                      resources)
            await self._update_row(container, "spec", dumps(updated))
            container.spec = updated

    async def write_stdin(self, namespace: str, container_id: str, data: bytes,
                          exec_id: str | None = None) -> None:
        self._task(namespace, container_id, exec_id)
        await self._thread(self.tasks.write_stdin, namespace, container_id, data, exec_id)

    # --- terminals ----------------------------------------------------------------------

    async def require_terminal(self, namespace: str, container_id: str,
                               exec_id: str | None = None) -> None:
        """InvalidArgument unless the process runs on a terminal."""
        self._task(namespace, container_id, exec_id)
        if not await self._thread(self.tasks.terminal, namespace, container_id, exec_id):
            what = f'exec "{exec_id}"' if exec_id is not None else f'container "{container_id}"'
            raise InvalidArgument(f"{what} has no terminal (its process.terminal is false)")

    async def tty(self, namespace: str, container_id: str, exec_id: str | None = None
                  ) -> FollowReader:
        """What the terminal shows from now on, until the process exits: the log's
        stdout (where conmon writes all a terminal shows) from its present end."""
        await self.require_terminal(namespace, container_id, exec_id)
        index = self._index(namespace, container_id, exec_id)
        start = await self._thread(index.size, "stdout")
        files = self.tasks.files(namespace, container_id, exec_id)
        return FollowReader(self._watcher, files, index, "stdout", start,
                            on_exit=self._exit_seen(namespace, container_id, exec_id))

    async def resize(self, namespace: str, container_id: str, args: list[str],
                     exec_id: str | None = None) -> None:
        """`resize ROWS COLS`: the terminal's new window size (the program gets SIGWINCH)."""
        rows, cols = container_config.parse_window(args)
        self._task(namespace, container_id, exec_id)
        await self._thread(self.tasks.resize, namespace, container_id, rows, cols, exec_id)

    # --- execs --------------------------------------------------------------------------

    def exec_names(self, namespace: str, container_id: str) -> list[str]:
        return sorted(self.get(namespace, container_id).execs)

    async def exec_process(self, namespace: str, container_id: str, exec_id: str
                           ) -> dict[str, Any] | None:
        """The exec's process as created; None before process.json."""
        if exec_id in self.get(namespace, container_id).pending_execs:
            return None
        path = self.tasks.files(namespace, container_id, exec_id).dir / "process.json"
        return container_config.json_object(await self._thread(path.read_text))

    async def make_exec(self, namespace: str, container_id: str, exec_id: str) -> None:
        """mkdir exec/<id>: a slot for a process.json."""
        container = self.get(namespace, container_id)
        container.require_created("exec")
        identifiers.validate(exec_id, "exec id")
        if exec_id in container.execs:
            raise AlreadyExists(f'exec "{exec_id}" exists in "{container_id}"')
        container.execs.add(exec_id)
        container.pending_execs.add(exec_id)

    async def create_exec(self, namespace: str, container_id: str, exec_id: str,
                          data: bytes) -> None:
        """process.json: the exec's process, merged over the container's process."""
        container = self.get(namespace, container_id)
        if exec_id not in container.pending_execs:
            raise AlreadyExists(f'process.json: exec "{exec_id}" is created already')
        process = spec.parse(data, "process.json")
        await self._thread(functools.partial(self.tasks.exec, namespace, container_id,
                                             exec_id, process, stdin=True))
        container.pending_execs.discard(exec_id)
        self._states.forget(namespace, container_id, exec_id)
        await self._watch(namespace, container_id, exec_id)
        self._bus.publish(namespace, "/tasks/exec-added", container_id,
                          container_id=container_id, exec_id=exec_id)

    async def remove_exec(self, namespace: str, container_id: str, exec_id: str) -> None:
        """rmdir exec/<id>: Busy while it runs."""
        container = self.get(namespace, container_id)
        if exec_id not in container.execs:
            raise NotFound(f'no exec "{exec_id}" in container "{container_id}"')
        if exec_id not in container.pending_execs:
            try:
                await self._thread(self.tasks.delete, namespace, container_id, False, exec_id)
            finally:
                self._states.forget(namespace, container_id, exec_id)
            self._unwatch(namespace, container_id, exec_id)
        container.execs.discard(exec_id)
        container.pending_execs.discard(exec_id)

    # --- streams ------------------------------------------------------------------------

    def output_file(self, namespace: str, container_id: str, exec_id: str | None,
                    output: str) -> OutputFile:
        """stdout, stderr or log as a growing file: all written so far, never waiting."""
        return OutputFile(self._index(namespace, container_id, exec_id), output)

    def follow(self, namespace: str, container_id: str, exec_id: str | None,
               output: str) -> FollowReader:
        """A follower of stdout, stderr or log from the start until the process exited."""
        index = self._index(namespace, container_id, exec_id)
        files = self.tasks.files(namespace, container_id, exec_id)
        return FollowReader(self._watcher, files, index, output,
                            on_exit=self._exit_seen(namespace, container_id, exec_id))

    async def follow_from_now(self, namespace: str, container_id: str, exec_id: str | None,
                              output: str) -> FollowReader:
        """A follower of stdout, stderr or log from where it has got to now (attach)."""
        index = self._index(namespace, container_id, exec_id)
        files = self.tasks.files(namespace, container_id, exec_id)
        start = await self._thread(index.size, output)
        return FollowReader(self._watcher, files, index, output, start=start,
                            on_exit=self._exit_seen(namespace, container_id, exec_id))

    def wait(self, namespace: str, container_id: str, exec_id: str | None) -> ExitReader:
        """Nothing until the process exited, then its exit status."""
        self._task(namespace, container_id, exec_id)
        read: list[TaskInfo] = []

        def exit_status() -> int | None:  # in a thread, once conmon's exit file is there
            read.append(self.tasks.state(namespace, container_id, exec_id))
            return read[-1].exit_status

        def seen() -> None:
            if read and read[-1].exit_status is not None:
                self._states.exited((namespace, container_id, exec_id), read[-1])
            else:
                self._exit_seen(namespace, container_id, exec_id)()

        return ExitReader(self._watcher, self.tasks.files(namespace, container_id, exec_id),
                          exit_status, seen)

    def _exit_seen(self, namespace: str, container_id: str, exec_id: str | None
                   ) -> Callable[[], None]:
        def seen() -> None:
            if self._states.final((namespace, container_id, exec_id)) is None:
                self._states.forget(namespace, container_id, exec_id)
        return seen


def resolve_netns(value: str) -> str:
    """The namespace file for a netns name (netns/<name>, /run/netns/<name>) or an
    absolute path to one; NotFound when there is none."""
    if os.path.isabs(value):
        if not os.path.exists(value):
            raise NotFound(f'netns: no file "{value}"')
        return value
    if not netns.exists(value):
        raise NotFound(f'netns: no network namespace "{value}"')
    return str(netns.path(value))


def _refuse_inside(paths: list[tuple[str, str]], mount: Path) -> None:
    """Refuse host paths that are, or lead through symlinks to, cdfs's own mount or
    anything below it: runc must never walk the daemon's own tree."""
    mounts = (mount, Path(os.path.realpath(mount.parent)) / mount.name)
    for where, path in paths:
        if _leads_into(path, mounts):
            raise InvalidArgument(f'{where}: "{path}" is inside the cdfs mount {mount}')


def _leads_into(path: str, mounts: tuple[Path, ...]) -> bool:
    """Whether `path` resolves into one of `mounts`, found by walking it a component at
    a time and expanding symlinks, so that nothing inside a mount is ever looked up
    (os.path.realpath would stat inside it)."""
    pending, resolved, links = list(reversed(Path(path).parts[1:])), Path("/"), 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        resolved = resolved.parent if part == ".." else resolved / part
        if any(resolved.is_relative_to(m) for m in mounts):
            return True
        try:
            target = os.readlink(resolved)
        except OSError:
            continue  # not a link, or not there: the rest is taken as written
        links += 1
        if links > 40:
            return False  # runc gets ELOOP itself
        pending.extend(reversed(Path(target).parts[1:] if target.startswith("/")
                                else Path(target).parts))
        resolved = Path("/") if target.startswith("/") else resolved.parent
    return False


def _read_users(mounts: list[Mount], user: dict[str, Any]) -> tuple[str | None, str | None]:
    """The root's /etc/passwd and /etc/group, to resolve user and group names: read
    from the layers of the image's snapshot (`mounts`, as prepared), or inside the
    user's own root.path. Blocking."""
    if mounts:
        layers = layer_dirs(mounts)
    elif _own_root(user):
        layers = [Path(user["root"]["path"])]
    else:
        return None, None

    def read(path: str) -> str | None:
        data = read_from_layers(layers, path)
        return data.decode(errors="replace") if data is not None else None

    return read("/etc/passwd"), read("/etc/group")


def _own_root(user: dict[str, Any]) -> bool:
    root = user.get("root")
    return isinstance(root, dict) and isinstance(root.get("path"), str) \
        and os.path.isabs(root["path"])


def _image_config(image: Any) -> dict[str, Any] | None:
    if image is None:
        return None
    config = image.config
    return container_config.image_config_mapping(config.entrypoint, config.cmd, config.env,
                                                 config.working_dir, config.user)

