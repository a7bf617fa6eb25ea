"""Containers of a pod: Create/Start/Stop/Remove, status and lists, resources, logs,
ExecSync and stats, as tree containers built from the CRI config.

Every call is file I/O on the mount: creation is container_create.py, the verbs are
lines written to the container's `ctl`, status is its `info` (container_record.py),
ExecSync an exec/ directory (exec_sync.py), stats its stats/ files
(container_stats.py). Stop and Remove of an id that is not there succeed, as kubelet
expects.
"""

import errno
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from cdfs.client.tree import Tree, TreeError
from cdfs.cri import container_stats, ids, signals
from cdfs.cri import spec as cri_spec
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.calls import Calls
from cdfs.cri.container_create import create_container, host
from cdfs.cri.container_record import (
    CREATED,
    LIVE,
    RUNNING,
    STOPPED,
    ContainerRecord,
    find_container,
    read_containers,
    read_spec,
)
from cdfs.cri.errors import CriError, invalid
from cdfs.cri.exec_sync import exec_sync
from cdfs.cri.tree_tasks import stop_task

MAX_GRACE = 3600  # the longest `stop SECONDS` the tree takes


class ContainerCalls(Calls):
    """The container RPCs of RuntimeService."""

    def CreateContainer(self, request: pb.CreateContainerRequest, context: Any
                        ) -> pb.CreateContainerResponse:
        return pb.CreateContainerResponse(container_id=create_container(self.tree, request))

    def StartContainer(self, request: pb.StartContainerRequest, context: Any
                       ) -> pb.StartContainerResponse:
        record = find_container(self.tree, request.container_id)
        if record.status != CREATED:
            raise _not_now(record, "created")
        _ctl(self.tree, record.id, "start")
        return pb.StartContainerResponse()

    def StopContainer(self, request: pb.StopContainerRequest, context: Any
                      ) -> pb.StopContainerResponse:
        record = ids.or_none(lambda: find_container(self.tree, request.container_id))
        if record is not None:
            stop_task(self.tree, record.id, min(max(request.timeout, 0), MAX_GRACE),
                      signals.for_tree(record.stop_signal))
        return pb.StopContainerResponse()

    def RemoveContainer(self, request: pb.RemoveContainerRequest, context: Any
                        ) -> pb.RemoveContainerResponse:
        """A live container is stopped at once first (containerd's force remove)."""
        record = ids.or_none(lambda: find_container(self.tree, request.container_id))
        if record is not None:
            stop_task(self.tree, record.id, 0)
            self.tree.rmdir(self.tree.container(record.id), missing_ok=True)
        return pb.RemoveContainerResponse()

    def ContainerStatus(self, request: pb.ContainerStatusRequest, context: Any
                        ) -> pb.ContainerStatusResponse:
        record = find_container(self.tree, request.container_id)
        spec = read_spec(self.tree, record.id)
        status = pb.ContainerStatus(
            id=record.id, metadata=record.metadata(), state=record.state,  # type: ignore[arg-type]
            created_at=record.created_at, started_at=record.started_at,
            finished_at=record.finished_at, exit_code=record.exit_code,
            image=pb.ImageSpec(image=record.image), image_ref=record.image_ref,
            reason=record.reason, labels=dict(record.labels),
            annotations=dict(record.annotations),
            mounts=[m.to_proto() for m in record.mounts], log_path=record.log_path,
            user=_user(spec),
            stop_signal=signals.value_of(record.stop_signal or "SIGTERM"))  # type: ignore[arg-type]
        info = {}
        if request.verbose:
            info["info"] = json.dumps({"sandboxID": record.sandbox_id, "pid": record.pid,
                                       "runtimeSpec": spec})
        return pb.ContainerStatusResponse(status=status, info=info)

    def ListContainers(self, request: pb.ListContainersRequest, context: Any
                       ) -> pb.ListContainersResponse:
        wanted = request.filter
        records = _filtered(self.tree, wanted.id, wanted.pod_sandbox_id,
                            wanted.label_selector,
                            wanted.state.state if wanted.HasField("state") else None)
        return pb.ListContainersResponse(containers=[
            pb.Container(id=r.id, pod_sandbox_id=r.sandbox_id, metadata=r.metadata(),
                         image=pb.ImageSpec(image=r.image), image_ref=r.image_ref,
                         state=r.state, created_at=r.created_at,  # type: ignore[arg-type]
                         labels=dict(r.labels), annotations=dict(r.annotations))
            for r in records])

    def UpdateContainerResources(self, request: pb.UpdateContainerResourcesRequest,
                                 context: Any) -> pb.UpdateContainerResourcesResponse:
        """The tree's `update` with linux.resources as CreateContainer sets them."""
        record = find_container(self.tree, request.container_id)
        if record.status not in LIVE:
            raise _not_now(record, "running")
        resources = cri_spec.resources(request.linux, host().swap_accounting)
        given = {key: value for key, value in resources.items() if value}
        if given:
            _ctl(self.tree, record.id, "update " + json.dumps(given))
        return pb.UpdateContainerResourcesResponse()

    def ReopenContainerLog(self, request: pb.ReopenContainerLogRequest, context: Any
                           ) -> pb.ReopenContainerLogResponse:
        record = find_container(self.tree, request.container_id)
        if record.status != RUNNING:
            raise _not_now(record, "running")
        _ctl(self.tree, record.id, "reopen-log")
        return pb.ReopenContainerLogResponse()

    def ExecSync(self, request: pb.ExecSyncRequest, context: Any) -> pb.ExecSyncResponse:
        record = find_container(self.tree, request.container_id)
        if record.status != RUNNING:
            raise _not_now(record, "running")
        if not request.cmd:
            raise invalid("ExecSync: no command given")
        result = exec_sync(self.tree, record.id, list(request.cmd), request.timeout or None)
        return pb.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr,
                                   exit_code=result.exit_code)

    def ContainerStats(self, request: pb.ContainerStatsRequest, context: Any
                       ) -> pb.ContainerStatsResponse:
        return pb.ContainerStatsResponse(
            stats=_stats(self.tree, find_container(self.tree, request.container_id)))

    def ListContainerStats(self, request: pb.ListContainerStatsRequest, context: Any
                           ) -> pb.ListContainerStatsResponse:
        """Stats of the selected containers that have a task (one that never got its
        config.json, or went meanwhile, is passed over)."""
        wanted = request.filter
        found = []
        for record in _filtered(self.tree, wanted.id, wanted.pod_sandbox_id,
                                wanted.label_selector):
            if record.status in (*LIVE, STOPPED):
                try:
                    found.append(_stats(self.tree, record))
                except TreeError as exc:
                    if exc.errno != errno.ENOENT:
                        raise
        return pb.ListContainerStatsResponse(stats=found)


def _user(spec: Mapping[str, Any]) -> pb.ContainerUser | None:
    """The identity the container's process runs with, as `id` would say it: its uid,
    gid and groups (the gid among them)."""
    user = (spec.get("process") or {}).get("user")
    if not isinstance(user, dict):
        return None
    gid = int(user.get("gid", 0))
    groups = sorted({gid, *(int(g) for g in user.get("additionalGids") or [])})
    return pb.ContainerUser(linux=pb.LinuxContainerUser(
        uid=int(user.get("uid", 0)), gid=gid, supplemental_groups=groups))


def _not_now(record: ContainerRecord, wanted: str) -> CriError:
    return CriError(grpc.StatusCode.FAILED_PRECONDITION,
                    f'container "{record.id}" is {record.status or "not created"}, not '
                    f"{wanted}")


def _ctl(tree: Tree, container_id: str, line: str) -> None:
    tree.write(tree.container(container_id) / "ctl", line + "\n")


def _filtered(tree: Tree, id_prefix: str, sandbox_prefix: str,
              selector: Mapping[str, str], state: int | None = None
              ) -> list[ContainerRecord]:
    """The CRI containers a filter selects: by id or pod sandbox id (or a prefix of
    one), by state, and by labels that must all match."""
    records: Iterable[ContainerRecord] = read_containers(tree)
    if id_prefix:
        records = [r for r in records if r.id.startswith(id_prefix)]
    if sandbox_prefix:
        records = [r for r in records if r.sandbox_id.startswith(sandbox_prefix)]
    if state is not None:
        records = [r for r in records if r.state == state]
    return [r for r in records
            if all(r.labels.get(key) == value for key, value in selector.items())]


def _stats(tree: Tree, record: ContainerRecord) -> pb.ContainerStats:
    stats_dir = tree.container(record.id) / "stats"
    return container_stats.container_stats(
        record, tree.read(stats_dir / "cpu"), tree.read(stats_dir / "memory"),
        time.time_ns())
