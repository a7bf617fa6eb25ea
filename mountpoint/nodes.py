"""The generic node layer: paths resolved through the tables, inodes, lookup counts.

An inode stands for a path, not for an object: handlers find their object anew from
the scope on every request, so an inode the kernel still caches for a container that
was deleted and made again simply serves the new one, and one for a deleted object
answers ENOENT. Nodes below a dynamic directory are `volatile`: what the kernel may
keep of them is decided in attributes.py (`name_cached`, `attrs_cached`), and what an
event changes is withdrawn by kernelcache.py, so what mkdir, rmdir and the daemon
itself change shows at once. A fixed row's name exists exactly while its directory
does, so that name may be cached even below a dynamic directory.

A ctl file is the exception to one inode per path. The kernel runs the writes to one
inode one at a time (it holds the inode's lock through a direct-I/O write, and an
O_TRUNC open takes it too), and a verb runs inside its write(): a second `echo tag …
> images/ctl` would wait for a running pull. So each open of a ctl file for writing
withdraws its name from the kernel (kernelcache.py `writer_opened`), and while such
an open is out, the next lookup gets a fresh inode of its own: each writer holds a
different inode, and the old one is freed when the kernel forgets it.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count

from base.errors import NotFound
from mountpoint.table import Children, Dir, Entry, Scope, Table

ROOT_INODE = 1


@dataclass(eq=False)
class Node:
    """A path in the tree: a directory (with its table) or a file or link (with its row).
    `scope` is the directory's own scope for a directory, the parent's for a fixed
    row, and the child's for a dynamic file (so its handler sees its name)."""

    ino: int
    path: tuple[str, ...]
    scope: Scope
    parent: "Node | None"
    table: Table | None = None
    entry: Entry | None = None
    volatile: bool = False
    dynamic: bool = False  # a child made by mkdir or the daemon, not a fixed row
    lookups: int = 0
    writers: int = 0  # opens for writing of a ctl file: while any, lookups get a new inode
    sub: tuple[str, ...] = ()  # below a HostTree row: the path inside its tree
    kind: int = 0  # below a HostTree row: the file type the kernel was told
    host_target: str = ""  # the host file a HostFile last opened, whose pages may be cached

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""

    @property
    def err_dir(self) -> "Node | None":
        """The nearest directory, this one or above, with an `err` file."""
        node: Node | None = self if self.table is not None else self.parent
        while node is not None:
            if node.table is not None and node.table.has_err():
                return node
            node = node.parent
        return None


@dataclass(frozen=True)
class Resolved:
    """What a name in a directory turned out to be, before it has an inode."""

    name: str
    scope: Scope
    table: Table | None = None
    entry: Entry | None = None
    dynamic: bool = False
    sub: tuple[str, ...] = ()


def resolve_fixed(parent: Node, name: str) -> Resolved | None:
    """A fixed row of the parent's table, if `name` is one."""
    assert parent.table is not None
    entry = parent.table.index.get(name)
    if entry is None:
        return None
    if isinstance(entry, Dir):
        return Resolved(name, parent.scope.child(name), table=entry.table)
    return Resolved(name, parent.scope, entry=entry)


def resolve_child(parent: Node, children: Children, name: str,
                  table: Table | None = None) -> Resolved:
    """A dynamic child of the parent, known to exist, laid out by `table` (or the
    children's own table or file row)."""
    value = name
    if children.join and children.param in parent.scope:
        value = f"{parent.scope[children.param]}/{name}"
    scope = parent.scope.child(name, children.param, value)
    if table is not None or children.table is not None:
        return Resolved(name, scope, table=table or children.table, dynamic=True)
    return Resolved(name, scope, entry=children.file, dynamic=True)


ObjectKey = tuple[str | None, str | None]  # (namespace, id) as a bus event names an object


def object_key(scope: Scope) -> ObjectKey:
    """The (namespace, id) of the events about the object whose scope this is: a
    container's (its nodes', its execs' included), or a namespace's own (its events
    name it as both namespace and id); (None, None) above every namespace."""
    namespace = scope.get("ns")
    return namespace, scope.get("id", namespace)


class NodeTable:
    """Inodes for paths, kept while the kernel holds a lookup on them; indexed by the
    object whose scope they are in (`object_key`), so what an event about one
    object withdraws costs that object's nodes, not every node the kernel holds."""

    def __init__(self, root: Table) -> None:
        self._next = count(ROOT_INODE + 1)
        self.root = Node(ROOT_INODE, (), Scope(), None, table=root, lookups=1)
        self._by_ino: dict[int, Node] = {ROOT_INODE: self.root}
        self._by_path: dict[tuple[str, ...], Node] = {(): self.root}
        self._by_object: dict[ObjectKey, dict[Node, None]] = {}  # ordered sets

    def get(self, ino: int) -> Node:
        node = self._by_ino.get(ino)
        if node is None:
            raise NotFound(f"stale inode {ino}")
        return node

    def add(self, parent: Node, found: Resolved) -> Node:
        """The node for a resolved name, reusing the inode its path already has
        unless a writer holds that one (a busy ctl file). The caller counts the
        kernel's lookup (`remember`)."""
        path = (*parent.path, found.name)
        node = self._by_path.get(path)
        if node is None or node.writers:
            node = Node(next(self._next), path, found.scope, parent)
            self._by_path[path] = node
            self._by_ino[node.ino] = node
        self._unindex(node)
        node.scope, node.table, node.entry = found.scope, found.table, found.entry
        self._by_object.setdefault(object_key(node.scope), {})[node] = None
        node.sub = found.sub
        node.volatile = parent.volatile or found.dynamic
        node.dynamic = found.dynamic
        return node

    def renew(self, parent: Node, found: Resolved) -> Node:
        """A new inode for the path of `found`: the old one (still held by the kernel
        until it forgets it) stands for a file that is gone."""
        self._by_path.pop((*parent.path, found.name), None)
        return self.add(parent, found)

    @staticmethod
    def remember(node: Node) -> Node:
        node.lookups += 1
        return node

    def forget(self, ino: int, n: int) -> None:
        node = self._by_ino.get(ino)
        if node is None or node is self.root:
            return
        node.lookups -= n
        if node.lookups <= 0:
            del self._by_ino[ino]
            if self._by_path.get(node.path) is node:
                del self._by_path[node.path]
            self._unindex(node)

    def _unindex(self, node: Node) -> None:
        key = object_key(node.scope)
        nodes = self._by_object.get(key)
        if nodes is not None:
            nodes.pop(node, None)
            if not nodes:
                del self._by_object[key]

    def of_object(self, namespace: str, object_id: str) -> list[Node]:
        """The nodes the kernel holds in the scope of the object an event names by
        `namespace` and `object_id` (a copy: safe to add or forget meanwhile)."""
        return list(self._by_object.get((namespace, object_id), ()))

    def __len__(self) -> int:
        return len(self._by_ino)

    def __iter__(self) -> Iterator[Node]:
        """The nodes the kernel holds now (a copy: safe to add or forget meanwhile)."""
        return iter(list(self._by_ino.values()))
