"""Snapshot metadata in sqlite: which key is which numeric id, its kind, parent and owners.

Owners are opaque names (cdfs's namespaces) that hold a snapshot: a committed layer
one owner unpacked is used by another by adding it as an owner, and the snapshot goes
only with its last owner (see Snapshotter.release). A snapshot with no owner row is
removed by key alone, as before owners existed.

sqlite's rollback journal makes every change atomic across a kill -9, so the only
inconsistency a crash can leave is a snapshot directory whose row never committed
(or whose row was deleted before its directory); ids are never reused
(AUTOINCREMENT), so such orphan directories are recognised and removed on open.
"""

import builtins
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from base.errors import AlreadyExists, InvalidArgument, NotFound

Kind = Literal["active", "view", "committed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    key     TEXT NOT NULL UNIQUE,
    kind    TEXT NOT NULL,
    parent  INTEGER REFERENCES snapshots(id),
    created REAL NOT NULL,
    labels  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
CREATE TABLE IF NOT EXISTS owners (
    snapshot INTEGER NOT NULL REFERENCES snapshots(id),
    owner    TEXT NOT NULL,
    PRIMARY KEY (snapshot, owner)
);
CREATE INDEX IF NOT EXISTS owners_owner ON owners(owner);
"""


@dataclass(frozen=True)
class Info:
    """What stat() tells of a snapshot (containerd's snapshots.Info)."""

    kind: Kind
    name: str
    parent: str | None
    created: float
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Row:
    """A snapshot as stored: its Info plus the id naming its directory and the ids
    of its ancestors, nearest first."""

    id: int
    info: Info
    ancestors: tuple[int, ...]


def check_key(key: str) -> str:
    """Keys are free-form ('default/sha256:…') but must be printable text."""
    if not isinstance(key, str) or not key or len(key) > 1024 or "\0" in key or "\n" in key:
        raise InvalidArgument(f"bad snapshot key: {key!r}")
    return key


class Metadata:
    """The snapshot table. `transaction()` holds a process-wide lock and an sqlite
    write lock, so check-then-change sequences are atomic."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL: a commit is one append, not fsyncs of a journal and the database, and a
        # kill -9 at any point still leaves the last committed state.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self, undo: Callable[[], None] | None = None) -> Iterator[None]:
        """One transaction under the lock. One that fails, in its body or at COMMIT (a
        full disk), is rolled back and then `undo` runs, still under the lock: it
        removes what the body made on disk before another transaction can take the
        same row id (a rolled-back AUTOINCREMENT id is given out again)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have ended it
                    self._db.execute("ROLLBACK")
                if undo is not None:
                    undo()
                raise

    # -- reads -------------------------------------------------------------------
    def get(self, key: str) -> Row:
        with self._lock:
            found = self._db.execute(
                "SELECT s.id, s.kind, s.key, p.key, s.created, s.labels, s.parent "
                "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent WHERE s.key = ?",
                (key,)).fetchone()
            if found is None:
                raise NotFound(f'no snapshot "{key}"')
            return Row(found[0], _info(found[1:6]), self._ancestors(found[6]))

    def _ancestors(self, parent: int | None) -> tuple[int, ...]:
        chain = []
        while parent is not None:
            chain.append(parent)
            parent = self._db.execute("SELECT parent FROM snapshots WHERE id = ?",
                                      (parent,)).fetchone()[0]
        return tuple(chain)

    def list(self) -> list[Info]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.kind, s.key, p.key, s.created, s.labels "
                "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent ORDER BY s.id")
            return [_info(row) for row in rows]

    def owned(self, owner: str) -> builtins.list[Info]:
        """The snapshots `owner` holds, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.kind, s.key, p.key, s.created, s.labels FROM owners o "
                "JOIN snapshots s ON s.id = o.snapshot LEFT JOIN snapshots p ON p.id = s.parent "
                "WHERE o.owner = ? ORDER BY s.id", (owner,))
            return [_info(row) for row in rows]

    def owners(self, snapshot_id: int | None = None) -> set[str]:
        """The owners of one snapshot, or of any."""
        with self._lock:
            if snapshot_id is None:
                rows = self._db.execute("SELECT DISTINCT owner FROM owners")
            else:
                rows = self._db.execute("SELECT owner FROM owners WHERE snapshot = ?",
                                        (snapshot_id,))
            return {row[0] for row in rows}

    def has_owned_children(self, snapshot_id: int, owner: str) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM snapshots s JOIN owners o ON o.snapshot = s.id "
                "WHERE s.parent = ? AND o.owner = ? LIMIT 1",
                (snapshot_id, owner)).fetchone() is not None

    def ids(self) -> set[int]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM snapshots")}

    def has_children(self, snapshot_id: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM snapshots WHERE parent = ? LIMIT 1",
                                    (snapshot_id,)).fetchone() is not None

    # -- writes (call inside transaction()) ----------------------------------------
    def insert(self, key: str, kind: Kind, parent: Row | None, labels: dict[str, str]) -> int:
        if self._exists(key):
            raise AlreadyExists(f'snapshot "{key}" exists')
        cursor = self._db.execute(
            "INSERT INTO snapshots (key, kind, parent, created, labels) VALUES (?, ?, ?, ?, ?)",
            (key, kind, parent.id if parent else None, time.time(), json.dumps(labels)))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def commit(self, row: Row, name: str, labels: dict[str, str]) -> None:
        if self._exists(name):
            raise AlreadyExists(f'snapshot "{name}" exists')
        merged = {**row.info.labels, **labels}
        self._db.execute("UPDATE snapshots SET key = ?, kind = 'committed', labels = ? "
                         "WHERE id = ?", (name, json.dumps(merged), row.id))

    def set_parent(self, row: Row, parent: Row) -> None:
        self._db.execute("UPDATE snapshots SET parent = ? WHERE id = ?", (parent.id, row.id))

    def add_owner(self, snapshot_id: int, owner: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO owners (snapshot, owner) VALUES (?, ?)",
                         (snapshot_id, owner))

    def drop_owner(self, snapshot_id: int, owner: str) -> None:
        self._db.execute("DELETE FROM owners WHERE snapshot = ? AND owner = ?",
                         (snapshot_id, owner))

    def delete(self, row: Row) -> None:
        self._db.execute("DELETE FROM owners WHERE snapshot = ?", (row.id,))
        self._db.execute("DELETE FROM snapshots WHERE id = ?", (row.id,))

    def _exists(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM snapshots WHERE key = ?",
                                (key,)).fetchone() is not None


def _info(row: tuple[str, str, str | None, float, str]) -> Info:
    kind, key, parent, created, labels = row
    assert kind in ("active", "view", "committed")
    return Info(kind, key, parent, created, json.loads(labels))  # type: ignore[arg-type]
