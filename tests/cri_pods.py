"""Pod sandboxes for the CRI tests: configs, and a tracker that removes every pod a
test made (and its network namespace) even when the test fails."""

import secrets
import subprocess
from dataclasses import dataclass, field
from typing import Any

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc
from cdfs.cri.sandboxes import netns_name


def pod_config(name: str = "", **fields: Any) -> pb.PodSandboxConfig:
    """A pod config with unique metadata; `fields` are PodSandboxConfig's."""
    name = name or f"pod-{secrets.token_hex(3)}"
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="test"),
        **fields)


@dataclass
class Pods:
    """Runs pods through the runtime stub and remembers them for the teardown."""

    runtime: pb_grpc.RuntimeServiceStub
    made: list[str] = field(default_factory=list)

    def run(self, config: pb.PodSandboxConfig | None = None) -> str:
        answer = self.runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config or pod_config()))
        self.made.append(answer.pod_sandbox_id)
        return answer.pod_sandbox_id

    def status(self, sandbox_id: str) -> pb.PodSandboxStatus:
        request = pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        return self.runtime.PodSandboxStatus(request).status

    def stop(self, sandbox_id: str) -> None:
        self.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove(self, sandbox_id: str) -> None:
        self.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove_all(self) -> None:
        for sandbox_id in self.made:
            try:
                self.remove(sandbox_id)
            finally:
                subprocess.run(["ip", "netns", "delete", netns_name(sandbox_id)],
                               capture_output=True, timeout=10)

