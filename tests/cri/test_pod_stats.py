"""PodSandboxStats and ListPodSandboxStats: the pod's CPU, memory, processes and
network traffic, with its containers' own stats, from the tree's stats/ and counters
files."""

import time

import grpc
import pytest
from cri_containers import Containers, container_config
from cri_pods import Pods, pod_config
from cri_support import CriServer

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc


def test_a_pods_stats_sum_its_containers(cri: CriServer, pods: Pods, ctrs: Containers,
                                         runtime: pb_grpc.RuntimeServiceStub) -> None:
    sandbox_id = pods.run(pod_config("stats", labels={"app": "stats"}))
    busy = ctrs.run(sandbox_id, container_config(
        ["sh", "-c", "while :; do :; done"], "busy"))
    ctrs.run(sandbox_id, container_config(["sleep", "600"], "idle"))
    ip = pods.status(sandbox_id).network.ip
    ping = cri.on_host("busybox", "ping", "-c", "3", "-W", "5", ip, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    time.sleep(0.5)

    stats = runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)).stats
    assert stats.attributes.id == sandbox_id
    assert stats.attributes.metadata.name == "stats"
    assert dict(stats.attributes.labels) == {"app": "stats"}
    linux = stats.linux
    assert {c.attributes.metadata.name for c in linux.containers} == {"busy", "idle"}
    per_container = sum(c.cpu.usage_core_nano_seconds.value for c in linux.containers)
    assert linux.cpu.usage_core_nano_seconds.value >= per_container > 100_000_000
    assert linux.memory.usage_bytes.value >= sum(c.memory.usage_bytes.value
                                                 for c in linux.containers) > 0
    assert linux.process.process_count.value >= 3  # pause, sh, sleep
    assert linux.network.default_interface.name == "eth0"
    assert linux.network.default_interface.rx_bytes.value >= 3 * 84
    assert linux.network.default_interface.tx_bytes.value >= 3 * 84
    assert [i.name for i in linux.network.interfaces] == ["eth0"]
    busy_stats = next(c for c in linux.containers if c.attributes.id == busy)
    assert busy_stats.cpu.usage_core_nano_seconds.value > 100_000_000

    other = pods.run(pod_config("other"))
    listed = runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest()).stats
    assert {s.attributes.id for s in listed} == {sandbox_id, other}
    selected = runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(
        filter=pb.PodSandboxStatsFilter(label_selector={"app": "stats"}))).stats
    assert [s.attributes.id for s in selected] == [sandbox_id]
    by_prefix = runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(
        filter=pb.PodSandboxStatsFilter(id=other[:10]))).stats
    assert [s.attributes.id for s in by_prefix] == [other]

    pods.stop(other)
    listed = runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest()).stats
    assert [s.attributes.id for s in listed] == [sandbox_id], "only ready pods"
    with pytest.raises(grpc.RpcError) as caught:
        runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=other))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as caught:
        runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id="0" * 64))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
