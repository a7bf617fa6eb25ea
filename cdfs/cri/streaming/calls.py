"""Exec, Attach and PortForward: each checks its request and answers with a URL of the
streaming server, where the client then runs the session (kubelet's way: the RPC
only hands out a single-use token, the bytes go over the upgraded HTTP connection)."""

from typing import Any

import grpc

from base.errors import Unavailable
from cdfs.client.tree import Tree, TreeError
from cdfs.cri import ids
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.calls import Calls
from cdfs.cri.config import CriConfig
from cdfs.cri.container_record import RUNNING
from cdfs.cri.errors import CriError, invalid
from cdfs.cri.sandbox_record import read_sandbox
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
        sandbox = read_sandbox(self.tree, request.pod_sandbox_id)  # NOT_FOUND when unknown
        if not sandbox.ready:
            raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'pod sandbox "{sandbox.id}" is not ready')
        return pb.PortForwardResponse(url=self._url(PortForwardRequest(sandbox.id)))

    def _running(self, container_id: str) -> str:
        """The id of the container `container_id` names, itself or the one whose id it
        begins (crictl's users name containers by a prefix, and containerd takes it),
        checked to run: NOT_FOUND, FAILED_PRECONDITION otherwise."""
        if not container_id:
            raise invalid("container_id is empty")
        if not self.tree.container(container_id).is_dir():
            try:
                names = [p.name for p in self.tree.containers.iterdir() if p.is_dir()]
            except OSError as exc:
                raise TreeError(f"{self.tree.containers}: {exc.strerror}", exc.errno) from None
            container_id = ids.resolve(container_id, names, "container")
        status = self.tree.read(self.tree.container(container_id) / "status").strip()
        if status != RUNNING:
            raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'container "{container_id}" is not running ({status})')
        return container_id

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
