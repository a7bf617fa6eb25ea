"""A CRI ContainerConfig, its pod's SandboxRecord and its image's config -> the OCI spec
written to the tree container's config.json, as containerd's CRI plugin builds it
(internal/cri/server/container_create*.go, internal/cri/opts/spec*.go).

Pure: what the spec depends on outside the request (the host's hostname, machine,
own oom_score_adj, swap accounting; each mount's resolved host path, each device's
nodes, a Localhost seccomp profile, the image's passwd and group) comes in as values,
read by cdfs/cri/host_facts.py. So every rule here is a plain function, tested
without a mount.

The spec is a full one (it names ociVersion), so the tree takes it as written and
adds only the image's rootfs: the CRI's rules for args, env and user differ from the
partial config.json merge, which follows the image alone.
"""

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from base.errors import InvalidArgument
from cdfs.cri import seccomp
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.errors import CriError, invalid
from cdfs.cri.sandbox_record import NamespaceMode, SandboxRecord
from cdfs.cri.sandbox_spec import cgroups_path
from runtime import spec as oci

Spec = dict[str, Any]

# Capability numbers 0..40 (linux/capability.h); a host knows those up to cap_last_cap.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
POD_FILES = (("hostname", "/etc/hostname"), ("hosts", "/etc/hosts"),
             ("resolv_conf", "/etc/resolv.conf"))
_PROPAGATION: dict[int, str] = {
    pb.PROPAGATION_PRIVATE: "rprivate",
    pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    pb.PROPAGATION_BIDIRECTIONAL: "rshared",
}


@dataclass(frozen=True)
class ImageConfig:
    """The process facts of an image's config (its `config` object)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> "ImageConfig":
        """From the image config blob (images/<ref>/config.json)."""
        config = document.get("config") or {}

        def strings(key: str) -> tuple[str, ...]:
            value = config.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(strings("Entrypoint"), strings("Cmd"), strings("Env"),
                   str(config.get("WorkingDir") or ""), str(config.get("User") or ""),
                   str(config.get("StopSignal") or ""))


@dataclass(frozen=True)
class Host:
    """What the host is, read once by the CRI server (host_facts.host)."""

    hostname: str
    machine: str  # uname -m: which seccomp architectures to filter
    oom_score_adj: int  # the server's own: without CAP_SYS_RESOURCE none may go lower
    swap_accounting: bool  # whether memory.swap limits can be set
    cgroup_v2: bool  # a pure v2 host gives containers their own cgroup namespace
    capabilities: tuple[str, ...] = CAPABILITIES  # the server's own: what ALL means


@dataclass(frozen=True)
class DeviceNode:
    """A device node to make in the container: its path there and the host node's kind."""

    path: str
    type: str  # "c" or "b"
    major: int
    minor: int
    file_mode: int
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Found:
    """What was read on the host and in the image for this one request."""

    passwd: str | None = None  # the image's /etc/passwd, None when it has none
    group: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)  # mount host_path -> real path
    devices: Mapping[str, tuple[DeviceNode, ...]] = field(default_factory=dict)
    seccomp_profile: Mapping[str, Any] | None = None  # the Localhost profile asked for
    target_pid: int = 0  # the pid whose PID namespace a TARGET container joins


@dataclass(frozen=True)
class BindMount:
    """A host path bind-mounted into the container: a CRI Mount or one of the pod's."""

    container_path: str
    host_path: str
    readonly: bool = False
    propagation: int = pb.PROPAGATION_PRIVATE

    @classmethod
    def of(cls, mount: pb.Mount) -> "BindMount":
        if mount.recursive_read_only:
            raise invalid(f'mount {mount.container_path}: recursive read-only mounts are '
                          "not supported")
        if mount.image.image or mount.uidMappings or mount.gidMappings:
            raise invalid(f"mount {mount.container_path}: image volumes and id-mapped "
                          "mounts are not supported")
        if not mount.container_path.startswith("/"):
            raise invalid(f'mount: container_path "{mount.container_path}" is not absolute')
        return cls(mount.container_path, mount.host_path, mount.readonly, mount.propagation)


def container_spec(namespace: str, container_id: str, config: pb.ContainerConfig,
                   sandbox: SandboxRecord, image: ImageConfig, host: Host,
                   found: Found) -> Spec:
    """The OCI spec of the CRI container `container_id` of tree namespace `namespace`.
    CriError INVALID_ARGUMENT for a request that cannot be met."""
    context = config.linux.security_context
    spec = oci.default_spec(namespace, container_id, {})
    process, linux = spec["process"], spec["linux"]
    del process["rlimits"]  # as containerd: the runtime's own limits, not a default's
    del spec["hostname"]  # the pod's UTS namespace has it
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/run"]
    process["args"] = process_args(config, image)
    process["cwd"] = config.working_dir or image.working_dir or "/"
    process["terminal"] = config.tty
    process["env"] = environment(config, image, sandbox.hostname or host.hostname)
    process["user"] = process_user(context, image, found.passwd, found.group)
    process["noNewPrivileges"] = context.no_new_privs
    if host.cgroup_v2 and not context.privileged:
        linux["namespaces"].append({"type": "cgroup"})
    spec["mounts"], propagation = mounts(spec["mounts"], config, sandbox, found.sources)
    if propagation:
        linux["rootfsPropagation"] = propagation
    linux["maskedPaths"] = list(context.masked_paths)
    linux["readonlyPaths"] = list(context.readonly_paths)
    add_devices(linux, config.devices, found.devices)
    process["capabilities"] = capabilities(context, host.capabilities)
    if context.privileged:
        if not sandbox.privileged:
            raise invalid("a privileged container needs a privileged pod sandbox")
        privileged(spec, host.capabilities)
    spec["root"]["readonly"] = context.readonly_rootfs
    if config.linux.HasField("resources"):
        linux["resources"].update(resources(config.linux.resources, host.swap_accounting))
        process["oomScoreAdj"] = max(config.linux.resources.oom_score_adj, host.oom_score_adj)
    path = cgroups_path(sandbox.cgroup_parent, container_id)
    if path is not None:
        linux["cgroupsPath"] = path
    spec["annotations"] = annotations(config, sandbox)
    linux["namespaces"] = namespaces(linux["namespaces"], context.namespace_options, sandbox,
                                     found.target_pid)
    profile = seccomp_profile(context, process["capabilities"]["bounding"], host.machine,
                              found.seccomp_profile)
    if profile is not None:
        linux["seccomp"] = profile
    return spec


def process_args(config: pb.ContainerConfig, image: ImageConfig) -> list[str]:
    """command+args over the image's Entrypoint+Cmd, as docker's and containerd's
    rule: a command replaces the entrypoint and drops the image's Cmd; args replace
    Cmd; an entrypoint of one empty string counts as none."""
    command, args = list(config.command), list(config.args)
    if not command:
        if not args:
            args = list(image.cmd)
        if list(image.entrypoint) != [""]:
            command = list(image.entrypoint)
    if not command and not args:
        raise invalid("no command specified: neither the config nor the image has one")
    return command + args


def environment(config: pb.ContainerConfig, image: ImageConfig, hostname: str) -> list[str]:
    """PATH (the default one unless the image has its own), HOSTNAME, the image's Env,
    then the config's envs, each replacing an earlier variable of its name."""
    env = oci.replace_or_append_env([oci.DEFAULT_PATH_ENV], [f"HOSTNAME={hostname}"])
    given = [f"{kv.key}={_text(kv.value)}" for kv in config.envs]
    return oci.replace_or_append_env(env, [*image.env, *given])


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def user_string(context: pb.LinuxContainerSecurityContext, image: ImageConfig) -> str:
    """The user to run as, as `name`, `uid`, `name:gid` or `uid:gid`: run_as_username,
    else run_as_user, with run_as_group; else the image's User ("" for root)."""
    if context.run_as_username:
        name = context.run_as_username
    elif context.HasField("run_as_user"):
        name = str(context.run_as_user.value)
    else:
        name = ""
    if context.HasField("run_as_group"):
        if not name:
            raise invalid("run_as_group needs run_as_user or run_as_username")
        return f"{name}:{context.run_as_group.value}"
    return name or image.user


def process_user(context: pb.LinuxContainerSecurityContext, image: ImageConfig,
                 passwd: str | None, group: str | None) -> dict[str, Any]:
    """uid and gid resolved in the image's passwd and group (a uid not in passwd runs
    with gid 0; a name not in it is refused), and additionalGids: the supplemental
    groups asked for, with (policy Merge, the default) the image's groups that list
    the user, sorted as containerd merges them."""
    for what in ("run_as_user", "run_as_group"):
        if context.HasField(what) and getattr(context, what).value < 0:
            raise invalid(f"{what}: {getattr(context, what).value} is not an id")
    wanted = user_string(context, image)
    try:
        uid, gid, name = oci.resolve_user(wanted, passwd, group) if wanted else (0, 0, "root")
    except InvalidArgument as exc:
        raise invalid(str(exc)) from None
    gids = {int(g) for g in context.supplemental_groups}
    if context.supplemental_groups_policy == pb.Merge:
        gids.update(oci.supplementary_gids(name, group))
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if gids:
        user["additionalGids"] = sorted(gids)
    return user


def pod_mounts(config: pb.ContainerConfig, sandbox: SandboxRecord) -> list[BindMount]:
    """The pod's files every container gets (/etc/hostname, /etc/hosts,
    /etc/resolv.conf: read-only when the rootfs is), and /dev/shm: the pod's, shared
    by its containers, or the host's for a container in the host's IPC namespace."""
    context = config.linux.security_context
    found = []
    for name, target in POD_FILES:
        source = getattr(sandbox.files, name)
        if source:
            found.append(BindMount(target, source, context.readonly_rootfs))
    if context.namespace_options.ipc == NamespaceMode.NODE:
        found.append(BindMount("/dev/shm", "/dev/shm"))
    elif sandbox.files.shm:
        found.append(BindMount("/dev/shm", sandbox.files.shm))
    return found


def mounts(defaults: list[Spec], config: pb.ContainerConfig, sandbox: SandboxRecord,
           sources: Mapping[str, str]) -> tuple[list[Spec], str]:
    """The spec's mounts and its rootfs propagation ("" for runc's rprivate), as
    containerd's WithMounts: the CRI mounts, then the pod's where the CRI names no
    mount at that path, ordered by depth so none is hidden by a shallower one; the
    default mounts (and a read-only cgroup mount) stay, but those at a path a bind
    takes (all of /dev/* when /dev is bound)."""
    cri = [BindMount.of(m) for m in config.mounts]
    named = {posixpath.normpath(m.container_path) for m in cri}
    binds = cri + [m for m in pod_mounts(config, sandbox)
                   if posixpath.normpath(m.container_path) not in named]
    binds.sort(key=lambda m: posixpath.normpath(m.container_path).count("/"))
    taken = {posixpath.normpath(m.container_path) for m in binds}
    kept = [m for m in [*defaults, dict(CGROUP_MOUNT)]
            if posixpath.normpath(m["destination"]) not in taken
            and not ("/dev" in taken and m["destination"].startswith("/dev/"))]
    propagation = ""
    result = list(kept)
    for bind in binds:
        mode = _PROPAGATION.get(bind.propagation, "rprivate")
        if mode == "rshared" or (mode == "rslave" and propagation != "rshared"):
            propagation = mode
        result.append({"destination": bind.container_path, "type": "bind",
                       "source": sources.get(bind.host_path, bind.host_path),
                       "options": ["rbind", mode, "ro" if bind.readonly else "rw"]})
    return result, propagation


def add_devices(linux: Spec, devices: Sequence[pb.Device],
                nodes: Mapping[str, tuple[DeviceNode, ...]]) -> None:
    """Each CRI device's nodes made in the container and allowed in its cgroup with
    the access asked for (default rwm)."""
    for device in devices:
        for node in nodes.get(device.host_path, ()):
            linux.setdefault("devices", []).append({
                "path": node.path, "type": node.type, "major": node.major,
                "minor": node.minor, "fileMode": node.file_mode, "uid": node.uid,
                "gid": node.gid})
            linux["resources"]["devices"].append({
                "allow": True, "type": node.type, "major": node.major, "minor": node.minor,
                "access": device.permissions or "rwm"})


def capabilities(context: pb.LinuxContainerSecurityContext, every: Sequence[str]
                 ) -> dict[str, list[str]]:
    """The default set with the CRI's adds and drops ("CAP_" optional, "ALL" for
    every one), so `add ALL, drop CHOWN` is all but CAP_CHOWN. Ambient is empty."""
    caps = list(oci.DEFAULT_CAPABILITIES)
    asked = context.capabilities
    add = [_cap_name(c) for c in asked.add_capabilities]
    drop = [_cap_name(c) for c in asked.drop_capabilities]
    if "CAP_ALL" in add:
        caps = list(every)
    if "CAP_ALL" in drop:
        caps = []
    caps += [c for c in add if c != "CAP_ALL" and c not in caps]
    caps = [c for c in caps if c not in drop]
    return {"bounding": caps, "effective": list(caps), "permitted": list(caps)}


def _cap_name(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def privileged(spec: Spec, every: Sequence[str]) -> None:
    """As containerd's WithPrivileged and WithAllDevicesAllowed: every capability, no
    masked or read-only paths, writable sysfs and cgroupfs, every device allowed."""
    caps = list(every)
    spec["process"]["capabilities"] = {"bounding": caps, "effective": list(caps),
                                       "permitted": list(caps)}
    linux = spec["linux"]
    linux["maskedPaths"], linux["readonlyPaths"] = [], []
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    for mount in spec["mounts"]:
        if mount["type"] in ("sysfs", "cgroup"):
            mount["options"] = [o for o in mount["options"] if o != "ro"] + ["rw"]


def resources(asked: pb.LinuxContainerResources, swap_accounting: bool) -> Spec:
    """linux.resources from the CRI's (zero means unset). A memory limit also limits
    swap to itself where swap is accounted, so a container cannot swap past it."""
    cpu: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    for key, value in (("period", asked.cpu_period), ("quota", asked.cpu_quota),
                       ("shares", asked.cpu_shares)):
        if value:
            cpu[key] = value
    if asked.cpuset_cpus:
        cpu["cpus"] = asked.cpuset_cpus
    if asked.cpuset_mems:
        cpu["mems"] = asked.cpuset_mems
    if asked.memory_limit_in_bytes:
        memory["limit"] = asked.memory_limit_in_bytes
        if swap_accounting:
            memory["swap"] = asked.memory_swap_limit_in_bytes or asked.memory_limit_in_bytes
    elif asked.memory_swap_limit_in_bytes and swap_accounting:
        memory["swap"] = asked.memory_swap_limit_in_bytes
    result: Spec = {"cpu": cpu, "memory": memory}
    if asked.hugepage_limits:
        result["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit}
                                    for h in asked.hugepage_limits]
    if asked.unified:
        result["unified"] = dict(asked.unified)
    return result


def annotations(config: pb.ContainerConfig, sandbox: SandboxRecord) -> dict[str, str]:
    """The annotations containerd gives every CRI container, which tools in the
    container's hooks and runtimes read."""
    return {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": config.metadata.name,
        "io.kubernetes.cri.image-name": config.image.user_specified_image or config.image.image,
        "io.kubernetes.cri.sandbox-id": sandbox.id,
        "io.kubernetes.cri.sandbox-name": sandbox.metadata.name,
        "io.kubernetes.cri.sandbox-namespace": sandbox.metadata.namespace,
        "io.kubernetes.cri.sandbox-uid": sandbox.metadata.uid,
    }


def namespaces(defaults: list[Spec], options: pb.NamespaceOption, sandbox: SandboxRecord,
               target_pid: int) -> list[Spec]:
    """The pod's network namespace (its netns file, else the pause process's), the
    pause process's IPC and UTS, and its PID namespace unless the container asks for
    its own (CONTAINER) or another container's (TARGET); mount stays new."""
    if not sandbox.pause_pid:
        raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                       f'pod sandbox "{sandbox.id}" is not running')
    paths = {"network": sandbox.netns_path or sandbox.namespace_path("net"),
             "ipc": sandbox.namespace_path("ipc"), "uts": sandbox.namespace_path("uts")}
    if options.pid == NamespaceMode.TARGET:
        if not target_pid:
            raise invalid(f'target container "{options.target_id}" is not running')
        paths["pid"] = f"/proc/{target_pid}/ns/pid"
    elif options.pid != NamespaceMode.CONTAINER:
        paths["pid"] = sandbox.namespace_path("pid")
    return [{**ns, "path": paths[ns["type"]]} if ns["type"] in paths else dict(ns)
            for ns in defaults]


def localhost_ref(context: pb.LinuxContainerSecurityContext) -> str:
    """The profile file a Localhost seccomp profile names ("" for none)."""
    if context.HasField("seccomp"):
        if context.seccomp.profile_type == pb.SecurityProfile.Localhost:
            return context.seccomp.localhost_ref
        return ""
    return context.seccomp_profile_path.removeprefix("localhost/") \
        if context.seccomp_profile_path.startswith("localhost/") else ""


def seccomp_profile(context: pb.LinuxContainerSecurityContext, capabilities: Sequence[str],
                    machine: str, localhost: Mapping[str, Any] | None) -> Spec | None:
    """linux.seccomp: RuntimeDefault the project's profile (cdfs/cri/seccomp.py) for
    these capabilities, Localhost the profile file read for it, Unconfined (and the
    default when nothing is asked, as containerd) none; none when privileged. The
    deprecated seccomp_profile_path says the same as `runtime/default`,
    `docker/default`, `unconfined` or `localhost/<path>`."""
    if context.privileged:
        return None
    if context.HasField("seccomp"):
        kind = context.seccomp.profile_type
    else:
        path = context.seccomp_profile_path
        if path in ("", "unconfined"):
            kind = pb.SecurityProfile.Unconfined
        elif path in ("runtime/default", "docker/default"):
            kind = pb.SecurityProfile.RuntimeDefault
        elif path.startswith("localhost/"):
            kind = pb.SecurityProfile.Localhost
        else:
            raise invalid(f'seccomp_profile_path: unknown profile "{path}"')
    if kind == pb.SecurityProfile.RuntimeDefault:
        return seccomp.default_profile(capabilities, machine)
    if kind == pb.SecurityProfile.Localhost:
        if localhost is None:
            raise invalid(f'seccomp: no profile at "{localhost_ref(context)}"')
        return dict(localhost)
    return None
