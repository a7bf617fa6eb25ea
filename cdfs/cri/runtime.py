"""The runtime's own RPCs: who it is (Version), whether it works (Status), and how it
runs containers (RuntimeConfig)."""

from typing import Any

from cdfs import __version__
from cdfs.client.tree import TreeError
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.calls import Calls
from cdfs.cri.pause.image import PAUSE_IMAGE

KUBELET_API_VERSION = "0.1.0"  # the value every CRI runtime answers in `version`


class RuntimeCalls(Calls):
    """Version, Status, RuntimeConfig, UpdateRuntimeConfig."""

    def Version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version=KUBELET_API_VERSION, runtime_name="cdfs",
                                  runtime_version=__version__, runtime_api_version="v1")

    def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusResponse:
        """RuntimeReady while the tree answers; kubelet creates no pod before both
        conditions are true."""
        conditions = [self._runtime_ready(), self._network_ready()]
        info = {"mount": str(self.tree.mount), "namespace": self.tree.namespace,
                "root": str(self.root), "sandboxImage": PAUSE_IMAGE,
                "cniConfDir": str(self.config.cni_conf_dir)} if request.verbose else {}
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions), info=info,
                                 runtime_handlers=[pb.RuntimeHandler(name="")])

    def RuntimeConfig(self, request: pb.RuntimeConfigRequest, context: Any
                      ) -> pb.RuntimeConfigResponse:
        """cdfs names cgroups by cgroupfs paths (/cdfs/<namespace>/<id>), never
        through systemd, so kubelet must use the cgroupfs driver too."""
        return pb.RuntimeConfigResponse(
            linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))

    def UpdateRuntimeConfig(self, request: pb.UpdateRuntimeConfigRequest, context: Any
                            ) -> pb.UpdateRuntimeConfigResponse:
        """kubelet sends the node's pod CIDR here; the pod network's addresses come
        from the CNI configuration instead, so there is nothing to update."""
        return pb.UpdateRuntimeConfigResponse()

    def _runtime_ready(self) -> pb.RuntimeCondition:
        try:
            self.tree.read(self.tree.mount / "version")
        except TreeError as exc:
            return pb.RuntimeCondition(type="RuntimeReady", status=False,
                                       reason="TreeUnavailable", message=str(exc))
        return pb.RuntimeCondition(type="RuntimeReady", status=True)

    def _network_ready(self) -> pb.RuntimeCondition:
        """Each pod's network is set up when the pod is (sandboxes.py), by the CNI
        plugins of the config dir's network: ready while that config reads and its
        plugins are there."""
        problem = self.cni.problem()
        if problem is not None:
            return pb.RuntimeCondition(type="NetworkReady", status=False,
                                       reason="NetworkPluginNotReady", message=problem)
        return pb.RuntimeCondition(type="NetworkReady", status=True)
