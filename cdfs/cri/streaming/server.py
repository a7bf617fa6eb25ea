"""The streaming server: the URLs that Exec, Attach and PortForward return, served.

kubelet (or crictl) takes the URL from the CRI reply and sends an HTTP/1.1 request to
it asking to upgrade to SPDY/3.1, with the sub-protocols it speaks in
X-Stream-Protocol-Version; the answer is `101 Switching Protocols` naming the one
chosen (the client's first that we speak, as kubelet's server picks), and from then
on the connection is a SPDY session (session.py) running remotecommand or
portforward. Each connection is a thread of a ThreadingHTTPServer on a loopback
port of its own (`cdfs cri --stream-address`), and stop() ends every session and
waits for their threads, so nothing outlives the server.
"""

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from cdfs.cri.streaming import portforward, remotecommand
from cdfs.cri.streaming.remotecommand import Attached, Channels, Options
from cdfs.cri.streaming.session import Session
from cdfs.cri.streaming.tokens import Tokens

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1:0"
SPDY = "SPDY/3.1"
REQUEST_TIMEOUT = 30.0
"""Seconds a connection has to send its request; an upgraded session has no bound."""


@dataclass(frozen=True)
class ExecRequest:
    container_id: str
    cmd: tuple[str, ...]
    options: Options


@dataclass(frozen=True)
class AttachRequest:
    container_id: str
    options: Options


@dataclass(frozen=True)
class PortForwardRequest:
    sandbox_id: str


Request = ExecRequest | AttachRequest | PortForwardRequest
_PATHS = {ExecRequest: "exec", AttachRequest: "attach", PortForwardRequest: "portforward"}


class Backend(Protocol):
    """What the requests reach: the tree, for `cdfs cri`."""

    def exec(self, request: ExecRequest) -> Attached: ...
    def attach(self, request: AttachRequest) -> Attached: ...
    def dial(self, request: PortForwardRequest, port: int) -> socket.socket: ...


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (port 0: any free one) as a socket address; ValueError if not."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'bad stream address "{address}" (use HOST:PORT, e.g. 127.0.0.1:0)')
    return host.strip("[]"), int(port)


class StreamingServer:
    """Tokens handed out by the CRI calls, redeemed by the HTTP requests."""

    def __init__(self, backend: Backend, address: str = DEFAULT_ADDRESS,
                 tokens: Tokens[Request] | None = None) -> None:
        self._backend = backend
        self._tokens: Tokens[Request] = tokens if tokens is not None else Tokens()
        self._sessions: set[Session] = set()
        self._lock = threading.Lock()
        self._http = _HTTPServer(parse_address(address), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        address, port = self._http.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else address
        if host in ("0.0.0.0", "::"):  # listening everywhere: loopback reaches it too
            host = "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def url_for(self, request: Request) -> str:
        """The URL to return for `request`: single use, valid for a minute."""
        return f"{self.base_url}/{_PATHS[type(request)]}/{self._tokens.issue(request)}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        name="cri-streaming", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, end every session and every connection still sending its
        request, and wait for their threads."""
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close()
        self._http.cut_connections()
        self._http.server_close()  # joins the connections' threads

    # -- used by the handler -------------------------------------------------------------
    def redeem(self, kind: str, token: str) -> Request | None:
        request = self._tokens.redeem(token)
        if request is None or _PATHS[type(request)] != kind:
            return None
        return request

    def run(self, session: Session, body: Callable[[], None]) -> None:
        with self._lock:
            self._sessions.add(session)
        try:
            body()
        finally:
            session.close()
            with self._lock:
                self._sessions.discard(session)

    @property
    def backend(self) -> Backend:
        return self._backend


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close: no connection is left running
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 streaming: StreamingServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.streaming = streaming
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Shut every open connection both ways, so that a thread still reading a
        request (a client that connected and sent nothing) ends and can be joined."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One request: check it, upgrade it, run its session on the hijacked socket."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    rbufsize = 0  # nothing past the request's headers may be read into a buffer
    timeout = REQUEST_TIMEOUT  # a silent client must not hold its thread for ever

    def do_POST(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] not in _PATHS.values():
            return self._refuse(HTTPStatus.NOT_FOUND, f"no such path {self.path}")
        streaming = self.server.streaming
        request = streaming.redeem(parts[0], parts[1])
        if request is None:
            return self._refuse(HTTPStatus.NOT_FOUND, "unknown, used or expired token")
        if ("upgrade" not in self.headers.get("Connection", "").lower()
                or SPDY.lower() not in self.headers.get("Upgrade", "").lower()):
            return self._refuse(HTTPStatus.BAD_REQUEST,
                                f"unable to upgrade: the request does not ask for {SPDY}")
        ours = (portforward.PROTOCOL,) if isinstance(request, PortForwardRequest) \
            else remotecommand.PROTOCOLS
        protocol = negotiate(self.headers.get_all("X-Stream-Protocol-Version") or [], ours)
        if protocol is None:
            return self._refuse(HTTPStatus.FORBIDDEN,
                                f"unable to upgrade: no protocol in common (we speak "
                                f"{', '.join(ours)})", accepted=ours)
        self.send_response(HTTPStatus.SWITCHING_PROTOCOLS)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", SPDY)
        self.send_header("X-Stream-Protocol-Version", protocol)
        self.end_headers()
        self.close_connection = True
        self.connection.settimeout(None)  # a session may be idle as long as it likes
        if isinstance(request, PortForwardRequest):
            self._port_forward(request)
        else:
            self._remote_command(request, protocol)

    do_GET = do_POST

    def _remote_command(self, request: ExecRequest | AttachRequest, protocol: str) -> None:
        backend = self.server.streaming.backend
        channels = Channels(remotecommand.expected_streams(request.options, protocol))
        session = Session(self.connection, server=True, on_stream=channels.accept)

        def read() -> None:
            session.run()
            channels.close()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def attach() -> Attached:
            if isinstance(request, ExecRequest):
                return backend.exec(request)
            return backend.attach(request)

        try:
            self.server.streaming.run(
                session, lambda: remotecommand.serve(session, channels, protocol, attach))
        finally:
            reader.join()

    def _port_forward(self, request: PortForwardRequest) -> None:
        backend = self.server.streaming.backend
        forward = portforward.PortForward(lambda port: backend.dial(request, port))
        session = Session(self.connection, server=True, on_stream=forward.accept)
        self.server.streaming.run(session, lambda: forward.serve(session))

    def _refuse(self, status: HTTPStatus, message: str, accepted: tuple[str, ...] = ()) -> None:
        body = (message + "\n").encode()
        self.send_response(status)
        for protocol in accepted:
            self.send_header("X-Accepted-Stream-Protocol-Versions", protocol)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request, without its token (a URL is a credential until used)."""
        kind = getattr(self, "path", "").strip("/").split("/", 1)[0][:20]
        log.info("%s %s /%s/... %s", self.address_string(), self.command, kind, code)

    def log_message(self, format: str, *args: object) -> None:
        """http.server's other lines (a malformed request quotes its request line, the
        token of a URL not redeemed, so still good, with it): tokens left out."""
        log.info("%s %s", self.address_string(), without_tokens(format % args))


_TOKEN_IN_PATH = re.compile("/(" + "|".join(_PATHS.values()) + r")/[^\s'\"?]+")


def without_tokens(line: str) -> str:
    """`line` with the token of every streaming path in it replaced by `...`."""
    return _TOKEN_IN_PATH.sub(r"/\1/...", line)


def negotiate(offered: list[str], ours: tuple[str, ...]) -> str | None:
    """The client's first protocol that we speak (header values may list several)."""
    for value in offered:
        for protocol in (p.strip() for p in value.split(",")):
            if protocol in ours:
                return protocol
    return None
