"""What the streaming server's requests reach in the tree: execs and attaches of the
CRI namespace's containers, and connections into a pod's network namespace."""

import socket
from dataclasses import dataclass

from cdfs.client.tree import Tree
from cdfs.cri.sandbox_record import read_sandbox
from cdfs.cri.streaming import netdial
from cdfs.cri.streaming.programs import TreeAttach, TreeExec
from cdfs.cri.streaming.server import AttachRequest, ExecRequest, PortForwardRequest


@dataclass(frozen=True)
class TreeBackend:
    tree: Tree

    def exec(self, request: ExecRequest) -> TreeExec:
        return TreeExec(self.tree, request.container_id, request.cmd, request.options)

    def attach(self, request: AttachRequest) -> TreeAttach:
        return TreeAttach(self.tree, request.container_id, request.options)

    def dial(self, request: PortForwardRequest, port: int) -> socket.socket:
        """127.0.0.1:`port` as the pod sees it: inside its network namespace, or on
        the host for a pod on the host's network."""
        sandbox = read_sandbox(self.tree, request.sandbox_id)
        return netdial.connect(sandbox.netns_path or None, port)
