"""A passthrough FUSE filesystem whose requests a test can hold back: a real slow
filesystem (a hung NFS server, a stopped FUSE daemon) on demand.

    python stallfs.py SOURCE MOUNT CONTROL

serves the directory SOURCE at MOUNT. CONTROL is a host directory of plain files the
test writes: while `CONTROL/lookup` names an entry, every lookup of that name waits;
`CONTROL/lookup-after-create` becomes `CONTROL/lookup` at the next file creation (so
what comes after a writer's open is held, not the open); while `CONTROL/flush` names
a file, every flush (a close) of it waits. The name of each held request is written
to `CONTROL/held` as it starts waiting. Nothing is cached by the kernel (timeouts 0):
every path walk asks.
"""

import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyfuse3
import trio

T = TypeVar("T")


class StallFs(pyfuse3.Operations):
    def __init__(self, source: Path, control: Path) -> None:
        super().__init__()
        self._control = control
        self._paths: dict[int, str] = {pyfuse3.ROOT_INODE: str(source)}
        self._inodes: dict[str, int] = {str(source): pyfuse3.ROOT_INODE}
        self._fds: dict[int, tuple[int, str]] = {}

    # -- holding back ------------------------------------------------------------
    def _named(self, what: str) -> str | None:
        try:
            return (self._control / what).read_text().strip()
        except FileNotFoundError:
            return None

    async def _hold(self, what: str, name: str) -> None:
        if self._named(what) != name:
            return
        (self._control / "held").write_text(f"{what} {name}\n")
        while self._named(what) == name:
            await trio.sleep(0.02)

    # -- inodes ----------------------------------------------------------------------
    def _path(self, inode: int, name: bytes | None = None) -> str:
        path = self._paths[inode]
        return path if name is None else os.path.join(path, os.fsdecode(name))

    def _entry(self, path: str) -> pyfuse3.EntryAttributes:
        info = os.lstat(path)
        inode = self._inodes.get(path)
        if inode is None:
            inode = info.st_ino + 1  # never ROOT_INODE
            self._inodes[path], self._paths[inode] = inode, path
        attrs = pyfuse3.EntryAttributes()
        for key in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
                    "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(attrs, key, getattr(info, key))
        attrs.st_ino = inode
        attrs.st_blksize, attrs.st_blocks = 4096, info.st_blocks
        attrs.entry_timeout = attrs.attr_timeout = 0
        return attrs

    @staticmethod
    def _os(call: Callable[..., T], *args: Any) -> T:
        try:
            return call(*args)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None

    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
                     ) -> pyfuse3.EntryAttributes:
        await self._hold("lookup", os.fsdecode(name))
        return self._os(self._entry, self._path(parent_inode, name))

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._os(self._entry, self._path(inode))

    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None, ctx: pyfuse3.RequestContext
                      ) -> pyfuse3.EntryAttributes:
        path = self._path(inode)
        if fields.update_size:
            self._os(os.truncate, path, attr.st_size)
        if fields.update_mode:
            self._os(os.chmod, path, stat.S_IMODE(attr.st_mode))
        if fields.update_mtime or fields.update_atime:
            self._os(os.utime, path, None)
        return self._os(self._entry, path)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return os.fsencode(self._os(os.readlink, self._path(inode)))

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, inode: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        path = self._path(inode)
        names = sorted(self._os(os.listdir, path))
        for index, name in enumerate(names[start_id:], start_id + 1):
            attrs = self._os(self._entry, os.path.join(path, name))
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attrs, index):
                break

    async def releasedir(self, fh: int) -> None:
        pass

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
                    ) -> pyfuse3.EntryAttributes:
        path = self._path(parent_inode, name)
        self._os(os.mkdir, path, mode)
        return self._os(self._entry, path)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._os(os.unlink, self._path(parent_inode, name))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._os(os.rmdir, self._path(parent_inode, name))

    async def rename(self, old_parent: int, old_name: bytes, new_parent: int,
                     new_name: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        old, new = self._path(old_parent, old_name), self._path(new_parent, new_name)
        self._os(os.rename, old, new)
        inode = self._inodes.pop(old, None)
        if inode is not None:
            self._inodes[new], self._paths[inode] = inode, new

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        path = self._path(inode)
        fd = self._os(os.open, path, flags & ~os.O_CREAT)
        self._fds[fd] = (fd, path)
        return pyfuse3.FileInfo(fh=fd, direct_io=True)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        path = self._path(parent_inode, name)
        fd = self._os(os.open, path, flags | os.O_CREAT, mode)
        self._fds[fd] = (fd, path)
        armed = self._control / "lookup-after-create"
        if armed.exists():
            armed.rename(self._control / "lookup")
        return pyfuse3.FileInfo(fh=fd, direct_io=True), self._os(self._entry, path)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return self._os(os.pread, fh, size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self._os(os.pwrite, fh, buf, off)

    async def flush(self, fh: int) -> None:
        await self._hold("flush", os.path.basename(self._fds[fh][1]))

    async def fsync(self, fh: int, datasync: bool) -> None:
        self._os(os.fsync, fh)

    async def release(self, fh: int) -> None:
        self._fds.pop(fh, None)
        os.close(fh)

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        info, out = os.statvfs(self._paths[pyfuse3.ROOT_INODE]), pyfuse3.StatvfsData()
        for key in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                    "f_ffree", "f_favail", "f_namemax"):
            setattr(out, key, getattr(info, key))
        return out


def main() -> None:
    source, mount, control = (Path(arg) for arg in sys.argv[1:4])
    options = set(pyfuse3.default_options) | {"fsname=stallfs", "allow_other"}
    options.discard("default_permissions")
    pyfuse3.init(StallFs(source, control), str(mount), options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
