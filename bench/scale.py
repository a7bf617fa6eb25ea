"""Control reads and scale: kubelet's 110 pods on one cdfs daemon.

Start N sleeping busybox containers one after the other (mkdir, image, config.json,
start), each timed; with all of them running, read the daemon's memory, the control
files of one container (status, pid, exit, stats/memory) beside the pyfuse3 floor
(bench/floor.py, in the same run, interleaved in batches so load hits both alike, the
reader and both servers on one CPU: `harness.one_cpu`),
`ls -l` of a container directory and `cat containers/list`; then stop them (kill, wait,
rmdir), each timed. "Within 1.5x of the first ten" compares the median of the last ten
with the median of the first ten.
"""

import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

from fleet import start_cdfs_sleeper
from harness import (
    Cdfs,
    Row,
    Stack,
    Target,
    median,
    memory_kib,
    one_cpu,
    open_cdfs,
    open_floor,
    say,
    timed,
    write,
)

READS = {"status": 2.0, "pid": 2.0, "exit": 2.0, "stats/memory": 4.0}
BATCH = 50


def read_file(path: Path) -> None:
    with open(path, "rb") as f:
        f.read()


def interleaved(actions: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each action, timed in alternating batches of BATCH."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            times[name] += [timed(action) for _ in range(BATCH)]
    return {name: median(values) for name, values in times.items()}


def _stop(daemon: Cdfs, name: str) -> None:
    container = daemon.ns("containers", name)
    write(container / "ctl", "kill KILL\n")
    (container / "wait").read_text()
    container.rmdir()


def _first_and_last(times: list[float]) -> tuple[float, float]:
    return median(times[:10]) * 1e3, median(times[-10:]) * 1e3


def bench_scale(count: int, rounds: int) -> list[Row]:
    with Stack() as stack:
        floor = open_floor(stack)
        daemon = open_cdfs(stack)
        names = [f"p{i}" for i in range(count)]
        say(f"scale: starting {count} sleepers on cdfs")
        starts = [timed(partial(start_cdfs_sleeper, daemon, name)) for name in names]
        rss = memory_kib(daemon.pid, "Rss") / 1024
        one = daemon.ns("containers", names[0])
        say(f"scale: control reads, {rounds} rounds of {BATCH}")
        with one_cpu(floor.pid, daemon.pid):
            reads = interleaved({"floor": partial(read_file, floor.value),
                                 **{f: partial(read_file, one / f) for f in READS}}, rounds)
        listing = interleaved({"ls": partial(subprocess.run, ["ls", "-l", str(one)],
                                             stdout=subprocess.DEVNULL, check=True),
                               "list": partial(subprocess.run,
                                               ["cat", str(daemon.ns("containers", "list"))],
                                               stdout=subprocess.DEVNULL, check=True)},
                              max(1, rounds // 5))
        say(f"scale: stopping {count} sleepers")
        stops = [timed(partial(_stop, daemon, name)) for name in names]
    floor_us = reads["floor"] * 1e6
    start_first, start_last = _first_and_last(starts)
    stop_first, stop_last = _first_and_last(stops)
    return [
        Row("control read: open+read+close of bench/floor.py's one file", "µs", floor_us),
        *(Row(f"control read: {name} of a running container, median", "µs",
              reads[name] * 1e6, "floor", floor_us, Target(limit))
          for name, limit in READS.items()),
        Row(f"`ls -l` of a container directory ({count} containers), median", "ms",
            listing["ls"] * 1e3, target=Target(5, absolute=True)),
        Row(f"`cat containers/list` with {count} containers, median", "ms",
            listing["list"] * 1e3, target=Target(20, absolute=True)),
        Row(f"scale: start a sleeper, median of the last 10 of {count}", "ms", start_last,
            "first 10", start_first, Target(1.5)),
        Row(f"scale: stop (kill, wait, rmdir), median of the last 10 of {count}", "ms",
            stop_last, "first 10", stop_first, Target(1.5)),
        Row(f"scale: daemon Rss with {count} containers running", "MB", rss,
            target=Target(100, absolute=True)),
    ]
