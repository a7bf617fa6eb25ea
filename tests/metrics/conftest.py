"""Fixtures: real v1 and unified cgroups owned by the test, child processes parked in
them, and a fake pure-v2 host laid out in a temp dir. Teardown kills what the test
started (and anything those forked into the test's cgroups), then removes the cgroups."""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "blkio")


@dataclass
class OwnedCgroup:
    """A cgroup made by the test: its cgroupfs path and its directories."""

    cgroups_path: str
    dirs: list[Path]
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def write(self, controller: str, name: str, value: str) -> None:
        (self.dir(controller) / name).write_text(value)

    def dir(self, controller: str) -> Path:
        return next(d for d in self.dirs if d.parent.name == controller)

    def spawn(self, code: str) -> subprocess.Popen[bytes]:
        """Start `python -c code` inside this cgroup (from its first instruction on)."""
        child = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.stdin.readline()\n{code}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.children.append(child)
        for directory in self.dirs:
            (directory / "cgroup.procs").write_text(str(child.pid))
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.flush()
        return child


def _kill_members(directory: Path) -> None:
    """Kill every process left in a cgroup the test made (they all descend from the
    test's own children) until it is empty."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pids = [int(p) for p in (directory / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _remove(cgroup: OwnedCgroup) -> None:
    for child in cgroup.children:
        child.kill()
        child.wait(timeout=10)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    for directory in cgroup.dirs:
        _kill_members(directory)
        deadline = time.monotonic() + 10
        while directory.exists():
            try:
                directory.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def v1_cgroup() -> Iterator[OwnedCgroup]:
    """A fresh cgroup in every v1 controller the readers use."""
    name = f"cdfs-test-{secrets.token_hex(4)}"
    cgroup = OwnedCgroup(f"/{name}", [])
    try:
        for controller in V1_CONTROLLERS:
            directory = CGROUP_ROOT / controller / name
            directory.mkdir()
            cgroup.dirs.append(directory)
        yield cgroup
    finally:
        _remove(cgroup)


@pytest.fixture
def unified_cgroup() -> Iterator[OwnedCgroup]:
    """A fresh cgroup in the hybrid host's unified (v2) hierarchy."""
    name = f"cdfs-test-{secrets.token_hex(4)}"
    directory = CGROUP_ROOT / "unified" / name
    directory.mkdir()
    cgroup = OwnedCgroup(f"/{name}", [directory])
    try:
        yield cgroup
    finally:
        _remove(cgroup)


V2_FILES = {
    "cpu.stat": (
        "usage_usec 7000\nuser_usec 5000\nsystem_usec 2000\nnr_periods 10\n"
        "nr_throttled 3\nthrottled_usec 900\nnr_bursts 0\nburst_usec 0\n"
    ),
    "memory.current": "4096000\n",
    "memory.max": "max\n",
    "memory.peak": "5000000\n",
    "memory.stat": "anon 1000000\nfile 2000000\nkernel 300\nshmem 4096\nfile_mapped 100\n"
                   "inactive_file 500000\npgfault 70\npgmajfault 2\n",
    "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n",
    "memory.swap.current": "8192\n",
    "pids.current": "3\n",
    "pids.max": "64\n",
    "io.stat": (
        "254:0 rbytes=1000 wbytes=2000 rios=3 wios=4 dbytes=0 dios=0\n"
        "253:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"
    ),
}


@pytest.fixture
def fake_v2_root(tmp_path: Path) -> Path:
    """A pure-v2 host's /sys/fs/cgroup with one container, /cdfs/default/web, laid out as
    the kernel does (files captured from a 6.x host, values made round)."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    container = tmp_path / "cdfs" / "default" / "web"
    container.mkdir(parents=True)
    for name, text in V2_FILES.items():
        (container / name).write_text(text)
    return tmp_path
