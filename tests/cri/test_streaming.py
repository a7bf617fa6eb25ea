"""Exec, Attach and PortForward through `cdfs cri` and its streaming server, on a real
mount with real runc containers, driven by the test suite's own SPDY client
(tests/streaming_client.py) from the CRI server's network namespace, where its
loopback URLs lead.

The containers are made through the tree in the CRI namespace (a busybox rootfs of
the test's own, joined to a pod's network namespace where one is needed): the
streaming calls need nothing of them but that they run."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cri_pods import Pods
from cri_support import NAMESPACE, CriServer
from streaming_client import (
    Refused,
    collect,
    forward,
    open_channels,
    read_until,
    remote_command,
    retype_until,
    upgrade,
)
from support import write

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc
from cdfs.cri.sandboxes import netns_name


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """busybox with every applet, for containers of our own."""
    root = tmp_path_factory.mktemp("streaming-rootfs")
    (root / "bin").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run(["busybox", "--list"], capture_output=True, text=True,
                             check=True, timeout=10).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for name in ("proc", "dev", "sys", "tmp", "etc", "run"):
        (root / name).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


class Containers:
    """Tree containers of the CRI namespace, removed at teardown."""

    def __init__(self, cri: CriServer, rootfs: Path) -> None:
        self.top = cri.daemon.path("namespaces", NAMESPACE, "containers")
        self.rootfs = rootfs
        self.made: list[Path] = []

    def run(self, name: str, args: list[str], tty: bool = False,
            netns: str | None = None) -> str:
        container = self.top / name
        container.mkdir()
        self.made.append(container)
        if netns:
            write(container / "netns", netns + "\n")
        write(container / "config.json", json.dumps({
            "root": {"path": str(self.rootfs)},
            "process": {"args": args, "terminal": tty, "cwd": "/",
                        "env": ["PATH=/bin"]}}))
        write(container / "ctl", "start\n")
        return name

    def execs(self, name: str) -> list[str]:
        return [e for e in os.listdir(self.top / name / "exec") if e != "err"]

    def remove_all(self) -> None:
        for container in self.made:
            if (container / "status").read_text().strip() in ("running", "paused"):
                write(container / "ctl", "kill KILL\n")
                subprocess.run(["timeout", "20", "cat", str(container / "wait")],
                               capture_output=True, timeout=30)
            for _ in range(50):
                try:
                    container.rmdir()
                    break
                except OSError:
                    time.sleep(0.2)


@pytest.fixture
def containers(cri: CriServer, rootfs: Path) -> Iterator[Containers]:
    made = Containers(cri, rootfs)
    try:
        yield made
    finally:
        made.remove_all()


@pytest.fixture
def netns(cri: CriServer) -> str:
    """Where the CRI server (so its streaming server's loopback) is."""
    assert cri.host_netns is not None
    return f"/run/netns/{cri.host_netns}"


def exec_url(runtime: pb_grpc.RuntimeServiceStub, container_id: str, *cmd: str,
             stdin: bool = False, tty: bool = False) -> str:
    url: str = runtime.Exec(pb.ExecRequest(container_id=container_id, cmd=list(cmd),
                                           stdin=stdin, stdout=True, stderr=not tty,
                                           tty=tty)).url
    return url


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    code: grpc.StatusCode = caught.value.code()
    return code


def test_exec_without_a_terminal(runtime: pb_grpc.RuntimeServiceStub,
                                 containers: Containers, netns: str) -> None:
    web = containers.run("web", ["sleep", "600"])
    url = exec_url(runtime, web, "sh", "-c", "echo out; echo err >&2; pwd; exit 7")
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    with remote_command(url, netns=netns) as channels:
        (out, stdout), (err, stderr) = collect(channels.stdout), collect(channels.stderr)
        status = channels.status()
        out.join(20)
        err.join(20)
    assert (b"".join(stdout), b"".join(stderr)) == (b"out\n/\n", b"err\n")
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]

    # named by a prefix of its id, as crictl's users name containers
    with remote_command(exec_url(runtime, web[:2], "sh", "-c", "tr a-z A-Z; echo end",
                                 stdin=True), stdin=True, netns=netns) as channels:
        assert channels.stdin is not None and channels.stdout is not None
        channels.stdin.write(b"hello\n")
        assert read_until(channels.stdout, b"HELLO\n") == b"HELLO\n"
        channels.stdin.close()  # the exec's end of file
        assert read_until(channels.stdout, b"end\n") == b"end\n"
        assert channels.status() == {"metadata": {}, "status": "Success"}
    assert wait_for(lambda: containers.execs(web) == [])  # each exec removed at its end


def test_exec_on_a_terminal_sees_its_size_and_resizes(runtime: pb_grpc.RuntimeServiceStub,
                                                      containers: Containers,
                                                      netns: str) -> None:
    web = containers.run("web", ["sleep", "600"])
    url = exec_url(runtime, web, "sh", stdin=True, tty=True)
    with remote_command(url, stdin=True, tty=True, netns=netns) as channels:
        assert channels.stdin is not None and channels.stdout is not None
        channels.send_size(33, 101)  # client-go sends the first size at once
        channels.stdin.write(b"stty size; echo TERM=$TERM\r")
        shown = read_until(channels.stdout, b"TERM=xterm")
        assert b"33 101\r\n" in shown
        channels.send_size(50, 150)
        assert b"50 150\r\n" in retype_until(channels.stdin, channels.stdout, b"stty size\r",
                                              b"50 150\r\n")
        channels.stdin.write(b"exit 3\r")
        assert channels.status()["details"]["causes"][0]["message"] == "3"
    assert wait_for(lambda: containers.execs(web) == [])


def test_attach_shows_output_from_now_on_and_takes_stdin(
        runtime: pb_grpc.RuntimeServiceStub, containers: Containers, netns: str) -> None:
    talker = containers.run("talker", ["sh", "-c", 'echo before; while read line; do '
                                                   'echo "got $line"; echo "err $line" >&2; '
                                                   'done; echo bye'])
    assert wait_for(lambda: (containers.top / talker / "stdout").read_text() == "before\n")
    url = runtime.Attach(pb.AttachRequest(container_id=talker, stdin=True, stdout=True,
                                          stderr=True)).url
    assert "/attach/" in url
    with remote_command(url, stdin=True, netns=netns) as channels:
        assert channels.stdin and channels.stdout and channels.stderr
        channels.stdin.write(b"one\n")
        assert read_until(channels.stdout, b"got one\n") == b"got one\n"  # not "before"
        assert read_until(channels.stderr, b"err one\n") == b"err one\n"
        channels.stdin.close()  # the container's stdin ends with the attach's
        assert read_until(channels.stdout, b"bye\n") == b"bye\n"
        assert channels.stdout.read_all(timeout=20) == b""  # ends with the container
        assert channels.status() == {"metadata": {}, "status": "Success"}


def test_attach_to_a_terminal(runtime: pb_grpc.RuntimeServiceStub, containers: Containers,
                              netns: str) -> None:
    shell = containers.run("shell", ["sh"], tty=True)
    url = runtime.Attach(pb.AttachRequest(container_id=shell, stdin=True, stdout=True,
                                          tty=True)).url
    conn = upgrade(url, netns=netns)
    try:
        channels = open_channels(conn, stdin=True, stderr=False, tty=True)
        assert channels.stdin and channels.stdout
        channels.send_size(20, 70)
        channels.stdin.write(b"stty size; echo $((6*7))\r")
        shown = read_until(channels.stdout, b"42\r\n")
        assert b"20 70\r\n" in shown
    finally:
        conn.close()  # detaching leaves the container running
    assert (containers.top / shell / "status").read_text().strip() == "running"


def test_port_forward_into_the_pod(runtime: pb_grpc.RuntimeServiceStub, pods: Pods,
                                   containers: Containers, netns: str) -> None:
    sandbox_id = pods.run()
    containers.run("echo", ["nc", "-ll", "-p", "8080", "-e", "cat"],
                   netns=netns_name(sandbox_id))
    url = runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=sandbox_id,
                                                    port=[8080])).url
    assert "/portforward/" in url
    conn = upgrade(url, ("portforward.k8s.io",), netns=netns)
    try:
        assert wait_for(lambda: _echoes(conn, 8080, 99))  # the server is listening
        (err1, data1), (err2, data2) = forward(conn, 8080, 1), forward(conn, 8080, 2)
        big = os.urandom(4 << 20)  # past every buffer on the way, both ways
        echoed, chunks = collect(data1)  # read while writing, as client-go does
        sender = threading.Thread(target=lambda: data1.write(big))
        sender.start()
        data2.write(b"second")
        data2.close()
        assert data2.read_all(timeout=20) == b"second"
        sender.join(30)
        data1.close()
        echoed.join(30)
        assert b"".join(chunks) == big
        assert err1.read_all(timeout=10) == err2.read_all(timeout=10) == b""
        error, data = forward(conn, 8081, 3)  # nothing listens there
        assert b"refused" in error.read_all(timeout=20).lower()
        assert data.read_all(timeout=10) == b""
    finally:
        conn.close()


def _echoes(conn: object, port: int, request_id: int) -> bool:
    from streaming_client import Connection
    assert isinstance(conn, Connection)
    error, data = forward(conn, port, request_id)
    data.write(b"ping")
    data.close()
    answer = data.read_all(timeout=10)
    error.read_all(timeout=10)
    return answer == b"ping"


def test_a_token_works_once(runtime: pb_grpc.RuntimeServiceStub, containers: Containers,
                            netns: str) -> None:
    web = containers.run("web", ["sleep", "600"])
    url = exec_url(runtime, web, "true")
    with remote_command(url, netns=netns) as channels:
        assert channels.status()["status"] == "Success"
    with pytest.raises(Refused) as reused:
        upgrade(url, netns=netns)
    assert reused.value.status == 404
    with pytest.raises(Refused) as forged:
        upgrade(url.rsplit("/", 1)[0] + "/not-a-token", netns=netns)
    assert forged.value.status == 404


def test_a_client_that_vanishes_leaves_no_exec_thread_or_socket(
        cri: CriServer, runtime: pb_grpc.RuntimeServiceStub, containers: Containers,
        netns: str) -> None:
    assert cri.proc is not None
    pid = cri.proc.pid
    web = containers.run("web", ["sleep", "600"])
    with remote_command(exec_url(runtime, web, "true"), netns=netns) as channels:
        channels.status()  # the server's threads and sockets are warm
    threads, fds = _settled_counts(pid)
    url = exec_url(runtime, web, "sh", "-c", "echo started; exec sleep 600", stdin=True)
    conn = upgrade(url, netns=netns)
    channels = open_channels(conn, stdin=True)
    assert channels.stdout is not None
    read_until(channels.stdout, b"started")
    assert len(containers.execs(web)) == 1
    conn.sock.shutdown(socket.SHUT_RDWR)  # gone without a word
    conn.sock.close()
    assert wait_for(lambda: containers.execs(web) == [], 30)  # killed and removed
    assert wait_for(lambda: _counts(pid) == (threads, fds), 20), (_counts(pid), (threads, fds))
    assert (containers.top / web / "status").read_text().strip() == "running"


def _counts(pid: int) -> tuple[int, int]:
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


def _settled_counts(pid: int) -> tuple[int, int]:
    """The counts once the last session's threads have ended: the same twice half a
    second apart (one look after a fixed 0.5 s can count a thread still ending on a
    loaded machine, a number the later counts never come back up to)."""
    last, deadline = _counts(pid), time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _counts(pid)
        if now == last:
            return now
        last = now
    return last


def test_refused_requests(runtime: pb_grpc.RuntimeServiceStub, containers: Containers,
                          cri: CriServer) -> None:
    web = containers.run("web", ["sleep", "600"])
    done = containers.run("done", ["true"])
    assert wait_for(lambda: (containers.top / done / "status").read_text().strip()
                    == "stopped")

    def exec_(container_id: str, cmd: tuple[str, ...] = ("true",), stdout: bool = True,
              stderr: bool = False, tty: bool = False) -> object:
        return runtime.Exec(pb.ExecRequest(container_id=container_id, cmd=list(cmd),
                                           stdout=stdout, stderr=stderr, tty=tty))

    assert code_of(lambda: exec_("nope")) == grpc.StatusCode.NOT_FOUND
    # an id that is a path, even one leading back to the same container, names none
    # (as for the container calls: only a listed name, or a prefix of one, names one)
    assert code_of(lambda: exec_(f"../containers/{web}")) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: runtime.Attach(pb.AttachRequest(
        container_id=f"../containers/{web}", stdout=True))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: exec_("")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: exec_(done)) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: exec_(web, cmd=())) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: exec_(web, tty=True, stderr=True)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: exec_(web, stdout=False)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: runtime.Attach(pb.AttachRequest(container_id="nope", stdout=True))
                   ) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id="nope"))
                   ) == grpc.StatusCode.NOT_FOUND


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (OSError, AssertionError, TimeoutError):
            pass
        time.sleep(0.2)
    return False


def test_a_command_that_cannot_run_is_reported_and_leaves_no_exec(
        runtime: pb_grpc.RuntimeServiceStub, containers: Containers, netns: str) -> None:
    web = containers.run("web", ["sleep", "600"])
    started = time.monotonic()
    with remote_command(exec_url(runtime, web, "/no/such/program"), netns=netns) as channels:
        status = channels.status()
    assert status["status"] == "Failure" and status["reason"] == "InternalError", status
    assert "/no/such/program" in status["message"], status
    assert wait_for(lambda: containers.execs(web) == [])
    assert time.monotonic() - started < 15
