"""Build OCI images into a ContentStore from entries described in Python.

Tests and the daemon make their images here instead of pulling them: a layer is a
list of `Entry` values, written as a deterministic tar (sorted, mtime 0, no user or
group names, a gzip header without name or time) so that the same input always
gives the same digests. Files may come from bytes or from a host path, which is
streamed; nothing is held in memory whole.

    store = ContentStore(root)
    layer = Layer([Entry.dir("etc"), Entry.file("etc/motd", b"hi\\n")])
    manifest = build_image(store, [layer], BuildConfig(cmd=["sh"]))
    index = build_index(store, [manifest, other_platform_manifest])

Entries are not completed with their parent directories: list those you want with
their own mode and owner (unpackers create missing parents with defaults).
"""

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import zstandard

from base.errors import InvalidArgument
from content import mediatypes
from content.descriptor import Descriptor
from content.manifest import Platform, host_platform
from content.store import ContentStore, Writer

Compression = Literal["gzip", "zstd", "none"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

_LAYER_MEDIA_TYPES: dict[str, str] = {
    "gzip": mediatypes.OCI_LAYER_GZIP,
    "zstd": mediatypes.OCI_LAYER_ZSTD,
    "none": mediatypes.OCI_LAYER,
}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One member of a layer tar. Make them with the constructors below (`Entry.file`,
    `Entry.symlink`, ...); `path` is relative to the image root."""

    path: str
    type: bytes
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    source: Path | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def dir(cls, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0,
            xattrs: dict[str, bytes] | None = None) -> "Entry":
        return cls(path, tarfile.DIRTYPE, mode, uid, gid, xattrs=xattrs or {})

    @classmethod
    def file(cls, path: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
             source: Path | None = None, xattrs: dict[str, bytes] | None = None) -> "Entry":
        """A regular file holding `data`, or the contents of the host file `source`
        (streamed when the layer is written)."""
        return cls(path, tarfile.REGTYPE, mode, uid, gid, data=data, source=source,
                   xattrs=xattrs or {})

    @classmethod
    def symlink(cls, path: str, target: str, uid: int = 0, gid: int = 0) -> "Entry":
        return cls(path, tarfile.SYMTYPE, 0o777, uid, gid, linkname=target)

    @classmethod
    def hardlink(cls, path: str, target: str) -> "Entry":
        """A second name for the file at `target` (a path in the same layer)."""
        return cls(path, tarfile.LNKTYPE, 0o644, linkname=_member_name(target))

    @classmethod
    def device(cls, path: str, kind: Literal["c", "b"], major: int, minor: int,
               mode: int = 0o666, uid: int = 0, gid: int = 0) -> "Entry":
        node_type = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE
        return cls(path, node_type, mode, uid, gid, devmajor=major, devminor=minor)

    @classmethod
    def fifo(cls, path: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> "Entry":
        return cls(path, tarfile.FIFOTYPE, mode, uid, gid)

    @classmethod
    def whiteout(cls, path: str) -> "Entry":
        """Delete `path` of the layers below (the OCI `.wh.<name>` marker)."""
        posix = PurePosixPath(_member_name(path))
        return cls.file(str(posix.parent / (WHITEOUT_PREFIX + posix.name)))

    @classmethod
    def opaque(cls, directory: str) -> "Entry":
        """Hide everything the layers below hold in `directory` (`.wh..wh..opq`)."""
        return cls.file(str(PurePosixPath(_member_name(directory)) / OPAQUE_WHITEOUT))


@dataclass(frozen=True)
class Layer:
    entries: Sequence[Entry]
    compression: Compression = "gzip"


@dataclass(frozen=True)
class BuildConfig:
    """The parts of an OCI image config that images built here set. `os` and
    `architecture` default to the host's, so built images run here."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    os: str = ""
    architecture: str = ""
    variant: str = ""


@dataclass(frozen=True)
class LayerBlob:
    """A layer written to the store: its descriptor and the digest of its tar (diff_id)."""

    descriptor: Descriptor
    diff_id: str


def _member_name(path: str) -> str:
    """`path` as a tar member name: relative, normalised, and never leaving the root."""
    parts = [part for part in PurePosixPath(path).parts if part not in ("/", ".")]
    if not parts or ".." in parts or "\0" in path:
        raise InvalidArgument(f'bad path in layer: "{path}"')
    return "/".join(parts)


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(_member_name(entry.path))
    info.type = entry.type
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = 0
    info.linkname = entry.linkname
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    if entry.type == tarfile.REGTYPE:
        info.size = entry.source.stat().st_size if entry.source else len(entry.data)
    info.pax_headers = {f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
                        for key, value in sorted(entry.xattrs.items())}
    return info


def _ordered(entries: Iterable[Entry]) -> list[Entry]:
    """Sorted by path, hardlinks last so that their targets precede them."""
    return sorted(entries, key=lambda e: (e.type == tarfile.LNKTYPE, _member_name(e.path)))


class _StoreSink:
    """A write-only file object appending to an ingest, for tarfile and compressors."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def write(self, data: bytes) -> int:
        self.writer.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class _ZstdSink:
    """Compresses with zstd on the way to `target`; `close` ends the frame."""

    def __init__(self, target: _StoreSink) -> None:
        self.target = target
        self.zstd = zstandard.ZstdCompressor().compressobj()

    def write(self, data: bytes) -> int:
        self.target.write(self.zstd.compress(data))
        return len(data)

    def close(self) -> None:
        self.target.write(self.zstd.flush())


class _DiffIdTee:
    """Hashes the uncompressed tar (the layer's diff_id) on its way to the compressor."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.target.write(data)
        return len(data)


def write_tar(entries: Iterable[Entry], out: Any) -> None:
    """Write `entries` as a deterministic uncompressed tar stream to the file object `out`."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in _ordered(entries):
            info = _tarinfo(entry)
            if entry.source is not None:
                with open(entry.source, "rb") as src:
                    tar.addfile(info, src)
            elif info.isreg():
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)


def write_layer(store: ContentStore, layer: Layer) -> LayerBlob:
    """Write one layer blob into the store, compressed as the layer asks."""
    if layer.compression not in _LAYER_MEDIA_TYPES:
        raise InvalidArgument(f'unknown layer compression: "{layer.compression}"')
    writer = store.writer(f"build-{uuid.uuid4().hex}")
    try:
        sink = _StoreSink(writer)
        compressor: Any
        if layer.compression == "gzip":
            compressor = gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0)
        elif layer.compression == "zstd":
            compressor = _ZstdSink(sink)
        else:
            compressor = None
        tee = _DiffIdTee(compressor or sink)
        write_tar(layer.entries, tee)
        if compressor is not None:
            compressor.close()
        digest = writer.commit()
        size = writer.offset
    except BaseException:
        writer.close()
        store.abort(writer.ref)
        raise
    writer.close()
    descriptor = Descriptor(_LAYER_MEDIA_TYPES[layer.compression], digest, size)
    return LayerBlob(descriptor, "sha256:" + tee.hash.hexdigest())


def canonical_json(obj: Any) -> bytes:
    """The bytes images built here store for JSON: compact with sorted keys, so stable."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _platform(config: BuildConfig) -> Platform:
    host = host_platform()
    if not config.architecture:
        return Platform(config.os or host.os, host.architecture, host.variant)
    return Platform(config.os or host.os, config.architecture, config.variant)


def _config_json(config: BuildConfig, platform: Platform, diff_ids: list[str]) -> dict[str, Any]:
    runtime: dict[str, Any] = {}
    if config.entrypoint is not None:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.cmd is not None:
        runtime["Cmd"] = list(config.cmd)
    if config.env:
        runtime["Env"] = list(config.env)
    if config.working_dir:
        runtime["WorkingDir"] = config.working_dir
    if config.user:
        runtime["User"] = config.user
    if config.labels:
        runtime["Labels"] = dict(config.labels)
    if config.stop_signal:
        runtime["StopSignal"] = config.stop_signal
    return {
        **platform.to_json(),
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def build_image(store: ContentStore, layers: Sequence[Layer],
                config: BuildConfig | None = None,
                annotations: dict[str, str] | None = None) -> Descriptor:
    """Write the layers, the image config and an OCI manifest into the store and
    return the manifest's descriptor, its `platform` filled in for `build_index`."""
    blobs = [write_layer(store, layer) for layer in layers]
    config = config or BuildConfig()
    platform = _platform(config)
    config_bytes = canonical_json(_config_json(config, platform, [b.diff_id for b in blobs]))
    config_desc = Descriptor(mediatypes.OCI_CONFIG, store.add(config_bytes), len(config_bytes))
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [blob.descriptor.to_json() for blob in blobs],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    manifest_bytes = canonical_json(manifest)
    return Descriptor(mediatypes.OCI_MANIFEST, store.add(manifest_bytes), len(manifest_bytes),
                      platform=platform.to_json())


def build_index(store: ContentStore, manifests: Sequence[Descriptor],
                annotations: dict[str, str] | None = None) -> Descriptor:
    """Write an OCI index over `manifests` (each carrying its platform) and return its
    descriptor."""
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [manifest.to_json() for manifest in manifests],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    index_bytes = canonical_json(index)
    return Descriptor(mediatypes.OCI_INDEX, store.add(index_bytes), len(index_bytes))
