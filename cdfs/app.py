"""The daemon's services, wired together: what the mounted tree's handlers call."""

import contextlib
import logging
from dataclasses import dataclass, field

import trio

from base.errors import Busy
from cdfs import __version__, gc
from cdfs.config import Config
from cdfs.db import Database
from cdfs.events import EventBus
from cdfs.gc import Collected
from cdfs.services.containers import Containers
from cdfs.services.content import Cas
from cdfs.services.images import Images
from cdfs.services.leases import Leases
from cdfs.services.metrics import Metrics
from cdfs.services.namespaces import Namespaces
from cdfs.services.netns import NetworkNamespaces
from cdfs.services.snapshots import Snapshots
from content.store import ContentStore
from runtime.tasks import TaskService

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything the tree maps onto. Built by `open`, torn down by `aclose`."""

    config: Config
    db: Database
    bus: EventBus
    cas: Cas
    namespaces: Namespaces
    snapshots: Snapshots
    images: Images
    netns: NetworkNamespaces
    leases: Leases
    version: str = __version__
    containers: Containers = field(init=False)
    metrics: Metrics = field(init=False)

    @classmethod
    async def open(cls, config: Config) -> "App":
        for path in (config.root, config.state):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        bus = EventBus()
        db = await trio.to_thread.run_sync(Database, config.root / "metadata.db")
        store = await trio.to_thread.run_sync(ContentStore, config.root / "content")
        snapshots = await trio.to_thread.run_sync(Snapshots, config.root / "snapshots")
        await trio.to_thread.run_sync(_recover, store, snapshots)
        namespaces = Namespaces(db, bus)
        leases = Leases(db, bus)
        images = Images(db, bus, store, snapshots, namespaces, config.root, leases)
        app = cls(config, db, bus, Cas(store, bus, db), namespaces, snapshots, images,
                  NetworkNamespaces(config.state, bus), leases)
        await app.namespaces.load()
        await app.cas.load()
        await app.leases.load()
        await app.images.load()
        await app.images.ensure_busybox()
        images.reclaim = app.collect_garbage
        app.containers = Containers(db, bus, TaskService(config.state / "runtime",
                                                      log_size_max=config.log_size_max),
                                    namespaces, images, snapshots, leases, config.root,
                                    config.cgroup_parent)
        app.metrics = Metrics(bus, app.containers.cgroups_path)
        app.containers.before_exit = app.metrics.before_exit
        app.containers.own_mount = config.mount
        await app.containers.load()
        for namespace in app.namespaces.names():  # tasks that ran on while no daemon did
            for container_id in app.containers.names(namespace):
                app.metrics.watch(namespace, container_id, fresh=False)
        return app

    async def collect_garbage(self) -> Collected:
        """Free the blobs, snapshots and ingests that no image, container or lease uses
        (removed containers' snapshots included: their teardown is waited for)."""
        await self.containers.torn_down()
        async with self.leases.collecting():
            labels = self.cas.all_labels()
            live = gc.roots(self.images.all_records(), self.containers.snapshots(),
                            self.leases.roots(), labels)
            collected = await gc.collect(self.cas.store, self.snapshots, live)
        await self.cas.forget_labels(
            set(labels) - set(await self.cas.digests()))
        self.bus.publish("", "/gc", "", blobs=collected.blobs, bytes=collected.bytes,
                         snapshots=collected.snapshots, ingests=collected.ingests)
        return collected

    async def remove_namespace(self, name: str) -> None:
        """rmdir of a namespace: refused (Busy) while it holds images (pulls in flight
        included), containers or leases; otherwise its snapshots are freed with it."""
        self.namespaces.check(name)
        if self.images.names(name):
            raise Busy(f'namespace "{name}" holds images')
        await self.containers.torn_down(name)
        await self.namespaces.remove(name)
        await self.snapshots.remove_all(name)
        await self.containers.remove_cgroups([name])

    async def run(self, nursery: trio.Nursery) -> None:
        """Start the services' background tasks in the daemon's nursery."""
        nursery.start_soon(self.metrics.run)
        nursery.start_soon(self.leases.run)
        nursery.start_soon(self.containers.run)

    async def aclose(self) -> None:
        """Close every service, each even when one before it failed (the errors are
        raised after all had their turn): readers' streams end, the watchers stop, and
        the databases (blocking, so in a thread) close last; the empty cgroups runc
        left go too."""
        try:
            with contextlib.ExitStack() as loop_side:
                loop_side.callback(self.containers.close)
                loop_side.callback(self.bus.close)
            await self.containers.remove_cgroups(self.namespaces.names(), parent=True)
        finally:
            await trio.to_thread.run_sync(self._close_stores)

    def _close_stores(self) -> None:
        with contextlib.ExitStack() as stores:
            stores.callback(self.db.close)
            stores.callback(self.snapshots.close)
            stores.callback(self.images.registries.close)


def _recover(store: ContentStore, snapshots: Snapshots) -> None:
    """At start-up nothing is in flight: drop what killed pulls left half-done."""
    ingests, extracts = store.remove_abandoned_ingests(), snapshots.remove_extracts()
    if ingests or extracts:
        log.info("removed %d abandoned ingests and %d half-applied layers", ingests, extracts)
