"""The pyfuse3 Operations over the tables: the only FUSE-facing class.

Handlers follow the VFS order. Each request finds its node, runs the row's handler
and turns a domain error into an errno in one place (refusals.py), which also writes
the `err` line of the directory when a write, mkdir, rmdir, create or unlink is
refused. What stat says comes from attributes.py; what each open file remembers is
one of the kinds of handles.py; streams' reads, poll and O_NONBLOCK are streams.py's;
host trees (rootfs/) are hosttree.py's.

Writes act in write() rather than close(), since shells ignore errors at close; what
the writes of one open file add up to is mountpoint/writes.py's. The kernel sends
`flush` at every close() of every copy of a descriptor (a dup, a forked child) and
`release` once after the last, so flush only stores what is pending and reports, and
what happens once (stdin's end of file, an ingest's commit) happens at release.
"""

import errno
import logging
import os
from collections.abc import Sequence
from typing import Any

import pyfuse3
import trio

from base.errors import CdfsError, NotFound, PermissionDenied
from mountpoint import hosttree
from mountpoint.attributes import Attributes, Owner
from mountpoint.handles import (
    Handle,
    HostHandle,
    OutputHandle,
    SinkHandle,
    StreamHandle,
    ValueHandle,
)
from mountpoint.kernelcache import KernelCache
from mountpoint.nodes import Node, NodeTable, Resolved, resolve_child, resolve_fixed
from mountpoint.refusals import Refusals, quietly
from mountpoint.streams import READABLE, WRITABLE, OpenStream
from mountpoint.table import (
    Ctl,
    Err,
    HostFile,
    HostTree,
    Input,
    Link,
    Output,
    Services,
    Stream,
    Table,
    Value,
)
from mountpoint.values import ValueFiles

__all__ = ["Filesystem", "Owner"]

log = logging.getLogger(__name__)
ROOT_ONLY = Owner()


class Filesystem(pyfuse3.Operations):
    """Serves the tree rooted at `root` over the daemon's `services`."""

    enable_writeback_cache = False

    def __init__(self, services: Services, root: Table, owner: Owner = ROOT_ONLY) -> None:
        super().__init__()
        self.services = services
        self.nodes = NodeTable(root)
        self.kernel_cache = KernelCache(self.nodes)
        self.owner = owner
        self.attributes = Attributes(services, owner)
        self.refusals = Refusals()
        self.values = ValueFiles(services, self.refusals, self.attributes, self.kernel_cache)
        self._handles: dict[int, Handle] = {}
        self._listings: dict[int, list[tuple[str, Node]]] = {}
        self._next_fh = 1

    def run_work_in(self, nursery: trio.Nursery) -> None:
        """Where writes run their work, so a signal to the writer does not end it."""
        self.refusals.nursery = nursery

    def withdraw_cached(self) -> None:
        """Once mounted: from now on, tell the kernel to forget what it caches of what
        each event changes (kernelcache.py)."""
        self.kernel_cache.enabled = True
        self.services.bus.listen(self.kernel_cache.listen)
        self.services.containers.on_state_change(self.kernel_cache.task_changed)

    # -- attributes -----------------------------------------------------------
    async def _node_attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        if hosttree.is_host(node):
            return await hosttree.node_attrs(self.services, node)
        entry, attributes = node.entry, self.attributes
        if isinstance(entry, HostFile):
            path = await entry.path(self.services, node.scope)
            status = await trio.to_thread.run_sync(os.stat, path)
            return attributes.of(node, status.st_size, status.st_mtime_ns)
        if isinstance(entry, Value | Ctl | Err) and self._readable(entry):
            try:
                content = await self.values.render(node)
            except Exception:  # the open says why; a listing still shows the name
                return attributes.of(node, 0, await attributes.object_time(node))
            return attributes.of(node, len(content), await attributes.stamp(node, content))
        if isinstance(entry, Output):
            try:
                file = await entry.open(self.services, node.scope)
                size, mtime_ns = await file.stat()
            except Exception:
                return attributes.of(node, 0, await attributes.object_time(node))
            return attributes.of(node, size, mtime_ns or await attributes.object_time(node))
        return attributes.of(node, 0, await attributes.object_time(node))

    async def _listed_attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        """What readdir tells of a node. The kernel trusts these as long as a
        getattr's answer, so for a value or output, whose attributes it never keeps,
        the first stat asks getattr anyway: rendering each value here too would
        make `ls -l` render every value twice (a value the kernel keeps,
        `Value.kept`, is rendered here, and asked no more). A host tree's own
        directory (rootfs) is hosttree.listed_attrs's."""
        entry = node.entry
        if isinstance(entry, Value | Ctl | Err | Output) \
                and not (isinstance(entry, Value) and entry.kept):
            return self.attributes.of(node)
        if hosttree.is_host(node) and not node.sub:
            return await hosttree.listed_attrs(self.services, node)
        return await self._node_attrs(node)

    @staticmethod
    def _readable(entry: Value | Ctl | Err) -> bool:
        return not isinstance(entry, Value) or entry.read is not None

    def _forget_below(self, path: tuple[str, ...]) -> None:
        """An object was deleted (or made): one of the same name starts with its own
        times and without the old one's err lines."""
        self.attributes.forget_below(path)
        self.refusals.forget_below(path)

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext | None = None
                      ) -> pyfuse3.EntryAttributes:
        return await quietly(self._node_attrs(self.nodes.get(inode)))

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        # `echo x > file` truncates first; values are replaced whole anyway.
        node = self.nodes.get(inode)
        if hosttree.is_host(node):
            return await quietly(hosttree.set_attrs(self.services, node, attr, fields))
        writable_stream = isinstance(node.entry, Stream) and node.entry.input is not None
        if fields.update_size and not (isinstance(node.entry, Value | Ctl | Input)
                                       or writable_stream):
            raise pyfuse3.FUSEError(errno.EACCES)
        return await quietly(self._node_attrs(node))

    # -- names --------------------------------------------------------------
    async def _resolve(self, parent: Node, name: str) -> Resolved:
        if parent.table is None:
            raise NotFound(f'"{name}": not a directory')
        fixed = resolve_fixed(parent, name)
        if fixed is not None:
            return fixed
        children = parent.table.children
        if children is None:
            raise NotFound(f'no "{name}" here')
        if children.lookup is not None:
            table = await children.lookup(self.services, parent.scope, name)
            if table is None:
                raise NotFound(f'no "{name}" here')
            return resolve_child(parent, children, name, table)
        if children.exists is not None:
            found = await children.exists(self.services, parent.scope, name)
        else:
            found = name in await children.list(self.services, parent.scope)
        if not found:
            raise NotFound(f'no "{name}" here')
        return resolve_child(parent, children, name)

    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        parent = self.nodes.get(parent_inode)
        text = os.fsdecode(name)
        if text == ".":
            return await self.getattr(parent_inode)
        if text == "..":
            return await self.getattr((parent.parent or parent).ino)

        async def find() -> pyfuse3.EntryAttributes:
            if hosttree.is_host(parent):  # stat first: a missing name leaves no node
                tree = await hosttree.view(self.services, parent)
                info = await hosttree.run(tree.lstat, (*parent.sub, text))
                found = hosttree.child(parent, text)
                node = self.nodes.add(parent, found)
                if not hosttree.same_kind(node, info):
                    node = self.nodes.renew(parent, found)
                self.nodes.remember(node)
                return hosttree.attrs(node, info)
            node = self.nodes.add(parent, await self._resolve(parent, text))
            attrs = await self._node_attrs(node)
            self.nodes.remember(node)
            return attrs

        return await quietly(find())

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for inode, nlookup in inode_list:
            self.nodes.forget(inode, nlookup)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        entry = self.nodes.get(inode).entry
        if isinstance(entry, HostTree):
            node = self.nodes.get(inode)
            tree = await quietly(hosttree.view(self.services, node))
            return os.fsencode(await hosttree.run(tree.readlink, node.sub))
        if not isinstance(entry, Link):
            raise pyfuse3.FUSEError(errno.EINVAL)
        if isinstance(entry.target, str):
            return os.fsencode(entry.target)
        node = self.nodes.get(inode)
        return os.fsencode(await quietly(entry.target(self.services, node.scope)))

    # -- directories ----------------------------------------------------------
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self.nodes.get(inode)
        if node.table is None and not hosttree.is_host(node):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        listing = await quietly(self._list(node))
        fh = self._new_fh()
        self._listings[fh] = listing
        return fh

    async def _list(self, node: Node) -> list[tuple[str, Node]]:
        if hosttree.is_host(node):
            tree = await hosttree.view(self.services, node)
            listed = await hosttree.run(tree.listdir, node.sub)
            return [(name, self.nodes.add(node, hosttree.child(node, name))) for name in listed]
        assert node.table is not None
        found = [resolve_fixed(node, entry.name) for entry in node.table.entries]
        children = node.table.children
        if children is not None:
            names = await children.list(self.services, node.scope)
            for name in sorted(names):
                table = None
                if children.lookup is not None:
                    table = await children.lookup(self.services, node.scope, name)
                    if table is None:
                        continue
                found.append(resolve_child(node, children, name, table))
        return [(r.name, self.nodes.add(node, r)) for r in found if r is not None]

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        listing = self._listings.get(fh, [])
        for index in range(start_id, len(listing)):
            name, node = listing[index]
            try:
                attrs = await self._listed_attrs(node)
            except (NotFound, FileNotFoundError):
                continue  # vanished since the listing was taken (a blob: its file)
            except CdfsError:
                continue  # not there yet (an empty slot's rootfs): its lookup says why
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attrs, index + 1):
                return
            self.nodes.remember(node)

    async def releasedir(self, fh: int) -> None:
        self._listings.pop(fh, None)

    @staticmethod
    def _dynamic(parent: Node, name: str, handler: str, verb: str) -> Any:
        """The parent's `handler` (mkdir, rmdir, create or unlink) for its dynamic
        children; PermissionDenied for a fixed name or a directory without one."""
        table = parent.table
        action = getattr(table.children, handler, None) if table and table.children else None
        if table is None or action is None or name in table.index:
            raise PermissionDenied(f'cannot {verb} "{name}" here')
        return action

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self.nodes.get(parent_inode)
        text = os.fsdecode(name)
        if hosttree.is_host(parent):
            tree = await quietly(hosttree.view(self.services, parent))
            found = hosttree.child(parent, text)
            await hosttree.run(tree.mkdir, found.sub, mode, ctx.uid, ctx.gid)
            return await self.lookup(parent_inode, name)
        try:
            await self._dynamic(parent, text, "mkdir", "mkdir")(self.services, parent.scope, text)
            node = self.nodes.add(parent, await self._resolve(parent, text))
        except Exception as exc:
            self.refusals.refuse(exc, parent, f'mkdir "{text}"')
        self._forget_below(node.path)
        self.nodes.remember(node)
        return await quietly(self._node_attrs(node))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self.nodes.get(parent_inode)
        text = os.fsdecode(name)
        if hosttree.is_host(parent):
            tree = await quietly(hosttree.view(self.services, parent))
            await hosttree.run(tree.rmdir, hosttree.child(parent, text).sub)
            return
        try:
            await self._dynamic(parent, text, "rmdir", "rmdir")(self.services, parent.scope, text)
        except Exception as exc:
            self.refusals.refuse(exc, parent, f'rmdir "{text}"')
        self._forget_below((*parent.path, text))

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self.nodes.get(parent_inode)
        text = os.fsdecode(name)
        if hosttree.is_host(parent):
            tree = await quietly(hosttree.view(self.services, parent))
            await hosttree.run(tree.unlink, hosttree.child(parent, text).sub)
            return
        try:
            await self._dynamic(parent, text, "unlink", "remove")(self.services, parent.scope,
                                                                  text)
        except Exception as exc:
            self.refusals.refuse(exc, parent, f'rm "{text}"')
        self._forget_below((*parent.path, text))

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo,
                                                           pyfuse3.EntryAttributes]:
        parent = self.nodes.get(parent_inode)
        text = os.fsdecode(name)
        if hosttree.is_host(parent):
            return await self._create_host(parent, text, mode, flags, ctx)
        try:
            sink = await self._dynamic(parent, text, "create", "create")(
                self.services, parent.scope, text)
            assert parent.table is not None and parent.table.children is not None
            node = self.nodes.add(parent, resolve_child(parent, parent.table.children, text))
        except Exception as exc:
            self.refusals.refuse(exc, parent, f'create "{text}"')
        self.nodes.remember(node)
        fh = self._add_handle(SinkHandle(node, sink, ctx.pid))
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False), self.attributes.of(node)

    async def _create_host(self, parent: Node, name: str, mode: int, flags: int,
                           ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo,
                                                                 pyfuse3.EntryAttributes]:
        tree = await quietly(hosttree.view(self.services, parent))
        found = hosttree.child(parent, name)
        fd = await hosttree.run(tree.create, found.sub, mode, flags, ctx.uid, ctx.gid)
        try:
            info = await trio.to_thread.run_sync(os.fstat, fd)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(os.close, fd)
            raise
        node = self.nodes.remember(self.nodes.add(parent, found))
        fh = self._add_handle(HostHandle(node, fd))
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), hosttree.attrs(node, info)

    # -- files --------------------------------------------------------------
    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def _add_handle(self, handle: Handle) -> int:
        fh = self._new_fh()
        self._handles[fh] = handle
        return fh

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.nodes.get(inode)
        entry = node.entry
        writing = flags & os.O_ACCMODE != os.O_RDONLY
        reading = flags & os.O_ACCMODE != os.O_WRONLY
        if isinstance(entry, HostTree):
            tree = await quietly(hosttree.view(self.services, node))
            fd = await hosttree.run(tree.open, node.sub, flags)
            return pyfuse3.FileInfo(fh=self._add_handle(HostHandle(node, fd)), keep_cache=False)
        if isinstance(entry, HostFile):
            if writing:
                raise pyfuse3.FUSEError(errno.EACCES)
            path = await quietly(entry.path(self.services, node.scope))
            fd = await trio.to_thread.run_sync(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
            # The kernel keeps the inode's pages only while the path still names the
            # same blob: an image removed and pulled again keeps its inode number, and
            # an open without keep_cache drops the previous blob's pages.
            same = node.host_target == path
            node.host_target = path
            return pyfuse3.FileInfo(fh=self._add_handle(HostHandle(node, fd)), keep_cache=same)
        if isinstance(entry, Stream):
            if writing and entry.input is None:
                raise pyfuse3.FUSEError(errno.EACCES)
            sink = await quietly(entry.input(self.services, node.scope)) \
                if writing and entry.input is not None else None
            if sink is not None and not reading:
                fh = self._add_handle(SinkHandle(node, sink, ctx.pid))
            else:
                reader = await quietly(entry.open(self.services, node.scope))
                stream = OpenStream(reader, ctx.pid, bool(flags & os.O_NONBLOCK), sink)
                fh = self._add_handle(StreamHandle(node, stream, ctx.pid))
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=True)
        if isinstance(entry, Output):
            if writing:
                raise pyfuse3.FUSEError(errno.EACCES)
            file = await quietly(entry.open(self.services, node.scope))
            fh = self._add_handle(OutputHandle(node, file))
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False)
        if isinstance(entry, Input):
            if not writing:  # root reading a write-only file: it is empty
                handle = self.values.empty(node, ctx.pid, ctx.uid)
                return pyfuse3.FileInfo(fh=self._add_handle(handle), direct_io=True,
                                        keep_cache=False)
            if reading:
                raise pyfuse3.FUSEError(errno.EACCES)
            sink = await quietly(entry.open(self.services, node.scope))
            fh = self._add_handle(SinkHandle(node, sink, ctx.pid))
            return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False, nonseekable=True)
        if isinstance(entry, Value | Ctl | Err):
            handle = await self.values.open(node, ctx.pid, ctx.uid, reading, writing)
            if handle.writer:
                node.writers += 1  # the next opener gets an inode of its own (nodes.py)
                self.kernel_cache.writer_opened(node)
            return pyfuse3.FileInfo(fh=self._add_handle(handle), direct_io=True, keep_cache=False)
        raise pyfuse3.FUSEError(errno.EACCES)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._handles.get(fh)
        if isinstance(handle, ValueHandle):
            return handle.content[off:off + size]
        if isinstance(handle, HostHandle):
            return await trio.to_thread.run_sync(os.pread, handle.fd, size, off)
        if isinstance(handle, OutputHandle):
            return await quietly(handle.file.read(off, size))
        if isinstance(handle, StreamHandle):
            return await handle.stream.read(size)
        raise pyfuse3.FUSEError(errno.EBADF)

    async def poll(self, inode: int, fh: int, poll_handle: pyfuse3.PollHandle | None,
                   ctx: pyfuse3.RequestContext) -> int:
        """Real readiness for streams (see streams.py); other files are always ready."""
        handle = self._handles.get(fh)
        if isinstance(handle, StreamHandle):
            return handle.stream.poll(poll_handle)
        if isinstance(handle, SinkHandle):
            return WRITABLE
        if isinstance(handle, ValueHandle) and isinstance(handle.node.entry, Ctl | Value) \
                and (isinstance(handle.node.entry, Ctl) or handle.node.entry.write):
            return READABLE | WRITABLE
        return READABLE

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._handles.get(fh)
        if isinstance(handle, HostHandle):
            return await hosttree.run(os.pwrite, handle.fd, buf, off)
        if isinstance(handle, SinkHandle | StreamHandle) and handle.sink is not None:
            return await self._write_sink(handle, off, buf)
        if not isinstance(handle, ValueHandle):
            raise pyfuse3.FUSEError(errno.EBADF)
        return await self.values.write(handle, buf)

    async def _write_sink(self, handle: "SinkHandle | StreamHandle", off: int,
                          buf: bytes) -> int:
        sink = handle.sink
        assert sink is not None

        async def write() -> None:
            async with handle.order:
                await sink.write(off, buf)

        node = handle.node
        try:
            await self.refusals.act(handle.pid, write, node, f'write to "{node.name}"')
        except Exception as exc:
            self.refusals.refuse(exc, node, f'write to "{node.name}"')
        return len(buf)  # released by a signal too: the bytes stay queued, in order

    async def flush(self, fh: int) -> None:
        """At every close of every copy: store what is pending, run an unfinished
        last ctl line, let a sink report what it knows so far. Nothing final."""
        handle = self._handles.get(fh)
        if isinstance(handle, ValueHandle):
            await self.values.flush(handle)
        elif isinstance(handle, SinkHandle | StreamHandle) and handle.sink is not None:
            try:
                await handle.sink.check()
            except Exception as exc:
                self.refusals.refuse(exc, handle.node, f'close "{handle.node.name}"')

    async def release(self, fh: int) -> None:
        """After the last copy is closed: a sink's one final act. Its refusal has
        nobody to fail, so it is the directory's err line (and the log's)."""
        handle = self._handles.pop(fh, None)
        if isinstance(handle, ValueHandle) and handle.writer:
            handle.node.writers -= 1
        if isinstance(handle, StreamHandle):
            handle.stream.close()
        elif isinstance(handle, HostHandle):  # a close can wait on a slow filesystem
            await trio.to_thread.run_sync(os.close, handle.fd)
        if isinstance(handle, SinkHandle | StreamHandle) and handle.sink is not None:
            try:
                async with handle.order:
                    await handle.sink.close()
            except Exception as exc:
                self.refusals.note(exc, handle.node, f'close "{handle.node.name}"')
                log.warning("closing %s: %s", handle.node.name, exc)

    def shutdown(self) -> None:
        """End every open stream, so blocked readers see EOF and the daemon can stop."""
        for handle in self._handles.values():
            if isinstance(handle, StreamHandle):
                handle.stream.close()

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_namemax = 255
        return data
