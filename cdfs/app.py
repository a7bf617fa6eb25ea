"""The daemon's services, wired together: what the mounted tree's handlers call."""

import logging
from dataclasses import dataclass

import trio

from cdfs import __version__
from cdfs.cas import Cas
from cdfs.config import Config
from cdfs.content.store import ContentStore
from cdfs.db import Database
from cdfs.events import EventBus
from cdfs.namespaces import Namespaces

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything the tree maps onto. Built by `open`, torn down by `close`."""

    config: Config
    db: Database
    bus: EventBus
    cas: Cas
    namespaces: Namespaces
    version: str = __version__

    @classmethod
    async def open(cls, config: Config) -> "App":
        for path in (config.root, config.state):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        bus = EventBus()
        db = await trio.to_thread.run_sync(Database, config.root / "metadata.db")
        store = await trio.to_thread.run_sync(ContentStore, config.root / "content")
        app = cls(config, db, bus, Cas(store, bus), Namespaces(db, bus))
        await app.namespaces.load()
        return app

    def close(self) -> None:
        self.bus.close()
        self.db.close()
