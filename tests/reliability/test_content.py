"""Pulls that must be refused leave no image and say why: a platform the index lacks,
a document of both manifest and index shape."""

import errno
import json
import os
from dataclasses import replace
from pathlib import Path

from support import Daemon, write_errno

from content import mediatypes as mt
from content.build import BuildConfig, Entry, Layer, build_image, build_index
from content.descriptor import Descriptor
from content.reference import parse_reference
from content.registry.push import push
from content.store import ContentStore


def _pull(daemon: Daemon, line: str) -> int:
    """Write a pull or import line to images/ctl; the errno it failed with, or 0."""
    return write_errno(daemon.path("namespaces", "default", "images", "ctl"), line)


def _images(daemon: Daemon) -> list[str]:
    return sorted(os.listdir(daemon.path("namespaces", "default", "images")))


def test_a_platform_less_entry_counts_only_if_its_config_fits(
        daemon: Daemon, registry: str, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "build")
    amd64 = build_image(store, [Layer([Entry.file("arch", b"amd64\n")])],
                        BuildConfig(os="linux", architecture="amd64"))
    index = build_index(store, [replace(amd64, platform=None)])
    push(store, index, parse_reference(f"{registry}/bare:1"))
    before = _images(daemon)
    assert _pull(daemon, f"pull {registry}/bare:1 platform=linux/s390x") == errno.ENOENT
    err = daemon.path("namespaces", "default", "images", "err").read_text()
    assert 'no manifest for platform "linux/s390x"' in err
    assert _images(daemon) == before
    assert _pull(daemon, f"pull {registry}/bare:1 platform=linux/amd64") == 0
    assert _images(daemon) != before


def _layout(path: Path, store: ContentStore, root: Descriptor) -> Path:
    """An OCI layout on the host holding every blob of `store` and naming `root`."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in store.list():
        (blobs / blob.digest[7:]).write_bytes(store.read(blob.digest))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [root.to_json()]}))
    return path


def test_a_manifest_that_is_also_an_index_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "build")
    image = build_image(store, [Layer([Entry.file("f", b"x\n")])], BuildConfig())
    both = json.loads(store.read(image.digest))
    both["manifests"] = []
    data = json.dumps(both).encode()
    layout = _layout(tmp_path / "layout", store,
                     Descriptor(mt.OCI_MANIFEST, store.add(data), len(data)))
    before = _images(daemon)
    assert _pull(daemon, f"import {layout} example.com/both:1") == errno.EINVAL
    err = daemon.path("namespaces", "default", "images", "err").read_text()
    assert "manifests as an index would" in err
    assert _images(daemon) == before
