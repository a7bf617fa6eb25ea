"""What stat says about a node of the tree: its mode from its row, its owner, the
times of values (the object's time until the value is seen to change), and what of
it the kernel may cache.

The mode bits come from `table.access`, the one derivation the reference's kinds use
too. Attributes of files whose bytes change are never cached by the kernel, so
st_size and st_mtime are those of now (tail, tar, cp and rsync trust them). Names
and directories are cached where nothing can change them unannounced (`name_cached`,
`attrs_cached`): a path walk to containers/X/status then asks the daemon nothing
until the open, and mountpoint/kernelcache.py withdraws what an event changes.
"""

import stat
from dataclasses import dataclass

import pyfuse3

from base.clock import now_ns, parse_rfc3339
from mountpoint.nodes import Node
from mountpoint.table import HostFile, Input, Link, Services, Stream, Value, access

CACHE_TIMEOUT = 5.0  # seconds the kernel may keep a name or attributes it may cache
_WRITTEN = -1  # the digest of a value just written: whatever it renders next is new


@dataclass(frozen=True)
class Owner:
    """Who owns the tree: root, and a group when the mount is opened to one."""

    uid: int = 0
    gid: int = 0
    group_access: bool = False


def name_cached(node: Node) -> bool:
    """Whether the kernel may keep this name: a fixed row's exists exactly while its
    directory does (a ctl file's is withdrawn at each open for writing, so the next
    walk gets a fresh inode: nodes.py); a dynamic child's until an rmdir through the
    mount or the removal its service announces (`Children.removed`)."""
    if not node.dynamic:
        return True
    table = node.parent.table if node.parent is not None else None
    return table is not None and table.children is not None \
        and table.children.removed is not None


def dated(node: Node) -> bool:
    """Whether the node's attributes change only with its object's time: a
    directory's, and a stream's or input's (always empty)."""
    return node.table is not None or isinstance(node.entry, Stream | Input)


def attrs_cached(node: Node) -> bool:
    """Whether the kernel may keep the attributes: a file's when its bytes never
    change (a blob, a link) and its path is fixed; a dated node's (`dated`) when its
    time, from the nearest table above that has one, never moves or moves only at
    the events that table names (`Table.changed_by`). A file whose bytes change
    (values, err, output) is asked afresh at each stat, but for a value of a task's
    state, whose every change the containers service tells, and a setting, which
    only its writes change (`Value.kept`)."""
    if not dated(node):
        if isinstance(node.entry, Value):
            return node.entry.kept
        return isinstance(node.entry, HostFile | Link) and not node.volatile
    current: Node | None = node
    while current is not None:
        if current.table is not None and current.table.time is not None:
            return bool(current.table.changed_by)
        current = current.parent
    return True


class Attributes:
    """Builds the EntryAttributes of nodes, and remembers when each value changed."""

    def __init__(self, services: Services, owner: Owner) -> None:
        self.services = services
        self.owner = owner
        self.started_ns = now_ns()
        self._seen: dict[tuple[str, ...], tuple[int, int]] = {}  # path -> (digest, mtime)

    def of(self, node: Node, size: int = 0, mtime_ns: int | None = None
           ) -> pyfuse3.EntryAttributes:
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = node.ino
        attrs.generation = 0
        attrs.entry_timeout = CACHE_TIMEOUT if name_cached(node) else 0.0
        attrs.attr_timeout = CACHE_TIMEOUT if attrs_cached(node) else 0.0
        attrs.st_mode = self.mode(node)
        attrs.st_nlink = 2 if node.table is not None else 1
        attrs.st_uid = self.owner.uid
        attrs.st_gid = self.owner.gid
        attrs.st_size = size
        attrs.st_blksize = 4096
        attrs.st_blocks = (size + 511) // 512
        stamp = self.started_ns if mtime_ns is None else mtime_ns
        attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = stamp
        return attrs

    def mode(self, node: Node) -> int:
        """The owner's bits say what a file does (read, write, both); the group, when
        the mount is opened to one, gets the same, and others nothing: with
        allow_other the kernel checks these bits for everyone but root."""
        entry = node.entry
        if isinstance(entry, Link):
            return stat.S_IFLNK | 0o777
        row = node.table if node.table is not None else entry
        assert row is not None, "a file's node holds its row"
        readable, writable = access(row)
        if node.table is not None:
            kind, perm = stat.S_IFDIR, 0o500 | (0o200 if writable else 0)
        else:
            kind, perm = stat.S_IFREG, (0o400 if readable else 0) | (0o200 if writable else 0)
        if self.owner.group_access:
            perm |= perm >> 3
        return kind | perm

    async def object_time(self, node: Node) -> int:
        """When the object this node belongs to was made or last changed: the nearest
        directory, this one or above, whose table knows its time; else the start."""
        current: Node | None = node if node.table is not None else node.parent
        while current is not None:
            table = current.table
            if table is not None and table.time is not None:
                try:
                    stamp = await table.time(self.services, current.scope)
                except Exception:
                    stamp = None
                if stamp:
                    return parse_rfc3339(stamp)
            current = current.parent
        return self.started_ns

    async def stamp(self, node: Node, content: bytes) -> int:
        """The mtime of a value: its object's time until its bytes are first seen to
        change, then the time they changed (or were written)."""
        digest = hash(content)
        seen = self._seen.get(node.path)
        if seen is not None and seen[0] == digest:
            return seen[1]
        stamp = await self.object_time(node) if seen is None else now_ns()
        self._seen[node.path] = (digest, stamp)
        return stamp

    def touch(self, node: Node) -> None:
        """A value was written: its mtime is now, whatever it reads back."""
        self._seen[node.path] = (_WRITTEN, now_ns())

    def forget_below(self, path: tuple[str, ...]) -> None:
        """An object was deleted (or made): one of the same name starts with its own
        times."""
        for seen in [p for p in self._seen if p[:len(path)] == path]:
            del self._seen[seen]
