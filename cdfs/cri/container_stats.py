"""A container's stats/ files -> CRI's ContainerStats, as containerd's CRI plugin
computes them from the same cgroup counters. Pure: the caller reads the files."""

from collections.abc import Mapping

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.container_record import ContainerRecord

UNLIMITED = 2**64 - 1  # how the tree reads a limit that is not set


def parse(text: str) -> dict[str, int]:
    """The `key value` lines of a stats file (stats/cpu, stats/memory)."""
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


def container_stats(record: ContainerRecord, cpu_text: str, memory_text: str,
                    now_ns: int) -> pb.ContainerStats:
    """CPU time used so far (usage_core_nano_seconds), and memory: the working set
    (usage less the inactive file cache, what the kernel would reclaim last, which
    kubelet evicts by), what is left of the limit, rss and page faults."""
    cpu, memory = parse(cpu_text), parse(memory_text)
    return pb.ContainerStats(
        attributes=pb.ContainerAttributes(id=record.id, metadata=record.metadata(),
                                          labels=dict(record.labels),
                                          annotations=dict(record.annotations)),
        cpu=pb.CpuUsage(timestamp=now_ns, usage_core_nano_seconds=pb.UInt64Value(
            value=cpu.get("usage_usec", 0) * 1000)),
        memory=memory_usage(memory, now_ns),
    )


def memory_usage(memory: Mapping[str, int], now_ns: int) -> pb.MemoryUsage:
    usage = memory.get("usage", 0)
    working_set = max(0, usage - memory.get("inactive_file", 0))
    limit = memory.get("limit", UNLIMITED)
    available = limit - working_set if limit < UNLIMITED and limit > working_set else 0
    return pb.MemoryUsage(
        timestamp=now_ns, working_set_bytes=pb.UInt64Value(value=working_set),
        available_bytes=pb.UInt64Value(value=available),
        usage_bytes=pb.UInt64Value(value=usage),
        rss_bytes=pb.UInt64Value(value=memory.get("rss", 0)),
        page_faults=pb.UInt64Value(value=memory.get("pgfault", 0)),
        major_page_faults=pb.UInt64Value(value=memory.get("pgmajfault", 0)))
