"""A streaming client for the tests: what client-go does with a URL from Exec, Attach or
PortForward, in a few lines over the project's own SPDY session (used as a client).

`upgrade` sends the HTTP/1.1 upgrade request and returns the session with the
protocol the server chose; the channels are opened as client-go opens them (error
first, then stdin, stdout, stderr, resize), each waiting for its reply.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cdfs.cri.streaming import netdial
from cdfs.cri.streaming.session import Session, Stream

TIMEOUT = 30.0
EXEC_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                  "channel.k8s.io")


class Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status} {text}")
        self.status = status
        self.text = text


@dataclass
class Connection:
    session: Session
    protocol: str
    sock: socket.socket
    reader: threading.Thread

    def close(self) -> None:
        self.session.close()
        self.reader.join(TIMEOUT)
        self.sock.close()


def request(url: str, protocols: tuple[str, ...], upgrade: bool = True,
            netns: str | None = None) -> tuple[socket.socket, int, dict[str, str], bytes]:
    """Send the upgrade request (from inside the network namespace `netns`, where a
    test's CRI server runs, when given); (socket, status, headers, bytes after the
    headers)."""
    parts = urlsplit(url)
    assert parts.port is not None
    if netns is not None:
        assert parts.hostname == "127.0.0.1", url
        sock = netdial.connect(netns, parts.port, TIMEOUT)
        sock.settimeout(TIMEOUT)
    else:
        sock = socket.create_connection((parts.hostname, parts.port), TIMEOUT)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 0"]
    if upgrade:
        lines += ["Connection: Upgrade", "Upgrade: SPDY/3.1"]
    lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return sock, int(status_line.split()[1]), headers, rest


def upgrade(url: str, protocols: tuple[str, ...] = EXEC_PROTOCOLS,
            netns: str | None = None) -> Connection:
    sock, status, headers, rest = request(url, protocols, netns=netns)
    if status != 101:
        body = rest + _read_rest(sock, int(headers.get("content-length", "0")) - len(rest))
        sock.close()
        raise Refused(status, body.decode().strip())
    sock.settimeout(None)
    session = Session(sock, server=False, preread=rest)
    reader = threading.Thread(target=session.run, daemon=True)
    reader.start()
    return Connection(session, headers["x-stream-protocol-version"], sock, reader)


def _read_rest(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data


@dataclass
class Channels:
    error: Stream
    stdin: Stream | None
    stdout: Stream | None
    stderr: Stream | None
    resize: Stream | None

    def send_size(self, rows: int, cols: int) -> None:
        assert self.resize is not None
        self.resize.write(json.dumps({"Width": cols, "Height": rows}).encode() + b"\n")

    def status(self) -> dict[str, Any]:
        return json.loads(self.error.read_all(timeout=TIMEOUT) or b"{}")


def open_channels(conn: Connection, stdin: bool = False, stdout: bool = True,
                  stderr: bool = True, tty: bool = False) -> Channels:
    def stream(kind: str) -> Stream:
        return conn.session.open_stream({"streamType": kind}, TIMEOUT)

    return Channels(error=stream("error"), stdin=stream("stdin") if stdin else None,
                    stdout=stream("stdout") if stdout else None,
                    stderr=stream("stderr") if stderr and not tty else None,
                    resize=stream("resize") if tty else None)


@contextmanager
def remote_command(url: str, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                   tty: bool = False, netns: str | None = None) -> Iterator[Channels]:
    conn = upgrade(url, netns=netns)
    try:
        yield open_channels(conn, stdin, stdout, stderr, tty)
    finally:
        conn.close()


def collect(stream: Stream | None) -> tuple[threading.Thread, list[bytes]]:
    """Read `stream` to its end in a thread, into the returned list."""
    chunks: list[bytes] = []

    def pump() -> None:
        if stream is not None:
            while chunk := stream.read(timeout=TIMEOUT):
                chunks.append(chunk)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread, chunks


def read_until(stream: Stream, wanted: bytes, timeout: float = TIMEOUT) -> bytes:
    """What `stream` gives until `wanted` is in it (TimeoutError if it never is)."""
    seen = b""
    while wanted not in seen:
        chunk = stream.read(timeout=timeout)
        if not chunk:
            raise AssertionError(f"stream ended before {wanted!r}: {seen!r}")
        seen += chunk
    return seen


def retype_until(stdin: Stream, stdout: Stream, line: bytes, wanted: bytes,
                 timeout: float = TIMEOUT) -> bytes:
    """Type `line` each second until `wanted` shows on `stdout`: for what arrives on
    a channel of its own (a terminal's new size), which nothing orders before the
    input, so only asking again shows when it took effect."""
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{wanted!r} never showed: {seen!r}")
        stdin.write(line)
        answer_by = time.monotonic() + 1
        while wanted not in seen and time.monotonic() < answer_by:
            try:
                chunk = stdout.read(timeout=max(0.05, answer_by - time.monotonic()))
            except TimeoutError:
                break
            if not chunk:
                raise AssertionError(f"stream ended before {wanted!r}: {seen!r}")
            seen += chunk
    return seen


def forward(conn: Connection, port: int, request_id: int) -> tuple[Stream, Stream]:
    """The (error, data) streams of one forwarded connection, as client-go opens them."""
    headers = {"streamType": "error", "port": str(port), "requestID": str(request_id)}
    error = conn.session.open_stream(headers, TIMEOUT)
    error.close()
    data = conn.session.open_stream({**headers, "streamType": "data"}, TIMEOUT)
    return error, data
