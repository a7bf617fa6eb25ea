"""Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
ListPodSandbox and the pod stats calls, as tree containers running the pause image.

A pod is, in the tree: a network namespace `netns/cri-<id>/` wired by CNI (none with
the host's network), and the container `containers/<id>/` running the pause image
in it, its CRI facts in its labels (sandbox_record.py). Its hostname, hosts and
resolv.conf are files under the server's `--root` (sandbox_files.py). Each step of
RunPodSandbox is undone when a later one fails, so a refused pod leaves nothing.

Stop and remove are idempotent, as kubelet expects: an unknown id is not an error,
and every step skips what is already gone, so a stop or remove that failed half way
is finished by the next one.
"""

import errno
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import grpc

from cdfs.client.tree import TreeError
from cdfs.cri import ids, sandbox_files
from cdfs.cri import labels as keys
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.calls import Calls
from cdfs.cri.cni import Attachment
from cdfs.cri.container_record import LIVE, read_containers
from cdfs.cri.container_stats import container_stats
from cdfs.cri.errors import CriError, invalid
from cdfs.cri.pause.image import PAUSE_IMAGE
from cdfs.cri.pod_stats import pod_stats
from cdfs.cri.sandbox_record import (
    Metadata,
    NamespaceMode,
    NamespaceOptions,
    PortMapping,
    SandboxRecord,
    find_sandbox,
    read_sandboxes,
)
from cdfs.cri.sandbox_spec import pause_config
from cdfs.cri.tree_tasks import stop_task

log = logging.getLogger(__name__)

RUNTIME_HANDLERS = ("", "runc")
"""The runtime handlers (RuntimeClass handlers) pods may name: runc is the only one."""
PAUSE_STOP_SECONDS = 2
"""The pause process ends at TERM at once; KILL after this, should it not."""


def netns_name(sandbox_id: str) -> str:
    return f"cri-{sandbox_id[:32]}"


def _state(record: SandboxRecord) -> int:
    return pb.SANDBOX_READY if record.ready else pb.SANDBOX_NOTREADY


def _metadata(record: SandboxRecord) -> pb.PodSandboxMetadata:
    meta = record.metadata
    return pb.PodSandboxMetadata(name=meta.name, uid=meta.uid, namespace=meta.namespace,
                                 attempt=meta.attempt)


def _namespace_options(options: NamespaceOptions) -> pb.NamespaceOption:
    return pb.NamespaceOption(network=int(options.network), pid=int(options.pid),  # type: ignore[arg-type]
                              ipc=int(options.ipc), target_id=options.target_id)  # type: ignore[arg-type]


def _selected(record: SandboxRecord, selector: dict[str, str]) -> bool:
    return all(record.labels.get(key) == value for key, value in selector.items())


class SandboxCalls(Calls):
    """The pod sandbox RPCs of RuntimeService."""

    # -- RunPodSandbox -----------------------------------------------------------------
    def RunPodSandbox(self, request: pb.RunPodSandboxRequest, context: Any
                      ) -> pb.RunPodSandboxResponse:
        config = request.config
        if not config.HasField("metadata") or not config.metadata.name:
            raise invalid("RunPodSandbox: the config has no metadata name")
        if request.runtime_handler not in RUNTIME_HANDLERS:
            raise invalid(f'RunPodSandbox: no runtime handler "{request.runtime_handler}" '
                          "(there is runc only)")
        if config.log_directory and not os.path.isabs(config.log_directory):
            raise invalid(f'RunPodSandbox: log_directory "{config.log_directory}" is not '
                          "an absolute path")
        meta = Metadata(config.metadata.name, config.metadata.uid,
                        config.metadata.namespace, config.metadata.attempt)
        self._refuse_taken_name(meta)
        record = self._new_record(request, meta)
        undo: list[Callable[[], None]] = []
        try:
            self._run(record, config, undo)
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    log.exception("undoing a failed RunPodSandbox of %s", record.id)
            raise
        return pb.RunPodSandboxResponse(pod_sandbox_id=record.id)

    def _refuse_taken_name(self, meta: Metadata) -> None:
        """kubelet names a pod attempt once: the same metadata twice is a mistake."""
        for other in read_sandboxes(self.tree):
            if other.metadata == meta:
                raise TreeError(f'pod sandbox "{meta.name}" (namespace {meta.namespace}, '
                                f'uid {meta.uid}, attempt {meta.attempt}) exists already: '
                                f"{other.id}", errno.EEXIST)

    def _new_record(self, request: pb.RunPodSandboxRequest, meta: Metadata) -> SandboxRecord:
        config = request.config
        security = config.linux.security_context
        ns = security.namespace_options
        try:
            options = NamespaceOptions(NamespaceMode(ns.network), NamespaceMode(ns.pid),
                                       NamespaceMode(ns.ipc), ns.target_id)
        except ValueError as exc:
            raise invalid(f"RunPodSandbox: namespace_options: {exc}") from None
        sandbox_id = ids.new_id()
        host_network = options.host_network
        ports = tuple(PortMapping(p.container_port, p.host_port, pb.Protocol.Name(p.protocol),
                                  p.host_ip) for p in config.port_mappings)
        return SandboxRecord(
            id=sandbox_id, metadata=meta,
            labels=dict(config.labels), annotations=dict(config.annotations),
            runtime_handler=request.runtime_handler, namespace_options=options,
            netns_name="" if host_network else netns_name(sandbox_id),
            hostname=config.hostname or socket.gethostname(),
            cgroup_parent=config.linux.cgroup_parent, log_directory=config.log_directory,
            privileged=security.privileged, port_mappings=ports)

    def _run(self, record: SandboxRecord, config: pb.PodSandboxConfig,
             undo: list[Callable[[], None]]) -> None:
        dns = config.dns_config
        resolv = sandbox_files.resolv_conf(list(dns.servers), list(dns.searches),
                                           list(dns.options))
        undo.append(lambda: sandbox_files.remove_sandbox_files(self.root, record.id))
        files = sandbox_files.write_sandbox_files(
            self.root, record.id, config.hostname, resolv,
            shm=record.namespace_options.ipc != NamespaceMode.NODE)
        record = replace(record, files=files)
        if not record.namespace_options.host_network:
            record = self._attach_network(record, undo)
        box = self.tree.container(record.id)
        undo.append(lambda: self._remove_container(record.id))
        self.tree.mkdir(box)
        self.tree.write(box / "image", PAUSE_IMAGE)
        if record.netns_name:
            self.tree.write(box / "netns", record.netns_name)
        keys.write_labels(self.tree, record.id, record.to_labels())
        security = config.linux.security_context
        spec = pause_config(
            record, dict(config.linux.sysctls),
            security.run_as_user.value if security.HasField("run_as_user") else None,
            security.run_as_group.value if security.HasField("run_as_group") else None,
            list(security.supplemental_groups))
        self.tree.write(box / "config.json", json.dumps(spec))
        self.tree.write(box / "ctl", "start\n")

    def _attach_network(self, record: SandboxRecord, undo: list[Callable[[], None]]
                        ) -> SandboxRecord:
        """The pod's network namespace, made in the tree and wired by CNI."""
        netns = self.tree.netns(record.netns_name)
        undo.append(lambda: self._remove_netns(record.netns_name))
        self.tree.mkdir(netns)
        path = self.tree.read(netns / "path").strip()
        record = replace(record, netns_path=path)
        undo.append(lambda: self.cni.delete(self._attachment(record)))
        result = self.cni.add(self._attachment(record))
        return record.with_network(result.ip, result.ips[1:])

    def _attachment(self, record: SandboxRecord) -> Attachment:
        meta = record.metadata
        return Attachment(record.id, record.netns_path, meta.name, meta.namespace, meta.uid,
                          record.port_mappings)

    # -- StopPodSandbox ----------------------------------------------------------------
    def StopPodSandbox(self, request: pb.StopPodSandboxRequest, context: Any
                       ) -> pb.StopPodSandboxResponse:
        record = ids.or_none(lambda: find_sandbox(self.tree, request.pod_sandbox_id))
        if record is not None:
            self._stop(record)
        return pb.StopPodSandboxResponse()

    def _stop(self, record: SandboxRecord) -> None:
        """The pod's containers and its pause process stopped, its network detached
        and its network namespace removed; each step skipped when already done."""
        netns = self.tree.netns(record.netns_name) if record.netns_name else None
        for container_id in self._pod_containers(record.id):
            stop_task(self.tree, container_id, 0)
        stop_task(self.tree, record.id, PAUSE_STOP_SECONDS)
        sandbox_files.release_shm(self.root, record.id)
        if netns is not None:
            if netns.is_dir() or self.cni.attached(record.id):
                self.cni.delete(self._attachment(record))
            self.tree.rmdir(netns, missing_ok=True)

    def _remove_netns(self, name: str) -> None:
        self.tree.rmdir(self.tree.netns(name), missing_ok=True)

    # -- RemovePodSandbox --------------------------------------------------------------
    def RemovePodSandbox(self, request: pb.RemovePodSandboxRequest, context: Any
                         ) -> pb.RemovePodSandboxResponse:
        record = ids.or_none(lambda: find_sandbox(self.tree, request.pod_sandbox_id))
        if record is not None:
            self._stop(record)
            for container_id in self._pod_containers(record.id):
                self._remove_container(container_id)
            self._remove_container(record.id)
            sandbox_files.remove_sandbox_files(self.root, record.id)
        return pb.RemovePodSandboxResponse()

    def _remove_container(self, container_id: str) -> None:
        """rmdir of a tree container, stopping it first when it still runs."""
        stop_task(self.tree, container_id, 0)
        self.tree.rmdir(self.tree.container(container_id), missing_ok=True)

    # -- PodSandboxStatus, ListPodSandbox ----------------------------------------------
    def PodSandboxStatus(self, request: pb.PodSandboxStatusRequest, context: Any
                         ) -> pb.PodSandboxStatusResponse:
        record = find_sandbox(self.tree, request.pod_sandbox_id)
        status = pb.PodSandboxStatus(
            id=record.id, metadata=_metadata(record), state=_state(record),  # type: ignore[arg-type]
            created_at=record.created_at,
            network=pb.PodSandboxNetworkStatus(
                ip=record.ip, additional_ips=[pb.PodIP(ip=ip) for ip in record.additional_ips]),
            linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(
                options=_namespace_options(record.namespace_options))),
            labels=dict(record.labels), annotations=dict(record.annotations),
            runtime_handler=record.runtime_handler)
        info = {}
        if request.verbose:
            info["info"] = json.dumps({
                "pid": record.pause_pid, "image": PAUSE_IMAGE, "netns": record.netns_path,
                "hostname": record.hostname, "files": record.files.to_json(),
                "cgroup_parent": record.cgroup_parent})
        return pb.PodSandboxStatusResponse(status=status, info=info,
                                           timestamp=time.time_ns())

    def ListPodSandbox(self, request: pb.ListPodSandboxRequest, context: Any
                       ) -> pb.ListPodSandboxResponse:
        wanted = request.filter
        records: Iterable[SandboxRecord] = read_sandboxes(self.tree)
        if wanted.id:
            records = [r for r in records if r.id.startswith(wanted.id)]
        if wanted.HasField("state"):
            records = [r for r in records if _state(r) == wanted.state.state]
        selector = dict(wanted.label_selector)
        items = [pb.PodSandbox(id=r.id, metadata=_metadata(r), state=_state(r),  # type: ignore[arg-type]
                               created_at=r.created_at, labels=dict(r.labels),
                               annotations=dict(r.annotations),
                               runtime_handler=r.runtime_handler)
                 for r in records if _selected(r, selector)]
        return pb.ListPodSandboxResponse(items=items)

    # -- PodSandboxStats, ListPodSandboxStats ------------------------------------------
    def PodSandboxStats(self, request: pb.PodSandboxStatsRequest, context: Any
                        ) -> pb.PodSandboxStatsResponse:
        record = find_sandbox(self.tree, request.pod_sandbox_id)
        if not record.ready:
            raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'pod sandbox "{record.id}" is not ready: it has no stats')
        return pb.PodSandboxStatsResponse(stats=self._stats(record))

    def ListPodSandboxStats(self, request: pb.ListPodSandboxStatsRequest, context: Any
                            ) -> pb.ListPodSandboxStatsResponse:
        """The stats of the ready pods the filter selects (by id or prefix, labels)."""
        wanted = request.filter
        selector = dict(wanted.label_selector)
        found = []
        for record in read_sandboxes(self.tree):
            if not record.ready or not record.id.startswith(wanted.id) \
                    or not _selected(record, selector):
                continue
            try:
                found.append(self._stats(record))
            except TreeError as exc:  # it went while being looked at
                if exc.errno != errno.ENOENT:
                    raise
        return pb.ListPodSandboxStatsResponse(stats=found)

    def _stats(self, record: SandboxRecord) -> pb.PodSandboxStats:
        members = [c for c in read_containers(self.tree)
                   if c.sandbox_id == record.id and c.status in LIVE]
        cgroups = [self._cgroup_files(record.id), *(self._cgroup_files(c.id) for c in members)]
        containers = [container_stats(c, files["cpu"], files["memory"], time.time_ns())
                      for c, files in zip(members, cgroups[1:], strict=True)]
        counters = None
        if record.netns_name:
            counters = self.tree.read(self.tree.netns(record.netns_name) / "counters")
        return pod_stats(record, cgroups, containers, counters, time.time_ns())

    def _cgroup_files(self, container_id: str) -> dict[str, str]:
        stats_dir = self.tree.container(container_id) / "stats"
        return {name: self.tree.read(stats_dir / name) for name in ("cpu", "memory", "pids")}

    def _pod_containers(self, sandbox_id: str) -> list[str]:
        """The ids of the CRI containers of a pod (its pause container aside)."""
        return [c.id for c in read_containers(self.tree) if c.sandbox_id == sandbox_id]
