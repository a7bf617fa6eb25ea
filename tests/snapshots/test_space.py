"""The root `space` file: how full the snapshots' filesystem is."""

import os

from support import Daemon


def test_space_says_what_statvfs_says(daemon: Daemon) -> None:
    lines = dict(line.split(" ", 1) for line in daemon.path("space").read_text().splitlines())
    assert list(lines) == ["path", "bytes-used", "bytes-free", "inodes-used", "inodes-free"]
    [snapshotter] = os.listdir(daemon.root / "snapshots")  # overlay or native
    assert lines["path"] == str(daemon.root / "snapshots" / snapshotter)
    st = os.statvfs(lines["path"])
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    assert abs(int(lines["bytes-used"]) - used) < 64 << 20  # others write meanwhile
    assert int(lines["inodes-used"]) > 0 and int(lines["bytes-free"]) > 0
