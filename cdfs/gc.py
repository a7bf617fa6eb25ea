"""Garbage collection: what no image or container needs any more.

The core is a pure reachability function (containerd's pkg/gc Tricolor): roots and a
way to find what a node refers to give everything live. The policy — what the roots
are, and that blobs younger than a grace period are spared because a pull or import
may have committed them without naming them yet — lives in `collect`.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from base.errors import Busy, NotFound
from cdfs.services.snapshots import Snapshots
from content.descriptor import Descriptor
from content.manifest import walk
from content.store import ContentStore

log = logging.getLogger(__name__)

GRACE_SECONDS = 3600.0


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

    def __str__(self) -> str:
        return f"blobs {self.blobs}\nbytes {self.bytes}\nsnapshots {self.snapshots}\n"


def live_blobs(store: ContentStore, roots: Iterable[Descriptor]) -> set[str]:
    """Digests of every blob the image roots reach (manifests, configs, layers)."""
    live: set[str] = set()
    for root in roots:
        live.add(root.digest)
        live.update(d.digest for d in walk(root, store.read, skip_missing=True))
    return live


def sweep_blobs(store: ContentStore, live: set[str], grace: float = GRACE_SECONDS
                ) -> tuple[int, int]:
    """Delete the blobs not in `live` and older than `grace` seconds; count them."""
    count = size = 0
    cutoff = time.time() - grace
    for blob in list(store.list()):
        if blob.digest in live:
            continue
        try:
            if store.blob_path(blob.digest).stat().st_mtime > cutoff:
                continue
            store.delete(blob.digest)
        except (NotFound, FileNotFoundError):
            continue
        count, size = count + 1, size + blob.size
    return count, size


async def sweep_snapshots(snapshots: Snapshots, live: dict[str, set[str]]) -> int:
    """Remove each namespace's snapshots that are neither live nor below a live one."""
    removed = 0
    for namespace, keys in live.items():
        removed += await _sweep_namespace(snapshots, namespace, keys)
    return removed


async def _sweep_namespace(snapshots: Snapshots, namespace: str, keys: set[str]) -> int:
    parents = {info.key: info.parent for info in await snapshots.list(namespace)}
    def below(key: str) -> list[str]:
        parent = parents.get(key)
        return [parent] if parent is not None and parent in parents else []

    keep = reachable([key for key in keys if key in parents], below)
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


async def collect(store: ContentStore, snapshots: Snapshots, roots: list[Descriptor],
                  live_snapshots: dict[str, set[str]], grace: float = GRACE_SECONDS
                  ) -> Collected:
    """Remove the snapshots and blobs nothing live needs: `roots` are the images'
    descriptors, `live_snapshots` per namespace the snapshots images and containers
    use (their parents are kept with them)."""
    removed = await sweep_snapshots(snapshots, live_snapshots)

    def sweep() -> tuple[int, int]:
        return sweep_blobs(store, live_blobs(store, roots), grace)

    blobs, size = await trio.to_thread.run_sync(sweep)
    return Collected(blobs, size, removed)
