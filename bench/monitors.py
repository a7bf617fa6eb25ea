"""Memory per container of the monitors: the conmon processes cdfs started against the
containerd-shim-runc-v2 processes containerd started, for the same sleeping containers.

Pss (proportional set size) is the fair figure for many copies of one program: pages
shared between the copies are split among them. Rss counts shared pages in every copy.
"""

from fleet import Fleet
from harness import Row, Target, memory_kib


def bench_monitors(fleet: Fleet) -> list[Row]:
    count = len(fleet.ids)
    conmons, shims = fleet.conmon_pids(), fleet.containerd.shim_pids()
    if len(conmons) != count or len(shims) != count:
        raise RuntimeError(f"{count} containers each, but {len(conmons)} conmon and "
                           f"{len(shims)} shim processes")
    rows = []
    for field in ("Pss", "Rss"):
        ours = sum(memory_kib(pid, field) for pid in conmons) / count / 1024
        theirs = sum(memory_kib(pid, field) for pid in shims) / count / 1024
        rows.append(Row(f"monitor memory per container ({field}, {count} containers)", "MiB",
                        ours, "containerd-shim-runc-v2", theirs, Target(0.2)))
    return rows
