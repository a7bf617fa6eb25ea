"""Namespaces: tenants that share one content store but see only their own images,
containers and snapshots (containerd's model). `default` always exists."""

import sqlite3

from base import identifiers
from base.clock import rfc3339
from base.errors import AlreadyExists, Busy, NotFound
from cdfs.db import Database
from cdfs.events import EventBus

DEFAULT = "default"


class Namespaces:
    """The namespaces table, with an in-memory copy of the names for fast lookups."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus
        self._names: set[str] = set()

    async def load(self) -> None:
        """Read the names, creating `default` on a new root."""
        rows = await self._db.query("SELECT name FROM namespaces")
        self._names = {row["name"] for row in rows}
        if DEFAULT not in self._names:
            await self.create(DEFAULT)

    def names(self) -> list[str]:
        return sorted(self._names)

    def exists(self, name: str) -> bool:
        return name in self._names

    def check(self, name: str) -> str:
        """`name` if the namespace exists, else NotFound."""
        if name not in self._names:
            raise NotFound(f'no namespace "{name}"')
        return name

    async def create(self, name: str) -> None:
        identifiers.validate(name, "namespace")
        if name in self._names:
            raise AlreadyExists(f'namespace "{name}" exists')
        await self._db.execute(
            "INSERT INTO namespaces (name, created_at) VALUES (?, ?)", (name, rfc3339()))
        self._names.add(name)
        self._bus.publish(name, "/namespaces/create", name, name=name)

    async def remove(self, name: str) -> None:
        """Delete an empty namespace; Busy while it holds images, containers or leases.
        (Its snapshots are the caller's to free: see App.remove_namespace.)"""
        self.check(name)

        def delete(conn: sqlite3.Connection) -> None:
            for table in ("images", "containers", "leases"):
                count = conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE namespace = ?", (name,)).fetchone()[0]
                if count:
                    raise Busy(f'namespace "{name}" holds {count} {table}')
            conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))

        await self._db.transact(delete)
        self._names.discard(name)
        self._bus.publish(name, "/namespaces/delete", name, name=name)
