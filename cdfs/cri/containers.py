"""Containers of a pod: Create/Start/Stop/Remove, status and lists, resources, logs,
ExecSync and stats, as tree containers built from the CRI config."""

from cdfs.cri.calls import Calls


class ContainerCalls(Calls):
    """The container RPCs of RuntimeService; an RPC not defined here answers
    UNIMPLEMENTED through the generated servicer."""
