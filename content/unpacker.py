"""Unpacking an image's layers into committed snapshots named by chain ID.

A chain ID names a layer *together with everything below it* (OCI image-spec
config.md), so two images that share their bottom layers share those snapshots and
the second unpack skips them, in any namespace (the snapshotter's `reuse`). Each
missing layer is applied into a uniquely named active snapshot and committed under
its chain ID: if two unpacks race, the loser's commit fails with AlreadyExists and
it drops its copy (containerd's scheme).

Where a snapshot's directory holds only its own layer's changes (overlay), the
layers are applied side by side, each into a snapshot prepared without a parent, and
committed in order onto their parent: only the metadata of directories a layer
implies depends on the layers below (apply.adopt_lower_dirs, just before the
commit). Measured with bench's three layers on this 2-core machine: two at a time
overlap one layer's inflating with another's file creation, where one at a time
leaves a core idle behind the journal.
"""

import contextlib
import hashlib
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol

from base.errors import AlreadyExists, InvalidArgument, NotFound
from content.apply import Applied, WhiteoutMode, adopt_lower_dirs, apply_layer, apply_layer_detached
from content.compression import Limits
from content.descriptor import Descriptor, parse_digest
from content.store import ContentStore

# What names an active snapshot a layer is being applied into: `<chain ID>.extract-<id>`.
EXTRACT_MARK = ".extract-"
# Layers applied at once where they can be (see above): the machine's two cores.
PARALLEL_LAYERS = 2


class LayerSnapshots(Protocol):
    """What unpack applies layers through: a Snapshotter, or one namespace's view of
    one (cdfs/services/snapshots.py), whose keys it then names as its own."""

    @property
    def whiteouts(self) -> WhiteoutMode: ...

    @property
    def detached_layers(self) -> bool:
        """Whether a layer can be applied before its parent is committed."""

    def layers(self, name: str) -> list[Path]:
        """The directories of committed `name`, top first."""

    def reuse(self, name: str) -> bool:
        """Whether committed `name` is there to build on (taking it if another user
        of the same store committed it)."""

    def prepare(self, key: str, parent: str | None = None) -> object: ...

    def apply_dir(self, key: str) -> Path: ...

    def apply_lowers(self, key: str) -> list[Path]: ...

    def commit(self, name: str, key: str, parent: str | None = None) -> None: ...

    def remove(self, key: str) -> None: ...


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    chain: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id)
        if not chain:
            chain.append(diff_id)
        else:
            text = f"{chain[-1]} {diff_id}".encode()
            chain.append("sha256:" + hashlib.sha256(text).hexdigest())
    return chain


def unpack(store: ContentStore, snapshotter: LayerSnapshots, layers: list[Descriptor],
           diff_ids: list[str], limits: Limits | None = None,
           ready: Callable[[Descriptor], None] | None = None) -> str:
    """Make sure a committed snapshot named by its chain ID exists for every
    layer, applying only the missing ones, and return the top chain ID.
    InvalidArgument if the counts differ, a layer is malformed, or its uncompressed
    digest is not the config's diff_id (nothing is committed for that layer);
    NotFound if a needed layer blob is missing from the store. With `ready`, each
    layer still to apply is first handed to it, which returns once the blob is there
    (so unpacking can follow a download in progress)."""
    if len(layers) != len(diff_ids):
        raise InvalidArgument(
            f"image has {len(layers)} layers but {len(diff_ids)} diff_ids")
    if not layers:
        raise InvalidArgument("image has no layers")
    chain = chain_ids(diff_ids)
    missing = [(layer, diff_id, name, chain[i - 1] if i else None)
               for i, (layer, diff_id, name) in enumerate(zip(layers, diff_ids, chain, strict=True))
               if not snapshotter.reuse(name)]
    if len(missing) > 1 and snapshotter.detached_layers:
        _apply_side_by_side(store, snapshotter, missing, limits, ready)
        return chain[-1]
    for layer, diff_id, name, parent in missing:
        if ready is not None:
            ready(layer)  # blocks until the layer's blob is in the store
        _apply_one(store, snapshotter, layer, diff_id, name, parent, limits)
    return chain[-1]


Missing = tuple[Descriptor, str, str, str | None]  # layer, diff_id, chain ID, parent's


def _apply_side_by_side(store: ContentStore, snapshotter: LayerSnapshots, missing: list[Missing],
                        limits: Limits | None,
                        ready: Callable[[Descriptor], None] | None) -> None:
    """Apply the missing layers PARALLEL_LAYERS at a time, each detached, and commit
    them in order. If one fails, the others stop at their next read and every
    uncommitted snapshot is dropped; the layers committed before stay."""
    stop = threading.Event()
    with ThreadPoolExecutor(PARALLEL_LAYERS, thread_name_prefix="cdfs-unpack") as pool:
        jobs: list[Future[tuple[str, Applied]]] = [
            pool.submit(_apply_detached, store, snapshotter, layer, name, limits, ready, stop)
            for layer, _, name, _ in missing]
        done = 0  # jobs committed or dropped
        try:
            for job, (layer, diff_id, name, parent) in zip(jobs, missing, strict=True):
                key, applied = job.result()
                done += 1
                _commit_detached(snapshotter, layer, diff_id, name, parent, key, applied)
        except BaseException:
            stop.set()
            for job in jobs[done:]:
                job.cancel()
            for job in jobs[done:]:
                if not job.cancelled() and job.exception() is None:
                    _discard(snapshotter, job.result()[0])
            raise


def _apply_detached(store: ContentStore, snapshotter: LayerSnapshots, layer: Descriptor,
                    name: str, limits: Limits | None, ready: Callable[[Descriptor], None] | None,
                    stop: threading.Event) -> tuple[str, Applied]:
    """Apply one layer into a new snapshot without a parent: its key and what came out.
    The snapshot is dropped if this fails."""
    if ready is not None:
        ready(layer)
    if stop.is_set():
        raise _Stopped()
    key = f"{name}{EXTRACT_MARK}{uuid.uuid4().hex[:12]}"
    snapshotter.prepare(key)
    try:
        with open(store.blob_path(layer.digest), "rb") as blob:
            return key, apply_layer_detached(_Stoppable(blob, stop), snapshotter.apply_dir(key),
                                             layer.media_type, limits)
    except BaseException:
        _discard(snapshotter, key)
        raise


def _commit_detached(snapshotter: LayerSnapshots, layer: Descriptor, diff_id: str, name: str,
                     parent: str | None, key: str, applied: Applied) -> None:
    """Check the layer, give its implied directories the metadata below, and commit it
    onto `parent` (committed by now); the snapshot is dropped if this fails."""
    try:
        if applied.diff_id != diff_id:
            raise InvalidArgument(
                f'layer "{layer.digest}" unpacks to {applied.diff_id}, config says {diff_id}')
        if parent is not None:
            adopt_lower_dirs(snapshotter.apply_dir(key), applied.implied,
                             snapshotter.layers(parent))
        snapshotter.commit(name, key, parent=parent)
    except AlreadyExists:
        snapshotter.remove(key)  # another unpack of this chain committed first: use theirs
    except BaseException:
        _discard(snapshotter, key)
        raise


class _Stopped(Exception):
    """A layer applied side by side stops because another one failed."""


class _Stoppable:
    """A blob that raises _Stopped on the first read after `stop` is set."""

    def __init__(self, blob: BinaryIO, stop: threading.Event) -> None:
        self._blob = blob
        self._stop = stop

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            raise _Stopped()
        return self._blob.read(size)


def _apply_one(store: ContentStore, snapshotter: LayerSnapshots, layer: Descriptor, diff_id: str,
               name: str, parent: str | None, limits: Limits | None) -> None:
    blob = store.blob_path(layer.digest)
    key = f"{name}{EXTRACT_MARK}{uuid.uuid4().hex[:12]}"
    snapshotter.prepare(key, parent)
    try:
        with open(blob, "rb") as source:
            actual = apply_layer(source, snapshotter.apply_dir(key), layer.media_type,
                                 snapshotter.whiteouts, limits, snapshotter.apply_lowers(key))
        if actual != diff_id:
            raise InvalidArgument(
                f'layer "{layer.digest}" unpacks to {actual}, config says {diff_id}')
        snapshotter.commit(name, key)
    except AlreadyExists:
        snapshotter.remove(key)  # another unpack of this chain committed first: use theirs
    except BaseException:
        _discard(snapshotter, key)
        raise


def _discard(snapshotter: LayerSnapshots, key: str) -> None:
    """Drop a half-applied snapshot, its files first: on a full disk recording the
    removal in sqlite may fail, and then the row of an extract snapshot without files
    is what start-up and gc sweep later."""
    with contextlib.suppress(OSError, NotFound):
        shutil.rmtree(snapshotter.apply_dir(key))
    with contextlib.suppress(sqlite3.Error, OSError):
        snapshotter.remove(key)
