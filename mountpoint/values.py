"""Value, ctl and err files: what an open of one reads, and what its writes store.

A read renders the value once, at open, and serves that snapshot to the open file.
What one open file is written adds up to one value (mountpoint/writes.py), stored
whole each time it is complete, or to ctl lines, each run as its verb; a refusal
fails the write() that completed it and leaves the directory's err line.
"""

import errno

import pyfuse3

from mountpoint.attributes import Attributes
from mountpoint.ctl import WRITER_UID
from mountpoint.errors import errno_of
from mountpoint.handles import ValueHandle
from mountpoint.kernelcache import KernelCache
from mountpoint.nodes import Node
from mountpoint.refusals import Refusals, quietly
from mountpoint.table import Ctl, Err, Services, Value
from mountpoint.writes import JsonObject, Whole, quote


class ValueFiles:
    """Opens, renders, writes and flushes the value, ctl and err files of the tree."""

    def __init__(self, services: Services, refusals: Refusals, attributes: Attributes,
                 kernel_cache: KernelCache) -> None:
        self.services = services
        self.refusals = refusals
        self.attributes = attributes
        self.kernel_cache = kernel_cache

    async def open(self, node: Node, pid: int, uid: int, reading: bool, writing: bool
                   ) -> ValueHandle:
        entry = node.entry
        assert isinstance(entry, Value | Ctl | Err)
        handle = ValueHandle(node, pid, uid, writer=writing and isinstance(entry, Ctl))
        if writing and isinstance(entry, Value):
            buffer = JsonObject if entry.json else Whole
            handle.value = buffer(node.name, entry.limit)
        if writing and not (isinstance(entry, Ctl) or getattr(entry, "write", None)):
            raise pyfuse3.FUSEError(errno.EACCES)
        if reading and not (isinstance(entry, Value) and entry.read is None):
            handle.content = await quietly(self.render(node))
        return handle  # a write-only value read (by root: its mode says so) is empty

    @staticmethod
    def empty(node: Node, pid: int, uid: int) -> ValueHandle:
        """A read-only open of a file that only takes writes (`stdin`): as root reading
        a 0200 file on a disk gets its content, this gets an empty one, so tar, grep -r
        and cp -r over the tree go by without an error."""
        return ValueHandle(node, pid, uid)

    async def render(self, node: Node) -> bytes:
        entry = node.entry
        if isinstance(entry, Ctl):
            text: str | bytes = entry.verbs.help()
        elif isinstance(entry, Err):
            text = self.refusals.errors.get(node.scope.path, "")
        else:
            assert isinstance(entry, Value) and entry.read is not None
            text = await entry.read(self.services, node.scope)
        return text.encode() if isinstance(text, str) else text

    async def write(self, handle: ValueHandle, buf: bytes) -> int:
        if handle.value is None:
            await self._write_ctl(handle, buf)
            return len(buf)
        if handle.refused is not None:
            raise pyfuse3.FUSEError(handle.refused)
        node = handle.node
        try:
            complete = handle.value.feed(buf)
        except Exception as exc:
            handle.refused = errno_of(exc)
            self.refusals.refuse(exc, node, f'{node.name} "{quote(buf.decode(errors="replace"))}"')
        if complete:
            await self._store(handle)
        return len(buf)

    async def _write_ctl(self, handle: ValueHandle, buf: bytes) -> None:
        node = handle.node
        try:
            lines = handle.lines.feed(buf)
        except Exception as exc:
            self.refusals.refuse(exc, node, f'{node.name} "{quote(buf.decode(errors="replace"))}"')
        for line in lines:
            await self._run_verb(handle, line)

    async def _run_verb(self, handle: ValueHandle, line: str) -> None:
        node, entry = handle.node, handle.node.entry
        assert isinstance(entry, Ctl)
        what = f'{node.name} "{quote(line)}"'  # the err line quotes the refused message
        try:
            verb, args = entry.verbs.parse(line)
            writer = WRITER_UID.set(handle.uid)  # the verb's task copies it at its start
            try:
                finished = await self.refusals.act(
                    handle.pid, lambda: verb.handler(self.services, node.scope, args), node,
                    what)
            finally:
                WRITER_UID.reset(writer)
        except Exception as exc:
            self.refusals.refuse(exc, node, what)
        if not finished:
            raise pyfuse3.FUSEError(errno.EINTR)

    async def _store(self, handle: ValueHandle) -> None:
        """Store the whole value written so far; a refusal refuses this open file."""
        node, entry, value = handle.node, handle.node.entry, handle.value
        assert isinstance(entry, Value) and entry.write is not None and value is not None
        data, value.pending = bytes(value.data), False
        store = entry.write

        async def stored() -> None:
            await store(self.services, node.scope, data)
            self.kernel_cache.value_stored(node)  # when done, even after an EINTR

        try:
            finished = await self.refusals.act(handle.pid, stored, node, node.name)
        except Exception as exc:
            handle.refused, value.data = errno_of(exc), bytearray()
            self.refusals.refuse(exc, node, node.name)
        self.attributes.touch(node)
        if not finished:
            raise pyfuse3.FUSEError(errno.EINTR)

    async def flush(self, handle: ValueHandle) -> None:
        """Store what is pending, or run an unfinished last ctl line."""
        if handle.value is None:
            rest = handle.lines.finish()
            if rest:
                await self._run_verb(handle, rest)
        elif handle.value.pending and handle.refused is None:
            await self._store(handle)
