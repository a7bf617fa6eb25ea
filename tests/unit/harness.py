"""Drive `mountpoint.fs.Filesystem` without a mount: the tree's semantics in milliseconds.

`Tree` calls the Operations the kernel would (lookup, getattr, opendir/readdir, open,
read, write, flush, release, mkdir, rmdir) by path, and turns a refusal into the
errno the caller would see (`Refused`). Only the kernel's readdir reply buffer is
stood in for (`readdir_reply` collects the names instead of packing them).

The services are fakes that implement the Protocols of mountpoint/services.py in
memory: namespaces and network namespaces (with the real identifier rule) and the
real event bus. The services these tests do not reach (content, images, containers
…) answer every call with Unavailable, so a test that strays there fails loudly.
"""

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyfuse3

from base import identifiers
from base.errors import AlreadyExists, Busy, NotFound, Unavailable
from cdfs.events import EventBus
from mountpoint.fs import Filesystem
from mountpoint.rootdir import ROOT
from mountpoint.table import Table

CTX = pyfuse3.RequestContext()


class FakeNamespaces:
    """NamespaceService in memory; `busy` names refuse rmdir as one holding images."""

    def __init__(self) -> None:
        self._names = {"default"}
        self.busy: set[str] = set()

    def names(self) -> list[str]:
        return sorted(self._names)

    def exists(self, name: str) -> bool:
        return name in self._names

    async def create(self, name: str) -> None:
        identifiers.validate(name, "namespace")
        if name in self._names:
            raise AlreadyExists(f'namespace "{name}" exists')
        self._names.add(name)

    async def remove(self, name: str) -> None:
        if name not in self._names:
            raise NotFound(f'no namespace "{name}"')
        if name in self.busy:
            raise Busy(f'namespace "{name}" holds images')
        self._names.discard(name)


@dataclass
class FakeNetns:
    """NetnsService in memory: names, their links text, and the wiring verbs recorded."""

    links_of: dict[str, str] = field(default_factory=dict)
    wired: list[tuple[str, ...]] = field(default_factory=list)

    async def names(self) -> list[str]:
        return sorted(self.links_of)

    async def exists(self, name: str) -> bool:
        return name in self.links_of

    def path(self, name: str) -> str:
        return f"/run/netns/{name}"

    async def create(self, name: str) -> None:
        identifiers.validate(name, "network namespace")
        if name in self.links_of:
            raise AlreadyExists(f'network namespace "{name}" exists')
        self.links_of[name] = "lo UP 127.0.0.1/8\n"

    async def remove(self, name: str) -> None:
        self.links_of.pop(name)

    async def veth(self, name: str, host_if: str, peer_if: str) -> None:
        self.wired.append(("veth", name, host_if, peer_if))

    async def set_up(self, name: str, ifname: str, up: bool) -> None:
        self.wired.append(("up" if up else "down", name, ifname))

    async def add_address(self, name: str, ifname: str, cidr: str) -> None:
        self.wired.append(("addr", name, ifname, cidr))

    async def links(self, name: str) -> str:
        return self.links_of[name]


class NotServed:
    """A service the harness does not fake: every call is refused as unavailable."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise Unavailable(f"{self._what}.{name} is not served by the harness")


@dataclass
class FakeServices:
    """The `Services` Protocol over the fakes above."""

    version: str = "0.0-harness"
    bus: EventBus = field(default_factory=EventBus)
    namespaces: FakeNamespaces = field(default_factory=FakeNamespaces)
    netns: FakeNetns = field(default_factory=FakeNetns)
    cas: Any = field(default_factory=lambda: NotServed("cas"))
    snapshots: Any = field(default_factory=lambda: NotServed("snapshots"))
    images: Any = field(default_factory=lambda: NotServed("images"))
    containers: Any = field(default_factory=lambda: NotServed("containers"))
    metrics: Any = field(default_factory=lambda: NotServed("metrics"))
    leases: Any = field(default_factory=lambda: NotServed("leases"))
    collected: int = 0

    async def collect_garbage(self) -> object:
        self.collected += 1
        return None

    async def remove_namespace(self, name: str) -> None:
        await self.namespaces.remove(name)


class Refused(Exception):
    """A request the filesystem answered with an errno."""

    def __init__(self, code: int) -> None:
        super().__init__(errno.errorcode.get(code, str(code)))
        self.errno = code


@contextmanager
def refusals() -> Iterator[None]:
    try:
        yield
    except pyfuse3.FUSEError as e:
        raise Refused(e.errno) from None


class Tree:
    """Path-level requests to a Filesystem, as a shell's commands make them."""

    def __init__(self, services: FakeServices | None = None, root: Table = ROOT) -> None:
        self.services = services or FakeServices()
        self.fs = Filesystem(self.services, root)  # type: ignore[arg-type]

    async def inode(self, path: str) -> int:
        ino = pyfuse3.ROOT_INODE
        for part in [p for p in path.split("/") if p]:
            with refusals():
                ino = (await self.fs.lookup(ino, os.fsencode(part), CTX)).st_ino
        return int(ino)

    async def stat(self, path: str) -> pyfuse3.EntryAttributes:
        ino = await self.inode(path)
        with refusals():
            return await self.fs.getattr(ino, CTX)

    async def listdir(self, path: str) -> list[str]:
        ino = await self.inode(path)
        names: list[str] = []

        def reply(token: object, name: bytes, attrs: object, next_id: int) -> bool:
            names.append(os.fsdecode(name))
            return True

        with refusals():
            fh = await self.fs.opendir(ino, CTX)
            original, pyfuse3.readdir_reply = pyfuse3.readdir_reply, reply
            try:
                await self.fs.readdir(fh, 0, None)  # type: ignore[arg-type]
            finally:
                pyfuse3.readdir_reply = original
                await self.fs.releasedir(fh)
        return names

    async def read(self, path: str, size: int = 1 << 20) -> bytes:
        ino = await self.inode(path)
        with refusals():
            fh = (await self.fs.open(ino, os.O_RDONLY, CTX)).fh
            try:
                return await self.fs.read(fh, 0, size)
            finally:
                await self.fs.flush(fh)
                await self.fs.release(fh)

    async def write(self, path: str, *chunks: bytes) -> None:
        """open O_WRONLY|O_TRUNC, one write() per chunk, close: as `printf … > path`."""
        ino = await self.inode(path)
        with refusals():
            fh = (await self.fs.open(ino, os.O_WRONLY | os.O_TRUNC, CTX)).fh
            try:
                offset = 0
                for chunk in chunks:
                    offset += await self.fs.write(fh, offset, chunk)
                await self.fs.flush(fh)
            finally:
                await self.fs.release(fh)

    async def mkdir(self, path: str) -> None:
        parent, name = os.path.split(path.rstrip("/"))
        ino = await self.inode(parent)
        with refusals():
            await self.fs.mkdir(ino, os.fsencode(name), 0o755, CTX)

    async def rmdir(self, path: str) -> None:
        parent, name = os.path.split(path.rstrip("/"))
        ino = await self.inode(parent)
        with refusals():
            await self.fs.rmdir(ino, os.fsencode(name), CTX)
