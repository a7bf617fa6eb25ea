"""The image builder: deterministic layer tars, configs, manifests and indexes."""

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from base.errors import InvalidArgument
from content import mediatypes
from content.build import BuildConfig, Entry, Layer, build_image, build_index, write_tar
from content.manifest import parse_config, parse_image_manifest, parse_manifest
from content.store import ContentStore


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


def _tar_bytes(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out)
    return out.getvalue()


def _open_tar(data: bytes) -> tarfile.TarFile:
    """The tar in `data` (a BytesIO needs no closing)."""
    return tarfile.open(fileobj=io.BytesIO(data))


def _layer_tar(store: ContentStore, manifest_digest: str, index: int = 0) -> bytes:
    manifest = parse_image_manifest(store.read(manifest_digest))
    layer = manifest.layers[index]
    blob = store.read(layer.digest)
    if layer.media_type == mediatypes.OCI_LAYER_GZIP:
        return gzip.decompress(blob)
    if layer.media_type == mediatypes.OCI_LAYER_ZSTD:
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    return blob


def test_tar_is_sorted_and_timeless() -> None:
    entries = [Entry.file("b/z", b"z"), Entry.dir("b"), Entry.file("/a", b"a", mode=0o600)]
    tar = _open_tar(_tar_bytes(entries))
    members = tar.getmembers()
    assert [m.name for m in members] == ["a", "b", "b/z"]
    assert all(m.mtime == 0 and m.uname == "" and m.gname == "" for m in members)
    assert members[0].mode == 0o600
    assert _tar_bytes(entries) == _tar_bytes(list(reversed(entries)))


def test_every_entry_kind(tmp_path: Path) -> None:
    host_file = tmp_path / "big"
    host_file.write_bytes(b"x" * 3_000_000)
    entries = [
        Entry.dir("d", 0o700, uid=1, gid=2, xattrs={"user.k": b"v"}),
        Entry.file("d/host", source=host_file, mode=0o755),
        Entry.hardlink("a-link", "d/host"),
        Entry.symlink("d/sym", "../d/host"),
        Entry.device("dev/null", "c", 1, 3),
        Entry.device("dev/loop0", "b", 7, 0, mode=0o660),
        Entry.fifo("d/pipe"),
        Entry.whiteout("gone/file"),
        Entry.opaque("d"),
    ]
    tar = _open_tar(_tar_bytes(entries))
    by_name = {m.name: m for m in tar.getmembers()}
    assert by_name["d"].isdir() and (by_name["d"].uid, by_name["d"].gid) == (1, 2)
    assert by_name["d"].pax_headers["SCHILY.xattr.user.k"] == "v"
    assert by_name["d/host"].size == 3_000_000
    extracted = tar.extractfile("d/host")
    assert extracted is not None and extracted.read() == host_file.read_bytes()
    assert by_name["a-link"].islnk() and by_name["a-link"].linkname == "d/host"
    names = [m.name for m in tar.getmembers()]
    assert names.index("a-link") > names.index("d/host"), "hardlink before its target"
    assert by_name["d/sym"].issym() and by_name["d/sym"].linkname == "../d/host"
    assert by_name["dev/null"].ischr() and (by_name["dev/null"].devmajor,
                                            by_name["dev/null"].devminor) == (1, 3)
    assert by_name["dev/loop0"].isblk()
    assert by_name["d/pipe"].isfifo()
    assert by_name["gone/.wh.file"].isfile()
    assert by_name["d/.wh..wh..opq"].isfile()


@pytest.mark.parametrize("path", ["../etc/passwd", "a/../../b", "", "/", "a/\0b"])
def test_paths_leaving_the_root_are_refused(store: ContentStore, path: str) -> None:
    with pytest.raises(InvalidArgument):
        build_image(store, [Layer([Entry.file(path, b"x")])])
    assert list(store.list()) == []
    assert store.ingests() == []


@pytest.mark.parametrize("compression,media_type", [
    ("gzip", mediatypes.OCI_LAYER_GZIP),
    ("zstd", mediatypes.OCI_LAYER_ZSTD),
    ("none", mediatypes.OCI_LAYER),
])
def test_image_layers_config_and_manifest(store: ContentStore, compression: str,
                                          media_type: str) -> None:
    layers = [Layer([Entry.file("etc/motd", b"hello\n")], compression),  # type: ignore[arg-type]
              Layer([Entry.whiteout("etc/motd")], compression)]  # type: ignore[arg-type]
    config = BuildConfig(entrypoint=["/bin/sh", "-c"], cmd=["echo hi"], env=["A=1"],
                         working_dir="/tmp", user="65534", labels={"k": "v"},
                         architecture="arm", variant="v7")
    desc = build_image(store, layers, config, annotations={"note": "x"})
    assert desc.media_type == mediatypes.OCI_MANIFEST
    assert desc.platform == {"os": "linux", "architecture": "arm", "variant": "v7"}
    manifest = parse_image_manifest(store.read(desc.digest))
    assert [layer.media_type for layer in manifest.layers] == [media_type, media_type]
    assert manifest.annotations == {"note": "x"}
    for layer in [*manifest.layers, manifest.config]:
        assert store.info(layer.digest).size == layer.size
    parsed = parse_config(store.read(manifest.config.digest))
    assert (parsed.entrypoint, parsed.cmd, parsed.env) == (("/bin/sh", "-c"), ("echo hi",),
                                                           ("A=1",))
    assert (parsed.working_dir, parsed.user, parsed.labels) == ("/tmp", "65534", {"k": "v"})
    assert parsed.platform.architecture == "arm" and parsed.platform.variant == "v7"
    diff_ids = [f"sha256:{hashlib.sha256(_layer_tar(store, desc.digest, i)).hexdigest()}"
                for i in range(2)]
    assert list(parsed.diff_ids) == diff_ids
    assert build_image(store, layers, config, annotations={"note": "x"}).digest == desc.digest


def test_default_platform_is_the_host(store: ContentStore) -> None:
    from content.manifest import host_platform
    desc = build_image(store, [])
    config = parse_config(store.read(parse_image_manifest(store.read(desc.digest)).config.digest))
    assert config.platform == host_platform()
    assert config.diff_ids == ()


def test_index_over_platforms(store: ContentStore) -> None:
    amd64 = build_image(store, [], BuildConfig(architecture="amd64"))
    arm64 = build_image(store, [], BuildConfig(architecture="arm64", variant="v8"))
    desc = build_index(store, [amd64, arm64])
    index = parse_manifest(store.read(desc.digest))
    assert [(m.digest, m.platform) for m in index.manifests] == [  # type: ignore[union-attr]
        (amd64.digest, {"os": "linux", "architecture": "amd64"}),
        (arm64.digest, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ]
    assert json.loads(store.read(desc.digest))["mediaType"] == mediatypes.OCI_INDEX
