"""The v2 reader and the inotify OOM watcher against a pure-v2 host laid out in a temp dir
(this machine is hybrid: its unified hierarchy has no memory, pids or io controller)."""

import select
from pathlib import Path

import pytest

from base.errors import NotFound
from runtime.cgroups import UNLIMITED, CgroupV2, is_pure_v2, open_cgroup
from runtime.oom import InotifyOomWatcher, watch_oom

WEB = "/cdfs/default/web"


def test_detects_pure_v2(fake_v2_root: Path) -> None:
    assert is_pure_v2(fake_v2_root)
    assert isinstance(open_cgroup(WEB, fake_v2_root), CgroupV2)


def test_reads_every_group(fake_v2_root: Path) -> None:
    assert open_cgroup(WEB, fake_v2_root).all() == {
        "cpu": {
            "usage_usec": 7000,
            "user_usec": 5000,
            "system_usec": 2000,
            "throttled_usec": 900,
            "nr_periods": 10,
            "nr_throttled": 3,
        },
        "memory": {
            "usage": 4096000,
            "limit": UNLIMITED,
            "max_usage": 5000000,
            "cache": 2000000,
            "rss": 1000000,
            "shmem": 4096,
            "swap": 8192,
            "inactive_file": 500000,
            "pgfault": 70,
            "pgmajfault": 2,
            "oom_kills": 1,
        },
        "pids": {"current": 3, "limit": 64},
        "io": {"read_bytes": 1010, "write_bytes": 2020, "read_ops": 4, "write_ops": 6},
    }


def test_absent_controller_files_read_as_zero_and_unlimited(fake_v2_root: Path) -> None:
    web = fake_v2_root / WEB.lstrip("/")
    for name in ("memory.peak", "memory.swap.current", "pids.max", "io.stat"):
        (web / name).unlink()
    cgroup = open_cgroup(WEB, fake_v2_root)
    assert cgroup.memory()["max_usage"] == 0
    assert cgroup.memory()["swap"] == 0
    assert cgroup.pids()["limit"] == UNLIMITED
    assert cgroup.io() == {"read_bytes": 0, "write_bytes": 0, "read_ops": 0, "write_ops": 0}


def test_missing_cgroup(fake_v2_root: Path) -> None:
    with pytest.raises(NotFound, match='"/cdfs/default/db"'):
        open_cgroup("/cdfs/default/db", fake_v2_root)


def test_cgroup_removed_after_open(fake_v2_root: Path) -> None:
    cgroup = open_cgroup(WEB, fake_v2_root)
    web = fake_v2_root / WEB.lstrip("/")
    for file in web.iterdir():
        file.unlink()
    web.rmdir()
    with pytest.raises(NotFound, match=WEB):
        cgroup.memory()


def _readable(fd: int, timeout: float) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_inotify_watcher_counts_new_oom_kills(fake_v2_root: Path) -> None:
    events = fake_v2_root / WEB.lstrip("/") / "memory.events"
    with watch_oom(WEB, fake_v2_root) as watcher:
        assert isinstance(watcher, InotifyOomWatcher)
        assert watcher.total == 1
        assert not _readable(watcher.fileno(), 0.05)

        events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")  # not an OOM kill
        assert _readable(watcher.fileno(), 5)
        assert watcher.read() == 0

        events.write_text("low 0\nhigh 0\nmax 5\noom 3\noom_kill 3\n")
        assert _readable(watcher.fileno(), 5)
        assert watcher.read() == 2
        assert watcher.total == 3
        assert not _readable(watcher.fileno(), 0.05)


def test_watching_without_memory_controller(fake_v2_root: Path) -> None:
    (fake_v2_root / WEB.lstrip("/") / "memory.events").unlink()
    with pytest.raises(NotFound, match="no memory controller"):
        watch_oom(WEB, fake_v2_root)
