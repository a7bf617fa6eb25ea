"""The streaming server's protocols end to end over loopback, in front of programs of
this host (a subprocess, a TCP server here) rather than the tree: the upgrade, the
negotiation, remotecommand's channels and statuses, port-forward's pairs, tokens,
and what is left when a client vanishes. tests/cri/test_streaming.py does the same
through `cdfs cri` and a mounted tree."""

import contextlib
import fcntl
import os
import pty
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator

import pytest
from streaming_client import (
    Refused,
    collect,
    forward,
    read_until,
    remote_command,
    request,
    retype_until,
    upgrade,
)

from cdfs.cri.streaming.remotecommand import Options
from cdfs.cri.streaming.server import (
    AttachRequest,
    ExecRequest,
    PortForwardRequest,
    StreamingServer,
    negotiate,
)
from cdfs.cri.streaming.tokens import Tokens


class HostProgram:
    """A subprocess as remotecommand's Attached: pipes, or a pty for a terminal."""

    def __init__(self, cmd: tuple[str, ...], options: Options) -> None:
        self.options = options
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None
        self.master: int | None = None

    def start(self, rows_cols: tuple[int, int] | None) -> None:
        if self.options.tty:
            self.master, slave = pty.openpty()
            if rows_cols:
                self.resize(*rows_cols)
            self.proc = subprocess.Popen(self.cmd, stdin=slave, stdout=slave, stderr=slave,
                                         start_new_session=True)
            os.close(slave)
        else:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
            if not self.options.stdin:
                assert self.proc.stdin is not None
                self.proc.stdin.close()

    def read_output(self, name: str) -> bytes:
        assert self.proc is not None
        if self.master is not None:
            try:
                return os.read(self.master, 65536)
            except OSError:  # EIO: the terminal's last user is gone
                return b""
        pipe = self.proc.stdout if name == "stdout" else self.proc.stderr
        assert pipe is not None
        return os.read(pipe.fileno(), 65536)

    def write_input(self, data: bytes) -> None:
        assert self.proc is not None
        if self.master is not None:
            os.write(self.master, data)
        else:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def close_input(self) -> None:
        assert self.proc is not None
        if self.master is not None:
            os.write(self.master, b"\x04")
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, rows: int, cols: int) -> None:
        assert self.master is not None
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def wait(self) -> int | None:
        assert self.proc is not None
        return self.proc.wait(30)

    def abandon(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its children hold its pipes

    def release(self) -> None:
        if self.proc is not None:
            self.proc.wait(30)
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        if self.master is not None:
            os.close(self.master)


class HostBackend:
    def __init__(self) -> None:
        self.programs: list[HostProgram] = []
        self.dialed: list[int] = []

    def exec(self, request: ExecRequest) -> HostProgram:
        program = HostProgram(request.cmd, request.options)
        self.programs.append(program)
        return program

    def attach(self, request: AttachRequest) -> HostProgram:
        return self.exec(ExecRequest(request.container_id, ("cat",), request.options))

    def dial(self, request: PortForwardRequest, port: int) -> socket.socket:
        self.dialed.append(port)
        return socket.create_connection(("127.0.0.1", port), 5)


@pytest.fixture
def backend() -> HostBackend:
    return HostBackend()


@pytest.fixture
def server(backend: HostBackend) -> Iterator[StreamingServer]:
    streaming = StreamingServer(backend, tokens=Tokens(ttl=2.0))
    streaming.start()
    try:
        yield streaming
    finally:
        streaming.stop()
        for program in backend.programs:
            program.abandon()


def exec_url(server: StreamingServer, *cmd: str, stdin: bool = False, tty: bool = False
             ) -> str:
    return server.url_for(ExecRequest("c", cmd, Options(stdin, True, not tty, tty)))


def our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.current_thread()}


def test_exec_output_and_exit_codes_on_the_error_channel(server: StreamingServer) -> None:
    url = exec_url(server, "sh", "-c", "echo out; echo err >&2; exit 3")
    with remote_command(url) as channels:
        (out, stdout), (err, stderr) = collect(channels.stdout), collect(channels.stderr)
        status = channels.status()
        out.join(10)
        err.join(10)
    assert b"".join(stdout) == b"out\n" and b"".join(stderr) == b"err\n"
    assert status == {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": "command terminated with non-zero exit code: exit status 3",
                      "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    with remote_command(exec_url(server, "true")) as channels:
        assert channels.status() == {"metadata": {}, "status": "Success"}


def test_stdin_reaches_the_program_and_its_end_is_end_of_file(server: StreamingServer) -> None:
    with remote_command(exec_url(server, "sh", "-c", "cat; echo done", stdin=True),
                        stdin=True) as channels:
        assert channels.stdin is not None and channels.stdout is not None
        channels.stdin.write(b"hello\n")
        assert read_until(channels.stdout, b"hello\n") == b"hello\n"
        channels.stdin.close()
        assert read_until(channels.stdout, b"done\n") == b"done\n"
        assert channels.status()["status"] == "Success"


def test_a_terminal_gets_its_first_size_and_later_ones(server: StreamingServer) -> None:
    url = exec_url(server, "sh", "-c", 'stty size; while read x && [ "$x" != q ]; do '
                                       "stty size; done", stdin=True, tty=True)
    with remote_command(url, stdin=True, tty=True) as channels:
        assert channels.stdin is not None and channels.stdout is not None
        channels.send_size(31, 97)
        assert b"31 97" in read_until(channels.stdout, b"31 97")
        channels.send_size(40, 120)
        assert b"40 120" in retype_until(channels.stdin, channels.stdout, b"\r", b"40 120")
        channels.stdin.write(b"q\r")
        assert channels.status()["status"] == "Success"


@pytest.mark.parametrize(("protocol", "message"), [
    ("v3.channel.k8s.io", b"command terminated with non-zero exit code: exit status 2"),
    ("channel.k8s.io", b"command terminated with non-zero exit code: exit status 2"),
])
def test_before_v4_the_error_channel_is_text_and_empty_on_success(
        server: StreamingServer, protocol: str, message: bytes) -> None:
    from streaming_client import open_channels
    conn = upgrade(exec_url(server, "sh", "-c", "exit 2"), (protocol,))
    try:
        assert conn.protocol == protocol
        channels = open_channels(conn)
        assert channels.error.read_all(timeout=20) == message
    finally:
        conn.close()
    conn = upgrade(exec_url(server, "true"), (protocol,))
    try:
        assert open_channels(conn).error.read_all(timeout=20) == b""
    finally:
        conn.close()


def test_negotiation_takes_the_clients_first_that_we_speak() -> None:
    ours = ("v4.channel.k8s.io", "v3.channel.k8s.io")
    assert negotiate(["v5.channel.k8s.io, v4.channel.k8s.io", "v3.channel.k8s.io"], ours) == \
        "v4.channel.k8s.io"
    assert negotiate(["v5.channel.k8s.io"], ours) is None


def test_refusals_before_the_upgrade(server: StreamingServer) -> None:
    url = exec_url(server, "true")
    with pytest.raises(Refused) as unknown:  # no protocol in common
        upgrade(url, ("v5.channel.k8s.io",))
    assert unknown.value.status == 403
    with pytest.raises(Refused) as used:  # that refusal used the token up
        upgrade(url)
    assert used.value.status == 404 and "token" in used.value.text
    sock, status, _, _ = request(exec_url(server, "true"), ("v4.channel.k8s.io",),
                                 upgrade=False)
    sock.close()
    assert status == 400
    with pytest.raises(Refused) as wrong_kind:  # an exec token is no port-forward token
        upgrade(exec_url(server, "true").replace("/exec/", "/portforward/"))
    assert wrong_kind.value.status == 404


def test_a_token_works_once_and_expires(server: StreamingServer) -> None:
    url = exec_url(server, "true")
    with remote_command(url) as channels:
        assert channels.status()["status"] == "Success"
    with pytest.raises(Refused) as reused:
        upgrade(url)
    assert reused.value.status == 404
    late = exec_url(server, "true")
    time.sleep(2.5)  # the fixture's tokens live 2 s
    with pytest.raises(Refused) as expired:
        upgrade(late)
    assert expired.value.status == 404


def test_a_client_that_vanishes_mid_stream_leaves_nothing(server: StreamingServer,
                                                          backend: HostBackend) -> None:
    before = our_threads()
    url = exec_url(server, "sh", "-c", "echo started; sleep 300", stdin=True)
    conn = upgrade(url)
    from streaming_client import open_channels
    channels = open_channels(conn, stdin=True)
    assert channels.stdout is not None
    read_until(channels.stdout, b"started")
    conn.sock.shutdown(socket.SHUT_RDWR)  # gone without a word: no GOAWAY, no RST
    conn.sock.close()
    program = backend.programs[-1]
    assert program.proc is not None
    assert program.proc.wait(10) == -9  # killed: nobody is left to read it
    deadline = time.monotonic() + 10
    while our_threads() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not {t for t in our_threads() - before if t.is_alive()}


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A TCP server here that answers each connection with `<what it read>!` at EOF."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    threads = []

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(data + b"!")

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                thread = threading.Thread(target=serve, args=(conn,), daemon=True)
                thread.start()
                threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        acceptor.join(10)
        for thread in threads:
            thread.join(10)


def test_port_forward_two_streams_at_once_bytes_both_ways(server: StreamingServer) -> None:
    with echo_server() as port:
        conn = upgrade(server.url_for(PortForwardRequest("pod")), ("portforward.k8s.io",))
        try:
            assert conn.protocol == "portforward.k8s.io"
            (err1, data1), (err2, data2) = forward(conn, port, 0), forward(conn, port, 1)
            big = os.urandom(3 << 20)  # past every buffer: back-pressure both ways

            def send() -> None:
                data1.write(big)
                data1.close()

            sender = threading.Thread(target=send)
            sender.start()
            data2.write(b"second")
            data2.close()
            assert data2.read_all(timeout=20) == b"second!"
            assert data1.read_all(timeout=30) == big + b"!"
            sender.join(10)
            assert err1.read_all(timeout=10) == err2.read_all(timeout=10) == b""
        finally:
            conn.close()


def test_port_forward_to_a_closed_port_says_so_on_the_error_stream(
        server: StreamingServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    conn = upgrade(server.url_for(PortForwardRequest("pod")), ("portforward.k8s.io",))
    try:
        error, data = forward(conn, port, 0)
        assert b"refused" in error.read_all(timeout=20).lower()
        assert data.read_all(timeout=10) == b""
    finally:
        conn.close()


def test_attach_is_a_session_like_exec(server: StreamingServer) -> None:
    url = server.url_for(AttachRequest("c", Options(True, True, True, False)))
    with remote_command(url, stdin=True) as channels:
        assert channels.stdin is not None and channels.stdout is not None
        channels.stdin.write(b"ping\n")
        assert read_until(channels.stdout, b"ping\n") == b"ping\n"
        channels.stdin.close()
        assert channels.status()["status"] == "Success"


def test_a_port_forward_client_that_vanishes_leaves_nothing(server: StreamingServer) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    before = our_threads()
    conn = upgrade(server.url_for(PortForwardRequest("pod")), ("portforward.k8s.io",))
    _, data = forward(conn, listener.getsockname()[1], 0)
    pod_side, _ = listener.accept()  # a pod server that would hold on for ever
    data.write(b"hello")
    assert pod_side.recv(5) == b"hello"
    conn.sock.shutdown(socket.SHUT_RDWR)  # gone without a word
    conn.sock.close()
    pod_side.settimeout(20)
    assert pod_side.recv(1) == b""  # the server let go of the pod's connection
    pod_side.close()
    listener.close()
    deadline = time.monotonic() + 10
    while {t for t in our_threads() - before if t.is_alive()} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not {t for t in our_threads() - before if t.is_alive()}


def test_a_client_that_vanishes_while_its_input_is_held_back_is_noticed(
        server: StreamingServer, backend: HostBackend) -> None:
    """The program reads no input: the server stops reading the connection once a
    stream's buffer is full (1 MiB), and must still see the client hang up: its FIN
    waits in the socket's buffer behind the rest of the input. (Input that does not
    fit there keeps the FIN in the client's kernel, where nothing can see it.)"""
    before = our_threads()
    from streaming_client import open_channels
    conn = upgrade(exec_url(server, "sh", "-c", "echo started; exec sleep 300", stdin=True))
    channels = open_channels(conn, stdin=True)
    assert channels.stdin is not None and channels.stdout is not None
    read_until(channels.stdout, b"started")
    stdin = channels.stdin
    flood = threading.Thread(target=_write_quietly, args=(stdin, os.urandom(1200 << 10)))
    flood.start()
    time.sleep(2)  # the server's buffers are full and it has stopped reading
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.sock.close()
    flood.join(20)
    program = backend.programs[-1]
    assert program.proc is not None and program.proc.wait(15) == -9
    deadline = time.monotonic() + 15
    while {t for t in our_threads() - before if t.is_alive()} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not {t for t in our_threads() - before if t.is_alive()}


def _write_quietly(stream: object, data: bytes) -> bool:
    from cdfs.cri.streaming.session import Stream, StreamClosed
    assert isinstance(stream, Stream)
    try:
        stream.write(data)
    except StreamClosed:
        return False
    return True


def test_stop_ends_a_connection_that_never_sent_its_request(backend: HostBackend) -> None:
    """A client that connects and says nothing holds a thread only until the request
    timeout, and never holds up the server's stop (`cdfs cri` at SIGTERM)."""
    before = our_threads()
    streaming = StreamingServer(backend)
    streaming.start()
    host, port = streaming.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as silent:
        time.sleep(0.2)  # its handler thread is reading the request line
        stopping = threading.Thread(target=streaming.stop, daemon=True)
        stopping.start()
        stopping.join(10)
        assert not stopping.is_alive(), "stop waited for a silent connection"
        assert silent.recv(1) == b""
    assert not {t for t in our_threads() - before if t.is_alive()}


def test_a_malformed_request_line_does_not_log_its_token(
        server: StreamingServer, caplog: pytest.LogCaptureFixture) -> None:
    url = exec_url(server, "true")
    address, _, path = url.removeprefix("http://").partition("/")
    token = path.rsplit("/", 1)[1]
    host, port = address.rsplit(":", 1)
    caplog.set_level("INFO", logger="cdfs.cri.streaming.server")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST /{path} extra HTTP/1.1\r\n\r\n".encode())
        assert sock.recv(1 << 16).startswith(b"HTTP/1.1 400")
    assert "Bad request" in caplog.text and "/exec/..." in caplog.text
    assert token not in caplog.text


def test_stop_ends_a_session_whose_client_reads_nothing(backend: HostBackend) -> None:
    """`yes` fills what the client holds and the sockets' buffers, so the writer of
    its output blocks in sendall: stop must cut that connection, not wait on it."""
    before = our_threads()
    streaming = StreamingServer(backend)
    streaming.start()
    conn = upgrade(exec_url(streaming, "yes"))
    try:
        from streaming_client import open_channels
        open_channels(conn)
        time.sleep(2)  # output piles up: our reader holds 1 MiB, then stops reading
        stopping = threading.Thread(target=streaming.stop, daemon=True)
        stopping.start()
        stopping.join(10)
        assert not stopping.is_alive(), "stop waited for a client that reads nothing"
        program = backend.programs[-1]
        assert program.proc is not None and program.proc.wait(10) == -9
    finally:
        conn.close()
    assert not {t for t in our_threads() - before if t.is_alive()}
