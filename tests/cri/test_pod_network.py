"""A pod's network through CNI: an address on the bridge that the host reaches, a
hostPort mapping, CHECK, the CNI config dir, and a stop that leaves no veth, iptables
rule or address allocation behind. The host is the CRI server's own network
namespace (tests/cri/conftest.py), so nothing here touches the machine's network."""

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from cri_pods import Pods, pod_config
from cri_support import CriServer, Deadline
from support import Daemon

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc
from cdfs.cri.sandboxes import netns_name

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello from the pod\\n")
    c.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    print(c.recv(100).decode(), end="")
"""


@contextmanager
def server_in_pod(sandbox_id: str, port: int) -> Iterator[None]:
    """A TCP server in the pod's network namespace answering one line to everyone."""
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{netns_name(sandbox_id)}", sys.executable, "-c",
         SERVER, "0.0.0.0", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def fetch(cri: CriServer, address: str, port: int) -> str:
    """What a client on the host reads from address:port."""
    return cri.on_host(sys.executable, "-c", CLIENT, address, str(port), check=False).stdout


def host_links(cri: CriServer) -> list[str]:
    return [line.split()[0].split("@")[0]
            for line in cri.on_host("ip", "-br", "link").stdout.splitlines()]


def allocations(cri: CriServer) -> list[str]:
    """host-local's allocated addresses (one file per address)."""
    network = cri.root / "cni" / "networks" / "cdfs"
    return sorted(p.name for p in network.iterdir() if p.name[0].isdigit()) \
        if network.is_dir() else []


def test_the_host_reaches_the_pod(cri: CriServer, pods: Pods) -> None:
    sandbox_id = pods.run()
    ip = pods.status(sandbox_id).network.ip
    assert ip.startswith("10.223.")
    bridge = cri.on_host("ip", "-br", "addr", "show", "cdfs0").stdout
    assert "10.223.0.1/16" in bridge
    pod_addr = subprocess.run(["ip", "-n", netns_name(sandbox_id), "-br", "addr", "show",
                               "eth0"], capture_output=True, text=True, timeout=10).stdout
    assert f"{ip}/16" in pod_addr
    ping = cri.on_host("busybox", "ping", "-c", "1", "-W", "5", ip, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    with server_in_pod(sandbox_id, 8080):
        assert fetch(cri, ip, 8080) == "hello from the pod\n"


def test_a_host_port_reaches_the_pod(cri: CriServer, pods: Pods) -> None:
    mapping = pb.PortMapping(protocol=pb.TCP, container_port=8080, host_port=18080)
    sandbox_id = pods.run(pod_config(port_mappings=[mapping]))
    with server_in_pod(sandbox_id, 8080):
        assert fetch(cri, "10.223.0.1", 18080) == "hello from the pod\n", "the host's address"
        assert fetch(cri, "127.0.0.1", 18080) == "hello from the pod\n", "localhost"
    assert fetch(cri, "127.0.0.1", 18081) == "", "only the mapped port is forwarded"


def test_stop_leaves_no_veth_rule_or_address(cri: CriServer, pods: Pods) -> None:
    links_before = host_links(cri)
    mapping = pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=18080)
    sandbox_id = pods.run(pod_config(port_mappings=[mapping]))
    ip = pods.status(sandbox_id).network.ip
    assert [name for name in host_links(cri) if name.startswith("veth")]
    assert sandbox_id in cri.on_host("iptables-save", "-t", "nat").stdout
    assert allocations(cri) == [ip]

    pods.stop(sandbox_id)
    assert set(host_links(cri)) <= set(links_before) | {"cdfs0"}
    assert not [name for name in host_links(cri) if name.startswith("veth")]
    rules = cri.on_host("iptables-save").stdout
    assert sandbox_id not in rules and f"{ip}/32" not in rules and ":18080" not in rules
    assert allocations(cri) == []
    assert not (cri.root / "cni" / "results" / f"{sandbox_id}.json").exists()
    pods.stop(sandbox_id)
    pods.remove(sandbox_id)
    assert allocations(cri) == []


def run_cni(cri: CriServer, command: str, sandbox_id: str) -> subprocess.CompletedProcess[str]:
    """cni.py's `command` (check, delete) for a pod, run where the server runs."""
    conf_dir = cri.extra_args[cri.extra_args.index("--cni-conf-dir") + 1]
    script = (
        "import sys\nfrom pathlib import Path\nfrom cdfs.cri.cni import Attachment, Cni\n"
        f"cni = Cni(Path({conf_dir!r}), Path({str(cri.root / 'cni')!r}))\n"
        f"getattr(cni, {command!r})(Attachment({sandbox_id!r}, "
        f"'/run/netns/{netns_name(sandbox_id)}'))\n")
    return cri.on_host(sys.executable, "-c", script, check=False)


def test_check_finds_a_broken_attachment(cri: CriServer, pods: Pods) -> None:
    sandbox_id = pods.run()
    assert run_cni(cri, "check", sandbox_id).returncode == 0
    veths = [name for name in host_links(cri) if name.startswith("veth")]
    cri.on_host("ip", "link", "delete", veths[0])
    broken = run_cni(cri, "check", sandbox_id)
    assert broken.returncode != 0
    assert "CNI plugin bridge CHECK" in broken.stderr


def test_the_conf_dir_names_the_network(daemon: Daemon, tmp_path: Path,
                                        make_cri: Callable[..., CriServer]) -> None:
    """The first config of --cni-conf-dir in name order is the pods' network; a
    single-plugin .conf is one too."""
    conf_dir = tmp_path / "custom-cni"
    conf_dir.mkdir()
    bridge = {"cniVersion": "1.0.0", "name": "custom", "type": "bridge", "bridge": "cdfst1",
              "isGateway": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.224.5.0/24"}]]}}
    (conf_dir / "10-custom.conf").write_text(json.dumps(bridge))
    (conf_dir / "20-other.conflist").write_text("{ not read: an earlier one is used }")
    (conf_dir / "05-notes.txt").write_text("not a config")
    cri = make_cri(daemon, "custom")
    with _pods_of(cri) as pods:
        sandbox_id = pods.run()
        assert pods.status(sandbox_id).network.ip.startswith("10.224.5.")
        assert "cdfst1" in host_links(cri)
        assert (cri.root / "cni" / "networks" / "custom").is_dir()


@contextmanager
def _pods_of(cri: CriServer) -> Iterator[Pods]:
    """Pods of a second server, removed at the end."""
    with grpc.insecure_channel(cri.address) as plain:
        grpc.channel_ready_future(plain).result(timeout=30)
        made = Pods(pb_grpc.RuntimeServiceStub(grpc.intercept_channel(plain, Deadline())))
        try:
            yield made
        finally:
            made.remove_all()



def test_a_missing_plugin_is_network_not_ready(daemon: Daemon, tmp_path: Path,
                                               make_cri: Callable[..., CriServer]) -> None:
    conf_dir = tmp_path / "broken-cni"
    conf_dir.mkdir()
    (conf_dir / "10-broken.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "nosuchplugin"}]}))
    cri = make_cri(daemon, "broken")
    with _pods_of(cri) as pods:
        status = pods.runtime.Status(pb.StatusRequest(verbose=True))
        network = next(c for c in status.status.conditions if c.type == "NetworkReady")
        assert not network.status
        assert network.reason == "NetworkPluginNotReady"
        assert 'no CNI plugin "nosuchplugin"' in network.message
        assert status.info["sandboxImage"] == "cdfs.local/pause:3.9"
        with pytest.raises(grpc.RpcError) as caught:
            pods.run()
        assert 'no CNI plugin "nosuchplugin"' in caught.value.details()  # type: ignore[attr-defined]
        listed = pods.runtime.ListPodSandbox(pb.ListPodSandboxRequest())
        assert list(listed.items) == []
