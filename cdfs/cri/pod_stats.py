"""A pod's stats (PodSandboxStats): its pause container's and its containers' cgroup
counters summed, and its network interfaces' counters. Pure: the caller reads the
files (the tree's stats/ files, the pod's netns/<name>/counters).

kubelet asks for the pod as a whole: CPU time and memory of everything in it, the
number of processes, and the traffic of its interfaces (eth0 is the default one, as
CNI names it), with each container's own stats alongside.
"""

from collections.abc import Mapping, Sequence

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.container_stats import UNLIMITED, memory_usage, parse
from cdfs.cri.sandbox_record import SandboxRecord

DEFAULT_INTERFACE = "eth0"
SUMMED_MEMORY = ("usage", "inactive_file", "rss", "pgfault", "pgmajfault")


def parse_counters(text: str) -> dict[str, tuple[int, int, int, int]]:
    """A netns `counters` file (`IF RX_BYTES RX_ERRORS TX_BYTES TX_ERRORS` lines) as
    {interface: (rx_bytes, rx_errors, tx_bytes, tx_errors)}."""
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 5 and all(f.isdigit() for f in fields[1:]):
            rx_bytes, rx_errors, tx_bytes, tx_errors = (int(f) for f in fields[1:])
            found[fields[0]] = (rx_bytes, rx_errors, tx_bytes, tx_errors)
    return found


def network_usage(counters_text: str, now_ns: int) -> pb.NetworkUsage:
    """The pod's interfaces but loopback, eth0 as the default one."""
    def usage(name: str, counters: tuple[int, int, int, int]) -> pb.NetworkInterfaceUsage:
        rx_bytes, rx_errors, tx_bytes, tx_errors = counters
        return pb.NetworkInterfaceUsage(
            name=name, rx_bytes=pb.UInt64Value(value=rx_bytes),
            rx_errors=pb.UInt64Value(value=rx_errors), tx_bytes=pb.UInt64Value(value=tx_bytes),
            tx_errors=pb.UInt64Value(value=tx_errors))

    interfaces = {name: c for name, c in parse_counters(counters_text).items() if name != "lo"}
    result = pb.NetworkUsage(timestamp=now_ns, interfaces=[
        usage(name, counters) for name, counters in sorted(interfaces.items())])
    if DEFAULT_INTERFACE in interfaces:
        result.default_interface.CopyFrom(usage(DEFAULT_INTERFACE,
                                                interfaces[DEFAULT_INTERFACE]))
    return result


def pod_stats(record: SandboxRecord, cgroups: Sequence[Mapping[str, str]],
              containers: Sequence[pb.ContainerStats], counters_text: str | None,
              now_ns: int) -> pb.PodSandboxStats:
    """The pod's stats from the stats/ files ({"cpu": text, "memory": text, "pids":
    text}) of its pause container and of each of its containers, and its netns's
    counters (None with the host's network: those are not the pod's). The pod has no limit
    of its own here, so its available memory is not known (0)."""
    cpu_usec = sum(parse(files.get("cpu", "")).get("usage_usec", 0) for files in cgroups)
    memory = {key: sum(parse(files.get("memory", "")).get(key, 0) for files in cgroups)
              for key in SUMMED_MEMORY}
    processes = sum(parse(files.get("pids", "")).get("current", 0) for files in cgroups)
    meta = record.metadata
    linux = pb.LinuxPodSandboxStats(
        cpu=pb.CpuUsage(timestamp=now_ns,
                        usage_core_nano_seconds=pb.UInt64Value(value=cpu_usec * 1000)),
        memory=memory_usage({**memory, "limit": UNLIMITED}, now_ns),
        process=pb.ProcessUsage(timestamp=now_ns,
                                process_count=pb.UInt64Value(value=processes)),
        containers=list(containers))
    if counters_text is not None:
        linux.network.CopyFrom(network_usage(counters_text, now_ns))
    return pb.PodSandboxStats(
        attributes=pb.PodSandboxAttributes(
            id=record.id, metadata=pb.PodSandboxMetadata(
                name=meta.name, uid=meta.uid, namespace=meta.namespace, attempt=meta.attempt),
            labels=dict(record.labels), annotations=dict(record.annotations)),
        linux=linux)
