"""snapshots/: a namespace's snapshots: committed image layers (named by chain ID)
and containers' writable layers (named by container id)."""

import datetime
from collections.abc import Awaitable

from cdfs.services.snapshots import SnapshotInfo
from mountpoint.table import Children, Scope, Services, Table, Value, show


def _stat(app: Services, scope: Scope) -> Awaitable[SnapshotInfo]:
    return app.snapshots.stat(scope["ns"], scope["key"])


def _created(info: SnapshotInfo) -> str:
    return datetime.datetime.fromtimestamp(info.created, datetime.UTC).isoformat() + "\n"


async def _keys(app: Services, scope: Scope) -> list[str]:
    return [info.key for info in await app.snapshots.list(scope["ns"])]


SNAPSHOT = Table(
    "one snapshot",
    entries=(
        Value("kind", "committed (an image layer), active (writable) or view",
              read=show(_stat, lambda info: f"{info.kind}\n")),
        Value("parent", "the snapshot below it (empty for a bottom layer)",
              read=show(_stat, lambda info: f"{info.parent or ''}\n")),
        Value("created", "when it was made (RFC 3339, UTC)", read=show(_stat, _created)),
        Value("usage", "`size BYTES` and `inodes N` its own files take",
              read=show(lambda app, s: app.snapshots.usage(s["ns"], s["key"]),
                        lambda usage: f"size {usage[0]}\ninodes {usage[1]}\n")),
    ),
)

SNAPSHOTS = Table(
    "the namespace's snapshots",
    children=Children(
        "key", "a snapshot: a layer of an image under its chain ID (sha256:…), or a\n"
        "container's writable layer under the container's id",
        list=_keys, table=SNAPSHOT),
)
