"""leases/: a namespace's leases, which keep blobs and snapshots from gc."""

import datetime

from base.errors import InvalidArgument
from cdfs.services.container_config import format_labels
from mountpoint.table import Children, Scope, Table, Value
from mountpoint.table import Services as S


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what}: not UTF-8 text") from None


async def _names(app: S, scope: Scope) -> list[str]:
    names: list[str] = app.leases.names(scope["ns"])
    return names


async def _mkdir(app: S, scope: Scope, name: str) -> None:
    await app.leases.create(scope["ns"], name)


async def _rmdir(app: S, scope: Scope, name: str) -> None:
    await app.leases.remove(scope["ns"], name)


async def _expires(app: S, scope: Scope) -> str:
    expires = app.leases.get(scope["ns"], scope["lease"]).expires
    if expires is None:
        return ""
    return datetime.datetime.fromtimestamp(expires, datetime.UTC).isoformat() + "\n"


async def _write_expires(app: S, scope: Scope, data: bytes) -> None:
    await app.leases.set_expires(scope["ns"], scope["lease"], _text(data, "expires"))


async def _labels(app: S, scope: Scope) -> str:
    return format_labels(app.leases.get(scope["ns"], scope["lease"]).labels)


async def _write_labels(app: S, scope: Scope, data: bytes) -> None:
    await app.leases.set_labels(scope["ns"], scope["lease"], _text(data, "labels"))


async def _created(app: S, scope: Scope) -> str:
    return str(app.leases.get(scope["ns"], scope["lease"]).created_at) + "\n"


LEASE = Table(
    "one lease",
    entries=(
        Value("created", "when it was made (RFC 3339, UTC)", read=_created),
        Value("expires", "when the daemon releases it (RFC 3339, e.g.\n"
              "2030-01-01T00:00:00Z); empty: never", read=_expires, write=_write_expires),
        Value("labels", "key=value lines; writing replaces them all. A\n"
              "`containerd.io/gc.ref.content.NAME=sha256:…` label keeps that blob,\n"
              "`containerd.io/gc.ref.snapshot.NAME=KEY` that snapshot and its parents",
              read=_labels, write=_write_labels),
    ),
)

LEASES = Table(
    "the namespace's leases",
    children=Children(
        "lease",
        "a lease: what its labels name survives gc until rmdir releases it or it\n"
        "expires. mkdir NAME makes one (an identifier, as a namespace's name).\n"
        "Pulls, imports and container creations hold leases of their own while in\n"
        "flight (not listed): gc never frees what they have fetched or unpacked.",
        list=_names, mkdir=_mkdir, rmdir=_rmdir, table=LEASE),
)
