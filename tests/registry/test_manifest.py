"""Manifest, index and config parsing, platform selection and reachability: pure functions."""

import hashlib
import json
from typing import Any

import pytest

from base.errors import InvalidArgument, NotFound
from content import mediatypes as mt
from content.descriptor import Descriptor
from content.manifest import (
    MAX_MANIFEST_SIZE,
    ImageIndex,
    ImageManifest,
    Platform,
    compatible,
    host_platform,
    normalize,
    parse_config,
    parse_image_manifest,
    parse_manifest,
    parse_platform,
    select_manifest,
    walk,
)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _desc(media_type: str, data: bytes, platform: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"mediaType": media_type, "digest": _digest(data), "size": len(data)}
    if platform:
        obj["platform"] = parse_platform(platform).to_json()
    return obj


CONFIG = json.dumps({
    "architecture": "arm", "os": "linux", "variant": "v7",
    "config": {"Entrypoint": ["/bin/sh"], "Cmd": None, "Env": ["PATH=/bin"],
               "WorkingDir": "/w", "User": "1000:1000", "Labels": {"a": "b"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
}).encode()
LAYER = b"layer bytes"


def _manifest(media_type: str = mt.OCI_MANIFEST, config: bytes = CONFIG) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": _desc(mt.OCI_CONFIG, config), "layers": [_desc(mt.OCI_LAYER_GZIP, LAYER)],
        "annotations": {"k": "v"},
    }).encode()


def test_parse_manifest() -> None:
    parsed = parse_manifest(_manifest())
    assert isinstance(parsed, ImageManifest)
    assert parsed.config.digest == _digest(CONFIG)
    assert [layer.size for layer in parsed.layers] == [len(LAYER)]
    assert parsed.annotations == {"k": "v"}
    docker = parse_image_manifest(_manifest(mt.DOCKER_MANIFEST), mt.DOCKER_MANIFEST)
    assert docker.media_type == mt.DOCKER_MANIFEST


def test_media_type_from_descriptor_or_shape() -> None:
    doc = json.loads(_manifest())
    del doc["mediaType"]
    assert parse_manifest(json.dumps(doc).encode()).media_type == mt.OCI_MANIFEST
    assert parse_manifest(json.dumps(doc).encode(), mt.DOCKER_MANIFEST).media_type == \
        mt.DOCKER_MANIFEST
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert isinstance(parse_manifest(index), ImageIndex)


@pytest.mark.parametrize("data", [
    b"not json", b"[]", b'{"schemaVersion": 1, "mediaType": "' + mt.OCI_MANIFEST.encode() + b'"}',
    json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_V1_SIGNED}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                "manifests": [{"size": 1}]}).encode(),
    json.dumps({"schemaVersion": 2}).encode(),
    b" " * (MAX_MANIFEST_SIZE + 1),
])
def test_refuses_bad_manifests(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        parse_manifest(data)


def test_refuses_a_document_of_both_shapes() -> None:
    """GHSA-5j5w-g665-5m35: a manifest that also lists manifests, or an index that also
    names a config or layers, reads as different images to different parsers."""
    manifest = json.loads(_manifest())
    with pytest.raises(InvalidArgument, match="manifests as an index"):
        parse_manifest(json.dumps({**manifest, "manifests": []}).encode())
    for extra in ({"config": manifest["config"]}, {"layers": manifest["layers"]}):
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [], **extra}
        with pytest.raises(InvalidArgument, match="config or layers"):
            parse_manifest(json.dumps(index).encode())


def test_refuses_media_type_mismatch() -> None:
    with pytest.raises(InvalidArgument, match="served as"):
        parse_manifest(_manifest(), mt.OCI_INDEX)
    with pytest.raises(InvalidArgument):
        parse_image_manifest(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                         "manifests": []}).encode())


def test_parse_config() -> None:
    config = parse_config(CONFIG)
    assert config.platform == Platform("linux", "arm", "v7")
    assert config.entrypoint == ("/bin/sh",)
    assert config.cmd == ()
    assert config.env == ("PATH=/bin",)
    assert (config.working_dir, config.user) == ("/w", "1000:1000")
    assert config.labels == {"a": "b"}
    assert config.diff_ids == ("sha256:" + "1" * 64,)
    with pytest.raises(InvalidArgument):
        parse_config(json.dumps({"config": {"Cmd": "sh -c x"}}).encode())
    with pytest.raises(InvalidArgument):
        parse_config(json.dumps({"rootfs": {"diff_ids": ["md5:x"]}}).encode())


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/x86_64/v1", Platform("linux", "amd64")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/arm64/v8", Platform("linux", "arm64")),
    ("linux/arm", Platform("linux", "arm", "v7")),
    ("Linux/armhf", Platform("linux", "arm", "v7")),
    ("linux/arm/6", Platform("linux", "arm", "v6")),
])
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64", ""])
def test_parse_platform_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_platform(text)


def test_compatibility_order() -> None:
    assert [str(p) for p in compatible(parse_platform("linux/arm64"))] == [
        "linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert [str(p) for p in compatible(parse_platform("linux/amd64/v3"))] == [
        "linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]
    assert [str(p) for p in compatible(parse_platform("linux/arm/v6"))] == [
        "linux/arm/v6", "linux/arm/v5"]


def test_host_platform_is_normalisable() -> None:
    host = host_platform()
    assert host.os == "linux"
    assert compatible(host)[0] == normalize(host)


def _index(*platforms: str | None) -> ImageIndex:
    entries = [_desc(mt.OCI_MANIFEST, f"m{i}".encode(), p) for i, p in enumerate(platforms)]
    parsed = parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                        "manifests": entries}).encode())
    assert isinstance(parsed, ImageIndex)
    return parsed


def _pick(index: ImageIndex, wanted: str) -> int:
    chosen = select_manifest(index, parse_platform(wanted))
    return index.manifests.index(chosen)


def test_select_exact_then_fallback() -> None:
    index = _index("linux/arm/v5", "linux/amd64", "linux/arm/v7", "linux/arm64/v8", None)
    assert _pick(index, "linux/arm64") == 3
    assert _pick(index, "linux/aarch64/v8") == 3
    assert _pick(index, "linux/amd64") == 1
    assert _pick(index, "linux/arm/v7") == 2
    assert _pick(index, "linux/arm/v6") == 0
    assert _pick(index, "linux/s390x") == 4    # only the platform-less entry fits
    assert _pick(_index("linux/arm/v6", "linux/arm/v7"), "linux/arm64") == 1
    assert _pick(_index("linux/386", "linux/amd64"), "linux/amd64") == 1
    assert _pick(_index("linux/amd64", "linux/amd64"), "linux/amd64") == 0


def test_select_refuses_when_nothing_fits() -> None:
    with pytest.raises(NotFound, match="linux/s390x"):
        select_manifest(_index("linux/amd64", "windows/amd64"), parse_platform("linux/s390x"))
    with pytest.raises(NotFound):
        select_manifest(_index("linux/arm/v7"), parse_platform("linux/arm/v6"))


def test_walk() -> None:
    blobs: dict[str, bytes] = {}

    def put(data: bytes) -> bytes:
        blobs[_digest(data)] = data
        return data

    config, layer = put(CONFIG), put(LAYER)
    manifest = put(_manifest(config=config))
    other = put(_manifest(config=put(b"{}")))
    missing = _manifest(config=b'{"x": 1}')
    index = put(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        _desc(mt.OCI_MANIFEST, manifest, "linux/amd64"),
        _desc(mt.OCI_MANIFEST, other, "linux/arm64"),
        _desc(mt.OCI_MANIFEST, missing, "linux/386"),
    ]}).encode())
    reads: list[str] = []

    def read(digest: str) -> bytes:
        reads.append(digest)
        if digest not in blobs:
            raise NotFound(digest)
        return blobs[digest]

    root = Descriptor(mt.OCI_INDEX, _digest(index), len(index))
    found = walk(root, read, skip_missing=True)
    assert [d.digest for d in found] == [
        _digest(manifest), _digest(config), _digest(layer), _digest(other), _digest(b"{}"),
        _digest(missing)]
    assert _digest(layer) not in reads and _digest(config) not in reads
    with pytest.raises(NotFound):
        walk(root, read)
    assert walk(Descriptor(mt.OCI_LAYER, _digest(layer), len(layer)), read) == []
