"""The metadata database: namespaces, images, containers, leases and labels in sqlite.

Each change is one transaction in WAL mode, so a kill -9 at any moment leaves the
last committed state. sqlite blocks: the async methods run statements in a worker
thread, one at a time over one connection.
"""

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

T = TypeVar("T")

# Each entry migrates the schema one version up; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE namespaces (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    """,
    """
    CREATE TABLE images (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        manifest TEXT NOT NULL DEFAULT '',
        platform TEXT NOT NULL DEFAULT '',
        chain_id TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE containers (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        id TEXT NOT NULL,
        image TEXT NOT NULL DEFAULT '',
        runtime TEXT NOT NULL DEFAULT 'runc',
        netns TEXT NOT NULL DEFAULT '',
        spec TEXT NOT NULL DEFAULT '',
        snapshot TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        PRIMARY KEY (namespace, id)
    );
    """,
    """
    CREATE TABLE leases (
        namespace TEXT NOT NULL REFERENCES namespaces(name),
        id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE content_labels (
        digest TEXT PRIMARY KEY,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    """,
    """
    ALTER TABLE containers ADD COLUMN log_path TEXT NOT NULL DEFAULT '';
    """,
)


class Database:
    """One sqlite connection, used from worker threads one statement batch at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")

    def transact_sync(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one transaction (blocking): all of it commits, or none."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def query_sync(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    async def transact(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await trio.to_thread.run_sync(self.transact_sync, work)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await trio.to_thread.run_sync(self.query_sync, sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.transact(lambda conn: conn.execute(sql, params))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
