"""CRI containers through a real gRPC client, with real runc containers of the busybox
image in real pods: lifecycle, lists, a pod's shared network, security contexts,
logs at the kubelet path, ExecSync, OOM kills, resources and stats."""

import json
import os
import time
from pathlib import Path

import grpc
import pytest
from cri_containers import Containers, container_config, security
from cri_pods import Pods, pod_config
from cri_support import NAMESPACE, CriServer
from support import is_mounted, wait_until

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc

FOREVER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()  # type: ignore[attr-defined]


def wait_exited(ctrs: Containers, container_id: str) -> pb.ContainerStatus:
    assert wait_until(lambda: ctrs.status(container_id).state == pb.CONTAINER_EXITED, 30)
    return ctrs.status(container_id)


def listed(runtime: pb_grpc.RuntimeServiceStub, **filters: object) -> list[str]:
    request = pb.ListContainersRequest(filter=pb.ContainerFilter(**filters))  # type: ignore[arg-type]
    return sorted(c.id for c in runtime.ListContainers(request).containers)


def test_lifecycle_status_and_lists(cri: CriServer, pods: Pods, ctrs: Containers,
                                    runtime: pb_grpc.RuntimeServiceStub,
                                    images: pb_grpc.ImageServiceStub) -> None:
    pod = pods.run()
    before = time.time_ns()
    config = container_config(FOREVER, "web", labels={"app": "web"},
                              annotations={"note": "a"})
    web = ctrs.create(pod, config)
    status = ctrs.status(web)
    assert status.state == pb.CONTAINER_CREATED and status.metadata.name == "web"
    assert before <= status.created_at <= time.time_ns() and status.started_at == 0
    assert status.image.image == "cdfs.local/busybox:latest"
    assert status.image_ref.startswith("cdfs.local/busybox@sha256:")
    assert dict(status.labels) == {"app": "web"} and dict(status.annotations) == {"note": "a"}
    assert code_of(lambda: ctrs.create(pod, config)) == grpc.StatusCode.ALREADY_EXISTS
    image_id = next(i.id for i in images.ListImages(pb.ListImagesRequest()).images
                    if "cdfs.local/busybox:latest" in i.repo_tags)
    by_id = ctrs.create(pod, container_config(["true"], image=pb.ImageSpec(image=image_id)))
    assert ctrs.status(by_id).image_ref == status.image_ref  # kubelet names images by id

    runtime.StartContainer(pb.StartContainerRequest(container_id=web))
    assert ctrs.status(web).state == pb.CONTAINER_RUNNING
    assert ctrs.status(web).started_at >= status.created_at
    done = ctrs.run(pod, container_config(["sh", "-c", "exit 3"], "done"))
    assert wait_exited(ctrs, done).exit_code == 3
    assert ctrs.status(done).reason == "Error"

    assert listed(runtime) == sorted([web, done, by_id])
    assert listed(runtime, id=web[:10]) == [web]
    assert listed(runtime, pod_sandbox_id=pod) == sorted([web, done, by_id])
    assert listed(runtime, state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING)) == [web]
    assert listed(runtime, state=pb.ContainerStateValue(state=pb.CONTAINER_CREATED)) == [by_id]
    assert listed(runtime, label_selector={"app": "web"}) == [web]
    assert listed(runtime, label_selector={"app": "db"}) == []
    assert ctrs.status(web[:12]).id == web  # crictl's id prefix

    runtime.StopContainer(pb.StopContainerRequest(container_id=web, timeout=10))
    stopped = ctrs.status(web)
    assert stopped.state == pb.CONTAINER_EXITED and stopped.exit_code == 0
    assert stopped.reason == "Completed" and stopped.finished_at >= stopped.started_at
    runtime.StopContainer(pb.StopContainerRequest(container_id=web, timeout=10))  # again
    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=web))
    assert code_of(lambda: ctrs.status(web)) == grpc.StatusCode.NOT_FOUND
    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=web))  # unknown: fine
    runtime.StopContainer(pb.StopContainerRequest(container_id="f" * 64))
    assert not cri.daemon.path("namespaces", NAMESPACE, "containers", web).exists()


def test_remove_of_a_running_container_stops_it_first(pods: Pods, ctrs: Containers,
                                                      runtime: pb_grpc.RuntimeServiceStub
                                                      ) -> None:
    running = ctrs.run(pods.run(), container_config(["sleep", "1000"]))
    runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=running))
    assert code_of(lambda: ctrs.status(running)) == grpc.StatusCode.NOT_FOUND


def test_refused_creations_leave_nothing(cri: CriServer, pods: Pods, ctrs: Containers,
                                         runtime: pb_grpc.RuntimeServiceStub) -> None:
    pod = pods.run()
    containers = cri.daemon.path("namespaces", NAMESPACE, "containers")
    before = sorted(p.name for p in containers.iterdir())
    assert code_of(lambda: ctrs.create(pod, container_config(
        ["true"], linux=security(run_as_username="ghost")))) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: ctrs.create(pod, pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="x"), image=pb.ImageSpec(image="nope:1")))
    ) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: ctrs.create("0" * 64, container_config(["true"]))
                   ) == grpc.StatusCode.NOT_FOUND
    image_volume = pb.Mount(container_path="/data", image=pb.ImageSpec(image="busybox"))
    assert code_of(lambda: ctrs.create(pod, container_config(["true"], mounts=[image_volume]))
                   ) == grpc.StatusCode.UNIMPLEMENTED
    assert sorted(p.name for p in containers.iterdir()) == before


def test_an_id_is_never_a_path(cri: CriServer, ctrs: Containers, short_dir: Path) -> None:
    """A 64-character "id" that climbs out of containers/ to a look-alike `info` names
    nothing: ids are 64 hex digits, anything else only a prefix of a listed one."""
    fake = short_dir / "fake"
    fake.mkdir()
    (fake / "info").write_text(json.dumps({"id": "x", "status": "running", "labels": {
        "io.cdfs.cri.kind": "container", "io.cdfs.cri.sandbox-id": "s"}}))
    containers = cri.daemon.path("namespaces", NAMESPACE, "containers")
    escape = os.path.relpath(fake, containers)
    while len(escape) < 63:
        escape += "/."
    escape = (escape + "/")[:64]
    assert len(escape) == 64 and (containers / escape / "info").is_file()
    assert code_of(lambda: ctrs.status(escape)) == grpc.StatusCode.NOT_FOUND
    ctrs.runtime.StopContainer(pb.StopContainerRequest(container_id=escape))  # unknown:
    ctrs.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=escape))  # fine
    assert code_of(lambda: ctrs.create(escape, container_config(["true"]))
                   ) == grpc.StatusCode.NOT_FOUND


def test_the_configs_stop_signal(pods: Pods, ctrs: Containers,
                                runtime: pb_grpc.RuntimeServiceStub) -> None:
    """StopContainer sends the config's stop_signal (else the image's, else TERM), and
    ContainerStatus says which, as containerd's."""
    pod = pods.run()
    usr1 = ["sh", "-c", "trap 'exit 7' USR1; trap 'exit 0' TERM; : > /ready; "
            "while :; do sleep 0.1; done"]
    named = ctrs.run(pod, container_config(usr1, stop_signal=pb.SIGNAL_SIGUSR1))
    plain = ctrs.run(pod, container_config(usr1))
    assert ctrs.status(named).stop_signal == pb.SIGNAL_SIGUSR1
    assert ctrs.status(plain).stop_signal == pb.SIGNAL_SIGTERM
    def trapped(container_id: str) -> bool:
        return ctrs.exec(container_id, "sh", "-c", "test -e /ready", timeout=10).exit_code == 0

    assert wait_until(lambda: trapped(named) and trapped(plain))  # the traps are set
    for container_id in (named, plain):
        runtime.StopContainer(pb.StopContainerRequest(container_id=container_id, timeout=10))
    assert ctrs.status(named).exit_code == 7
    assert ctrs.status(plain).exit_code == 0
    assert code_of(lambda: ctrs.create(pod, container_config(["true"], stop_signal=999))
                   ) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_pod_prefix_names_pods_only(cri: CriServer, pods: Pods, ctrs: Containers,
                                     runtime: pb_grpc.RuntimeServiceStub) -> None:
    """CreateContainer and PortForward take a unique prefix of a pod's id among pods
    (a container whose name begins alike is no pod), as the other pod calls do."""
    pod = pods.run()
    prefix = pod[:8]
    look_alike = cri.daemon.path("namespaces", NAMESPACE, "containers", prefix + "-plain")
    look_alike.mkdir()  # a plain tree slot, no pod: the prefix names one pod still
    try:
        created = ctrs.create(prefix, container_config(["true"]))
        assert ctrs.status(created).metadata.name.startswith("ctr-")
        assert listed(runtime, pod_sandbox_id=pod) == [created]
        url = runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=prefix, port=[80])).url
        assert "/portforward/" in url
        assert code_of(lambda: ctrs.create("", container_config(["true"]))
                       ) == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        look_alike.rmdir()


def test_a_log_path_outside_the_pods_log_directory_is_refused(
        cri: CriServer, pods: Pods, ctrs: Containers, tmp_path: Path) -> None:
    pod = pods.run(pod_config(log_directory=str(tmp_path / "pods" / "uid")))
    containers = cri.daemon.path("namespaces", NAMESPACE, "containers")
    before = sorted(p.name for p in containers.iterdir())
    victim = tmp_path / "victim"
    for log_path in (str(victim), "../../victim", "..", "app/../../uid2/0.log"):
        assert code_of(lambda path=log_path: ctrs.create(pod, container_config(
            ["true"], log_path=path))) == grpc.StatusCode.INVALID_ARGUMENT, log_path
    assert sorted(p.name for p in containers.iterdir()) == before
    assert not victim.exists()
    inside = ctrs.create(pod, container_config(["true"], log_path="app/../1.log"))
    assert ctrs.status(inside).log_path == str(tmp_path / "pods" / "uid" / "1.log")


def test_a_localhost_seccomp_profile_is_read_bounded(
        cri: CriServer, pods: Pods, ctrs: Containers, tmp_path: Path) -> None:
    pod = pods.run()
    containers = cri.daemon.path("namespaces", NAMESPACE, "containers")
    before = sorted(p.name for p in containers.iterdir())
    fifo = tmp_path / "profile.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "pad": "x" * (1 << 20)}))

    def localhost(ref: str) -> pb.LinuxContainerConfig:
        return security(seccomp=pb.SecurityProfile(
            profile_type=pb.SecurityProfile.Localhost, localhost_ref=ref))

    for ref in ("/dev/zero", str(fifo), str(big), str(tmp_path)):
        started = time.monotonic()
        assert code_of(lambda r=ref: ctrs.create(pod, container_config(
            ["true"], linux=localhost(r)))) == grpc.StatusCode.INVALID_ARGUMENT, ref
        assert time.monotonic() - started < 10, ref
    assert sorted(p.name for p in containers.iterdir()) == before
    allow = tmp_path / "allow.json"
    allow.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    allowed = ctrs.run(pod, container_config(["sleep", "1000"], linux=localhost(str(allow))))
    assert b"Seccomp:\t2" in ctrs.exec(allowed, "cat", "/proc/self/status").stdout


def test_two_containers_of_a_pod_share_its_network(pods: Pods, ctrs: Containers) -> None:
    pod = pods.run()
    server = ctrs.run(pod, container_config(
        ["sh", "-c", "while :; do echo hello | nc -l -p 8080; done"], "server"))
    client = ctrs.run(pod, container_config(["sleep", "1000"], "client"))

    def answered() -> bool:
        return ctrs.exec(client, "nc", "127.0.0.1", "8080", timeout=5).stdout == b"hello\n"

    assert wait_until(answered, 20)
    hostnames = {ctrs.exec(c, "hostname").stdout for c in (server, client)}
    assert len(hostnames) == 1  # one UTS namespace, the pod's


def test_a_pods_containers_share_its_dev_shm(cri: CriServer, pods: Pods, ctrs: Containers
                                             ) -> None:
    """As containerd: one 64 MiB tmpfs per pod (not in the host's IPC), bound at each
    container's /dev/shm, unmounted when the pod stops and gone with it."""
    pod = pods.run()
    shm = cri.root / "sandboxes" / pod / "shm"
    assert is_mounted(shm)
    writer = ctrs.run(pod, container_config(["sleep", "1000"]))
    reader = ctrs.run(pod, container_config(["sleep", "1000"],
                                            linux=security(readonly_rootfs=True)))
    assert ctrs.exec(writer, "sh", "-c", "echo shared > /dev/shm/x").exit_code == 0
    assert ctrs.exec(reader, "cat", "/dev/shm/x").stdout == b"shared\n"
    assert (shm / "x").read_text() == "shared\n"
    mounted = ctrs.exec(reader, "grep", " /dev/shm ", "/proc/mounts").stdout.decode()
    assert mounted.split()[2] == "tmpfs" and "size=65536k" in mounted and "rw" in mounted
    other = ctrs.run(pods.run(), container_config(["sleep", "1000"]))
    assert ctrs.exec(other, "ls", "/dev/shm").stdout == b""  # another pod, its own
    pods.stop(pod)
    assert not is_mounted(shm)
    pods.remove(pod)
    assert not shm.exists()


def test_security_contexts(pods: Pods, ctrs: Containers) -> None:
    pod = pods.run()

    def run(*cmd: str, **context: object) -> pb.ExecSyncResponse:
        container = ctrs.run(pod, container_config(["sleep", "1000"],
                                                   linux=security(**context)))
        return ctrs.exec(container, *cmd)

    dropped = run("grep", "CapEff", "/proc/self/status",
                  capabilities=pb.Capability(drop_capabilities=["ALL"]))
    assert dropped.stdout.split() == [b"CapEff:", b"0000000000000000"]
    chown = run("grep", "CapBnd", "/proc/self/status",
                capabilities=pb.Capability(drop_capabilities=["CHOWN"]))
    assert int(chown.stdout.split()[1], 16) & 1 == 0  # CAP_CHOWN is bit 0
    readonly = run("touch", "/written", readonly_rootfs=True)
    assert readonly.exit_code != 0 and b"Read-only file system" in readonly.stderr
    user = run("id", run_as_user=pb.Int64Value(value=1234),
               run_as_group=pb.Int64Value(value=5678), supplemental_groups=[42])
    assert user.stdout.split()[:2] == [b"uid=1234", b"gid=5678"] and b"42" in user.stdout
    told = ctrs.status(ctrs.made[-1]).user.linux
    assert (told.uid, told.gid, list(told.supplemental_groups)) == (1234, 5678, [42, 5678])
    name = run("id", "-u", run_as_username="nobody")
    assert name.stdout.strip() == b"65534"

    default = pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)
    unconfined = pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)
    assert run("unshare", "-U", "true", seccomp=unconfined).exit_code == 0
    blocked = run("unshare", "-U", "true", seccomp=default)
    assert blocked.exit_code != 0 and b"Operation not permitted" in blocked.stderr
    assert b"Seccomp:\t2" in run("cat", "/proc/self/status", seccomp=default).stdout


def test_logs_at_the_kubelet_path_in_cri_format_and_reopened_after_a_rename(
        pods: Pods, ctrs: Containers, runtime: pb_grpc.RuntimeServiceStub,
        tmp_path: Path) -> None:
    pod = pods.run(pod_config(log_directory=str(tmp_path / "pods" / "uid")))
    config = container_config(["sh", "-c", "echo one; echo two >&2; "
                                           "while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                                           "echo three; sleep 1000"], log_path="app/0.log")
    app = ctrs.run(pod, config)
    log = tmp_path / "pods" / "uid" / "app" / "0.log"
    assert ctrs.status(app).log_path == str(log)
    assert wait_until(lambda: len(log.read_text().splitlines()) == 2)
    records = sorted(line.split(" ", 1)[1] for line in log.read_text().splitlines())
    assert records == ["stderr F two", "stdout F one"]
    log.rename(log.with_name("0.log.20261201"))  # kubelet rotates: rename, then reopen
    runtime.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=app))
    assert log.exists()  # at once, as critest looks for it
    ctrs.exec(app, "touch", "/tmp/go")
    assert wait_until(lambda: log.exists() and "three" in log.read_text())
    assert [line.split(" ", 1)[1] for line in log.read_text().splitlines()] == [
        "stdout F three"]
    runtime.StopContainer(pb.StopContainerRequest(container_id=app, timeout=0))
    assert code_of(lambda: runtime.ReopenContainerLog(pb.ReopenContainerLogRequest(
        container_id=app))) == grpc.StatusCode.FAILED_PRECONDITION


def test_exec_sync_exit_codes_output_and_timeout(pods: Pods, ctrs: Containers) -> None:
    app = ctrs.run(pods.run(), container_config(["sleep", "1000"]))
    done = ctrs.exec(app, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (done.stdout, done.stderr, done.exit_code) == (b"out\n", b"err\n", 7)
    assert ctrs.exec(app, "true").exit_code == 0
    started = time.monotonic()
    assert code_of(lambda: ctrs.exec(app, "sleep", "600", timeout=1)
                   ) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 15
    left = ctrs.exec(app, "sh", "-c", "ps -o args | grep -c '^sleep 600'")
    assert left.stdout.strip() == b"0"  # the timed-out command was killed
    assert code_of(lambda: ctrs.exec(app, "/no/such")) == grpc.StatusCode.UNKNOWN


def test_exec_sync_output_is_cut_at_16_mib_per_stream(cri: CriServer, pods: Pods,
                                                      ctrs: Containers) -> None:
    app = ctrs.run(pods.run(), container_config(["sleep", "1000"]))
    request = pb.ExecSyncRequest(container_id=app, cmd=[
        "sh", "-c", "head -c 17825792 /dev/zero; echo err >&2"])  # 17 MiB
    # room for the 16 MiB answer (grpc receives 4 MiB at most by default)
    limit = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(cri.address, options=limit) as channel:
        answer = pb_grpc.RuntimeServiceStub(channel).ExecSync(request, timeout=120)
    assert answer.exit_code == 0 and answer.stderr == b"err\n"
    assert answer.stdout == bytes(16 << 20)


def test_oom_killed_reason_with_a_small_memory_limit(pods: Pods, ctrs: Containers) -> None:
    resources = pb.LinuxContainerResources(memory_limit_in_bytes=16 << 20, oom_score_adj=-500)
    hog = ctrs.run(pods.run(), container_config(
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        linux=pb.LinuxContainerConfig(resources=resources)))
    status = wait_exited(ctrs, hog)
    assert status.exit_code == 137 and status.reason == "OOMKilled"


def test_update_resources_and_stats(cri: CriServer, pods: Pods, ctrs: Containers,
                                    runtime: pb_grpc.RuntimeServiceStub) -> None:
    pod = pods.run()
    app = ctrs.run(pod, container_config(["sh", "-c", "x=$(seq 100000); sleep 1000"],
                                         labels={"app": "stats"}))
    runtime.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=app, linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20)))
    spec = (cri.daemon.path("namespaces", NAMESPACE, "containers", app, "config.json")
            ).read_text()
    assert f'"limit": {64 << 20}' in spec
    limit = Path(f"/sys/fs/cgroup/memory/cdfs/{NAMESPACE}/{app}/memory.limit_in_bytes")
    if limit.exists():  # cgroup v1, as here
        assert int(limit.read_text()) == 64 << 20
    stats = runtime.ContainerStats(pb.ContainerStatsRequest(container_id=app)).stats
    assert stats.attributes.id == app and stats.attributes.labels["app"] == "stats"
    assert stats.cpu.timestamp > 0 and stats.cpu.usage_core_nano_seconds.value > 0
    assert 0 < stats.memory.working_set_bytes.value <= stats.memory.usage_bytes.value
    assert stats.memory.available_bytes.value > 0
    every = runtime.ListContainerStats(pb.ListContainerStatsRequest()).stats
    assert app in {s.attributes.id for s in every}
    chosen = runtime.ListContainerStats(pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(label_selector={"app": "other"}))).stats
    assert list(chosen) == []


def test_a_restarted_server_knows_its_containers(cri: CriServer, pods: Pods,
                                                 ctrs: Containers) -> None:
    """The record is in the tree: after a restart status, lists and exec work as before."""
    app = ctrs.run(pods.run(), container_config(["sleep", "1000"], "survivor",
                                                labels={"keep": "me"}))
    before = ctrs.status(app)
    cri.stop()
    cri.start()
    after = ctrs.status(app)
    assert after.state == pb.CONTAINER_RUNNING
    assert (after.metadata.name, after.created_at, dict(after.labels)) == (
        "survivor", before.created_at, {"keep": "me"})
    assert ctrs.exec(app, "echo", "still").stdout == b"still\n"


def test_a_privileged_container_manages_the_pods_network(pods: Pods, ctrs: Containers
                                                          ) -> None:
    """Every capability the runtime holds (this sandbox lacks CAP_SYS_RESOURCE, which a
    privileged container must then not ask for), in a privileged pod only."""
    privileged = pb.LinuxPodSandboxConfig(
        security_context=pb.LinuxSandboxSecurityContext(privileged=True))
    pod = pods.run(pod_config(linux=privileged))
    admin = ctrs.run(pod, container_config(["sleep", "1000"], linux=security(privileged=True)))
    assert ctrs.exec(admin, "ip", "addr", "add", "10.99.0.1/32", "dev", "lo").exit_code == 0
    plain = ctrs.run(pod, container_config(["sleep", "1000"]))
    refused = ctrs.exec(plain, "ip", "addr", "add", "10.99.0.2/32", "dev", "lo")
    assert refused.exit_code != 0 and b"not permitted" in refused.stderr
    everything = ctrs.run(pod, container_config(["sleep", "1000"], linux=security(
        capabilities=pb.Capability(add_capabilities=["ALL"]))))
    assert ctrs.exec(everything, "true").exit_code == 0
    assert code_of(lambda: ctrs.create(pods.run(), container_config(
        ["true"], linux=security(privileged=True)))) == grpc.StatusCode.INVALID_ARGUMENT
