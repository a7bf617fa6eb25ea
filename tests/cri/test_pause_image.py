"""The pause image: built from the pause binary, imported through the tree, once."""

import json
import subprocess
from pathlib import Path

import pytest
from support import Daemon, wait_until

from cdfs.client.tree import Tree
from cdfs.cri import pause
from cdfs.cri.pause import BINARY, find_or_build
from cdfs.cri.pause.image import PAUSE_IMAGE, ensure_pause_image


def test_imported_once_and_runs(daemon: Daemon, tmp_path: Path) -> None:
    tree = Tree(daemon.mount, "default")
    digest = ensure_pause_image(tree, tmp_path / "scratch")
    image = tree.images / PAUSE_IMAGE
    assert (image / "digest").read_text().strip() == digest
    config = json.loads((image / "config.json").read_text())["config"]
    assert config["Entrypoint"] == ["/pause"]
    assert config["User"] == "65535:65535"
    left = [p.name for p in (tmp_path / "scratch").iterdir()]
    assert left == ([] if BINARY.is_file() else ["pause"]), "the build left files behind"

    mtime = (image / "digest").stat().st_mtime_ns
    assert ensure_pause_image(tree, tmp_path / "scratch") == digest
    assert (image / "digest").stat().st_mtime_ns == mtime, "imported a second time"

    # It runs as the pause of a pod does: waits, and exits 0 on TERM.
    box = tree.container("pause-test")
    box.mkdir()
    try:
        (box / "image").write_text(PAUSE_IMAGE)
        (box / "config.json").write_text("{}")
        (box / "ctl").write_text("start\n")
        assert (box / "status").read_text().strip() == "running"
        subprocess.run(["sleep", "0.3"], check=True)
        assert (box / "status").read_text().strip() == "running"
        (box / "ctl").write_text("stop 5\n")
        assert wait_until(lambda: (box / "status").read_text().strip() == "stopped")
        assert (box / "exit").read_text().strip() == "0"
    finally:
        subprocess.run(["sh", "-c", f"echo 'kill KILL' > {box}/ctl"], check=False, timeout=10)
        wait_until(lambda: (box / "status").read_text().strip() != "running", timeout=10)
        box.rmdir()


def test_a_checkout_without_make_builds_its_own(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pause, "BINARY", tmp_path / "not-built")
    built = find_or_build(tmp_path / "work")
    assert built == tmp_path / "work" / "pause"
    assert built.stat().st_mode & 0o111
    mtime = built.stat().st_mtime_ns
    assert find_or_build(tmp_path / "work") == built
    assert built.stat().st_mtime_ns == mtime, "built again"
