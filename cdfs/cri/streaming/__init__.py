"""Exec, Attach and PortForward: the RPCs hand out URLs of a streaming server that
speaks kubelet's SPDY remotecommand and portforward protocols."""

from cdfs.cri.calls import Calls


class StreamingCalls(Calls):
    """The streaming RPCs of RuntimeService; until they are defined here they answer
    UNIMPLEMENTED, as CRI allows."""
