"""Kubernetes' port-forward protocol (portforward.k8s.io) over a SPDY session.

For every connection a client forwards it opens two streams with the same `port` and
`requestID` headers: `error` (which it closes at once and only reads) and `data`.
Once both are there the server connects to the port inside the pod and copies bytes
both ways; the client's end of data is our half-close towards the pod's server, and
the pod's end is our FIN on data. A failure (nothing listening, say) is written as
text on the error stream. One connection carries any number of such pairs, each
served by its own pair of threads, until the client closes it.
"""

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cdfs.cri.streaming.session import Session, Stream, StreamClosed

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
_CHUNK = 1 << 16

Dial = Callable[[int], socket.socket]


@dataclass
class _Pair:
    port: int
    error: Stream | None = None
    data: Stream | None = None


class PortForward:
    """The pairs of one session: `accept` is its on_stream, `serve` runs it."""

    def __init__(self, dial: Dial) -> None:
        self._dial = dial
        self._lock = threading.Lock()
        self._pairs: dict[str, _Pair] = {}
        self._threads: list[threading.Thread] = []

    def accept(self, stream: Stream) -> bool:
        kind = stream.headers.get("streamtype", "")
        try:
            port = int(stream.headers.get("port", ""))
        except ValueError:
            return False
        if kind not in ("error", "data") or not 0 < port < 65536:
            return False
        request = stream.headers.get("requestid") or _old_client_request(stream, kind)
        with self._lock:
            pair = self._pairs.setdefault(request, _Pair(port))
            if pair.port != port or getattr(pair, kind) is not None:
                return False
            setattr(pair, kind, stream)
            if pair.error is not None and pair.data is not None:
                del self._pairs[request]
                thread = threading.Thread(target=self._forward, args=(pair,), daemon=True)
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
                thread.start()
        return True

    def serve(self, session: Session) -> None:
        """Read the session until the client closes it, then wait for every pair's
        threads: nothing of a connection outlives it."""
        session.run()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    def _forward(self, pair: _Pair) -> None:
        assert pair.error is not None and pair.data is not None
        error, data = pair.error, pair.data
        try:
            try:
                conn = self._dial(pair.port)
            except OSError as exc:
                with contextlib.suppress(StreamClosed):
                    error.write(f"error forwarding port {pair.port} to pod: {exc}".encode())
                return
            with conn:
                inbound = threading.Thread(target=_to_pod, args=(data, conn), daemon=True)
                inbound.start()
                _from_pod(conn, data)
                inbound.join()
        finally:
            data.close()
            error.close()


def _to_pod(data: Stream, conn: socket.socket) -> None:
    """The client's bytes to the pod; its end of data is our half-close, a reset
    (or the session's end) closes both ways."""
    with contextlib.suppress(OSError):
        while chunk := data.read(_CHUNK):
            conn.sendall(chunk)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR if data.was_reset else socket.SHUT_WR)


def _from_pod(conn: socket.socket, data: Stream) -> None:
    try:
        while chunk := conn.recv(_CHUNK):
            data.write(chunk)
    except (OSError, StreamClosed):
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
    data.close()


def _old_client_request(stream: Stream, kind: str) -> str:
    """Clients before Kubernetes 1.6 sent no requestID: their data stream is the one
    opened right after its error stream (ids go up by 2)."""
    return str(stream.id - 2 if kind == "data" else stream.id)
