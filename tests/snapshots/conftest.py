"""Fixtures for layer and snapshot tests: layer tars built with tarfile, both
snapshotters, and mounts that are always undone."""

import hashlib
import io
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import zstandard

from base.mount import Mount
from content.snapshots import NativeSnapshotter, OverlaySnapshotter, Snapshotter
from runtime.mounts import mount_all, unmount

MEDIA_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
MTIME = 1_600_000_000

Entry = tuple[tarfile.TarInfo, bytes]


class Layers:
    """Builders of tar entries and whole layers."""

    @staticmethod
    def file(name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
             xattrs: dict[str, bytes] | None = None, mtime: int = MTIME) -> Entry:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, mtime
        for key, value in (xattrs or {}).items():
            info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        return info, data

    @staticmethod
    def dir(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0,
            mtime: int = MTIME) -> Entry:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid, info.mtime = (
            tarfile.DIRTYPE, mode, uid, gid, mtime)
        return info, b""

    @staticmethod
    def symlink(name: str, target: str) -> Entry:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, MTIME
        return info, b""

    @staticmethod
    def hardlink(name: str, target: str) -> Entry:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = tarfile.LNKTYPE, target, MTIME
        return info, b""

    @staticmethod
    def device(name: str, kind: bytes, major: int = 0, minor: int = 0,
               mode: int = 0o666) -> Entry:
        info = tarfile.TarInfo(name)
        info.type, info.devmajor, info.devminor, info.mode = kind, major, minor, mode
        return info, b""

    @staticmethod
    def tar(entries: list[Entry]) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for info, data in entries:
                archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
        return out.getvalue()

    @staticmethod
    def compress(data: bytes, compression: str) -> bytes:
        if compression == "gzip":
            packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            return packer.compress(data) + packer.flush()
        if compression == "zstd":
            return zstandard.ZstdCompressor().compress(data)
        return data

    @classmethod
    def build(cls, entries: list[Entry], compression: str = "gzip") -> tuple[bytes, str, str]:
        """(blob, media type, diff_id) of a layer holding `entries`."""
        plain = cls.tar(entries)
        diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
        return cls.compress(plain, compression), MEDIA_TYPES[compression], diff_id


@pytest.fixture
def layers() -> type[Layers]:
    return Layers


@pytest.fixture(params=["overlay", "native"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Snapshotter]:
    """Each implementation in turn: one suite, run against both."""
    kind = OverlaySnapshotter if request.param == "overlay" else NativeSnapshotter
    made = kind(tmp_path / "snapshots" / request.param)
    yield made
    made.close()


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[list[Mount]], AbstractContextManager[Path]]]:
    """mounted(mounts) -> context manager mounting them on a fresh temp dir."""
    counter = iter(range(1_000_000))

    @contextmanager
    def mount(mounts: list[Mount]) -> Iterator[Path]:
        target = tmp_path / f"mnt{next(counter)}"
        target.mkdir()
        mount_all(mounts, target)
        try:
            yield target
        finally:
            unmount(target)

    yield mount
