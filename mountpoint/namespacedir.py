"""namespaces/: one directory per tenant, each with its images, containers,
snapshots and events."""

from mountpoint.containersdir import CONTAINERS
from mountpoint.imagesdir import IMAGES
from mountpoint.leasesdir import LEASES
from mountpoint.snapshotsdir import SNAPSHOTS
from mountpoint.table import Dir, Stream, Table, collection, opens

NAMESPACE = Table(
    "one namespace",
    entries=(
        Dir("images", "the namespace's images", IMAGES),
        Dir("containers", "the namespace's containers", CONTAINERS),
        Dir("snapshots", "the namespace's snapshots", SNAPSHOTS),
        Dir("leases", "the namespace's leases: holds against gc", LEASES),
        Stream("events", "this namespace's events only, as JSON lines",
               opens(lambda app, s: app.bus.subscribe(s["ns"]))),
    ),
)

NAMESPACES = Table(
    "tenants",
    children=collection(
        "ns",
        "a namespace. mkdir NAME creates one (letters and digits joined by . _ -,\n"
        "at most 76); rmdir removes it and frees its snapshots, EBUSY while it holds\n"
        "images, containers or leases.\n"
        "`default` exists from the start.",
        NAMESPACE,
        names=lambda app, s: app.namespaces.names(),
        exists=lambda app, s, name: app.namespaces.exists(name),
        make=lambda app, s, name: app.namespaces.create(name),
        remove=lambda app, s, name: app.remove_namespace(name),
        removed="/namespaces/delete"),
)
