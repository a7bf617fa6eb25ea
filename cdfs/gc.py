"""Garbage collection: what no image or container needs any more.

The core is a pure reachability function (containerd's pkg/gc Tricolor): roots and a
way to find what a node refers to give everything live. The policy lives in
`roots`: the roots are images, containers and leases (cdfs/services/leases.py); a
lease held by work in flight keeps everything made since it began, so nothing needs a
grace period and what nothing references is freed at once. Ingests no writer holds
and snapshots of namespaces that are gone are freed too: they are what a killed pull
or a removed tenant left (`collect` sweeps them).
"""

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import trio

from base.errors import Busy, NotFound
from cdfs.services.images import ImageRecord
from cdfs.services.leases import CONTENT_REF, Roots, references
from cdfs.services.snapshots import Snapshots
from content.descriptor import Descriptor
from content.manifest import walk
from content.store import ContentStore

log = logging.getLogger(__name__)

GC_ROOT = "containerd.io/gc.root"  # a blob label that makes the blob a root


def reachable(roots: Iterable[str], refs: Callable[[str], Iterable[str]]) -> set[str]:
    """Every node reachable from `roots` following `refs` (roots included)."""
    live: set[str] = set()
    grey = list(roots)
    while grey:
        node = grey.pop()
        if node in live:
            continue
        live.add(node)
        grey.extend(ref for ref in refs(node) if ref not in live)
    return live


@dataclass(frozen=True)
class Collected:
    blobs: int
    bytes: int
    snapshots: int
    ingests: int = 0

    def __str__(self) -> str:
        return (f"blobs {self.blobs}\nbytes {self.bytes}\nsnapshots {self.snapshots}\n"
                f"ingests {self.ingests}\n")


@dataclass(frozen=True)
class Live:
    """gc's roots: the images' root descriptors, blobs leases name, per namespace the
    snapshots images, containers and leases use, and the time since which everything
    made is covered by a lease in flight (None: nothing is in flight); and blobs'
    labels: `containerd.io/gc.root` makes a blob a root, its `gc.ref.content*` labels
    keep the blobs they name while it lives."""

    images: list[Descriptor]
    content: frozenset[str] = frozenset()
    snapshots: dict[str, set[str]] = field(default_factory=dict)
    covered_since: float | None = None
    content_labels: dict[str, dict[str, str]] = field(default_factory=dict)


def roots(images: Iterable[ImageRecord], containers: Mapping[str, set[str]],
          leased: Roots, content_labels: Mapping[str, dict[str, str]] | None = None) -> Live:
    """The policy, in one place: what gc keeps. Every image's root descriptor (and so
    all it reaches) and its top snapshot (and so those below); the snapshots containers
    use (`containers`, per namespace); what user leases name; everything made since
    the oldest lease in flight began; and blobs labelled `containerd.io/gc.root`, with
    what their `gc.ref.content*` labels name."""
    images = list(images)
    snapshots: dict[str, set[str]] = {ns: set(keys) for ns, keys in leased.snapshots.items()}
    for record in images:
        snapshots.setdefault(record.namespace, set()).add(record.chain_id)
    for namespace, keys in containers.items():
        snapshots.setdefault(namespace, set()).update(keys)
    return Live([record.target for record in images], leased.content, snapshots,
                leased.covered_since, dict(content_labels or {}))


def live_blobs(store: ContentStore, roots: Iterable[Descriptor]) -> set[str]:
    """Digests of every blob the image roots reach (manifests, configs, layers)."""
    live: set[str] = set()
    for root in roots:
        live.add(root.digest)
        live.update(d.digest for d in walk(root, store.read, skip_missing=True))
    return live


def sweep_blobs(store: ContentStore, live: set[str], covered_since: float | None = None
                ) -> tuple[int, int]:
    """Delete the blobs not in `live` and not changed since `covered_since` (a commit's
    rename, or a writer reusing the blob, sets the ctime); count them."""
    count = size = 0
    for blob in list(store.list()):
        if blob.digest in live:
            continue
        try:
            if not store.delete_unchanged_since(blob.digest, covered_since):
                continue
        except NotFound:
            continue
        count, size = count + 1, size + blob.size
    return count, size


async def sweep_snapshots(snapshots: Snapshots, live: dict[str, set[str]],
                          covered_since: float | None = None) -> int:
    """Remove every namespace's snapshots (those of namespaces that are gone included)
    that are neither live, nor made since `covered_since`, nor below one that is."""
    removed = 0
    for namespace in await snapshots.namespaces():
        removed += await _sweep_namespace(snapshots, namespace, live.get(namespace, set()),
                                          covered_since)
    return removed


async def _sweep_namespace(snapshots: Snapshots, namespace: str, keys: set[str],
                           covered_since: float | None) -> int:
    infos = await snapshots.list(namespace)
    parents = {info.key: info.parent for info in infos}
    def below(key: str) -> list[str]:
        parent = parents.get(key)
        return [parent] if parent is not None and parent in parents else []

    roots = [key for key in keys if key in parents]
    if covered_since is not None:
        roots += [info.key for info in infos if info.created >= covered_since]
    keep = reachable(roots, below)
    doomed = [key for key in parents if key not in keep]
    removed = 0
    while doomed:
        progressed = False
        for key in list(doomed):
            try:
                await snapshots.remove(namespace, key)
            except Busy:
                continue  # it still has children: remove them first
            except NotFound:
                pass
            doomed.remove(key)
            removed += 1
            progressed = True
        if not progressed:
            log.warning("gc: cannot remove snapshots %s in %s", doomed, namespace)
            break
    return removed


async def collect(store: ContentStore, snapshots: Snapshots, live: Live) -> Collected:
    """Remove the ingests no writer holds, then the snapshots and blobs nothing live
    needs (a live snapshot's parents are kept with it)."""
    ingests = await trio.to_thread.run_sync(store.remove_abandoned_ingests)
    removed = await sweep_snapshots(snapshots, live.snapshots, live.covered_since)

    def sweep() -> tuple[int, int]:
        labels = live.content_labels
        roots = live_blobs(store, live.images) | live.content | {
            digest for digest, labelled in labels.items() if GC_ROOT in labelled}
        keep = reachable(roots, lambda d: references(labels.get(d, {}), CONTENT_REF))
        return sweep_blobs(store, keep, live.covered_since)

    blobs, size = await trio.to_thread.run_sync(sweep)
    return Collected(blobs, size, removed, ingests)
