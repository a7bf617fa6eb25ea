"""Stats: the latency of reading stats/memory of every container of the fleet (all
once, repeated) against `ctr task metrics` for the same containers, and the CPU the cdfs
daemon spends while readers follow stats/stream."""

import subprocess
import time
from functools import partial
from pathlib import Path

from fleet import Fleet
from harness import Row, cpu_seconds, median, p90, run, say, timed, write


def _read_memory(path: Path) -> None:
    if "usage" not in path.read_text():
        raise RuntimeError(f"{path}: no usage line")


def bench_reads(fleet: Fleet, rounds: int) -> list[Row]:
    """Per-container latency of one stats read, over `rounds` rounds of the fleet."""
    files = [fleet.daemon.ns("containers", name, "stats", "memory") for name in fleet.ids]
    ours = [timed(partial(_read_memory, f)) for _ in range(rounds) for f in files]
    theirs = [timed(partial(run, fleet.containerd.ctr("task", "metrics", n)))
              for _ in range(rounds) for n in fleet.ids]
    count = len(fleet.ids)
    return [
        Row(f"stats/memory vs `ctr task metrics`, one container, median ({count} x {rounds})",
            "ms", median(ours) * 1e3, "`ctr task metrics`", median(theirs) * 1e3),
        Row("... p90", "ms", p90(ours) * 1e3, "`ctr task metrics`", p90(theirs) * 1e3),
        Row(f"... all {count} containers once", "ms", median(ours) * 1e3 * count,
            "`ctr task metrics`", median(theirs) * 1e3 * count),
    ]


def daemon_cpu(fleet: Fleet, seconds: float, readers: int = 0) -> float:
    """The cdfs daemon's CPU seconds over `seconds` while `readers` processes follow
    stats/stream of as many containers."""
    followers = [subprocess.Popen(
        ["cat", str(fleet.daemon.ns("containers", name, "stats", "stream"))],
        stdout=subprocess.DEVNULL) for name in fleet.ids[:readers]]
    try:
        time.sleep(0.5)  # the streams are open and have sent their first object
        before = cpu_seconds(fleet.daemon.pid)
        time.sleep(seconds)
        return cpu_seconds(fleet.daemon.pid) - before
    finally:
        for follower in followers:
            follower.kill()
            follower.wait(timeout=30)


def bench_stream_cpu(fleet: Fleet, seconds: float, readers: int = 10) -> list[Row]:
    idle = daemon_cpu(fleet, seconds)
    say(f"stats: {readers} stats/stream readers for {seconds:g} s at the default interval")
    default = daemon_cpu(fleet, seconds, readers)
    for name in fleet.ids[:readers]:
        write(fleet.daemon.ns("containers", name, "stats", "interval"), "0.1\n")
    say(f"stats: {readers} stats/stream readers for {seconds:g} s at 0.1 s")
    fast = daemon_cpu(fleet, seconds, readers)
    return [
        Row(f"cdfs daemon CPU, idle with {len(fleet.ids)} containers", "% of a core",
            idle / seconds * 100),
        Row(f"... {readers} readers following stats/stream (1 s interval)", "% of a core",
            default / seconds * 100),
        Row(f"... {readers} readers following stats/stream (0.1 s interval)", "% of a core",
            fast / seconds * 100),
    ]
