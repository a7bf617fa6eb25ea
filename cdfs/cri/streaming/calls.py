"""Exec, Attach and PortForward: each checks its request and answers with a URL of the
streaming server, where the client then runs the session (kubelet's way: the RPC
only hands out a single-use token, the bytes go over the upgraded HTTP connection)."""

from typing import Any

import grpc

from base.errors import Unavailable
from cdfs.client.tree import Tree
from cdfs.cri import ids
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.calls import Calls
from cdfs.cri.config import CriConfig
from cdfs.cri.container_record import RUNNING
from cdfs.cri.errors import CriError, invalid
from cdfs.cri.sandbox_record import find_sandbox
from cdfs.cri.streaming.backend import TreeBackend
from cdfs.cri.streaming.remotecommand import Options
from cdfs.cri.streaming.server import (
    AttachRequest,
    ExecRequest,
    PortForwardRequest,
    Request,
    StreamingServer,
)


class StreamingCalls(Calls):
    """The streaming RPCs of RuntimeService, and the streaming server behind their
    URLs: bound here (a bad --stream-address fails the start), started and stopped by
    cdfs/cri/server.py with the gRPC server."""

    def __init__(self, tree: Tree, config: CriConfig) -> None:
        super().__init__(tree, config)
        self.streaming = StreamingServer(TreeBackend(tree), config.stream_address)

    def Exec(self, request: pb.ExecRequest, context: Any) -> pb.ExecResponse:
        if not request.cmd:
            raise invalid("exec: cmd is empty")
        options = _options(request)
        container_id = self._running(request.container_id)
        return pb.ExecResponse(url=self._url(
            ExecRequest(container_id, tuple(request.cmd), options)))

    def Attach(self, request: pb.AttachRequest, context: Any) -> pb.AttachResponse:
        options = _options(request)
        container_id = self._running(request.container_id)
        return pb.AttachResponse(url=self._url(AttachRequest(container_id, options)))

    def PortForward(self, request: pb.PortForwardRequest, context: Any
                    ) -> pb.PortForwardResponse:
        sandbox = find_sandbox(self.tree, request.pod_sandbox_id)  # NOT_FOUND when unknown
        if not sandbox.ready:
            raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'pod sandbox "{sandbox.id}" is not ready')
        return pb.PortForwardResponse(url=self._url(PortForwardRequest(sandbox.id)))

    def _running(self, container_id: str) -> str:
        """The id of the tree container `container_id` names, itself or the one whose
        name it begins (crictl's users name containers by a prefix, and containerd
        takes it), checked to run: NOT_FOUND, FAILED_PRECONDITION otherwise. Any
        container of the namespace may be named, not only CRI's: a session is plain
        file I/O on its directory."""
        def running(found: str) -> str:
            status = self.tree.read(self.tree.container(found) / "status").strip()
            if status != RUNNING:
                raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'container "{found}" is not running ({status})')
            return found

        return ids.find(container_id, "container", running, self.tree.container_names)

    def _url(self, request: Request) -> str:
        try:
            return self.streaming.url_for(request)
        except Unavailable as exc:
            raise CriError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None


def _options(request: pb.ExecRequest | pb.AttachRequest) -> Options:
    """The channels asked for, refused as kubelet refuses them."""
    if not (request.stdin or request.stdout or request.stderr):
        raise invalid("one of stdin, stdout, or stderr must be set")
    if request.tty and request.stderr:
        raise invalid("tty and stderr cannot both be true")
    return Options(request.stdin, request.stdout, request.stderr, request.tty)
