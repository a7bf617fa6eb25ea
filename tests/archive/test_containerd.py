"""Archives exchanged with a real containerd (`ctr images import` / `export`), started
here on a private root, state and socket and killed by pid afterwards."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from content.archive import export_archive, import_archive
from content.build import BuildConfig, Entry, Layer, build_image, build_index
from content.store import ContentStore

pytestmark = pytest.mark.skipif(
    shutil.which("containerd") is None or shutil.which("ctr") is None, reason="needs containerd")


@pytest.fixture
def ctr() -> Iterator[list[str]]:
    """The ctr command line for a containerd of our own. Its directory is short because
    a unix socket path must fit in 108 bytes."""
    home = Path(tempfile.mkdtemp(prefix="cdfs-ctrd-", dir="/tmp"))
    socket = home / "sock"
    config = home / "config.toml"
    config.write_text(f'version = 2\nroot = "{home}/root"\nstate = "{home}/state"\n'
                      'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                      f'[grpc]\n  address = "{socket}"\n')
    with open(home / "log", "wb") as log:
        daemon = subprocess.Popen(["containerd", "--config", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not socket.exists():
            assert daemon.poll() is None, (home / "log").read_text()
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.05)
        yield ["ctr", "--address", str(socket), "--namespace", "cdfs-test"]
    finally:
        daemon.kill()
        daemon.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_ctr_imports_our_export_and_we_import_its_export(ctr: list[str], tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    layers = [Layer([Entry.dir("etc"), Entry.file("etc/motd", b"hi\n")])]
    amd64 = build_image(store, layers, BuildConfig(cmd=["sh"], architecture="amd64"))
    arm64 = build_image(store, layers, BuildConfig(cmd=["sh"], architecture="arm64",
                                                   variant="v8"))
    index = build_index(store, [amd64, arm64])
    ours = tmp_path / "ours.tar"
    export_archive(store, index, "cdfs.local/multi:v1", ours)
    _run([*ctr, "images", "import", "--all-platforms", "--no-unpack", str(ours)])
    listing = _run([*ctr, "images", "ls"])
    assert "cdfs.local/multi:v1" in listing and index.digest in listing

    theirs = tmp_path / "theirs.tar"
    _run([*ctr, "images", "export", "--all-platforms", str(theirs), "cdfs.local/multi:v1"])
    other = ContentStore(tmp_path / "other")
    imported = import_archive(other, theirs)
    assert [(image.name, image.descriptor.digest) for image in imported] == [
        ("cdfs.local/multi:v1", index.digest)]
    assert {blob.digest for blob in other.list()} == {blob.digest for blob in store.list()}
