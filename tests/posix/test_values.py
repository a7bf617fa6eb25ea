"""Value files as a regular filesystem's files: st_size is what a read returns, mtimes
say when the object or the value changed, and archivers copy the content."""

import os
import shutil
import subprocess
import time
from pathlib import Path

from posix_tree import Tree

IMAGE_VALUES = ("ref", "digest", "platform", "size", "layers", "manifest.json", "config.json")
CONTAINER_VALUES = ("status", "pid", "exit", "image", "config.json", "labels", "runtime",
                    "ctl", "err")


def test_stat_size_is_what_a_read_returns(tree: Tree) -> None:
    for directory, names in ((tree.image, IMAGE_VALUES), (tree.stopped, CONTAINER_VALUES),
                             (tree.running, CONTAINER_VALUES)):
        for name in names:
            path = directory / name
            assert path.stat().st_size == len(path.read_bytes()), path
    assert tree.run("stat", "-c", "%s", tree.image / "ref").stdout.strip() == \
        str(len("cdfs.local/busybox:latest\n"))
    assert (tree.mount / "README").stat().st_size > 1000


def test_tar_cp_rsync_and_copytree_keep_an_images_files(tree: Tree, tmp_path: Path) -> None:
    expected = {name: (tree.image / name).read_bytes() for name in IMAGE_VALUES}
    assert all(expected.values())
    archive = tmp_path / "image.tar"
    tree.run("tar", "-C", tree.image, "-cf", archive, *IMAGE_VALUES)
    (tmp_path / "tar").mkdir()
    tree.run("tar", "-C", tmp_path / "tar", "-xf", archive)
    tree.run("cp", "-r", tree.image, tmp_path / "cp")
    tree.run("rsync", "-a", f"{tree.image}/", tmp_path / "rsync")
    shutil.copytree(tree.image, tmp_path / "py", symlinks=True)
    for copy in ("tar", "cp", "rsync", "py"):
        got = {name: (tmp_path / copy / name).read_bytes() for name in IMAGE_VALUES}
        assert got == expected, copy
    # rsync's quick check (size and mtime) finds nothing to do the second time
    again = tree.run("rsync", "-ai", f"{tree.image}/", tmp_path / "rsync").stdout
    assert again.strip() == "", again


def test_mtimes_are_the_objects_and_the_values(tree: Tree) -> None:
    exited = tree.stopped.stat().st_mtime_ns  # a stopped container last changed at its exit
    assert abs(exited - time.time_ns()) < 3600 * 10**9
    assert exited != tree.running.stat().st_mtime_ns  # each container its own time
    assert (tree.stopped / "exit").stat().st_mtime_ns == exited
    assert (tree.stopped / "runtime").stat().st_mtime_ns == exited
    assert tree.image.stat().st_mtime_ns < exited  # built at start, before the containers
    before = (tree.stopped / "labels").stat().st_mtime_ns
    with open(tree.stopped / "labels", "w") as labels:
        labels.write("tier=test\n")
    after = (tree.stopped / "labels").stat().st_mtime_ns
    assert after > before and after <= time.time_ns()
    assert (tree.stopped / "labels").stat().st_mtime_ns == after  # stable while unchanged
    stamp = tree.run("find", tree.stopped, "-maxdepth", "0", "-printf", "%TY").stdout
    assert stamp == time.strftime("%Y", time.gmtime(exited / 1e9))


def test_du_and_find_see_sizes(tree: Tree) -> None:
    listed = tree.run("find", tree.image, "-maxdepth", "1", "-type", "f", "-size", "+0",
                      "-printf", "%f\n").stdout.split()
    assert set(IMAGE_VALUES) <= set(listed)
    usage = tree.run("du", "-b", "-s", tree.image).stdout.split()[0]
    assert int(usage) >= sum(len((tree.image / n).read_bytes()) for n in IMAGE_VALUES)


def test_jq_reads_json_values(tree: Tree) -> None:
    spec = tree.run("jq", "-r", ".process.args[0]", tree.stopped / "config.json").stdout
    assert spec == "sh\n"
    manifest = tree.run("jq", "-r", ".layers | length", tree.image / "manifest.json").stdout
    assert int(manifest) >= 1


def test_reads_are_seekable(tree: Tree) -> None:
    with open(tree.image / "digest", "rb") as f:
        f.seek(7)
        assert f.read(3) == (tree.image / "digest").read_bytes()[7:10]
        assert os.pread(f.fileno(), 6, 0) == b"sha256"
    assert subprocess.run(["tail", "-c", "5", str(tree.stopped / "status")],
                          capture_output=True, timeout=10).stdout == b"pped\n"
