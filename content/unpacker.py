"""Unpacking an image's layers into committed snapshots named by chain ID.

A chain ID names a layer *together with everything below it* (OCI image-spec
config.md), so two images that share their bottom layers share those snapshots and
the second unpack skips them, in any namespace (the snapshotter's `reuse`). Each
missing layer is applied into a uniquely named active snapshot and committed under
its chain ID: if two unpacks race, the loser's commit fails with AlreadyExists and
it drops its copy (containerd's scheme).
"""

import contextlib
import hashlib
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from base.errors import AlreadyExists, InvalidArgument, NotFound
from content.apply import WhiteoutMode, apply_layer
from content.compression import Limits
from content.descriptor import Descriptor, parse_digest
from content.store import ContentStore

# What names an active snapshot a layer is being applied into: `<chain ID>.extract-<id>`.
EXTRACT_MARK = ".extract-"


class LayerSnapshots(Protocol):
    """What unpack applies layers through: a Snapshotter, or one namespace's view of
    one (cdfs/services/snapshots.py), whose keys it then names as its own."""

    @property
    def whiteouts(self) -> WhiteoutMode: ...

    def reuse(self, name: str) -> bool:
        """Whether committed `name` is there to build on (taking it if another user
        of the same store committed it)."""

    def prepare(self, key: str, parent: str | None = None) -> object: ...

    def apply_dir(self, key: str) -> Path: ...

    def apply_lowers(self, key: str) -> list[Path]: ...

    def commit(self, name: str, key: str) -> None: ...

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
    parent: str | None = None
    for layer, diff_id, chain_id in zip(layers, diff_ids, chain, strict=True):
        name = chain_id
        if not snapshotter.reuse(name):
            if ready is not None:
                ready(layer)  # blocks until the layer's blob is in the store
            _apply_one(store, snapshotter, layer, diff_id, name, parent, limits)
        parent = name
    return chain[-1]


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
