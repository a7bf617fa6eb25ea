"""A path whose target can change is never served from a stale page cache: after an
image is removed and the same ref pulled again, `cat manifest.json` shows the new bytes."""

import os
import subprocess
from pathlib import Path

from support import Daemon

from content.build import BuildConfig, Entry, Layer, build_image
from content.reference import parse_reference
from content.registry.push import push
from content.store import ContentStore


def _publish(tmp_path: Path, registry: str, ref: str, fill: bytes) -> str:
    """An image of one uncompressed layer: two of them with different fills have
    manifests of the same size (so a size change cannot hide a stale cache)."""
    store = ContentStore(tmp_path / f"build-{fill.decode()}")
    layer = Layer([Entry.file("data", fill * 4096)], compression="none")
    root = build_image(store, [layer], BuildConfig(cmd=("sh",)))
    push(store, root, parse_reference(f"{registry}/{ref}"))
    return store.read(root.digest).decode()


def _ctl(daemon: Daemon, line: str) -> None:
    daemon.sh(f'echo "{line}" > "$M/namespaces/default/images/ctl"', timeout=120)


def _cat(path: Path) -> str:
    return subprocess.run(["cat", str(path)], capture_output=True, text=True, check=True,
                          timeout=10).stdout


def test_a_pulled_again_ref_serves_the_new_manifest(
        daemon: Daemon, registry: str, tmp_path: Path) -> None:
    ref = f"{registry}/again:1"
    first = _publish(tmp_path, registry, "again:1", b"a")
    _ctl(daemon, f"pull {ref}")
    manifest = daemon.path("namespaces", "default", "images", ref, "manifest.json")
    held = os.open(manifest, os.O_RDONLY)  # keeps the inode, and its page cache, alive
    try:
        assert _cat(manifest) == first
        second = _publish(tmp_path, registry, "again:1", b"b")
        assert len(second) == len(first) and second != first
        _ctl(daemon, f"rm {ref}")
        _ctl(daemon, f"pull {ref}")
        assert _cat(manifest) == second
        assert _cat(daemon.path("namespaces", "default", "images", ref, "config.json"))
    finally:
        os.close(held)
