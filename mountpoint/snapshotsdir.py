"""snapshots/: a namespace's snapshots: committed image layers (named by chain ID)
and containers' writable layers (named by container id)."""

import datetime

from mountpoint.table import Children, Scope, Table, Value
from mountpoint.table import Services as S


async def _keys(app: S, scope: Scope) -> list[str]:
    return [info.key for info in await app.snapshots.list(scope["ns"])]


async def _kind(app: S, scope: Scope) -> str:
    return (await app.snapshots.stat(scope["ns"], scope["key"])).kind + "\n"


async def _parent(app: S, scope: Scope) -> str:
    return ((await app.snapshots.stat(scope["ns"], scope["key"])).parent or "") + "\n"


async def _created(app: S, scope: Scope) -> str:
    created = (await app.snapshots.stat(scope["ns"], scope["key"])).created
    return datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat() + "\n"


async def _usage(app: S, scope: Scope) -> str:
    size, inodes = await app.snapshots.usage(scope["ns"], scope["key"])
    return f"size {size}\ninodes {inodes}\n"


SNAPSHOT = Table(
    "one snapshot",
    entries=(
        Value("kind", "committed (an image layer), active (writable) or view", read=_kind),
        Value("parent", "the snapshot below it (empty for a bottom layer)", read=_parent),
        Value("created", "when it was made (RFC 3339, UTC)", read=_created),
        Value("usage", "`size BYTES` and `inodes N` its own files take", read=_usage),
    ),
)

SNAPSHOTS = Table(
    "the namespace's snapshots",
    children=Children(
        "key", "a snapshot: a layer of an image under its chain ID (sha256:…), or a\n"
        "container's writable layer under the container's id",
        list=_keys, table=SNAPSHOT),
)
