"""The requests on nodes inside a HostTree row: a host directory tree passed through.

The tree's node layer keeps the inodes (one per path, from the same counter as every
other node, so numbers never collide); what a path *is* comes from the row's
`TreeView` at each request, in a worker thread, so a container changing its root
shows at once. The one exception is the tree's own directory where the row's service
remembers its lstat until it changes (`HostTree.remembered`: a container's mounted
rootfs), which `ls -l` of the container stats at every listing. An OSError from the
view answers with its own errno.
"""

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

import pyfuse3
import trio

from mountpoint.attributes import CACHE_TIMEOUT
from mountpoint.nodes import Node, Resolved
from mountpoint.table import HostTree, Services, TreeView

T = TypeVar("T")


def is_host(node: Node) -> bool:
    return isinstance(node.entry, HostTree)


async def view(services: Services, node: Node) -> TreeView:
    assert isinstance(node.entry, HostTree)
    return await node.entry.root(services, node.scope)


async def run(fn: Callable[..., T], *args: Any) -> T:
    """A blocking call of a view, its OSError answered as that errno."""
    try:
        return await trio.to_thread.run_sync(fn, *args)
    except OSError as exc:
        raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None


def child(parent: Node, name: str) -> Resolved:
    return Resolved(name, parent.scope, entry=parent.entry, sub=(*parent.sub, name))


def same_kind(node: Node, info: os.stat_result) -> bool:
    """Whether the host file at the node's path is still of the type the kernel was
    told: a directory swapped for a symlink is another file, and gets another inode
    (the kernel refuses an inode that changes type)."""
    return node.kind in (0, stat.S_IFMT(info.st_mode))


def attrs(node: Node, info: os.stat_result) -> pyfuse3.EntryAttributes:
    """The host file's own stat, under the tree's inode number. Nothing of it is
    cached but the row's own name, which is there as long as its directory is (a
    fixed row): what is below it changes under the daemon's feet."""
    node.kind = node.kind or stat.S_IFMT(info.st_mode)
    out = pyfuse3.EntryAttributes()
    out.st_ino = node.ino
    out.generation = 0
    out.entry_timeout = 0 if node.sub else CACHE_TIMEOUT
    out.attr_timeout = 0
    out.st_mode = info.st_mode
    out.st_nlink = info.st_nlink
    out.st_uid = info.st_uid
    out.st_gid = info.st_gid
    out.st_rdev = info.st_rdev
    out.st_size = info.st_size
    out.st_blksize = info.st_blksize
    out.st_blocks = info.st_blocks
    out.st_atime_ns = info.st_atime_ns
    out.st_mtime_ns = info.st_mtime_ns
    out.st_ctime_ns = info.st_ctime_ns
    return out


async def listed_attrs(services: Services, node: Node) -> pyfuse3.EntryAttributes:
    """What a listing tells of the tree's own directory: its attributes when the
    service remembers them (`HostTree.remembered`), else only that it is a directory
    (once its tree is there), whose real attributes a stat asks for: a listing
    lstats nothing in a thread that the stat after it would lstat again."""
    with contextlib.suppress(OSError):  # the stat after it answers the error
        info = await remembered(services, node)
        if info is not None:
            return attrs(node, info)
    await view(services, node)
    out = pyfuse3.EntryAttributes()
    out.st_ino = node.ino
    out.generation = 0
    out.entry_timeout = CACHE_TIMEOUT
    out.attr_timeout = 0
    out.st_mode = stat.S_IFDIR | 0o755
    out.st_nlink = 2
    return out


async def remembered(services: Services, node: Node) -> os.stat_result | None:
    """The lstat of the tree's own directory that its service remembers, if any."""
    assert isinstance(node.entry, HostTree)
    if node.sub or node.entry.remembered is None:
        return None
    info: os.stat_result | None = await node.entry.remembered(services, node.scope)
    return info


async def node_attrs(services: Services, node: Node) -> pyfuse3.EntryAttributes:
    try:
        known = await remembered(services, node)
    except OSError as exc:
        raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
    info = known if known is not None else await run((await view(services, node)).lstat,
                                                     node.sub)
    if not same_kind(node, info):
        raise pyfuse3.FUSEError(errno.ENOENT)
    return attrs(node, info)


async def set_attrs(services: Services, node: Node, attr: pyfuse3.EntryAttributes,
                  fields: pyfuse3.SetattrFields) -> pyfuse3.EntryAttributes:
    tree = await view(services, node)
    times = None
    if fields.update_atime or fields.update_mtime:
        current = await run(tree.lstat, node.sub)
        times = (attr.st_atime_ns if fields.update_atime else current.st_atime_ns,
                 attr.st_mtime_ns if fields.update_mtime else current.st_mtime_ns)
    info = await run(
        tree.setattr, node.sub,
        attr.st_mode if fields.update_mode else None,
        attr.st_uid if fields.update_uid else None,
        attr.st_gid if fields.update_gid else None,
        attr.st_size if fields.update_size else None,
        times)
    return attrs(node, info)
