"""N sleeping busybox containers on each side, for the monitor-memory and stats
benchmarks: cdfs containers through the tree, containerd's through `ctr run -d`."""

import json
from dataclasses import dataclass

from harness import (
    BUSYBOX,
    Cdfs,
    Containerd,
    Stack,
    cmdline,
    open_cdfs,
    open_containerd,
    run,
    say,
    temp_dir,
    write,
)
from run_exit import share_busybox

from runtime import conmon


@dataclass(frozen=True)
class Fleet:
    daemon: Cdfs
    containerd: Containerd
    ids: list[str]

    def conmon_pids(self) -> list[int]:
        """The monitors cdfs started, by the pid files in its state directory."""
        pids = []
        for pid_file in (self.daemon.state / "runtime" / "tasks").rglob("conmon.pid"):
            pid = conmon.read_int(pid_file)
            if pid and str(pid_file.parent).encode() in cmdline(pid):
                pids.append(pid)
        return pids


def start_cdfs_sleeper(daemon: Cdfs, name: str) -> None:
    container = daemon.ns("containers", name)
    container.mkdir()
    write(container / "image", BUSYBOX)
    write(container / "config.json", json.dumps({"process": {"args": ["sleep", "3600"]}}))
    write(container / "ctl", "start\n")


def open_fleet(stack: Stack, count: int) -> Fleet:
    """`count` containers running `sleep 3600` on cdfs and on containerd (killed with
    the daemons when `stack` closes)."""
    daemon = open_cdfs(stack)
    containerd = open_containerd(stack)
    share_busybox(daemon, containerd, temp_dir(stack, "fleet"))
    ids = [f"s{i}" for i in range(count)]
    say(f"fleet: starting {count} sleepers on cdfs and on containerd")
    for name in ids:
        start_cdfs_sleeper(daemon, name)
        run(containerd.ctr("run", "-d", "--null-io", "--runc-root", str(containerd.runc_root),
                           BUSYBOX, name, "sleep", "3600"))
    return Fleet(daemon, containerd, ids)

