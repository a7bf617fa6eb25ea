"""cdfs/cri/spec.py and seccomp.py without a mount: a CRI request, a sandbox record and
an image config in, the OCI spec out, rule by rule as containerd's CRI plugin has it."""

from typing import Any

import grpc
import pytest

from cdfs.cri import seccomp
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.errors import CriError
from cdfs.cri.sandbox_record import Metadata, NamespaceMode, SandboxFiles, SandboxRecord
from cdfs.cri.spec import DeviceNode, Found, Host, ImageConfig, container_spec
from runtime import spec as oci

HOST = Host(hostname="node1", machine="x86_64", oom_score_adj=-10, swap_accounting=True,
            cgroup_v2=False)
IMAGE = ImageConfig(entrypoint=("/entry",), cmd=("serve", "--port=80"),
                    env=("PATH=/image/bin", "LANG=C"), working_dir="/srv", user="app")
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n" \
         "nobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\napp:x:1000:\nstaff:x:50:app\nwheel:x:10:root,app\n"
SANDBOX = SandboxRecord(
    id="a" * 64, metadata=Metadata("web", "uid-1", "default"),
    netns_path="/run/netns/pod1", hostname="web-pod", pause_pid=4242,
    files=SandboxFiles(hostname="/cri/pod/hostname", hosts="/cri/pod/hosts",
                       resolv_conf="/cri/pod/resolv.conf"),
    cgroup_parent="/kubepods/pod-uid-1", privileged=False, status="running")


def build(config: pb.ContainerConfig, sandbox: SandboxRecord = SANDBOX,
          image: ImageConfig = IMAGE, found: Found | None = None) -> dict[str, Any]:
    spec = container_spec("k8s.io", "c" * 64, config, sandbox, image, HOST,
                          found or Found(passwd=PASSWD, group=GROUP))
    oci.validate(spec)  # the tree would refuse it otherwise
    return spec


def config(**fields: Any) -> pb.ContainerConfig:
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name="app"),
                              image=pb.ImageSpec(image="busybox"), **fields)


def context(**fields: Any) -> pb.ContainerConfig:
    return config(linux=pb.LinuxContainerConfig(
        security_context=pb.LinuxContainerSecurityContext(**fields)))


def refused(request: pb.ContainerConfig, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
            **kwargs: Any) -> str:
    with pytest.raises(CriError) as error:
        build(request, **kwargs)
    assert error.value.code == code
    return str(error.value)


@pytest.mark.parametrize(("command", "args", "image", "expected"), [
    ([], [], IMAGE, ["/entry", "serve", "--port=80"]),
    ([], ["other"], IMAGE, ["/entry", "other"]),
    (["/bin/sh"], [], IMAGE, ["/bin/sh"]),  # a command drops the image's Cmd
    (["/bin/sh"], ["-c", "true"], IMAGE, ["/bin/sh", "-c", "true"]),
    ([], [], ImageConfig(entrypoint=("",), cmd=("run",)), ["run"]),
])
def test_args_follow_the_cri_rules_over_entrypoint_and_cmd(
        command: list[str], args: list[str], image: ImageConfig, expected: list[str]) -> None:
    assert build(config(command=command, args=args), image=image)["process"]["args"] == expected


def test_no_command_anywhere_is_refused() -> None:
    assert "no command" in refused(config(), image=ImageConfig())


def test_env_is_path_hostname_image_then_config_and_cwd_from_config_or_image() -> None:
    spec = build(config(envs=[pb.KeyValue(key="LANG", value=b"fr"),
                              pb.KeyValue(key="X", value=b"1")]))
    assert spec["process"]["env"] == ["PATH=/image/bin", "HOSTNAME=web-pod", "LANG=fr", "X=1"]
    assert spec["process"]["cwd"] == "/srv"
    assert build(config(working_dir="/work"))["process"]["cwd"] == "/work"
    assert build(config(), image=ImageConfig(cmd=("x",)))["process"]["cwd"] == "/"
    bare = build(config(), sandbox=SandboxRecord(**{**SANDBOX.__dict__, "hostname": ""}),
                 image=ImageConfig(cmd=("x",)))
    assert bare["process"]["env"] == [oci.DEFAULT_PATH_ENV, "HOSTNAME=node1"]


def test_user_from_the_image_from_run_as_user_and_username_with_groups() -> None:
    assert build(config())["process"]["user"] == {"uid": 1000, "gid": 1000,
                                                  "additionalGids": [10, 50]}
    assert build(context(run_as_user=pb.Int64Value(value=65534)))["process"]["user"] == {
        "uid": 65534, "gid": 65534}
    assert build(context(run_as_user=pb.Int64Value(value=4000)))["process"]["user"] == {
        "uid": 4000, "gid": 0}  # not in passwd: gid 0
    assert build(context(run_as_username="app", run_as_group=pb.Int64Value(value=7),
                         supplemental_groups=[3, 50]))["process"]["user"] == {
        "uid": 1000, "gid": 7, "additionalGids": [3, 10, 50]}
    strict = context(run_as_user=pb.Int64Value(value=1000), supplemental_groups=[3],
                     supplemental_groups_policy=pb.Strict)
    assert build(strict)["process"]["user"] == {"uid": 1000, "gid": 1000,
                                                "additionalGids": [3]}
    assert build(context(run_as_user=pb.Int64Value(value=0)))["process"]["user"] == {
        "uid": 0, "gid": 0, "additionalGids": [10]}


def test_bad_users_are_refused() -> None:
    assert "ghost" in refused(context(run_as_username="ghost"))
    assert "run_as_group" in refused(context(run_as_group=pb.Int64Value(value=5)),
                                     image=ImageConfig(cmd=("x",)))
    assert "run_as_user" in refused(context(run_as_user=pb.Int64Value(value=-1)))


def test_pod_namespaces_are_joined_and_pid_follows_the_mode() -> None:
    spec = build(config())
    joined = {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}
    assert joined == {"network": "/run/netns/pod1", "ipc": "/proc/4242/ns/ipc",
                      "uts": "/proc/4242/ns/uts", "pid": "/proc/4242/ns/pid", "mount": None}
    assert "hostname" not in spec  # the pod's UTS namespace has it

    def pid(mode: int, target: str = "", target_pid: int = 0) -> str | None:
        request = context(namespace_options=pb.NamespaceOption(pid=mode, target_id=target))
        namespaces = build(request, found=Found(passwd=PASSWD, group=GROUP,
                                                target_pid=target_pid))["linux"]["namespaces"]
        return next(ns.get("path") for ns in namespaces if ns["type"] == "pid")

    assert pid(NamespaceMode.CONTAINER) is None
    assert pid(NamespaceMode.TARGET, "t", 77) == "/proc/77/ns/pid"
    no_net = SandboxRecord(**{**SANDBOX.__dict__, "netns_path": ""})
    assert next(ns["path"] for ns in build(config(), sandbox=no_net)["linux"]["namespaces"]
                if ns["type"] == "network") == "/proc/4242/ns/net"


def test_a_sandbox_without_its_pause_process_is_refused() -> None:
    stopped = SandboxRecord(**{**SANDBOX.__dict__, "pause_pid": 0, "status": "stopped"})
    assert "not running" in refused(config(), grpc.StatusCode.FAILED_PRECONDITION,
                                    sandbox=stopped)


def test_mounts_pod_files_propagation_and_order() -> None:
    request = config(mounts=[
        pb.Mount(container_path="/data/cache", host_path="/h/cache"),
        pb.Mount(container_path="/data", host_path="/h/data", readonly=True,
                 propagation=pb.PROPAGATION_HOST_TO_CONTAINER, selinux_relabel=True),
        pb.Mount(container_path="/etc/hosts", host_path="/h/hosts"),
    ])
    spec = build(request, found=Found(passwd=PASSWD, group=GROUP,
                                      sources={"/h/data": "/real/data"}))
    binds = [(m["destination"], m["source"], m["options"]) for m in spec["mounts"]
             if m["type"] == "bind"]
    assert binds == [
        ("/data", "/real/data", ["rbind", "rslave", "ro"]),  # shallower first
        ("/data/cache", "/h/cache", ["rbind", "rprivate", "rw"]),
        ("/etc/hosts", "/h/hosts", ["rbind", "rprivate", "rw"]),  # the CRI's wins
        ("/etc/hostname", "/cri/pod/hostname", ["rbind", "rprivate", "rw"]),
        ("/etc/resolv.conf", "/cri/pod/resolv.conf", ["rbind", "rprivate", "rw"]),
    ]
    assert spec["linux"]["rootfsPropagation"] == "rslave"
    others = [m["destination"] for m in spec["mounts"] if m["type"] != "bind"]
    assert others == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                      "/sys/fs/cgroup"]  # no /run, as containerd
    shared = config(mounts=[pb.Mount(container_path="/x", host_path="/x",
                                     propagation=pb.PROPAGATION_BIDIRECTIONAL)])
    assert build(shared)["linux"]["rootfsPropagation"] == "rshared"
    dev = build(config(mounts=[pb.Mount(container_path="/dev", host_path="/dev")]))
    assert [m["destination"] for m in dev["mounts"] if m["destination"].startswith("/dev")
            ] == ["/dev"]


def test_readonly_rootfs_makes_pod_files_readonly_and_host_ipc_binds_dev_shm() -> None:
    spec = build(context(readonly_rootfs=True,
                         namespace_options=pb.NamespaceOption(ipc=NamespaceMode.NODE)))
    assert spec["root"]["readonly"] is True
    options = {m["destination"]: m["options"] for m in spec["mounts"]}
    assert options["/etc/hosts"][-1] == "ro" and options["/dev/shm"] == ["rbind", "rprivate",
                                                                         "rw"]


def test_unsupported_mounts_are_refused() -> None:
    assert "recursive" in refused(config(mounts=[pb.Mount(
        container_path="/x", host_path="/x", readonly=True, recursive_read_only=True)]))
    assert "not absolute" in refused(config(mounts=[pb.Mount(container_path="x",
                                                             host_path="/x")]))


def test_capabilities_add_drop_and_all() -> None:
    def caps(add: list[str], drop: list[str]) -> list[str]:
        request = context(capabilities=pb.Capability(add_capabilities=add,
                                                     drop_capabilities=drop))
        result = build(request)["process"]["capabilities"]
        assert result["bounding"] == result["effective"] == result["permitted"]
        assert "ambient" not in result
        return list(result["bounding"])

    assert caps([], []) == list(oci.DEFAULT_CAPABILITIES)
    assert caps(["NET_ADMIN"], ["CHOWN", "CAP_KILL"]) == [
        c for c in oci.DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_KILL")
    ] + ["CAP_NET_ADMIN"]
    assert caps([], ["ALL"]) == []
    assert caps(["SYS_ADMIN"], ["ALL"]) == ["CAP_SYS_ADMIN"]
    assert caps(["ALL"], ["CHOWN"]) == [c for c in HOST.capabilities if c != "CAP_CHOWN"]


def test_privileged_needs_a_privileged_sandbox_and_opens_everything() -> None:
    request = context(privileged=True, masked_paths=["/proc/kcore"],
                      seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    assert "privileged pod" in refused(request)
    spec = build(request, sandbox=SandboxRecord(**{**SANDBOX.__dict__, "privileged": True}))
    assert spec["process"]["capabilities"]["bounding"] == list(HOST.capabilities)
    assert spec["linux"]["maskedPaths"] == [] and "seccomp" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in spec["mounts"] if m["type"] == "sysfs")
    assert "ro" not in sysfs["options"]


def test_security_flags_masked_and_readonly_paths() -> None:
    spec = build(context(no_new_privs=True, masked_paths=["/proc/kcore"],
                         readonly_paths=["/proc/sys"]))
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["linux"]["maskedPaths"] == ["/proc/kcore"]
    assert spec["linux"]["readonlyPaths"] == ["/proc/sys"]
    plain = build(config())
    assert plain["process"]["noNewPrivileges"] is False and plain["root"]["readonly"] is False
    assert plain["linux"]["maskedPaths"] == []  # kubelet sends its defaults; containerd too
    assert "rlimits" not in plain["process"]


def test_resources_oom_score_adj_clamped_and_cgroup_under_the_pod() -> None:
    resources = pb.LinuxContainerResources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                           memory_limit_in_bytes=64 << 20, oom_score_adj=-998,
                                           cpuset_cpus="0", unified={"pids.max": "50"})
    spec = build(config(linux=pb.LinuxContainerConfig(resources=resources)))
    assert spec["linux"]["resources"]["cpu"] == {"period": 100000, "quota": 50000,
                                                 "shares": 512, "cpus": "0"}
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert spec["linux"]["resources"]["unified"] == {"pids.max": "50"}
    assert spec["process"]["oomScoreAdj"] == -10  # the server's own floor
    raised = pb.LinuxContainerResources(oom_score_adj=500)
    assert build(config(linux=pb.LinuxContainerConfig(resources=raised)))["process"][
        "oomScoreAdj"] == 500
    assert spec["linux"]["cgroupsPath"] == "/kubepods/pod-uid-1/" + "c" * 64
    assert "oomScoreAdj" not in build(config())["process"]


def test_devices_are_made_and_allowed() -> None:
    node = DeviceNode("/dev/xnull", "c", 1, 3, 0o666)
    request = config(devices=[pb.Device(container_path="/dev/xnull", host_path="/dev/null",
                                        permissions="rw")])
    spec = build(request, found=Found(passwd=PASSWD, group=GROUP,
                                      devices={"/dev/null": (node,)}))
    assert spec["linux"]["devices"] == [{"path": "/dev/xnull", "type": "c", "major": 1,
                                         "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert spec["linux"]["resources"]["devices"][-1] == {
        "allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}


def test_seccomp_runtime_default_unconfined_localhost_and_the_old_path_field() -> None:
    def profile(**fields: Any) -> Any:
        return build(context(**fields), found=Found(
            passwd=PASSWD, group=GROUP, seccomp_profile={"defaultAction": "SCMP_ACT_LOG"}
        ))["linux"].get("seccomp")

    default = profile(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    assert default == seccomp.default_profile(oci.DEFAULT_CAPABILITIES, "x86_64")
    assert profile() is None  # unset: unconfined, as containerd
    assert profile(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)) is None
    assert profile(seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost,
                                              localhost_ref="/p.json")) == {
        "defaultAction": "SCMP_ACT_LOG"}
    assert profile(seccomp_profile_path="runtime/default") == default
    assert profile(seccomp_profile_path="localhost//p.json") == {"defaultAction": "SCMP_ACT_LOG"}
    assert "unknown profile" in refused(context(seccomp_profile_path="nope"))


def test_the_default_profile_refuses_what_docker_refuses_unless_the_cap_is_held() -> None:
    plain = seccomp.refused_calls(oci.DEFAULT_CAPABILITIES)
    for call in ("mount", "unshare", "setns", "ptrace", "reboot", "keyctl", "bpf",
                 "init_module", "clock_settime", "swapon", "open_by_handle_at"):
        assert call in plain
    admin = seccomp.refused_calls([*oci.DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    assert "mount" not in admin and "unshare" not in admin and "keyctl" in admin
    profile = seccomp.default_profile(oci.DEFAULT_CAPABILITIES, "x86_64")
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    clone_rules = [r for r in profile["syscalls"] if r["names"] == ["clone"]]
    assert {r["args"][0]["value"] for r in clone_rules} == set(
        seccomp.CLONE_NAMESPACE_FLAGS.values())
    assert not any(r["names"] in (["clone"], ["clone3"]) for r in seccomp.default_profile(
        ["CAP_SYS_ADMIN"], "x86_64")["syscalls"])


def test_annotations_name_the_pod_and_the_container() -> None:
    assert build(config())["annotations"] == {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "app", "io.kubernetes.cri.image-name": "busybox",
        "io.kubernetes.cri.sandbox-id": "a" * 64, "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": "uid-1"}


def test_image_config_from_the_config_blob() -> None:
    blob = {"config": {"Entrypoint": ["/e"], "Cmd": None, "Env": ["A=1"], "User": "1:2",
                       "WorkingDir": "/w"}}
    assert ImageConfig.from_json(blob) == ImageConfig(("/e",), (), ("A=1",), "/w", "1:2")
    assert ImageConfig.from_json({}) == ImageConfig()
