"""The v1 reader and the eventfd OOM watcher on this host's real v1 hierarchies, with
cgroupspy (an independent reader) as a second witness."""

import os
import select
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cgroupspy.nodes import Node

from base.errors import NotFound
from runtime.cgroups import UNLIMITED, CgroupV1, is_pure_v2, open_cgroup
from runtime.oom import EventfdOomWatcher, watch_oom

from .conftest import CGROUP_ROOT, OwnedCgroup

pytestmark = pytest.mark.skipif(is_pure_v2(CGROUP_ROOT), reason="host is pure cgroup v2")

MiB = 1 << 20
BUSY_LOOP = "while True: pass"
# Allocate and touch 1 MiB at a time, without bound.
ALLOCATE_FOREVER = "chunks = []\nwhile True: chunks.append(b'x' * (1 << 20))"


def _controller_node(cgroup: OwnedCgroup, controller: str) -> Node:
    """cgroupspy's view of the test's cgroup in one controller (no tree walk)."""
    root = Node(str(CGROUP_ROOT).encode())
    return Node(cgroup.cgroups_path.lstrip("/").encode(), parent=Node(controller.encode(), root))


def _eventually(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_fresh_cgroup(v1_cgroup: OwnedCgroup) -> None:
    cgroup = open_cgroup(v1_cgroup.cgroups_path)
    assert isinstance(cgroup, CgroupV1)
    stats = cgroup.all()
    assert stats["memory"]["limit"] == UNLIMITED
    assert stats["pids"] == {"current": 0, "limit": UNLIMITED}
    assert stats["cpu"]["usage_usec"] == 0


def test_cpu_usage_grows_with_a_busy_child(v1_cgroup: OwnedCgroup) -> None:
    cgroup = open_cgroup(v1_cgroup.cgroups_path)
    v1_cgroup.spawn(BUSY_LOOP)
    assert _eventually(lambda: cgroup.cpu()["usage_usec"] > 0)
    before = cgroup.cpu()  # 200 ms of CPU, in as long as a loaded host takes to give it
    assert _eventually(lambda: cgroup.cpu()["usage_usec"] - before["usage_usec"] > 200_000)
    after = cgroup.cpu()
    assert after["user_usec"] > before["user_usec"]
    witness = _controller_node(v1_cgroup, "cpuacct").controller.usage // 1000
    assert witness >= after["usage_usec"]
    assert cgroup.pids()["current"] == 1


def test_memory_limit_and_usage(v1_cgroup: OwnedCgroup) -> None:
    memory = _controller_node(v1_cgroup, "memory").controller
    memory.limit_in_bytes = 32 * MiB
    cgroup = open_cgroup(v1_cgroup.cgroups_path)
    child = v1_cgroup.spawn("held = b'x' * (8 << 20)\nprint('ready', flush=True)\nsys.stdin.read()")
    assert child.stdout is not None
    assert select.select([child.stdout], [], [], 10)[0]
    assert child.stdout.readline() == b"ready\n"
    stats = cgroup.memory()
    assert stats["limit"] == 32 * MiB
    assert 8 * MiB <= stats["usage"] <= 32 * MiB
    assert stats["rss"] >= 8 * MiB
    assert stats["max_usage"] >= stats["usage"]
    assert stats["oom_kills"] == 0
    assert abs(memory.usage_in_bytes - stats["usage"]) < 4 * MiB


def test_oom_kill_wakes_the_eventfd_watcher(v1_cgroup: OwnedCgroup) -> None:
    v1_cgroup.write("memory", "memory.limit_in_bytes", str(32 * MiB))
    with watch_oom(v1_cgroup.cgroups_path) as watcher:
        assert isinstance(watcher, EventfdOomWatcher)
        assert not select.select([watcher], [], [], 0)[0]
        child = v1_cgroup.spawn(ALLOCATE_FOREVER)
        assert select.select([watcher], [], [], 30)[0], "no OOM notification"
        assert watcher.read() >= 1
        assert child.wait(timeout=10) == -9
    assert open_cgroup(v1_cgroup.cgroups_path).memory()["oom_kills"] >= 1


def test_pids_limit_stops_a_fork_loop(v1_cgroup: OwnedCgroup) -> None:
    v1_cgroup.write("pids", "pids.max", "8")
    child = v1_cgroup.spawn(
        "import os, time\n"
        "forked = refused = 0\n"
        "for _ in range(30):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        refused += 1\n"
        "        continue\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    forked += 1\n"
        "print(forked, refused, flush=True)\n"
        "sys.stdin.read()\n"
    )
    assert child.stdout is not None
    assert select.select([child.stdout], [], [], 20)[0]
    forked, refused = map(int, child.stdout.readline().split())
    assert (forked, refused) == (7, 23)
    assert open_cgroup(v1_cgroup.cgroups_path).pids() == {"current": 8, "limit": 8}


def test_missing_cgroup() -> None:
    with pytest.raises(NotFound, match='no cgroup: "/cdfs-test-absent/x"'):
        open_cgroup("/cdfs-test-absent/x")


def test_removed_cgroup_is_not_found_and_wakes_the_watcher(v1_cgroup: OwnedCgroup) -> None:
    cgroup = open_cgroup(v1_cgroup.cgroups_path)
    with watch_oom(v1_cgroup.cgroups_path) as watcher:
        for directory in v1_cgroup.dirs:
            directory.rmdir()
        with pytest.raises(NotFound):
            cgroup.cpu()
        assert select.select([watcher], [], [], 5)[0]
        with pytest.raises(NotFound):
            watcher.read()


def test_same_keys_as_v2(v1_cgroup: OwnedCgroup, fake_v2_root: Path) -> None:
    v1 = open_cgroup(v1_cgroup.cgroups_path).all()
    v2 = open_cgroup("/cdfs/default/web", fake_v2_root).all()
    assert {group: set(stats) for group, stats in v1.items()} == {
        group: set(stats) for group, stats in v2.items()
    }


def test_io_counts_direct_reads_and_writes(v1_cgroup: OwnedCgroup, tmp_path: Path) -> None:
    """v1's blkio.throttle counters only count I/O to a device with a throttle rule on
    kernel 6.x: set one far above anything reachable first."""
    device = os.stat(tmp_path).st_dev
    rule = f"{os.major(device)}:{os.minor(device)} {1 << 40}"
    try:
        v1_cgroup.write("blkio", "blkio.throttle.read_bps_device", rule)
        v1_cgroup.write("blkio", "blkio.throttle.write_bps_device", rule)
    except OSError:
        pytest.skip(f"no throttle rule possible for the device of {tmp_path}")
    data = tmp_path / "data"
    child = v1_cgroup.spawn(
        "import subprocess\n"
        f"dd = ['dd', 'bs=64k', 'count=16', 'status=none']\n"
        f"subprocess.run(dd + ['if=/dev/zero', 'of={data}', 'oflag=direct'], check=True)\n"
        f"subprocess.run(dd + ['if={data}', 'of=/dev/null', 'iflag=direct'], check=True)\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"
    )
    assert child.stdout is not None
    assert select.select([child.stdout], [], [], 20)[0]
    assert child.stdout.readline() == b"done\n"
    io = open_cgroup(v1_cgroup.cgroups_path).io()
    assert io["write_bytes"] >= 1 * MiB
    assert io["read_bytes"] >= 1 * MiB
    assert io["write_ops"] >= 16
    assert io["read_ops"] >= 16
