"""Leases: what keeps blobs and snapshots from gc while no image or container names them.

As in containerd there are two uses. The daemon takes a lease for every pull, import
and container creation while it is in flight (`hold`): such a lease covers every blob
and snapshot made since it was taken, so gc can free unreferenced things at once
without ever freeing what a pull has fetched but not yet named. These leases live in
memory only: after a crash nothing is in flight, and what a killed pull left is free.

What work in flight finds already there must not be freed between the finding and its
use. gc runs under one lock (`collecting`), taken too to begin a hold and to name
things in it (`Hold.name`): a hold is either in gc's roots or begun after gc ended,
and work names a snapshot before asking whether it exists, so what it finds is kept.
A blob found is kept by the store itself: finding it (ContentStore.reuse) makes its
change time now, which the hold covers, and gc's delete re-checks that time under the
store's lock.
Users make leases with mkdir leases/NAME: they live in sqlite, carry labels, and keep
what their `containerd.io/gc.ref.content*` and `containerd.io/gc.ref.snapshot*` labels
name until they are removed or their `expires` time passes.
"""

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import trio

from base import identifiers
from base.clock import rfc3339
from base.errors import AlreadyExists, InvalidArgument, NotFound
from cdfs.db import Database, dumps
from cdfs.events import EventBus
from cdfs.services.container_config import parse_labels

CONTENT_REF = "containerd.io/gc.ref.content"
SNAPSHOT_REF = "containerd.io/gc.ref.snapshot"
# Filesystem timestamps lag time.time() by up to a tick: cover a little before the start.
COVER_MARGIN = 1.0


@dataclass
class Lease:
    """A user's lease: labels, an optional expiry (epoch seconds) and its creation time."""

    namespace: str
    id: str
    created_at: str
    expires: float | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now


@dataclass
class Hold:
    """A lease the daemon holds for work in flight: it covers what is made from `since`
    on, and what the work names as it goes (blobs and chain IDs it found already there,
    which it is about to use)."""

    namespace: str
    since: float
    gc_lock: trio.Lock = field(repr=False)
    content: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)

    async def name(self, content: Iterable[str] = (), snapshots: Iterable[str] = ()
                   ) -> None:
        """Keep these blobs and snapshots (chain IDs or keys) until the hold ends; call
        it before asking whether they exist. Waits while gc runs: once it returns, gc
        either saw the names or freed what it freed before."""
        async with self.gc_lock:
            self.content.update(content)
            self.snapshots.update(snapshots)


@dataclass(frozen=True)
class Roots:
    """What gc must keep because of leases: blobs and snapshots (per namespace) named by
    user leases, and the time since which everything made is covered by one in flight."""

    content: frozenset[str]
    snapshots: dict[str, set[str]]
    covered_since: float | None


def references(labels: dict[str, str], prefix: str) -> set[str]:
    """The values of `prefix`, `prefix.X` and `prefix/X` labels (containerd's gc.ref.*)."""
    return {value for key, value in labels.items()
            if key == prefix or key.startswith((prefix + ".", prefix + "/"))}


def parse_expiry(text: str) -> float | None:
    """An RFC 3339 time, or empty for never."""
    text = text.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f'expected an RFC 3339 time (or nothing), got "{text[:80]}"') \
            from None
    if when.tzinfo is None:
        raise InvalidArgument(f'"{text[:80]}" has no time zone (end it with Z)')
    return when.timestamp()


class Leases:
    """Every namespace's leases, and the daemon's own ones in flight."""

    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus
        self._leases: dict[tuple[str, str], Lease] = {}
        self._in_flight: dict[int, Hold] = {}
        self._tickets = itertools.count()
        self._gc_lock = trio.Lock()
        self._changed = trio.Event()

    async def load(self) -> None:
        for row in await self._db.query("SELECT * FROM leases"):
            self._leases[(row["namespace"], row["id"])] = Lease(
                row["namespace"], row["id"], row["created_at"],
                float(row["expires"]) if row["expires"] else None, json.loads(row["labels"]))

    # -- the daemon's own leases ---------------------------------------------------
    @asynccontextmanager
    async def hold(self, namespace: str) -> AsyncIterator[Hold]:
        """Hold a lease while a pull, import or container creation runs: everything
        made meanwhile, and what it names, is kept by gc until it ends (by then an
        image or container names what it made). Begins after a gc that is running."""
        ticket = next(self._tickets)
        async with self._gc_lock:
            self._in_flight[ticket] = Hold(namespace, time.time() - COVER_MARGIN,
                                           self._gc_lock)
        try:
            yield self._in_flight[ticket]
        finally:
            del self._in_flight[ticket]

    @asynccontextmanager
    async def collecting(self) -> AsyncIterator[None]:
        """gc's turn, from reading its roots to its last removal: no hold begins and
        nothing is named meanwhile."""
        async with self._gc_lock:
            yield

    # -- users' leases ---------------------------------------------------------------
    def names(self, namespace: str) -> list[str]:
        return sorted(lease_id for ns, lease_id in self._leases if ns == namespace)

    def get(self, namespace: str, lease_id: str) -> Lease:
        lease = self._leases.get((namespace, lease_id))
        if lease is None:
            raise NotFound(f'no lease "{lease_id}" in namespace "{namespace}"')
        return lease

    async def create(self, namespace: str, lease_id: str) -> None:
        identifiers.validate(lease_id, "lease")
        if (namespace, lease_id) in self._leases:
            raise AlreadyExists(f'lease "{lease_id}" exists')
        lease = Lease(namespace, lease_id, rfc3339())
        await self._db.execute(
            "INSERT INTO leases (namespace, id, created_at) VALUES (?, ?, ?)",
            (namespace, lease_id, lease.created_at))
        self._leases[(namespace, lease_id)] = lease
        self._bus.publish(namespace, "/leases/create", lease_id, lease=lease_id)

    async def remove(self, namespace: str, lease_id: str) -> None:
        self.get(namespace, lease_id)
        await self._db.execute("DELETE FROM leases WHERE namespace = ? AND id = ?",
                               (namespace, lease_id))
        del self._leases[(namespace, lease_id)]
        self._bus.publish(namespace, "/leases/delete", lease_id, lease=lease_id)

    async def set_labels(self, namespace: str, lease_id: str, text: str) -> None:
        """Replace the lease's labels with `key=value` lines."""
        lease = self.get(namespace, lease_id)
        labels = parse_labels(text)
        await self._db.execute("UPDATE leases SET labels = ? WHERE namespace = ? AND id = ?",
                               (dumps(labels), namespace, lease_id))
        lease.labels = labels

    async def set_expires(self, namespace: str, lease_id: str, text: str) -> None:
        """Expire the lease at an RFC 3339 time (empty: never)."""
        lease = self.get(namespace, lease_id)
        expires = parse_expiry(text)
        await self._db.execute("UPDATE leases SET expires = ? WHERE namespace = ? AND id = ?",
                               ("" if expires is None else repr(expires), namespace, lease_id))
        lease.expires = expires
        self._changed.set()

    # -- for gc ----------------------------------------------------------------------
    def roots(self) -> Roots:
        now = time.time()
        content: set[str] = set()
        snapshots: dict[str, set[str]] = {}
        for lease in self._leases.values():
            if lease.expired(now):
                continue
            content |= references(lease.labels, CONTENT_REF)
            snapshots.setdefault(lease.namespace, set()).update(
                references(lease.labels, SNAPSHOT_REF))
        for hold in list(self._in_flight.values()):
            content |= hold.content
            snapshots.setdefault(hold.namespace, set()).update(hold.snapshots)
        since = min((hold.since for hold in self._in_flight.values()), default=None)
        return Roots(frozenset(content), snapshots, since)

    async def run(self) -> None:
        """Release users' leases as they expire."""
        while True:
            now = time.time()
            for lease in [lease for lease in self._leases.values() if lease.expired(now)]:
                await self.remove(lease.namespace, lease.id)
            upcoming = [lease.expires for lease in self._leases.values()
                        if lease.expires is not None]
            self._changed = trio.Event()
            with trio.move_on_after(max(0.0, min(upcoming, default=now + 3600) - now)):
                await self._changed.wait()


