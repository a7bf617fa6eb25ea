"""Import and export of image archives, checked against skopeo's reading and writing."""

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from base.errors import InvalidArgument, NotFound
from content import mediatypes
from content.archive import ImportedImage, export_archive, import_archive
from content.build import BuildConfig, Entry, Layer, build_image, build_index, canonical_json
from content.descriptor import Descriptor
from content.manifest import parse_image_manifest, walk
from content.store import ContentStore

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")


def _skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


def _image(store: ContentStore, text: bytes = b"hello\n", **config: str) -> Descriptor:
    layers = [Layer([Entry.dir("etc"), Entry.file("etc/motd", text)]),
              Layer([Entry.file("bin/tool", b"#!/bin/sh\n", mode=0o755)], "none")]
    return build_image(store, layers, BuildConfig(cmd=["sh"], **config))  # type: ignore[arg-type]


def _blobs(store: ContentStore, root: Descriptor) -> set[str]:
    return {root.digest} | {d.digest for d in walk(root, store.read)}


def _assert_holds(store: ContentStore, root: Descriptor) -> None:
    for desc in [root, *walk(root, store.read)]:
        assert store.info(desc.digest).size == desc.size


def _tar_of(directory: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, str(path.relative_to(directory)), recursive=False)
    return target


@needs_skopeo
def test_export_is_read_by_skopeo(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    archive = tmp_path / "image.tar"
    export_archive(store, image, "example.com/team/app:v1", archive)
    inspected = json.loads(_skopeo("inspect", f"oci-archive:{archive}"))
    assert inspected["Digest"] == image.digest
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        assert json.load(tar.extractfile("oci-layout")) == {  # type: ignore[arg-type]
            "imageLayoutVersion": "1.0.0"}
        names = set(tar.getnames())
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "example.com/team/app:v1",
        "org.opencontainers.image.ref.name": "v1"}
    assert names >= {f"blobs/sha256/{d.split(':')[1]}" for d in _blobs(store, image)}
    assert not list(tmp_path.glob(".*.tmp")), "temp file left behind"


@needs_skopeo
def test_round_trip_through_skopeo(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    export_archive(store, image, "cdfs.local/app:latest", tmp_path / "out.tar")
    layout = tmp_path / "layout"
    _skopeo("copy", "--preserve-digests", f"oci-archive:{tmp_path / 'out.tar'}",
            f"oci:{layout}:v2")
    other = ContentStore(tmp_path / "other")
    (imported,) = import_archive(other, layout)
    assert imported.descriptor.digest == image.digest
    assert imported.name is None, "a bare tag does not name an image"
    _assert_holds(other, image)
    # the same layout as a tar, and skopeo's own oci-archive with a full name
    assert import_archive(ContentStore(tmp_path / "third"),
                          _tar_of(layout, tmp_path / "layout.tar"))[0].descriptor == image
    _skopeo("copy", "--preserve-digests", f"oci:{layout}:v2",
            f"oci-archive:{tmp_path / 'named.tar'}:localhost/a/b:c")
    (named,) = import_archive(ContentStore(tmp_path / "fourth"), tmp_path / "named.tar")
    assert named == ImportedImage("localhost/a/b:c", image)


@needs_skopeo
def test_docker_archive_from_skopeo(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    export_archive(store, image, "cdfs.local/app:latest", tmp_path / "out.tar")
    docker_tar = tmp_path / "docker.tar"
    _skopeo("copy", f"oci-archive:{tmp_path / 'out.tar'}", f"docker-archive:{docker_tar}:app:v1")
    other = ContentStore(tmp_path / "other")
    (imported,) = import_archive(other, docker_tar)
    assert imported.name == "docker.io/library/app:v1"
    assert imported.descriptor.media_type == mediatypes.DOCKER_MANIFEST
    _assert_holds(other, imported.descriptor)
    ours = parse_image_manifest(store.read(image.digest))
    theirs = parse_image_manifest(other.read(imported.descriptor.digest))
    assert theirs.config.digest == ours.config.digest
    assert [layer.media_type for layer in theirs.layers] == [mediatypes.DOCKER_LAYER] * 2
    # docker archives hold uncompressed layers: the plain one is byte-identical
    assert theirs.layers[1].digest == ours.layers[1].digest


def _docker_archive(path: Path, layers: list[bytes], diff_ids: list[str],
                    repo_tags: list[str], layer_names: list[str] | None = None) -> Path:
    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    names = layer_names or [f"layer{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": repo_tags, "Layers": names}])
    with tarfile.open(path, "w") as tar:
        members = {"manifest.json": manifest.encode(), "config.json": config}
        members.update(zip(names, layers, strict=False))
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _layer_tar(content: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("file")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_docker_archive_with_gzip_layer_and_two_tags(store: ContentStore, tmp_path: Path) -> None:
    plain = _layer_tar(b"one")
    zipped = gzip.compress(_layer_tar(b"two"), mtime=0)
    archive = _docker_archive(tmp_path / "d.tar", [plain, zipped],
                              [_sha256(plain), _sha256(_layer_tar(b"two"))],
                              ["busybox:1", "example.com/x:2"])
    first, second = import_archive(store, archive)
    assert (first.name, second.name) == ("docker.io/library/busybox:1", "example.com/x:2")
    assert first.descriptor == second.descriptor
    manifest = parse_image_manifest(store.read(first.descriptor.digest))
    assert [layer.media_type for layer in manifest.layers] == [
        mediatypes.DOCKER_LAYER, mediatypes.DOCKER_LAYER_GZIP]
    assert manifest.layers[1].digest == _sha256(zipped)


def test_docker_archive_layer_not_matching_diff_id(store: ContentStore, tmp_path: Path) -> None:
    layer = _layer_tar(b"one")
    archive = _docker_archive(tmp_path / "d.tar", [layer], [_sha256(b"other")], ["x:1"])
    with pytest.raises(InvalidArgument, match="diff_id"):
        import_archive(store, archive)
    assert store.ingests() == []


def test_docker_archive_path_tricks(store: ContentStore, tmp_path: Path) -> None:
    layer = _layer_tar(b"one")
    archive = _docker_archive(tmp_path / "d.tar", [layer], [_sha256(layer)], ["x:1"],
                              layer_names=["../../etc/passwd"])
    with pytest.raises(InvalidArgument, match="unsafe path"):
        import_archive(store, archive)
    assert list(store.list()) == []


def _layout_dir(store: ContentStore, image: Descriptor, tmp_path: Path) -> Path:
    archive = tmp_path / "export.tar"
    export_archive(store, image, "cdfs.local/app:latest", archive)
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    return layout


def test_corrupt_blob_is_refused(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    layout = _layout_dir(store, image, tmp_path)
    layer = parse_image_manifest(store.read(image.digest)).layers[0]
    blob = layout / "blobs/sha256" / layer.digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    other = ContentStore(tmp_path / "other")
    for source in (layout, _tar_of(layout, tmp_path / "corrupt.tar")):
        with pytest.raises(InvalidArgument, match="expected"):
            import_archive(other, source)
        assert not other.has(layer.digest)
        assert other.ingests() == []


def test_missing_blob_is_refused(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    layout = _layout_dir(store, image, tmp_path)
    config = parse_image_manifest(store.read(image.digest)).config
    (layout / "blobs/sha256" / config.digest.split(":")[1]).unlink()
    with pytest.raises(InvalidArgument, match="lacks blob"):
        import_archive(ContentStore(tmp_path / "other"), layout)


def test_descriptor_size_lie_is_refused(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    layout = _layout_dir(store, image, tmp_path)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["size"] -= 1
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(InvalidArgument):
        import_archive(ContentStore(tmp_path / "other"), layout)


@pytest.mark.parametrize("member", ["../evil", "/abs/path", "blobs/sha256/../../../x"])
def test_tar_with_path_tricks_is_refused(store: ContentStore, tmp_path: Path,
                                         member: str) -> None:
    image = _image(store)
    layout = _layout_dir(store, image, tmp_path)
    archive = _tar_of(layout, tmp_path / "tricky.tar")
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(member)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidArgument, match="unsafe path"):
        import_archive(ContentStore(tmp_path / "other"), archive)


def test_not_an_archive(store: ContentStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument):
        import_archive(store, tmp_path / "empty")
    (tmp_path / "junk").write_bytes(b"junk" * 100)
    with pytest.raises(InvalidArgument):
        import_archive(store, tmp_path / "junk")
    with pytest.raises(NotFound):
        import_archive(store, tmp_path / "absent")


def test_export_of_an_incomplete_image(store: ContentStore, tmp_path: Path) -> None:
    image = _image(store)
    store.delete(parse_image_manifest(store.read(image.digest)).layers[0].digest)
    with pytest.raises(NotFound):
        export_archive(store, image, "x:1", tmp_path / "out.tar")
    assert list(tmp_path.iterdir()) == [tmp_path / "store"]
    with pytest.raises(NotFound):
        export_archive(store, _image(store), "x:1", tmp_path / "absent" / "out.tar")
    with pytest.raises(InvalidArgument):
        export_archive(store, _image(store), "Not A Name", tmp_path / "out.tar")


@needs_skopeo
def test_multi_platform_index(store: ContentStore, tmp_path: Path) -> None:
    amd64 = _image(store, b"amd64", architecture="amd64")
    arm64 = _image(store, b"arm64", architecture="arm64", variant="v8")
    index = build_index(store, [amd64, arm64])
    export_archive(store, index, "cdfs.local/multi:1", tmp_path / "multi.tar")
    (imported,) = import_archive(ContentStore(tmp_path / "direct"), tmp_path / "multi.tar")
    assert imported == ImportedImage("cdfs.local/multi:1", index)
    layout = tmp_path / "layout"
    _skopeo("copy", "--all", "--preserve-digests", f"oci-archive:{tmp_path / 'multi.tar'}",
            f"oci:{layout}:1")
    other = ContentStore(tmp_path / "other")
    (copied,) = import_archive(other, layout)
    assert copied.descriptor.digest == index.digest
    assert copied.descriptor.media_type == mediatypes.OCI_INDEX
    _assert_holds(other, index)
    assert _blobs(other, index) == _blobs(store, index)
