"""A disk that fills: a pull with --root on a small tmpfs fails with ENOSPC and a plain
err line, leaves the root as it was, and the daemon goes on serving: it runs a
container afterwards and frees space at once when the user deletes something."""

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Daemon, mount_id, write_errno
from support import write as _write

from content import mediatypes as mt
from content.build import BuildConfig, Entry, Layer, build_image
from content.reference import parse_reference
from content.registry.push import push
from content.store import ContentStore

MB = 1 << 20


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[Path]:
    """A 64 MB tmpfs, unmounted at teardown (after the daemon on it has stopped)."""
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(root)],
                   check=True, timeout=10)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False, timeout=10)


def _publish(tmp_path: Path, registry: str, name: str, layers: int, size: int) -> Path:
    """An image of `layers` uncompressed layers of `size` random bytes each, pushed to
    the registry and laid out as an OCI layout directory (returned) for import."""
    store = ContentStore(tmp_path / f"build-{name.replace(':', '_')}")
    built = [Layer([Entry.file(f"data{i}", os.urandom(size))], compression="none")
             for i in range(layers)]
    root = build_image(store, built, BuildConfig(cmd=("sh",)))
    push(store, root, parse_reference(f"{registry}/{name}"))
    layout = tmp_path / f"layout-{name.replace(':', '_')}"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    for blob in store.list():
        (layout / "blobs" / "sha256" / blob.digest[7:]).write_bytes(store.read(blob.digest))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [root.to_json()]}))
    return layout


def _ctl(daemon: Daemon, path: str, line: str) -> int:
    """Write a line to a ctl file: the errno it failed with, or 0."""
    return write_errno(daemon.path(*path.split("/")), line)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _layout(root: Path) -> dict[str, set[str]]:
    """What a pull may leave under the root: blobs, ingests, snapshot directories (of
    the snapshotter in use, overlay or native)."""
    (snapshots,) = root.glob("snapshots/*/snapshots")
    return {str(part): set(os.listdir(part))
            for part in (root / "content/blobs/sha256", root / "content/ingest", snapshots)}



def test_a_pull_that_fills_the_disk_says_so_and_leaves_the_root_as_it_was(
        small_root: Path, make_daemon: Callable[..., Daemon], registry: str,
        tmp_path: Path) -> None:
    assert mount_id(small_root) is not None
    _publish(tmp_path, registry, "medium:1", 1, 12 * MB)
    huge = _publish(tmp_path, registry, "huge:1", 3, 16 * MB)
    daemon = make_daemon(root=small_root)
    images = "namespaces/default/images"
    assert _ctl(daemon, f"{images}/ctl", f"pull {registry}/medium:1") == 0
    before, free_before = _layout(small_root), _free(small_root)

    assert _ctl(daemon, f"{images}/ctl", f"pull {registry}/huge:1") == errno.ENOSPC
    err = daemon.path(*images.split("/"), "err").read_text()
    assert f"no space left on {small_root} while pulling {registry}/huge:1: " in err, err
    assert "bytes needed" in err and "internal error" not in err
    assert _layout(small_root) == before  # no blob, ingest or snapshot of it is left
    assert abs(_free(small_root) - free_before) < 2 * MB
    assert f"{registry}/huge:1" not in os.listdir(daemon.path(*images.split("/")))
    assert _ctl(daemon, f"{images}/ctl", f"import {huge} local/huge:1") == errno.ENOSPC
    err = daemon.path(*images.split("/"), "err").read_text()
    assert f"no space left on {small_root} while importing {huge}: " in err, err
    assert _layout(small_root) == before

    container = daemon.path("namespaces", "default", "containers", "after")
    container.mkdir()  # the daemon goes on serving: it runs a container
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", '{"process": {"args": ["echo", "still here"]}}')
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0" and (container / "stdout").read_text() == "still here\n"

    assert _ctl(daemon, f"{images}/ctl", f"rm {registry}/medium:1") == 0
    assert _ctl(daemon, "ctl", "gc") == 0  # frees at once what the user deleted
    assert _free(small_root) - free_before > 20 * MB


def _fill(root: Path) -> Path:
    """A file taking every free byte of `root`'s filesystem."""
    filler = root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for size in (MB, 65536, 4096, 1):  # down to the last partial block
            with contextlib.suppress(OSError):
                while os.write(fd, bytes(size)):
                    pass
    finally:
        os.close(fd)
    assert _free(root) == 0
    return filler


def test_a_container_whose_snapshot_finds_the_disk_full_says_so_and_leaves_nothing(
        small_root: Path, make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(root=small_root)
    containers = daemon.path("namespaces", "default", "containers")
    container = containers / "full"
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    snapshots = set(os.listdir(daemon.path("namespaces", "default", "snapshots")))
    on_disk = _layout(small_root)
    filler = _fill(small_root)

    config = '{"process": {"args": ["echo", "made"]}}'
    assert write_errno(container / "config.json", config) == errno.ENOSPC
    err = (container / "err").read_text()
    assert f"no space left on {small_root} while preparing the snapshot of container " \
           f"full: " in err and "bytes free" in err, err
    assert (container / "status").read_text() == "empty\n"
    assert set(os.listdir(daemon.path("namespaces", "default", "snapshots"))) == snapshots
    assert _layout(small_root) == on_disk  # no snapshot directory is left either

    filler.unlink()  # the daemon went on serving: with room, the same write creates it
    _write(container / "config.json", config)
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0" and (container / "stdout").read_text() == "made\n"
