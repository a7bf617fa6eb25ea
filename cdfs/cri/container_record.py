"""A CRI container as the tree holds it: kubelet's facts in its labels, its state in
its `info`.

A CRI container is the tree container `namespaces/k8s.io/containers/<id>/`. What
CRI says about it and the tree does not hold otherwise (its metadata, labels and
annotations, its pod, the image as asked, the log path, the mounts) is kept in the
container's labels under `io.cdfs.cri.` (see labels.py); status, pid, times, exit
and whether the kernel OOM-killed in it are the tree's own facts, read live from
`info`. So the CRI server keeps nothing of its own and survives restarts.
"""

import errno
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from base.clock import parse_rfc3339
from cdfs.client.tree import Tree, TreeError
from cdfs.cri import ids
from cdfs.cri import labels as keys
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.labels import compact, parsed, string_map, text

CREATED, RUNNING, PAUSED, STOPPED = "created", "running", "paused", "stopped"
"""The tree's task statuses (info's `status`), for pods' pause containers too."""
LIVE = (CREATED, RUNNING, PAUSED)
"""The statuses of a task that is there still: stop it before it is removed."""
_STATES = {CREATED: pb.CONTAINER_CREATED, RUNNING: pb.CONTAINER_RUNNING,
           PAUSED: pb.CONTAINER_RUNNING, STOPPED: pb.CONTAINER_EXITED}


@dataclass(frozen=True)
class MountRecord:
    """A mount as the request gave it, for ContainerStatus."""

    container_path: str
    host_path: str
    readonly: bool = False
    selinux_relabel: bool = False
    propagation: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"container_path": self.container_path, "host_path": self.host_path,
                "readonly": self.readonly, "selinux_relabel": self.selinux_relabel,
                "propagation": self.propagation}

    @classmethod
    def from_json(cls, value: Any) -> "MountRecord":
        return cls(str(value.get("container_path", "")), str(value.get("host_path", "")),
                   value.get("readonly") is True, value.get("selinux_relabel") is True,
                   int(value.get("propagation") or 0))

    def to_proto(self) -> pb.Mount:
        return pb.Mount(container_path=self.container_path, host_path=self.host_path,
                        readonly=self.readonly, selinux_relabel=self.selinux_relabel,
                        propagation=self.propagation)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ContainerRecord:
    """Everything known of one CRI container. The fields after `mounts` are the
    tree's live facts (from `info`), not stored in labels."""

    id: str
    sandbox_id: str
    name: str
    attempt: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    image: str = ""  # as the request named it
    image_ref: str = ""  # the image's digest
    log_path: str = ""  # the absolute host path of its CRI log ("" for none)
    mounts: tuple[MountRecord, ...] = ()
    stop_signal: str = ""  # the config's, else the image's StopSignal ("" for TERM)
    status: str = ""  # the tree's: empty, created, running, paused, stopped
    pid: int = 0
    created_at: int = 0  # nanoseconds since the epoch, 0 while unknown
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    oom_killed: bool = False

    @property
    def state(self) -> int:
        """CRI's ContainerState: RUNNING for a paused one too, UNKNOWN for a slot that
        never got its config.json (a CreateContainer cut short)."""
        return _STATES.get(self.status, pb.CONTAINER_UNKNOWN)

    @property
    def reason(self) -> str:
        """Why it exited, as containerd says it: OOMKilled, Completed or Error."""
        if self.status != STOPPED:
            return ""
        if self.oom_killed:
            return "OOMKilled"
        return "Completed" if self.exit_code == 0 else "Error"

    def metadata(self) -> pb.ContainerMetadata:
        return pb.ContainerMetadata(name=self.name, attempt=self.attempt)

    def to_labels(self) -> dict[str, str]:
        prefix = keys.PREFIX
        return {
            keys.KIND: keys.CONTAINER_KIND,
            keys.SANDBOX_ID: text(self.sandbox_id, "sandbox id"),
            prefix + "metadata": compact({"name": self.name, "attempt": self.attempt}),
            prefix + "labels": compact(dict(self.labels)),
            prefix + "annotations": compact(dict(self.annotations)),
            prefix + "image": text(self.image, "image"),
            prefix + "image-ref": text(self.image_ref, "image ref"),
            prefix + "log-path": text(self.log_path, "log path"),
            prefix + "mounts": compact([m.to_json() for m in self.mounts]),
            prefix + "stop-signal": text(self.stop_signal, "stop signal"),
        }

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> "ContainerRecord":
        """The record in a tree container's `info`; ENOENT when it is not a CRI
        container (a pod's pause container, or one made by other means)."""
        container_id = str(info.get("id", ""))
        labels = info.get("labels") if isinstance(info.get("labels"), dict) else {}
        assert isinstance(labels, dict)
        if labels.get(keys.KIND) != keys.CONTAINER_KIND:
            raise TreeError(f'no container "{container_id}"', errno.ENOENT)
        prefix = keys.PREFIX
        meta = parsed(labels, prefix + "metadata", {})
        meta = meta if isinstance(meta, dict) else {}
        mounts = parsed(labels, prefix + "mounts", [])
        exit_code = info.get("exit")
        pid = info.get("pid")
        return cls(
            id=container_id, sandbox_id=labels.get(keys.SANDBOX_ID, ""),
            name=str(meta.get("name", "")), attempt=int(meta.get("attempt") or 0),
            labels=string_map(labels, prefix + "labels"),
            annotations=string_map(labels, prefix + "annotations"),
            image=labels.get(prefix + "image", ""),
            image_ref=labels.get(prefix + "image-ref", ""),
            log_path=labels.get(prefix + "log-path", ""),
            mounts=tuple(MountRecord.from_json(m) for m in mounts if isinstance(m, dict))
            if isinstance(mounts, list) else (),
            stop_signal=labels.get(prefix + "stop-signal", ""),
            status=str(info.get("status") or ""),
            pid=pid if isinstance(pid, int) else 0,
            created_at=nanoseconds(info.get("created")),
            started_at=nanoseconds(info.get("started")),
            finished_at=nanoseconds(info.get("exited")),
            exit_code=exit_code if isinstance(exit_code, int) else 0,
            oom_killed=info.get("oom_killed") is True,
        )


def nanoseconds(stamp: Any) -> int:
    """A time of the tree's `info` (RFC 3339 UTC, nanoseconds kept) as nanoseconds since
    the epoch, as CRI reports times; 0 for none."""
    return parse_rfc3339(stamp) if isinstance(stamp, str) and stamp else 0


def read_container(tree: Tree, container_id: str) -> ContainerRecord:
    """The CRI container `container_id`, read live; TreeError ENOENT for an unknown
    id or a tree container that is not a CRI container."""
    try:
        return ContainerRecord.from_info(keys.read_info(tree, container_id))
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            raise TreeError(f'no container "{container_id}"', errno.ENOENT) from None
        raise


def read_spec(tree: Tree, container_id: str) -> dict[str, Any]:
    """The container's OCI spec as the tree gives it ({} for a slot without one yet);
    a garbled one is the tree's failure (EIO), not the server's."""
    path = tree.container(container_id) / "config.json"
    text = tree.read(path)
    if not text.strip():
        return {}
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise TreeError(f"{path}: not JSON: {exc}", errno.EIO) from None
    if not isinstance(spec, dict):
        raise TreeError(f"{path}: not a JSON object", errno.EIO)
    return spec


def read_containers(tree: Tree) -> Iterator[ContainerRecord]:
    """Every CRI container of the namespace; those removed while being listed, pods
    and containers made by other means are passed over."""
    return ids.each_found(lambda name: read_container(tree, name), tree.container_names())


def find_container(tree: Tree, prefix: str) -> ContainerRecord:
    """The CRI container a request's id, or a unique prefix of one, names; ENOENT for
    none (a pod's pause container is none)."""
    return ids.find(prefix, "container", lambda found: read_container(tree, found),
                    lambda: (record.id for record in read_containers(tree)))
