"""The floor of a control read: a minimal pyfuse3 server with one file, `value`, served
the way cdfs serves a value file (direct_io, attributes never cached so st_size is
current at every stat, the same pyfuse3.main task pool) and nothing else: no tables, no
services, no threads. What an open+read+close of it costs is what any pyfuse3 + trio
daemon pays; cdfs's control reads are measured as multiples of it in the same run.

    python bench/floor.py MOUNTPOINT     # serves until SIGTERM
"""

import errno
import os
import signal
import stat
import sys

import pyfuse3
import trio

CONTENT = b"running\n"
INODE = pyfuse3.ROOT_INODE + 1


class Floor(pyfuse3.Operations):
    def _attrs(self, inode: int) -> pyfuse3.EntryAttributes:
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = inode
        attrs.entry_timeout = 5.0
        attrs.attr_timeout = 0.0
        if inode == pyfuse3.ROOT_INODE:
            attrs.st_mode, attrs.st_nlink = stat.S_IFDIR | 0o500, 2
        else:
            attrs.st_mode, attrs.st_nlink, attrs.st_size = stat.S_IFREG | 0o400, 1, len(CONTENT)
        return attrs

    async def getattr(self, inode: int, ctx: object = None) -> pyfuse3.EntryAttributes:
        return self._attrs(inode)

    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: object = None) -> pyfuse3.EntryAttributes:
        if parent_inode != pyfuse3.ROOT_INODE or name != b"value":
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(INODE)

    async def open(self, inode: int, flags: int, ctx: object) -> pyfuse3.FileInfo:
        return pyfuse3.FileInfo(fh=inode, direct_io=True, keep_cache=False)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return CONTENT[off:off + size]

    async def opendir(self, inode: int, ctx: object) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        if start_id == 0:
            pyfuse3.readdir_reply(token, b"value", self._attrs(INODE), 1)

    async def statfs(self, ctx: object) -> pyfuse3.StatvfsData:
        return pyfuse3.StatvfsData()


def main(mount: str) -> None:
    pyfuse3.init(Floor(), mount, {"fsname=cdfs-floor", "default_permissions"})
    signal.signal(signal.SIGTERM, lambda *_: pyfuse3.terminate())
    try:
        trio.run(pyfuse3.main, 8, 10000)  # the task pool cdfs.daemon runs
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit(__doc__)
    main(sys.argv[1])
