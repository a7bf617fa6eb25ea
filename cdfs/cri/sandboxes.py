"""Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
ListPodSandbox (and the pod stats calls) as tree containers running the pause image."""

from cdfs.cri.calls import Calls


class SandboxCalls(Calls):
    """The pod sandbox RPCs of RuntimeService; an RPC not defined here answers
    UNIMPLEMENTED through the generated servicer."""
