"""Pod sandboxes through a real gRPC client: run, status, list, stop, remove, the pod's
files and namespaces, and what a refused pod leaves (nothing)."""

import json
import os
import time
from pathlib import Path

import grpc
import pytest
from cri_pods import Pods, pod_config
from cri_support import NAMESPACE, CriServer
from support import listed

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc
from cdfs.cri.container_record import nanoseconds
from cdfs.cri.sandboxes import netns_name


def tree_container(cri: CriServer, sandbox_id: str) -> Path:
    return cri.daemon.path("namespaces", NAMESPACE, "containers", sandbox_id)


def pause_pid(cri: CriServer, sandbox_id: str) -> int:
    return int((tree_container(cri, sandbox_id) / "pid").read_text())


def listed_ids(runtime: pb_grpc.RuntimeServiceStub, **filters: object) -> list[str]:
    request = pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(**filters))  # type: ignore[arg-type]
    return [item.id for item in runtime.ListPodSandbox(request).items]


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()  # type: ignore[attr-defined]


def test_lifecycle(cri: CriServer, pods: Pods, runtime: pb_grpc.RuntimeServiceStub) -> None:
    before = time.time_ns()
    config = pod_config("web", labels={"app": "web", "tier": "front"},
                        annotations={"note": "two\nlines"})
    sandbox_id = pods.run(config)
    assert len(sandbox_id) == 64 and int(sandbox_id, 16) >= 0

    status = pods.status(sandbox_id)
    assert status.id == sandbox_id
    assert status.state == pb.SANDBOX_READY
    assert before <= status.created_at <= time.time_ns()
    assert (status.metadata.name, status.metadata.uid, status.metadata.namespace) == (
        "web", "uid-web", "test")
    assert dict(status.labels) == {"app": "web", "tier": "front"}
    assert dict(status.annotations) == {"note": "two\nlines"}
    assert status.network.ip.startswith("10.223.")
    assert (tree_container(cri, sandbox_id) / "status").read_text().strip() == "running"
    assert netns_name(sandbox_id) in listed()

    other = pods.run()
    assert set(listed_ids(runtime)) == {sandbox_id, other}
    assert listed_ids(runtime, id=sandbox_id) == [sandbox_id]
    assert listed_ids(runtime, id=sandbox_id[:12]) == [sandbox_id], "crictl's id prefix"
    assert listed_ids(runtime, label_selector={"app": "web"}) == [sandbox_id]
    assert listed_ids(runtime, label_selector={"app": "web", "tier": "back"}) == []

    pods.stop(sandbox_id)
    assert pods.status(sandbox_id).state == pb.SANDBOX_NOTREADY
    assert netns_name(sandbox_id) not in listed()
    pods.stop(sandbox_id)  # twice is fine
    notready = pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY)
    ready = pb.PodSandboxStateValue(state=pb.SANDBOX_READY)
    assert listed_ids(runtime, state=notready) == [sandbox_id]
    assert listed_ids(runtime, state=ready) == [other]

    pods.remove(sandbox_id)
    assert not tree_container(cri, sandbox_id).exists()
    assert not (cri.root / "sandboxes" / sandbox_id).exists()
    assert code_of(lambda: pods.status(sandbox_id)) == grpc.StatusCode.NOT_FOUND
    assert listed_ids(runtime) == [other]
    pods.remove(sandbox_id)  # twice is fine

    pods.remove(other)  # a ready pod is stopped on the way
    assert listed_ids(runtime) == []
    assert netns_name(other) not in listed()


def test_unknown_ids(pods: Pods) -> None:
    """Stop and remove of what is not there succeed, as kubelet expects; status does
    not."""
    unknown = "0" * 64
    pods.stop(unknown)
    pods.remove(unknown)
    assert code_of(lambda: pods.status(unknown)) == grpc.StatusCode.NOT_FOUND
    uuid = "50d7aa31-bda9-4619-8afa-c94e51880081"  # critest's unknown ids
    pods.stop(uuid)
    pods.remove(uuid)
    assert code_of(lambda: pods.status(uuid)) == grpc.StatusCode.NOT_FOUND
    for escape in ("../../..", "../containers", "."):
        assert code_of(lambda: pods.status(escape)) == grpc.StatusCode.NOT_FOUND  # noqa: B023
    assert code_of(lambda: pods.status("")) == grpc.StatusCode.INVALID_ARGUMENT


def test_hostname_and_dns_files(cri: CriServer, pods: Pods) -> None:
    dns = pb.DNSConfig(servers=["10.96.0.10", "10.96.0.11"],
                       searches=["test.svc.cluster.local", "svc.cluster.local"],
                       options=["ndots:5"])
    sandbox_id = pods.run(pod_config(hostname="web-0", dns_config=dns))
    files = cri.root / "sandboxes" / sandbox_id
    assert (files / "hostname").read_text() == "web-0\n"
    assert (files / "resolv.conf").read_text() == (
        "search test.svc.cluster.local svc.cluster.local\n"
        "nameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n")
    assert (files / "hosts").read_text() == Path("/etc/hosts").read_text()
    # The pause process holds the pod's UTS namespace, named as the pod.
    pid = pause_pid(cri, sandbox_id)
    uname = cri.on_host("nsenter", "-t", str(pid), "-u", "hostname").stdout
    assert uname.strip() == "web-0"

    bare = pods.run(pod_config())
    host_resolv = Path("/etc/resolv.conf")
    expected = host_resolv.read_text() if host_resolv.exists() else ""
    assert (cri.root / "sandboxes" / bare / "resolv.conf").read_text() == expected


def test_namespaces_of_the_pause_process(cri: CriServer, pods: Pods) -> None:
    """Pod mode: new net, ipc, uts, pid; host modes: the host's."""
    own = pods.run()
    pid = pause_pid(cri, own)
    for kind in ("net", "ipc", "uts", "pid"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{netns_name(own)}").st_ino
    options = pods.status(own).linux.namespaces.options
    assert (options.network, options.pid, options.ipc) == (pb.POD, pb.POD, pb.POD)

    node = pb.NamespaceOption(network=pb.NODE, pid=pb.NODE, ipc=pb.NODE)
    linux = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
        namespace_options=node))
    host = pods.run(pod_config(hostname="ignored", linux=linux))
    pid = pause_pid(cri, host)
    for kind in ("net", "ipc", "uts", "pid"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}")
    status = pods.status(host)
    assert status.network.ip == ""
    options = status.linux.namespaces.options
    assert (options.network, options.pid, options.ipc) == (pb.NODE, pb.NODE, pb.NODE)
    assert netns_name(host) not in listed()
    pods.stop(host)
    pods.remove(host)


def test_sysctls_apply_in_the_pod(cri: CriServer, pods: Pods) -> None:
    linux = pb.LinuxPodSandboxConfig(sysctls={"net.ipv4.ip_unprivileged_port_start": "80",
                                              "kernel.shmmni": "1000"})
    sandbox_id = pods.run(pod_config(linux=linux))
    pid = str(pause_pid(cri, sandbox_id))
    port = cri.on_host("nsenter", "-t", pid, "-n", "cat",
                       "/proc/sys/net/ipv4/ip_unprivileged_port_start").stdout
    assert port.strip() == "80"
    shm = cri.on_host("nsenter", "-t", pid, "-i", "cat", "/proc/sys/kernel/shmmni").stdout
    assert shm.strip() == "1000"


def test_refused_pods_leave_nothing(cri: CriServer, pods: Pods,
                                    runtime: pb_grpc.RuntimeServiceStub) -> None:
    def run(config: pb.PodSandboxConfig) -> grpc.StatusCode:
        return code_of(lambda: pods.run(config))

    assert run(pb.PodSandboxConfig()) == grpc.StatusCode.INVALID_ARGUMENT
    bad_dns = pb.DNSConfig(servers=["10.0.0.1\nnameserver 6.6.6.6"])
    assert run(pod_config(dns_config=bad_dns)) == grpc.StatusCode.INVALID_ARGUMENT
    assert run(pod_config(log_directory="pods/uid")) == grpc.StatusCode.INVALID_ARGUMENT
    # runc refuses a sysctl that is not namespaced: the pod fails after its network
    # was wired, and all of it is undone.
    host_wide = pb.LinuxPodSandboxConfig(sysctls={"vm.swappiness": "10"})
    assert run(pod_config(linux=host_wide)) == grpc.StatusCode.UNKNOWN
    unknown_handler = pb.RunPodSandboxRequest(config=pod_config(), runtime_handler="kata")
    assert code_of(lambda: runtime.RunPodSandbox(unknown_handler)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    taken = pod_config("taken")
    pods.run(taken)
    assert run(taken) == grpc.StatusCode.ALREADY_EXISTS

    assert len(listed_ids(runtime)) == 1
    containers = cri.daemon.path("namespaces", NAMESPACE, "containers")
    assert sorted(p.name for p in containers.iterdir() if p.is_dir()) == listed_ids(runtime)
    made = sorted(p.name for p in (cri.daemon.state / "netns").iterdir())  # the daemon's own
    assert made == [netns_name(listed_ids(runtime)[0])]
    allocated = [p.name for p in (cri.root / "cni" / "networks" / "cdfs").iterdir()
                 if p.name[0].isdigit()]
    assert allocated == [pods.status(listed_ids(runtime)[0]).network.ip]
    assert sorted(p.name for p in (cri.root / "sandboxes").iterdir()) == listed_ids(runtime)


def test_the_creation_time_is_the_trees(cri: CriServer, pods: Pods,
                                      runtime: pb_grpc.RuntimeServiceStub) -> None:
    """As a container's: info's `created`, one clock for one fact, in status and list."""
    sandbox_id = pods.run()
    info = json.loads((tree_container(cri, sandbox_id) / "info").read_text())
    created = nanoseconds(info["created"])
    assert pods.status(sandbox_id).created_at == created
    [item] = runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    assert item.created_at == created


def test_a_netns_name_from_the_labels_is_checked(cri: CriServer, pods: Pods) -> None:
    """Labels may be edited by hand: a netns name that climbs out of netns/ is refused
    before it becomes a path, and the stop changes nothing."""
    sandbox_id = pods.run()
    victim = cri.daemon.path("namespaces", "victim")
    victim.mkdir()
    labels = tree_container(cri, sandbox_id) / "labels"
    original = labels.read_text()
    key = "io.cdfs.cri.netns="
    edited = "".join(f"{key}../namespaces/victim\n" if line.startswith(key) else line
                     for line in original.splitlines(keepends=True))
    assert edited != original
    labels.write_text(edited)
    with pytest.raises(grpc.RpcError) as caught:
        pods.stop(sandbox_id)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "netns name" in str(caught.value.details())
    assert victim.is_dir()
    assert pods.status(sandbox_id).state == pb.SANDBOX_READY  # nothing was stopped
    labels.write_text(original)
    victim.rmdir()


def test_a_host_path_failure_is_a_status_not_a_traceback(cri: CriServer, pods: Pods,
                                                         runtime: pb_grpc.RuntimeServiceStub
                                                         ) -> None:
    """An OSError of the server's own files (here: --root/sandboxes is no directory)
    answers through the one error mapping, naming the path, and leaves nothing."""
    (cri.root / "sandboxes").write_text("not a directory\n")
    with pytest.raises(grpc.RpcError) as caught:
        pods.run()
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert str(caught.value.details()).startswith(str(cri.root / "sandboxes"))
    assert "Not a directory" in str(caught.value.details())
    assert "Traceback" not in cri.log.read_text()
    assert listed_ids(runtime) == []


def test_a_restarted_server_knows_its_pods(cri: CriServer, pods: Pods) -> None:
    """The server keeps no state of its own: after a restart the pod is there, ready,
    with its address, and stopping it undoes the network ADD made before."""
    mapping = pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=18080)
    sandbox_id = pods.run(pod_config("survivor", port_mappings=[mapping]))
    before = pods.status(sandbox_id)
    cri.stop()
    cri.start()
    after = pods.status(sandbox_id)
    assert after.state == pb.SANDBOX_READY
    assert (after.network.ip, after.created_at, after.metadata.name) == (
        before.network.ip, before.created_at, "survivor")
    pods.stop(sandbox_id)
    assert sandbox_id not in cri.on_host("iptables-save", "-t", "nat").stdout


def proc_status(pid: int, field: str) -> list[str]:
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith(field + ":"))
    return line.split()[1:]


def test_the_pods_security_context_runs_the_pause_process(cri: CriServer, pods: Pods) -> None:
    """The pause process runs as the pod's user, on a read-only root; without one, as
    registry.k8s.io/pause's 65535."""
    context = pb.LinuxSandboxSecurityContext(run_as_user=pb.Int64Value(value=1234),
                                             run_as_group=pb.Int64Value(value=2345),
                                             supplemental_groups=[3456])
    sandbox_id = pods.run(pod_config(linux=pb.LinuxPodSandboxConfig(security_context=context)))
    pid = pause_pid(cri, sandbox_id)
    assert proc_status(pid, "Uid")[0] == "1234"
    assert proc_status(pid, "Gid")[0] == "2345"
    assert "3456" in proc_status(pid, "Groups")
    config = json.loads((tree_container(cri, sandbox_id) / "config.json").read_text())
    assert config["root"]["readonly"] is True

    default = pause_pid(cri, pods.run())
    assert proc_status(default, "Uid")[0] == "65535"
