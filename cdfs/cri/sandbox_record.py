"""A pod sandbox as the tree holds it: what its containers need to know about it.

A sandbox is the tree container `namespaces/k8s.io/containers/<id>/` running the
pause program. Its CRI facts (kubelet's metadata, labels and annotations, the
namespace modes, the files written for it on the host, its IP) are kept in that
container's labels (see cdfs/cri/labels.py); its state (ready while the pause
process runs) and the pause pid are read live from the container's `info`. So
`read_sandbox` needs nothing but the mount, and a restarted CRI server sees every
pod as it was.

CreateContainer reads the record to join a container to its pod: the pod's network
namespace (`netns_path`), IPC/UTS/PID through `/proc/<pause_pid>/ns/*`, the
hostname/hosts/resolv.conf files to bind-mount, the cgroup parent and log directory.
"""

import errno
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from base import identifiers
from base.errors import InvalidArgument
from cdfs.client.tree import Tree, TreeError
from cdfs.cri import ids
from cdfs.cri import labels as keys
from cdfs.cri.container_record import RUNNING, nanoseconds
from cdfs.cri.labels import compact, parsed, string_map, text


class NamespaceMode(IntEnum):
    """CRI's NamespaceMode, with its wire numbers."""

    POD = 0
    """shared by every container of the pod (the pause process's namespace)"""
    CONTAINER = 1
    """each container has its own"""
    NODE = 2
    """the host's"""
    TARGET = 3
    """the namespace of the container `target_id` (PID only)"""


@dataclass(frozen=True)
class NamespaceOptions:
    """Which namespaces the pod shares, as CRI's NamespaceOption. The defaults are the
    proto's zero values."""

    network: NamespaceMode = NamespaceMode.POD
    pid: NamespaceMode = NamespaceMode.POD
    ipc: NamespaceMode = NamespaceMode.POD
    target_id: str = ""

    @property
    def host_network(self) -> bool:
        return self.network == NamespaceMode.NODE

    def to_json(self) -> dict[str, Any]:
        return {"network": int(self.network), "pid": int(self.pid), "ipc": int(self.ipc),
                "target_id": self.target_id}

    @classmethod
    def from_json(cls, value: Any) -> "NamespaceOptions":
        value = value if isinstance(value, dict) else {}
        return cls(_mode(value.get("network")), _mode(value.get("pid")),
                   _mode(value.get("ipc")), str(value.get("target_id") or ""))


def _mode(value: Any) -> NamespaceMode:
    try:
        return NamespaceMode(int(value or 0))
    except (TypeError, ValueError):
        return NamespaceMode.POD


@dataclass(frozen=True)
class Metadata:
    """CRI's PodSandboxMetadata: who the pod is to kubelet."""

    name: str
    uid: str
    namespace: str
    attempt: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "namespace": self.namespace,
                "attempt": self.attempt}

    @classmethod
    def from_json(cls, value: Any) -> "Metadata":
        value = value if isinstance(value, dict) else {}
        return cls(str(value.get("name", "")), str(value.get("uid", "")),
                   str(value.get("namespace", "")), int(value.get("attempt") or 0))


@dataclass(frozen=True)
class PortMapping:
    """One hostPort of the pod, as CRI's PortMapping (protocol TCP, UDP or SCTP)."""

    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"container_port": self.container_port, "host_port": self.host_port,
                "protocol": self.protocol, "host_ip": self.host_ip}

    @classmethod
    def from_json(cls, value: Any) -> "PortMapping":
        return cls(int(value.get("container_port") or 0), int(value.get("host_port") or 0),
                   str(value.get("protocol") or "TCP"), str(value.get("host_ip") or ""))


@dataclass(frozen=True)
class SandboxFiles:
    """Files the CRI server writes for the pod on the host (under its `--root`), which
    the pod's containers bind-mount; empty paths where there is none."""

    hostname: str = ""
    hosts: str = ""
    resolv_conf: str = ""
    shm: str = ""
    """the pod's /dev/shm, a tmpfs every container binds; none in the host's IPC"""

    def to_json(self) -> dict[str, str]:
        return {"hostname": self.hostname, "hosts": self.hosts, "resolv_conf": self.resolv_conf,
                "shm": self.shm}

    @classmethod
    def from_json(cls, value: Any) -> "SandboxFiles":
        value = value if isinstance(value, dict) else {}
        return cls(str(value.get("hostname") or ""), str(value.get("hosts") or ""),
                   str(value.get("resolv_conf") or ""), str(value.get("shm") or ""))


@dataclass(frozen=True)
class SandboxRecord:
    """Everything known of one pod sandbox. `created_at`, `status` and `pause_pid` come
    from the tree container itself; every other field from its labels."""

    id: str
    metadata: Metadata
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    runtime_handler: str = ""
    namespace_options: NamespaceOptions = NamespaceOptions()
    netns_name: str = ""
    """the tree's netns/<name> of the pod; empty with the host's network"""
    netns_path: str = ""
    """its namespace file (/run/netns/<name>), which containers join"""
    hostname: str = ""
    files: SandboxFiles = SandboxFiles()
    cgroup_parent: str = ""
    log_directory: str = ""
    privileged: bool = False
    port_mappings: tuple[PortMapping, ...] = ()
    ip: str = ""
    additional_ips: tuple[str, ...] = ()
    status: str = ""
    """the pause container's status in the tree: running while the pod is ready"""
    pause_pid: int = 0
    """the host pid of the pause process while it runs, else 0"""
    created_at: int = 0
    """when the tree made its container (info's `created`), in nanoseconds since the
    epoch as CRI reports it, as a CRI container's; 0 while unknown"""

    @property
    def ready(self) -> bool:
        return self.status == RUNNING

    def namespace_path(self, kind: str) -> str:
        """/proc/<pause pid>/ns/<kind> (ipc, uts, pid, net): what a container of the
        pod joins. Empty while the pause process is not running."""
        return f"/proc/{self.pause_pid}/ns/{kind}" if self.pause_pid else ""

    def with_network(self, ip: str, additional_ips: tuple[str, ...] = ()) -> "SandboxRecord":
        return replace(self, ip=ip, additional_ips=additional_ips)

    def to_labels(self) -> dict[str, str]:
        """The tree labels that hold this record (`status`, `pause_pid` and
        `created_at` are the container's own facts and are not stored)."""
        prefix = keys.PREFIX
        return {
            keys.KIND: keys.SANDBOX_KIND,
            prefix + "metadata": compact(self.metadata.to_json()),
            prefix + "labels": compact(dict(self.labels)),
            prefix + "annotations": compact(dict(self.annotations)),
            prefix + "runtime-handler": text(self.runtime_handler, "runtime handler"),
            prefix + "namespace-options": compact(self.namespace_options.to_json()),
            prefix + "netns": text(self.netns_name, "netns"),
            prefix + "netns-path": text(self.netns_path, "netns path"),
            prefix + "hostname": text(self.hostname, "hostname"),
            prefix + "files": compact(self.files.to_json()),
            prefix + "cgroup-parent": text(self.cgroup_parent, "cgroup parent"),
            prefix + "log-directory": text(self.log_directory, "log directory"),
            prefix + "privileged": compact(self.privileged),
            prefix + "port-mappings": compact([p.to_json() for p in self.port_mappings]),
            prefix + "ip": text(self.ip, "ip"),
            prefix + "additional-ips": compact(list(self.additional_ips)),
        }

    @classmethod
    def from_labels(cls, sandbox_id: str, labels: Mapping[str, str], status: str = "",
                    pause_pid: int = 0, created_at: int = 0) -> "SandboxRecord":
        """The record the labels hold; TreeError ENOENT when they are not a sandbox's."""
        if labels.get(keys.KIND) != keys.SANDBOX_KIND:
            raise TreeError(f'no pod sandbox "{sandbox_id}"', errno.ENOENT)
        prefix = keys.PREFIX

        def string(name: str) -> str:
            return labels.get(prefix + name, "")

        ports = parsed(labels, prefix + "port-mappings", [])
        extra_ips = parsed(labels, prefix + "additional-ips", [])
        return cls(
            id=sandbox_id,
            metadata=Metadata.from_json(parsed(labels, prefix + "metadata", {})),
            labels=string_map(labels, prefix + "labels"),
            annotations=string_map(labels, prefix + "annotations"),
            runtime_handler=string("runtime-handler"),
            namespace_options=NamespaceOptions.from_json(
                parsed(labels, prefix + "namespace-options", {})),
            netns_name=string("netns"),
            netns_path=string("netns-path"),
            hostname=string("hostname"),
            files=SandboxFiles.from_json(parsed(labels, prefix + "files", {})),
            cgroup_parent=string("cgroup-parent"),
            log_directory=string("log-directory"),
            privileged=parsed(labels, prefix + "privileged", False) is True,
            port_mappings=tuple(PortMapping.from_json(p) for p in ports
                                if isinstance(p, dict)) if isinstance(ports, list) else (),
            ip=string("ip"),
            additional_ips=tuple(str(ip) for ip in extra_ips)
            if isinstance(extra_ips, list) else (),
            status=status,
            pause_pid=pause_pid,
            created_at=created_at,
        )

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> "SandboxRecord":
        """The record in a tree container's `info` object (see labels.read_info)."""
        raw_labels = info.get("labels")
        pid = info.get("pid")
        return cls.from_labels(str(info.get("id", "")),
                               raw_labels if isinstance(raw_labels, dict) else {},
                               str(info.get("status") or ""),
                               pid if isinstance(pid, int) else 0,
                               nanoseconds(info.get("created")))


def read_sandbox(tree: Tree, sandbox_id: str) -> SandboxRecord:
    """The sandbox `sandbox_id` of the tree's (CRI) namespace, read live; TreeError
    ENOENT for an unknown id or a tree container that is not a sandbox. An id that is
    no tree name (`..`, a slash) names nothing: it never becomes a path."""
    try:
        identifiers.validate(sandbox_id)
    except InvalidArgument:
        raise TreeError(f'no pod sandbox "{sandbox_id[:80]}"', errno.ENOENT) from None
    try:
        info = keys.read_info(tree, sandbox_id)
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            raise TreeError(f'no pod sandbox "{sandbox_id}"', errno.ENOENT) from None
        raise
    return SandboxRecord.from_info(info)


def read_sandboxes(tree: Tree) -> Iterator[SandboxRecord]:
    """Every sandbox of the namespace; containers that go away while being listed, or
    that are not sandboxes, are passed over."""
    return ids.each_found(lambda name: read_sandbox(tree, name), tree.container_names())


def find_sandbox(tree: Tree, prefix: str) -> SandboxRecord:
    """The sandbox a request's id, or a unique prefix of one, names (crictl's users
    name pods by a prefix); ENOENT for none."""
    return ids.find(prefix, "pod sandbox", lambda found: read_sandbox(tree, found),
                    lambda: (record.id for record in read_sandboxes(tree)))
