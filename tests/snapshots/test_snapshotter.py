"""One suite for every snapshotter (containerd's core/snapshots/testsuite spirit):
each test runs against overlay and native, mounting for real with mount(8)."""

import errno
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from base.errors import AlreadyExists, Busy, InvalidArgument, NotFound
from content.snapshots import (
    NativeSnapshotter,
    OverlaySnapshotter,
    Snapshotter,
    open_snapshotter,
    overlay_supported,
)
from runtime.mounts import compact_lowerdirs


def reopen(snapshotter: Snapshotter) -> Snapshotter:
    snapshotter.close()
    return type(snapshotter)(snapshotter.root)


def test_prepare_commit_view_chain(snapshotter: Snapshotter, mounted) -> None:
    with mounted(snapshotter.prepare("default/base")) as root:
        (root / "etc").mkdir()
        (root / "etc/os-release").write_text("base")
        (root / "etc/doomed").write_text("x")
        (root / "bin").mkdir()
    snapshotter.commit("default/sha256:base", "default/base")

    with mounted(snapshotter.prepare("default/top", "default/sha256:base")) as root:
        assert (root / "etc/os-release").read_text() == "base"
        (root / "etc/doomed").unlink()
        (root / "etc/os-release").write_text("top")
        os.rmdir(root / "bin")
        (root / "new").write_text("new")
    snapshotter.commit("default/sha256:top", "default/top")

    with mounted(snapshotter.view("default/view", "default/sha256:top")) as root:
        assert sorted(os.listdir(root)) == ["etc", "new"]
        assert sorted(os.listdir(root / "etc")) == ["os-release"]
        assert (root / "etc/os-release").read_text() == "top"
        with pytest.raises(OSError) as refused:
            (root / "more").write_text("no")
        assert refused.value.errno == errno.EROFS

    with mounted(snapshotter.view("default/base-view", "default/sha256:base")) as root:
        assert sorted(os.listdir(root / "etc")) == ["doomed", "os-release"]
        assert (root / "etc/os-release").read_text() == "base"
        with pytest.raises(OSError) as refused:
            (root / "etc/doomed").unlink()
        assert refused.value.errno == errno.EROFS


def test_stat_and_list(snapshotter: Snapshotter) -> None:
    snapshotter.prepare("a", labels={"purpose": "test"})
    snapshotter.commit("A", "a", labels={"more": "1"})
    snapshotter.prepare("b", "A")
    snapshotter.view("v", "A")
    committed = snapshotter.stat("A")
    assert (committed.kind, committed.name, committed.parent) == ("committed", "A", None)
    assert committed.labels == {"purpose": "test", "more": "1"}
    assert snapshotter.stat("b").kind == "active" and snapshotter.stat("b").parent == "A"
    assert snapshotter.stat("v").kind == "view"
    assert [(i.name, i.kind) for i in snapshotter.list()] == [
        ("A", "committed"), ("b", "active"), ("v", "view")]
    with pytest.raises(NotFound):
        snapshotter.stat("a")


def test_lifecycle_rules(snapshotter: Snapshotter) -> None:
    snapshotter.prepare("a")
    with pytest.raises(AlreadyExists):
        snapshotter.prepare("a")
    with pytest.raises(InvalidArgument, match="not committed"):
        snapshotter.prepare("b", "a")
    with pytest.raises(NotFound):
        snapshotter.prepare("b", "missing")
    snapshotter.commit("A", "a")
    with pytest.raises(InvalidArgument, match="committed"):
        snapshotter.mounts("A")
    with pytest.raises(NotFound):
        snapshotter.commit("B", "a")
    snapshotter.prepare("b", "A")
    with pytest.raises(AlreadyExists):
        snapshotter.commit("A", "b")
    assert snapshotter.stat("b").kind == "active"  # a failed commit changes nothing
    snapshotter.view("v", "A")
    with pytest.raises(InvalidArgument, match="not active"):
        snapshotter.commit("V", "v")
    with pytest.raises(InvalidArgument, match="not active"):
        snapshotter.apply_dir("v")
    with pytest.raises(InvalidArgument):
        snapshotter.prepare("")
    before = snapshotter.list()
    with pytest.raises(Busy):
        snapshotter.remove("A")
    assert snapshotter.list() == before
    snapshotter.remove("b")
    snapshotter.remove("v")
    snapshotter.remove("A")
    assert snapshotter.list() == []
    assert os.listdir(snapshotter.snapshots_dir) == []
    with pytest.raises(NotFound):
        snapshotter.remove("A")


def test_commit_onto_a_parent(snapshotter: Snapshotter, mounted) -> None:
    """A layer applied before its parent was committed is committed onto it: overlay
    only (native snapshots start as a copy of their parent), onto a committed parent,
    and only for a snapshot prepared without one; a refused commit changes nothing."""
    snapshotter.prepare("a")
    (snapshotter.apply_dir("a") / "low").write_text("low")
    snapshotter.prepare("b")
    (snapshotter.apply_dir("b") / "high").write_text("high")
    with pytest.raises(InvalidArgument,
                       match="not committed" if snapshotter.detached_layers else "copies"):
        snapshotter.commit("B", "b", parent="a")
    snapshotter.commit("A", "a")
    if not snapshotter.detached_layers:
        with pytest.raises(InvalidArgument, match="copies"):
            snapshotter.commit("B", "b", parent="A")
        assert snapshotter.stat("b").kind == "active"
        return
    with pytest.raises(NotFound):
        snapshotter.commit("B", "b", parent="missing")
    snapshotter.prepare("c", "A")
    with pytest.raises(InvalidArgument, match="has a parent"):
        snapshotter.commit("C", "c", parent="A")
    assert snapshotter.stat("b").kind == "active" and snapshotter.stat("b").parent is None
    snapshotter.commit("B", "b", parent="A")
    assert snapshotter.stat("B").parent == "A"
    with pytest.raises(Busy):
        snapshotter.remove("A")
    with mounted(snapshotter.view("v", "B")) as root:
        assert sorted(os.listdir(root)) == ["high", "low"]


def test_usage_counts_own_files(snapshotter: Snapshotter, mounted) -> None:
    with mounted(snapshotter.prepare("a")) as root:
        (root / "big").write_bytes(os.urandom(1 << 20))
        os.link(root / "big", root / "big-link")
        (root / "small").write_bytes(b"s")
    usage = snapshotter.usage("a")
    assert usage.size >= 1 << 20
    assert usage.inodes == 2


def test_state_survives_reopening(snapshotter: Snapshotter, mounted) -> None:
    with mounted(snapshotter.prepare("k/sha256:1")) as root:
        (root / "file").write_text("kept")
    snapshotter.commit("n/sha256:1", "k/sha256:1")
    mounts = snapshotter.prepare("k/2", "n/sha256:1")
    again = reopen(snapshotter)
    try:
        assert [i.name for i in again.list()] == ["n/sha256:1", "k/2"]
        assert again.mounts("k/2") == mounts
        with mounted(again.mounts("k/2")) as root:
            assert (root / "file").read_text() == "kept"
    finally:
        again.close()


def test_crash_leftovers_are_cleaned_on_open(snapshotter: Snapshotter) -> None:
    snapshotter.prepare("real")
    (snapshotter.snapshots_dir / "new-half-made" / "fs").mkdir(parents=True)
    (snapshotter.snapshots_dir / "9999" / "fs").mkdir(parents=True)
    again = reopen(snapshotter)
    try:
        assert os.listdir(again.snapshots_dir) == [str(again._meta.get("real").id)]
        again.prepare("next")
        assert len(os.listdir(again.snapshots_dir)) == 2
    finally:
        again.close()


def test_deep_chain_mounts(snapshotter: Snapshotter, mounted) -> None:
    """More lower dirs than fit in one page of mount options."""
    parent = None
    for level in range(80 if isinstance(snapshotter, OverlaySnapshotter) else 8):
        snapshotter.prepare(f"a{level}", parent)
        (snapshotter.apply_dir(f"a{level}") / f"f{level}").write_text(str(level))
        snapshotter.commit(f"c{level}", f"a{level}")
        parent = f"c{level}"
    mounts = snapshotter.prepare("top", parent)
    with mounted(mounts) as root:
        assert (root / "f0").read_text() == "0"
        assert (root / f"f{level}").read_text() == str(level)


def test_compact_lowerdirs() -> None:
    short = ("lowerdir=/a/1/fs:/a/2/fs", "upperdir=/a/3/fs")
    assert compact_lowerdirs(short) == (short, None)
    lowers = [f"/var/lib/cdfs/snapshots/{i}/fs" for i in range(200)]
    options, cwd = compact_lowerdirs(("lowerdir=" + ":".join(lowers), "workdir=/w"))
    assert cwd == "/var/lib/cdfs/snapshots"
    assert options[0] == "lowerdir=" + ":".join(f"{i}/fs" for i in range(200))
    assert options[1] == "workdir=/w"


def test_overlay_probe_and_choice(tmp_path: Path) -> None:
    assert overlay_supported(tmp_path / "probe")
    assert os.listdir(tmp_path / "probe") == []
    chosen = open_snapshotter(tmp_path / "root")
    try:
        assert isinstance(chosen, OverlaySnapshotter)
        assert chosen.whiteouts == "overlay"
    finally:
        chosen.close()
    native = NativeSnapshotter(tmp_path / "n")
    assert native.whiteouts == "delete"
    native.close()


CHURN = """
import sys
from pathlib import Path
from content.snapshots import NativeSnapshotter, OverlaySnapshotter
kind = OverlaySnapshotter if sys.argv[1] == "OverlaySnapshotter" else NativeSnapshotter
snapshotter = kind(Path(sys.argv[2]))
snapshotter.prepare("base")
(snapshotter.apply_dir("base") / "file").write_text("x")
snapshotter.commit("B", "base")
print("ready", flush=True)
i = 0
while True:
    snapshotter.prepare(f"k{i}", "B")
    if i % 3:
        snapshotter.remove(f"k{i}")
    else:
        snapshotter.commit(f"c{i}", f"k{i}")
    i += 1
    print(i, flush=True)
"""


def test_kill_9_leaves_a_consistent_state(snapshotter: Snapshotter, tmp_path: Path) -> None:
    root = tmp_path / "churn"
    churn = subprocess.Popen([sys.executable, "-c", CHURN, type(snapshotter).__name__, str(root)],
                             stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert churn.stdout is not None
        said, deadline = b"", time.monotonic() + 60
        while b"\n4\n" not in said:  # ready, and 4 rounds (2 committed, however slow)
            ready, _, _ = select.select([churn.stdout], [], [], 1)
            if ready:
                said += os.read(churn.stdout.fileno(), 4096)
            assert time.monotonic() < deadline and churn.poll() is None, said
    finally:
        os.killpg(churn.pid, signal.SIGKILL)  # its own group: the script and any cp it runs
        churn.wait(timeout=30)
    again = type(snapshotter)(root)
    try:
        rows = {again._meta.get(info.name).id for info in again.list()}
        assert len(rows) > 2
        assert sorted(os.listdir(again.snapshots_dir)) == sorted(str(i) for i in rows)
        for snapshot_id in rows:
            assert (again.snapshots_dir / str(snapshot_id) / "fs").is_dir()
        again.prepare("after", "B")
        assert (again.apply_dir("after") / "file").exists() == isinstance(again, NativeSnapshotter)
    finally:
        again.close()


def test_snapshots_are_placed_as_tops_of_hierarchies(snapshotter: Snapshotter) -> None:
    """On ext4 the snapshots directory carries the T attribute (chattr +T), so each
    snapshot's inodes come from a flex group of their own, not from beside the root
    where recently freed inodes make every create slow; the snapshots do not inherit it."""
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(snapshotter.snapshots_dir)],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    if not kind.startswith("ext2/ext3"):  # what stat calls ext4 too; only it has T
        pytest.skip(f"not ext4 but {kind.strip()}")
    listed = subprocess.run(["lsattr", "-d", str(snapshotter.snapshots_dir)],
                            capture_output=True, text=True, timeout=30, check=True)
    assert "T" in listed.stdout.split()[0]
    snapshotter.prepare("a")
    inner = subprocess.run(["lsattr", "-d", str(snapshotter.apply_dir("a"))],
                           capture_output=True, text=True, timeout=30, check=True)
    assert "T" not in inner.stdout.split()[0]
