"""Snapshots per namespace over one raw snapshotter.

Like containerd's metadata layer over a snapshotter, this wraps the raw store (which
knows nothing of tenants) and gives each namespace its own key space by prefixing
keys with `<namespace>/`. Every call blocks on disk or mount(8): all run in worker
threads.
"""

import builtins
from dataclasses import dataclass
from pathlib import Path

import trio

from base.mount import Mount
from content.apply import WhiteoutMode
from content.rootfs import read_from_layers
from content.snapshots import Info, Snapshotter, open_snapshotter
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
        self._prefix = _prefix(namespace)

    @property
    def whiteouts(self) -> WhiteoutMode:
        return self._raw.whiteouts

    def stat(self, key: str) -> Info:
        return self._raw.stat(self._prefix + key)

    def prepare(self, key: str, parent: str | None = None) -> builtins.list[Mount]:
        return self._raw.prepare(self._prefix + key,
                                 self._prefix + parent if parent is not None else None)

    def apply_dir(self, key: str) -> Path:
        return self._raw.apply_dir(self._prefix + key)

    def apply_lowers(self, key: str) -> builtins.list[Path]:
        return self._raw.apply_lowers(self._prefix + key)

    def commit(self, name: str, key: str) -> None:
        self._raw.commit(self._prefix + name, self._prefix + key)

    def remove(self, key: str) -> None:
        self._raw.remove(self._prefix + key)


class Snapshots:
    """The namespaced view of one snapshotter under `root`."""

    def __init__(self, root: Path) -> None:
        self.raw: Snapshotter = open_snapshotter(root)

    def key(self, namespace: str, key: str) -> str:
        return _prefix(namespace) + key

    def of(self, namespace: str) -> NamespaceSnapshots:
        """The namespace's snapshots as a blocking snapshotter of their own (unpack's)."""
        return NamespaceSnapshots(self.raw, namespace)

    def _local(self, namespace: str, info: Info) -> SnapshotInfo:
        prefix = _prefix(namespace)
        parent = info.parent[len(prefix):] if info.parent else None
        return SnapshotInfo(info.name[len(prefix):], info.kind, parent, info.created)

    async def list(self, namespace: str) -> list[SnapshotInfo]:
        prefix = _prefix(namespace)
        infos = await trio.to_thread.run_sync(self.raw.list)
        return [self._local(namespace, i) for i in infos if i.name.startswith(prefix)]

    async def namespaces(self) -> builtins.list[str]:
        """Every namespace that has snapshots, removed namespaces' leftovers included."""
        infos = await trio.to_thread.run_sync(self.raw.list)
        return sorted({info.name.split("/", 1)[0] for info in infos if "/" in info.name})

    async def remove_all(self, namespace: str) -> None:
        """Remove every snapshot of `namespace`, children before their parents."""
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
        info = await trio.to_thread.run_sync(self.raw.stat, self.key(namespace, key))
        return self._local(namespace, info)

    async def usage(self, namespace: str, key: str) -> tuple[int, int]:
        usage = await trio.to_thread.run_sync(self.raw.usage, self.key(namespace, key))
        return usage.size, usage.inodes

    async def prepare(self, namespace: str, key: str, parent: str | None) -> builtins.list[Mount]:
        """A writable snapshot `key` over the committed `parent` (a chain ID)."""
        raw_parent = self.key(namespace, parent) if parent else None
        return await trio.to_thread.run_sync(
            self.raw.prepare, self.key(namespace, key), raw_parent)

    async def mounts(self, namespace: str, key: str) -> builtins.list[Mount]:
        return await trio.to_thread.run_sync(self.raw.mounts, self.key(namespace, key))

    async def remove(self, namespace: str, key: str) -> None:
        await trio.to_thread.run_sync(self.raw.remove, self.key(namespace, key))

    async def layers(self, namespace: str, name: str) -> builtins.list[Path]:
        """The directories of committed snapshot `name`, top first."""
        return await trio.to_thread.run_sync(self.raw.layers, self.key(namespace, name))

    async def read_file(self, namespace: str, key: str, path: str) -> bytes | None:
        """A file of the snapshot as the container will see it (e.g. /etc/passwd for
        resolving a user), read from its layers without mounting them."""
        mounts = await self.mounts(namespace, key)
        return await trio.to_thread.run_sync(read_from_layers, layer_dirs(mounts), path)

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
