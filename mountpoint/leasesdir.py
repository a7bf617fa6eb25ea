"""leases/: a namespace's leases, which keep blobs and snapshots from gc."""

import datetime

from cdfs.services.container_config import format_labels
from mountpoint.services import LeaseSettings
from mountpoint.table import Scope, Services, Table, Value, collection, show, take


def _lease(app: Services, scope: Scope) -> LeaseSettings:
    return app.leases.get(scope["ns"], scope["lease"])


def _expires(lease: LeaseSettings) -> str:
    if lease.expires is None:
        return ""
    return datetime.datetime.fromtimestamp(lease.expires, datetime.UTC).isoformat() + "\n"


LEASE = Table(
    "one lease",
    entries=(
        Value("created", "when it was made (RFC 3339, UTC)",
              read=show(lambda app, s: _lease(app, s).created_at)),
        Value("expires", "when the daemon releases it (RFC 3339, e.g.\n"
              "2030-01-01T00:00:00Z); empty: never", read=show(_lease, _expires),
              write=take(lambda app, s, text: app.leases.set_expires(s["ns"], s["lease"], text),
                         strip=False)),
        Value("labels", "key=value lines; writing replaces them all. A\n"
              "`containerd.io/gc.ref.content.NAME=sha256:…` label keeps that blob,\n"
              "`containerd.io/gc.ref.snapshot.NAME=KEY` that snapshot and its parents",
              read=show(lambda app, s: format_labels(_lease(app, s).labels)),
              write=take(lambda app, s, text: app.leases.set_labels(s["ns"], s["lease"], text),
                         strip=False)),
    ),
)

LEASES = Table(
    "the namespace's leases",
    children=collection(
        "lease",
        "a lease: what its labels name survives gc until rmdir releases it or it\n"
        "expires. mkdir NAME makes one (an identifier, as a namespace's name).\n"
        "Pulls, imports and container creations hold leases of their own while in\n"
        "flight (not listed): gc never frees what they have fetched or unpacked.",
        LEASE,
        names=lambda app, s: app.leases.names(s["ns"]),
        make=lambda app, s, name: app.leases.create(s["ns"], name),
        remove=lambda app, s, name: app.leases.remove(s["ns"], name)),
)
