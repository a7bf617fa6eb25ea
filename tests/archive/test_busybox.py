"""The busybox image: stable digest, and a layer holding a busybox that runs."""

import gzip
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from base.errors import NotFound
from content.busybox import BUSYBOX, build_busybox_image
from content.manifest import parse_config, parse_image_manifest
from content.store import ContentStore

pytestmark = pytest.mark.skipif(not BUSYBOX.is_file(), reason="needs busybox-static")


def test_digest_is_stable_across_stores(tmp_path: Path) -> None:
    first = build_busybox_image(ContentStore(tmp_path / "one"))
    second = build_busybox_image(ContentStore(tmp_path / "two"))
    assert first.digest == second.digest and first.size == second.size


def test_layer_runs_busybox(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    desc = build_busybox_image(store)
    manifest = parse_image_manifest(store.read(desc.digest))
    config = parse_config(store.read(manifest.config.digest))
    assert config.cmd == ("sh",)
    assert any(env.startswith("PATH=") and "/bin" in env for env in config.env)
    (layer,) = manifest.layers
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with gzip.open(store.blob_path(layer.digest)) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        tar.extractall(rootfs, filter="fully_trusted")
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert (rootfs / "bin/ls").is_symlink()
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "nobody:x:65534" in (rootfs / "etc/passwd").read_text()
    assert "root:x:0:" in (rootfs / "etc/group").read_text()
    assert all((rootfs / name).is_dir() for name in ("proc", "sys", "dev", "root"))
    result = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", "echo hi; ls /bin | wc -l"],
                            capture_output=True, timeout=30, check=True)
    lines = result.stdout.decode().split()
    assert lines[0] == "hi" and int(lines[1]) > 100


def test_missing_binary_is_not_found(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    with pytest.raises(NotFound):
        build_busybox_image(store, tmp_path / "no-busybox")
    assert list(store.list()) == []
