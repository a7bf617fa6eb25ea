"""The pause container's config.json: the pod's namespaces, as containerd's CRI
plugin builds a sandbox spec (sandbox_run_linux.go).

It is a partial spec, merged by the tree over its default spec and the pause image's
config. The pause process gets new mount, PID, IPC and UTS namespaces; the network
namespace is the pod's, joined through the tree container's `netns` file. What the
pod shares with the host (NamespaceMode NODE) is left out of the list: host network
drops the network and UTS namespaces (the host's name stays), host PID the PID
namespace, host IPC the IPC namespace. The rootfs is read-only, the hostname the
pod's, the sysctls the pod's (runc refuses those that are not namespaced).
"""

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from cdfs.cri.sandbox_record import NamespaceMode, SandboxRecord

SANDBOX_CPU_SHARES = 2
"""The pause process's share of CPU, as containerd's WithDefaultSandboxShares."""

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"


def cgroups_path(cgroup_parent: str, object_id: str) -> str | None:
    """The cgroup of a pod's pause process or container under kubelet's cgroup parent
    (cgroupfs paths); None without a parent (the tree's default then)."""
    if not cgroup_parent:
        return None
    return posixpath.join("/", cgroup_parent, object_id)


def namespaces(record: SandboxRecord) -> list[dict[str, str]]:
    options = record.namespace_options
    kinds = ["mount"]
    if options.pid != NamespaceMode.NODE:
        kinds.append("pid")
    if options.ipc != NamespaceMode.NODE:
        kinds.append("ipc")
    if not options.host_network:
        kinds += ["uts", "network"]
    return [{"type": kind} for kind in kinds]


def pause_config(record: SandboxRecord, sysctls: Mapping[str, str],
                 run_as_user: int | None = None, run_as_group: int | None = None,
                 supplemental_groups: Sequence[int] = ()) -> dict[str, Any]:
    """The partial spec the pause container is created with."""
    linux: dict[str, Any] = {
        "namespaces": namespaces(record),
        "resources": {"cpu": {"shares": SANDBOX_CPU_SHARES}},
    }
    if sysctls:
        linux["sysctl"] = dict(sysctls)
    path = cgroups_path(record.cgroup_parent, record.id)
    if path is not None:
        linux["cgroupsPath"] = path
    process: dict[str, Any] = {}
    if run_as_user is not None or run_as_group is not None or supplemental_groups:
        user: dict[str, Any] = {}
        if run_as_user is not None:
            user["uid"] = run_as_user
        if run_as_group is not None:
            user["gid"] = run_as_group
        if supplemental_groups:
            user["additionalGids"] = list(supplemental_groups)
        process["user"] = user
    config: dict[str, Any] = {
        "root": {"readonly": True},
        "linux": linux,
        "annotations": {
            CONTAINER_TYPE: "sandbox",
            SANDBOX_ID: record.id,
            SANDBOX_NAME: record.metadata.name,
            SANDBOX_NAMESPACE: record.metadata.namespace,
            SANDBOX_UID: record.metadata.uid,
        },
    }
    if process:
        config["process"] = process
    # With the host's network the UTS namespace is the host's too, and so is its name.
    config["hostname"] = None if record.namespace_options.host_network else record.hostname
    return config
