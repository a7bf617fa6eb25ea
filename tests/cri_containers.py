"""CRI containers for the tests: the busybox image in the CRI namespace, container
configs, and a tracker that removes every container a test made even when it fails."""

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri_support import NAMESPACE
from support import Daemon, write

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc

BUSYBOX = "cdfs.local/busybox:latest"


def import_busybox(daemon: Daemon, scratch: Path) -> None:
    """The daemon's own busybox image (built from the host's, in `default`) exported
    and imported into the CRI namespace, through images/ctl as any client would."""
    archive = scratch / "busybox.tar"
    if not daemon.path("namespaces", NAMESPACE, "images", BUSYBOX, "digest").exists():
        write(daemon.path("namespaces", "default", "images", "ctl"),
              f"export {BUSYBOX} {archive}\n")
        write(daemon.path("namespaces", NAMESPACE, "images", "ctl"),
              f"import {archive} {BUSYBOX}\n")


def container_config(args: list[str], name: str = "", **fields: Any) -> pb.ContainerConfig:
    """A busybox container running `args`; `fields` are ContainerConfig's."""
    fields.setdefault("image", pb.ImageSpec(image=BUSYBOX))
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name or f"ctr-{secrets.token_hex(3)}"),
        command=args, **fields)


def security(**fields: Any) -> pb.LinuxContainerConfig:
    return pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(**fields))


@dataclass
class Containers:
    """Creates containers through the runtime stub, removed again at teardown."""

    runtime: pb_grpc.RuntimeServiceStub
    made: list[str] = field(default_factory=list)

    def create(self, sandbox_id: str, config: pb.ContainerConfig,
               sandbox_config: pb.PodSandboxConfig | None = None) -> str:
        answer = self.runtime.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config))
        self.made.append(answer.container_id)
        return answer.container_id

    def run(self, sandbox_id: str, config: pb.ContainerConfig,
            sandbox_config: pb.PodSandboxConfig | None = None) -> str:
        container_id = self.create(sandbox_id, config, sandbox_config)
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=container_id))
        return container_id

    def status(self, container_id: str) -> pb.ContainerStatus:
        return self.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id)).status

    def exec(self, container_id: str, *cmd: str, timeout: int = 0) -> pb.ExecSyncResponse:
        return self.runtime.ExecSync(pb.ExecSyncRequest(container_id=container_id,
                                                        cmd=list(cmd), timeout=timeout))

    def remove_all(self) -> None:
        for container_id in self.made:
            self.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=container_id))
