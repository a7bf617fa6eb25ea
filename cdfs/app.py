"""The daemon's services, wired together: what the mounted tree's handlers call."""

import logging
from dataclasses import dataclass, field

import trio

from cdfs import __version__
from cdfs.config import Config
from cdfs.db import Database
from cdfs.events import EventBus
from cdfs.gc import Collected, collect
from cdfs.services.containers import Containers
from cdfs.services.content import Cas
from cdfs.services.images import Images
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
        namespaces = Namespaces(db, bus)
        images = Images(db, bus, store, snapshots, namespaces, config.root)
        app = cls(config, db, bus, Cas(store, bus), namespaces, snapshots, images,
                  NetworkNamespaces(config.state, bus))
        await app.namespaces.load()
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
        """Free the blobs and snapshots that no image or container uses."""
        live: dict[str, set[str]] = {}
        for namespace in self.namespaces.names():
            keys = {info.key for info in await self.snapshots.list(namespace)
                    if info.kind != "committed"}
            keys.update(record.chain_id for record in self.images.all_records()
                        if record.namespace == namespace)
            live[namespace] = keys
        roots = [record.target for record in self.images.all_records()]
        collected = await collect(self.cas.store, self.snapshots, roots, live)
        self.bus.publish("", "/gc", "", blobs=collected.blobs, bytes=collected.bytes,
                         snapshots=collected.snapshots)
        return collected

    async def run(self, nursery: trio.Nursery) -> None:
        """Start the services' background tasks in the daemon's nursery."""
        nursery.start_soon(self.metrics.run)
        nursery.start_soon(self.containers.run)

    def close(self) -> None:
        self.bus.close()
        self.containers.close()
        self.images.registries.close()
        self.snapshots.close()
        self.db.close()
