"""namespaces/: one directory per tenant, each with its images, containers,
snapshots and events."""

from mountpoint.containersdir import CONTAINERS
from mountpoint.imagesdir import IMAGES
from mountpoint.leasesdir import LEASES
from mountpoint.snapshotsdir import SNAPSHOTS
from mountpoint.table import Children, Dir, Scope, Stream, StreamReader, Table
from mountpoint.table import Services as S


async def _names(app: S, scope: Scope) -> list[str]:
    names: list[str] = app.namespaces.names()
    return names


async def _exists(app: S, scope: Scope, name: str) -> bool:
    found: bool = app.namespaces.exists(name)
    return found


async def _mkdir(app: S, scope: Scope, name: str) -> None:
    await app.namespaces.create(name)


async def _rmdir(app: S, scope: Scope, name: str) -> None:
    await app.remove_namespace(name)


async def _events(app: S, scope: Scope) -> StreamReader:
    reader: StreamReader = app.bus.subscribe(scope["ns"])
    return reader


NAMESPACE = Table(
    "one namespace",
    entries=(
        Dir("images", "the namespace's images", IMAGES),
        Dir("containers", "the namespace's containers", CONTAINERS),
        Dir("snapshots", "the namespace's snapshots", SNAPSHOTS),
        Dir("leases", "the namespace's leases: holds against gc", LEASES),
        Stream("events", "this namespace's events only, as JSON lines", _events),
    ),
)

NAMESPACES = Table(
    "tenants",
    children=Children(
        "ns",
        "a namespace. mkdir NAME creates one (letters and digits joined by . _ -,\n"
        "at most 76); rmdir removes it and frees its snapshots, EBUSY while it holds\n"
        "images, containers or leases.\n"
        "`default` exists from the start.",
        list=_names, exists=_exists, mkdir=_mkdir, rmdir=_rmdir, table=NAMESPACE),
)
