"""Snapshots per namespace over one raw snapshotter.

Like containerd's metadata layer over a snapshotter, this wraps the raw store (which
knows nothing of tenants) and gives each namespace its own key space. Active snapshots
and views are keyed `<namespace>/<key>` and owned by the namespace. Committed layers
are keyed by their chain ID alone and owned by every namespace that uses them: a
namespace unpacking an image whose layers another namespace unpacked takes those
snapshots as they are (Snapshotter.reuse), and removing one in a namespace only drops
that namespace's ownership, so a layer leaves the disk with the last namespace using
it. Layers committed before they were shared (`<namespace>/<chain ID>`, no owner) are
still found and removed as the namespace's own. Every call blocks on disk or
mount(8): all run in worker threads.
"""

import builtins
from dataclasses import dataclass
from pathlib import Path

import trio

from base.errors import AlreadyExists, NotFound
from base.mount import Mount
from content.apply import WhiteoutMode
from content.snapshots import Info, Snapshotter, open_snapshotter
from content.space import Space, space_of
from content.unpacker import EXTRACT_MARK


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot as a namespace sees it (keys without the namespace prefix)."""

    key: str
    kind: str
    parent: str | None
    created: float


def _prefix(namespace: str) -> str:
    return f"{namespace}/"


class NamespaceSnapshots:
    """One namespace's snapshots over the raw snapshotter, blocking (for worker
    threads): keys are the namespace's own, as unpack applies an image's layers."""

    def __init__(self, raw: Snapshotter, namespace: str) -> None:
        self._raw = raw
        self._namespace = namespace
        self._prefix = _prefix(namespace)

    @property
    def whiteouts(self) -> WhiteoutMode:
        return self._raw.whiteouts

    def raw_key(self, key: str) -> str:
        """The raw key of the namespace's `key`: its own prefixed one if there is one,
        else a shared layer's chain ID if the namespace holds it."""
        own = self._prefix + key
        try:
            self._raw.stat(own)
            return own
        except NotFound:
            pass
        try:
            if self._namespace in self._raw.owners(key):
                return key
        except NotFound:
            pass
        return own

    def stat(self, key: str) -> Info:
        return self._raw.stat(self.raw_key(key))

    def reuse(self, name: str) -> bool:
        """Whether committed layer `name` is the namespace's, taking it (and what is
        below it) if another namespace unpacked it."""
        try:
            return self.stat(name).kind == "committed"
        except NotFound:
            return self._raw.reuse(name, self._namespace)

    def prepare(self, key: str, parent: str | None = None) -> builtins.list[Mount]:
        return self._raw.prepare(self._prefix + key,
                                 self.raw_key(parent) if parent is not None else None,
                                 owner=self._namespace)

    def mounts(self, key: str) -> builtins.list[Mount]:
        return self._raw.mounts(self.raw_key(key))

    def apply_dir(self, key: str) -> Path:
        return self._raw.apply_dir(self._prefix + key)

    def apply_lowers(self, key: str) -> builtins.list[Path]:
        return self._raw.apply_lowers(self._prefix + key)

    @property
    def detached_layers(self) -> bool:
        return self._raw.detached_layers

    def layers(self, name: str) -> builtins.list[Path]:
        """The directories of the namespace's committed layer `name`, top first."""
        return self._raw.layers(self.raw_key(name))

    def commit(self, name: str, key: str, parent: str | None = None) -> None:
        """Commit active `key` as the shared layer `name` (onto committed `parent`
        if given, for a key prepared without one). AlreadyExists if another unpack
        (of any namespace) committed `name` first; the namespace then holds theirs,
        and `key` is the caller's to remove."""
        try:
            self._raw.commit(name, self._prefix + key,
                             parent=self.raw_key(parent) if parent is not None else None)
        except AlreadyExists:
            if not self._raw.reuse(name, self._namespace):
                raise NotFound(f'snapshot "{name}" was removed meanwhile') from None
            raise

    def remove(self, key: str) -> None:
        """Remove the namespace's `key`: a snapshot it shares only stops being its."""
        raw = self.raw_key(key)
        try:
            owned = self._namespace in self._raw.owners(raw)
        except NotFound:
            raise NotFound(f'no snapshot "{key}"') from None
        if owned:
            self._raw.release(raw, self._namespace)
        else:
            self._raw.remove(raw)

    def list(self) -> builtins.list[SnapshotInfo]:
        """The namespace's snapshots: those it holds and its unshared legacy ones."""
        infos = {info.name: info for info in self._raw.owned(self._namespace)}
        for info in self._raw.list():
            if info.name.startswith(self._prefix):
                infos.setdefault(info.name, info)
        return [self.local(info) for info in infos.values()]

    def local(self, info: Info) -> SnapshotInfo:
        return SnapshotInfo(self._strip(info.name), info.kind,
                            self._strip(info.parent) if info.parent else None, info.created)

    def _strip(self, key: str) -> str:
        return key[len(self._prefix):] if key.startswith(self._prefix) else key


class Snapshots:
    """The namespaced view of one snapshotter under `root`."""

    def __init__(self, root: Path) -> None:
        self.raw: Snapshotter = open_snapshotter(root)

    def of(self, namespace: str) -> NamespaceSnapshots:
        """The namespace's snapshots as a blocking snapshotter of their own (unpack's)."""
        return NamespaceSnapshots(self.raw, namespace)

    async def list(self, namespace: str) -> list[SnapshotInfo]:
        return await trio.to_thread.run_sync(self.of(namespace).list)

    async def namespaces(self) -> builtins.list[str]:
        """Every namespace that has snapshots, removed namespaces' leftovers included."""
        def find() -> set[str]:
            prefixed = {info.name.split("/", 1)[0] for info in self.raw.list() if "/" in info.name}
            return prefixed | self.raw.owners()
        return sorted(await trio.to_thread.run_sync(find))

    async def remove_all(self, namespace: str) -> None:
        """Remove every snapshot of `namespace`, children before their parents (a
        layer another namespace uses stays for it)."""
        infos = await self.list(namespace)
        depth = {info.key: 0 for info in infos}
        parents = {info.key: info.parent for info in infos}
        for key in depth:
            parent = parents[key]
            while parent is not None and parent in parents:
                depth[key] += 1
                parent = parents[parent]
        for key in sorted(depth, key=depth.__getitem__, reverse=True):
            await self.remove(namespace, key)

    def remove_extracts(self) -> int:
        """At start-up, when no unpack runs: drop the half-applied layers (active
        `….extract-…` snapshots) that a killed unpack left; their number (blocking)."""
        doomed = [info.name for info in self.raw.list()
                  if info.kind == "active" and EXTRACT_MARK in info.name]
        for name in doomed:
            self.raw.remove(name)
        return len(doomed)

    async def stat(self, namespace: str, key: str) -> SnapshotInfo:
        view = self.of(namespace)
        return view.local(await trio.to_thread.run_sync(view.stat, key))

    async def space(self) -> Space:
        """The filesystem the snapshots (and the daemon's root) are on."""
        return await trio.to_thread.run_sync(space_of, self.raw.root)

    async def usage(self, namespace: str, key: str) -> tuple[int, int]:
        def measure() -> tuple[int, int]:
            usage = self.raw.usage(self.of(namespace).raw_key(key))
            return usage.size, usage.inodes
        return await trio.to_thread.run_sync(measure)

    async def prepare(self, namespace: str, key: str, parent: str | None) -> builtins.list[Mount]:
        """A writable snapshot `key` over the committed `parent` (a chain ID)."""
        return await trio.to_thread.run_sync(self.of(namespace).prepare, key, parent)

    async def mounts(self, namespace: str, key: str) -> builtins.list[Mount]:
        return await trio.to_thread.run_sync(self.of(namespace).mounts, key)

    async def remove(self, namespace: str, key: str) -> None:
        await trio.to_thread.run_sync(self.of(namespace).remove, key)

    async def layers(self, namespace: str, name: str) -> builtins.list[Path]:
        """The directories of committed snapshot `name`, top first."""
        def find() -> builtins.list[Path]:
            return self.raw.layers(self.of(namespace).raw_key(name))
        return await trio.to_thread.run_sync(find)

    def close(self) -> None:
        self.raw.close()


def layer_dirs(mounts: builtins.list[Mount]) -> builtins.list[Path]:
    """The directories a snapshot's mounts stack, top first: an overlay's upper then
    lower dirs, or a bind mount's source."""
    dirs: builtins.list[Path] = []
    for mount in reversed(mounts):
        if mount.type == "overlay":
            option = dict(o.split("=", 1) for o in mount.options if "=" in o)
            if "upperdir" in option:
                dirs.append(Path(option["upperdir"]))
            dirs.extend(Path(d) for d in option.get("lowerdir", "").split(":") if d)
        else:
            dirs.append(Path(mount.source))
    return dirs
