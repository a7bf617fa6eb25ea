"""The snapshotter lifecycle shared by every implementation (containerd's Snapshotter).

A snapshot is *active* (prepared from a committed parent, writable), a *view*
(read-only) or *committed* (immutable, may be a parent). Keys name active snapshots
and views, names name committed ones; both live in one namespace. Layer import is
prepare(tmpkey, parent) -> apply the layer into apply_dir(tmpkey) -> commit(chainid,
tmpkey); a container is prepare(id, image_top) -> mount mounts(id).

On disk every snapshot is `<root>/snapshots/<id>/` holding `fs` (and `work` for
overlay); a new one is assembled in `<root>/snapshots/new-*` and renamed into place
inside the metadata transaction that creates its row, so a crash leaves either
nothing or an orphan directory that the next open removes.

Snapshots may have owners (opaque names: cdfs's namespaces). An owner that finds a
layer already committed under its chain ID by another takes it with reuse(), which
adds the owner to the snapshot and every ancestor; release() drops one owner and
removes the snapshot only when no owner is left. So an owner always holds the whole
chain below what it holds, and a layer on disk is shared by all who use it.
"""

import array
import builtins
import fcntl
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from base.errors import Busy, InvalidArgument, NotFound
from base.mount import Mount
from content.apply import WhiteoutMode
from content.snapshots.metadata import Info, Kind, Metadata, Row, check_key


@dataclass(frozen=True)
class Usage:
    """Disk used by a snapshot's own files: allocated bytes and distinct inodes."""

    size: int
    inodes: int


# ext4's inode flags (linux/fs.h): "the top of a directory hierarchy" for the Orlov allocator.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def _spread_children(directory: Path) -> None:
    """Mark `directory` as ext4 marks /home (chattr +T): each snapshot made in it is
    placed as the top of a hierarchy, in the flex group with the fewest directories,
    instead of next to its parent. Near the parent (a root under /tmp, say) are the
    inodes everyone freed in the last minutes, and ext4 without a journal skips every
    one of those at each new inode (`recently_deleted`): 25-250 µs a file. A filesystem
    without the flag (tmpfs, overlay, xfs, btrfs) refuses it, and that changes nothing."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & _FS_TOPDIR_FL:
            flags[0] |= _FS_TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
    except OSError:
        pass  # no such flag here: placement is only a matter of speed
    finally:
        os.close(fd)


class Snapshotter(ABC):
    """Common lifecycle; subclasses say how a new fs is populated and mounted."""

    #: how unpack.apply_layer must write whiteouts into apply_dir()
    whiteouts: WhiteoutMode
    #: whether a layer can be applied before its parent is committed (commit's
    #: `parent`): true where a snapshot's directory does not start as a parent's copy
    detached_layers: bool = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.snapshots_dir = root / "snapshots"
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        _spread_children(self.snapshots_dir)
        self._meta = Metadata(root / "metadata.db")
        self._remove_orphans()

    def close(self) -> None:
        self._meta.close()

    # -- lifecycle ---------------------------------------------------------------
    def prepare(self, key: str, parent: str | None = None,
                labels: dict[str, str] | None = None, owner: str | None = None) -> list[Mount]:
        """Create the active (writable) snapshot `key` on top of committed `parent`
        (held by `owner` if given). AlreadyExists if the key is taken,
        NotFound/InvalidArgument for a bad parent."""
        return self._create(key, parent, "active", labels or {}, owner)

    def view(self, key: str, parent: str | None = None,
             labels: dict[str, str] | None = None, owner: str | None = None) -> list[Mount]:
        """Create a read-only view `key` of committed `parent`."""
        return self._create(key, parent, "view", labels or {}, owner)

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or view (InvalidArgument if committed)."""
        row = self._meta.get(key)
        if row.info.kind == "committed":
            raise InvalidArgument(f'snapshot "{key}" is committed and cannot be mounted')
        return self._mounts(row)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None,
               parent: str | None = None) -> None:
        """Turn active snapshot `key` into committed, immutable `name`. AlreadyExists
        if `name` is taken (another unpack won the race); the active one stays.
        `parent` puts a snapshot prepared without one onto committed `parent`: a layer
        applied while its parents were still being applied. Only where a snapshot's
        directory holds its own changes alone (`detached_layers`)."""
        check_key(name)
        with self._meta.transaction():
            row = self._meta.get(key)
            if row.info.kind != "active":
                raise InvalidArgument(f'snapshot "{key}" is {row.info.kind}, not active')
            if parent is not None:
                if not self.detached_layers:
                    raise InvalidArgument("this snapshotter copies parents: it cannot "
                                          "commit a snapshot onto a new parent")
                if row.ancestors:
                    raise InvalidArgument(f'snapshot "{key}" has a parent already')
                self._meta.set_parent(row, self._committed(parent))
            self._meta.commit(row, name, labels or {})

    def remove(self, key: str) -> None:
        """Remove a snapshot of any kind; Busy while another snapshot builds on it."""
        with self._meta.transaction():
            row = self._meta.get(key)
            if self._meta.has_children(row.id):
                raise Busy(f'snapshot "{key}" has children')
            self._meta.delete(row)
        # After the row is gone: a crash here leaves an orphan, removed on open.
        shutil.rmtree(self._dir(row.id), ignore_errors=True)

    def reuse(self, name: str, owner: str | None = None) -> bool:
        """Whether committed `name` exists; with `owner`, that owner then holds it and
        everything below it (a layer another owner unpacked, used as it is)."""
        with self._meta.transaction():
            try:
                row = self._meta.get(name)
            except NotFound:
                return False
            if row.info.kind != "committed":
                return False
            if owner is not None:
                for snapshot_id in (row.id, *row.ancestors):
                    self._meta.add_owner(snapshot_id, owner)
        return True

    def release(self, key: str, owner: str) -> bool:
        """Drop `owner` from snapshot `key`, removing the snapshot if it was the last
        owner (whether it was). NotFound if `owner` does not hold `key`; Busy while
        `owner` holds a snapshot built on it."""
        with self._meta.transaction():
            row = self._meta.get(key)
            owners = self._meta.owners(row.id)
            if owner not in owners:
                raise NotFound(f'no snapshot "{key}" held by "{owner}"')
            if self._meta.has_owned_children(row.id, owner):
                raise Busy(f'snapshot "{key}" has children')
            self._meta.drop_owner(row.id, owner)
            if owners != {owner}:
                return False
            if self._meta.has_children(row.id):
                raise Busy(f'snapshot "{key}" has children')
            self._meta.delete(row)
        shutil.rmtree(self._dir(row.id), ignore_errors=True)
        return True

    def owned(self, owner: str) -> builtins.list[Info]:
        """The snapshots `owner` holds."""
        return self._meta.owned(owner)

    def owners(self, key: str | None = None) -> set[str]:
        """The owners of snapshot `key`, or of any snapshot."""
        return self._meta.owners(self._meta.get(key).id if key is not None else None)

    def stat(self, key: str) -> Info:
        return self._meta.get(key).info

    def list(self) -> list[Info]:
        return self._meta.list()

    def usage(self, key: str) -> Usage:
        """Bytes allocated and inodes used by the snapshot's own directory (for overlay,
        what it adds over its parents; for native, the full copy)."""
        return _disk_usage(self._fs(self._meta.get(key).id))

    def layers(self, name: str) -> builtins.list[Path]:
        """The directories whose merged tree is committed snapshot `name`, top first
        (whiteouts as `self.whiteouts` says): for content.rootfs.RootView."""
        row = self._meta.get(name)
        if row.info.kind != "committed":
            raise InvalidArgument(f'snapshot "{name}" is {row.info.kind}, not committed')
        return self._layers(row)

    def _layers(self, row: Row) -> builtins.list[Path]:
        return [self._fs(row.id)]

    def apply_dir(self, key: str) -> Path:
        """Where to apply a layer for active snapshot `key` (with `self.whiteouts`)."""
        row = self._meta.get(key)
        if row.info.kind != "active":
            raise InvalidArgument(f'snapshot "{key}" is {row.info.kind}, not active')
        return self._fs(row.id)

    def apply_lowers(self, key: str) -> builtins.list[Path]:
        """The directories below apply_dir(key) that unpack.apply_layer should consult
        for implied directories: none when apply_dir is already a full copy."""
        self._meta.get(key)
        return []

    # -- for subclasses ------------------------------------------------------------
    @abstractmethod
    def _populate(self, new: Path, parent_fs: Path | None) -> None:
        """Fill the new snapshot directory `new` (its `fs` and whatever else)."""

    @abstractmethod
    def _mounts(self, row: Row) -> builtins.list[Mount]:
        """The mounts of an active snapshot or a view."""

    def _dir(self, snapshot_id: int) -> Path:
        return self.snapshots_dir / str(snapshot_id)

    def _fs(self, snapshot_id: int) -> Path:
        return self._dir(snapshot_id) / "fs"

    # -- internals -----------------------------------------------------------------
    def _create(self, key: str, parent: str | None, kind: Kind, labels: dict[str, str],
                owner: str | None) -> builtins.list[Mount]:
        check_key(key)
        parent_row = self._committed(parent) if parent is not None else None
        new = Path(tempfile.mkdtemp(prefix="new-", dir=self.snapshots_dir))
        made: list[Path] = []  # the snapshot's directory, once renamed into place
        try:
            self._populate(new, self._fs(parent_row.id) if parent_row else None)
            with self._meta.transaction(undo=lambda: _remove_trees(made)):
                if parent_row is not None and self._committed(parent_row.info.name) != parent_row:
                    raise NotFound(f'parent snapshot "{parent}" was removed meanwhile')
                snapshot_id = self._meta.insert(key, kind, parent_row, labels)
                if owner is not None:
                    self._meta.add_owner(snapshot_id, owner)
                final = self._dir(snapshot_id)
                if final.exists():  # an orphan from a crash before its row committed
                    shutil.rmtree(final)
                os.rename(new, final)
                made.append(final)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        return self._mounts(self._meta.get(key))

    def _committed(self, name: str) -> Row:
        try:
            row = self._meta.get(name)
        except NotFound:
            raise NotFound(f'no parent snapshot "{name}"') from None
        if row.info.kind != "committed":
            raise InvalidArgument(f'parent snapshot "{name}" is not committed')
        return row

    def _remove_orphans(self) -> None:
        """Directories without a row: half-made snapshots and half-removed ones."""
        known = {str(i) for i in self._meta.ids()}
        for entry in os.scandir(self.snapshots_dir):
            if entry.name not in known:
                shutil.rmtree(entry.path, ignore_errors=True)


def _remove_trees(paths: builtins.list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _disk_usage(path: Path) -> Usage:
    size = 0
    seen: set[int] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            info = os.lstat(os.path.join(dirpath, name))
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                size += info.st_blocks * 512
    return Usage(size, len(seen))
