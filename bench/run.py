"""cdfs side by side with containerd's `ctr` and plain runc: `make bench`.

Each benchmark starts what it needs on temp dirs (a cdfs daemon, a containerd, a
docker-registry) and stops it by pid, then prints a Markdown table with the absolute
numbers and the ratio cdfs/containerd. `--readme` also writes the table into
bench/README.md between its result markers. `--quick` runs tiny sizes (the smoke test).
"""

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fleet import open_fleet
from harness import Row, Stack, against_targets, say, table
from monitors import bench_monitors
from pull import DEBIAN_LAYERS, LAYER_SOURCES, MB, Trimmed, bench_pull
from run_exit import bench_run_exit
from scale import bench_scale
from stats import bench_reads, bench_stream_cpu
from tenants import bench_tenants

README = Path(__file__).resolve().parent / "README.md"
RESULTS = "<!-- results: begin -->", "<!-- results: end -->"
TARGETS = "<!-- targets: begin -->", "<!-- targets: end -->"
NAMES = ["pull", "tenants", "run", "scale", "fleet"]
SMALL = ("usr/lib/python3.11/json",)


def fleet_benchmarks(count: int, rounds: int, seconds: float) -> list[Row]:
    """Monitor memory and stats share one fleet of sleeping containers."""
    with Stack() as stack:
        fleet = open_fleet(stack, count)
        rows = bench_monitors(fleet)
        say(f"stats: reading stats/memory and `ctr task metrics`, {rounds} rounds")
        rows += bench_reads(fleet, rounds)
        rows += bench_stream_cpu(fleet, seconds, readers=min(10, count))
        return rows


def benchmarks(quick: bool) -> dict[str, Callable[[], list[Row]]]:
    if quick:
        return {
            "pull": lambda: bench_pull(1, (Trimmed(SMALL, MB, 100_000),), "trimmed"),
            "tenants": lambda: bench_tenants(SMALL, SMALL, pull_seconds=3),
            "run": lambda: bench_run_exit(2),
            "scale": lambda: bench_scale(3, 1),
            "fleet": lambda: fleet_benchmarks(2, 1, 0.5),
        }
    return {
        "pull": lambda: bench_pull(3, LAYER_SOURCES) + bench_pull(3, DEBIAN_LAYERS, "Debian-like"),
        "tenants": lambda: bench_tenants(LAYER_SOURCES, SMALL),
        "run": lambda: bench_run_exit(20),
        "scale": lambda: bench_scale(110, 10),
        "fleet": lambda: fleet_benchmarks(50, 5, 10),
    }


def replace_between(text: str, markers: tuple[str, str], new: str) -> str:
    begin, end = markers
    head, rest = text.split(begin, 1)
    return f"{head}{begin}\n{new}{end}{rest.split(end, 1)[1]}"


def write_readme(results: str, targets: str) -> None:
    """The results table and the verdicts, both from this run: the README's summary
    of the targets is never written by hand."""
    text = replace_between(README.read_text(), RESULTS, results)
    README.write_text(replace_between(text, TARGETS, targets))


def machine() -> str:
    return (f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'}: "
            f"Linux {platform.release()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}.\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--only", action="append", choices=NAMES,
                        help="run just these benchmarks (repeatable)")
    parser.add_argument("--readme", action="store_true",
                        help="write the table into bench/README.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (runc, mounts, cgroups)", file=sys.stderr)
        return 1
    rows: list[Row] = []
    for name, bench in benchmarks(args.quick).items():
        if not args.only or name in args.only:
            rows += bench()
    result, verdicts = table(rows), against_targets(rows)
    print(result)
    print(verdicts)
    if args.readme:
        write_readme(machine() + "\n" + result, verdicts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
