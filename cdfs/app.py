"""The daemon's services, wired together: what the mounted tree's handlers call."""

import logging
from dataclasses import dataclass, field

import trio

from base.errors import Busy
from cdfs import __version__
from cdfs.config import Config
from cdfs.db import Database
from cdfs.events import EventBus
from cdfs.gc import Collected, Live, collect
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
    """Everything the tree maps onto. Built by `open`, torn down by `close`."""

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
        app = cls(config, db, bus, Cas(store, bus), namespaces, snapshots, images,
                  NetworkNamespaces(config.state, bus), leases)
        await app.namespaces.load()
        await app.leases.load()
        await app.images.load()
        await app.images.ensure_busybox()
        app.containers = Containers(app, db, bus, TaskService(config.state / "runtime"))
        app.metrics = Metrics(bus, app.containers.cgroups_path)
        await app.containers.load()
        for namespace in app.namespaces.names():  # tasks that ran on while no daemon did
            for container_id in app.containers.names(namespace):
                app.metrics.watch(namespace, container_id, fresh=False)
        return app

    async def collect_garbage(self) -> Collected:
        """Free the blobs, snapshots and ingests that no image, container or lease uses."""
        leased = self.leases.roots()
        live: dict[str, set[str]] = {ns: set(keys) for ns, keys in leased.snapshots.items()}
        for record in self.images.all_records():
            live.setdefault(record.namespace, set()).add(record.chain_id)
        for namespace, keys in self.containers.snapshots().items():
            live.setdefault(namespace, set()).update(keys)
        roots = [record.target for record in self.images.all_records()]
        collected = await collect(self.cas.store, self.snapshots, Live(
            roots, leased.content, live, leased.covered_since))
        self.bus.publish("", "/gc", "", blobs=collected.blobs, bytes=collected.bytes,
                         snapshots=collected.snapshots, ingests=collected.ingests)
        return collected

    async def remove_namespace(self, name: str) -> None:
        """rmdir of a namespace: refused (Busy) while it holds images (pulls in flight
        included), containers or leases; otherwise its snapshots are freed with it."""
        self.namespaces.check(name)
        if self.images.names(name):
            raise Busy(f'namespace "{name}" holds images')
        await self.namespaces.remove(name)
        await self.snapshots.remove_all(name)

    async def run(self, nursery: trio.Nursery) -> None:
        """Start the services' background tasks in the daemon's nursery."""
        nursery.start_soon(self.metrics.run)
        nursery.start_soon(self.leases.run)
        nursery.start_soon(self.containers.run)

    def close(self) -> None:
        self.bus.close()
        self.containers.close()
        self.images.registries.close()
        self.snapshots.close()
        self.db.close()


def _recover(store: ContentStore, snapshots: Snapshots) -> None:
    """At start-up nothing is in flight: drop what killed pulls left half-done."""
    ingests, extracts = store.remove_abandoned_ingests(), snapshots.remove_extracts()
    if ingests or extracts:
        log.info("removed %d abandoned ingests and %d half-applied layers", ingests, extracts)
