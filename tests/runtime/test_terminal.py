"""Processes on a terminal (process.terminal): conmon holds the pty, keystrokes go in
through its attach socket, the window size through its ctl fifo."""

import time
from pathlib import Path

import pytest
from support import task_output

from base.errors import InvalidArgument
from runtime import conmon
from runtime.state import Status
from runtime.tasks import TaskService

from .conftest import container_spec


def screen(service: TaskService, cid: str, exec_id: str | None = None) -> bytes:
    """Everything the terminal showed so far (the log's stdout)."""
    return task_output(service, "stdout", "test", cid, exec_id)


def shows(service: TaskService, cid: str, text: bytes, exec_id: str | None = None,
          timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while text not in (seen := screen(service, cid, exec_id)):
        assert time.monotonic() < deadline, f"{text!r} not shown in {seen!r}"
        time.sleep(0.05)
    return seen


def test_shell_on_a_terminal(service: TaskService, busybox_rootfs: Path) -> None:
    service.create("test", "t", container_spec(busybox_rootfs, ["sh"], terminal=True), stdin=True)
    assert service.terminal("test", "t")
    service.start("test", "t")
    service.write_stdin("test", "t", b"tty; echo h''i\r")
    shows(service, "t", b"/dev/pts/")  # a real pty
    shows(service, "t", b"\r\nhi\r\n")  # and the terminal turns \n into \r\n
    service.resize("test", "t", 40, 100)
    service.write_stdin("test", "t", b"stty size\r")
    shows(service, "t", b"40 100\r\n")
    service.close_stdin("test", "t")  # a terminal's input does not end
    service.write_stdin("test", "t", b"echo $((6*7)) >&2; exit 3\r")
    info = service.wait("test", "t", timeout=10)
    assert (info.status, info.exit_status) == (Status.STOPPED, 3)
    assert b"42\r\n" in screen(service, "t")  # stderr is the terminal too
    assert task_output(service, "stderr", "test", "t") == b""
    with pytest.raises(InvalidArgument, match="stopped"):
        service.resize("test", "t", 40, 100)


def test_program_gets_sigwinch(service: TaskService, busybox_rootfs: Path) -> None:
    script = "trap 'stty size' WINCH; echo ready; while :; do sleep 0.1; done"
    size = {"height": 24, "width": 80}
    service.create("test", "w", container_spec(busybox_rootfs, ["sh", "-c", script],
                                               terminal=True, consoleSize=size))
    service.resize("test", "w", 30, 90)  # created: conmon holds the pty already
    service.start("test", "w")
    shows(service, "w", b"ready\r\n")
    service.resize("test", "w", 50, 120)
    shows(service, "w", b"50 120\r\n")
    service.kill("test", "w", 9)
    assert service.wait("test", "w", timeout=10).exit_status == 137


def test_input_survives_a_client_that_goes(service: TaskService, busybox_rootfs: Path,
                                           tmp_path: Path) -> None:
    """A daemon that dies closes its connection to conmon; the terminal's input stays
    open for the next daemon (--leave-stdin-open)."""
    service.create("test", "r", container_spec(busybox_rootfs, ["sh"], terminal=True), stdin=True)
    service.start("test", "r")
    first = conmon.connect_attach(service.files("test", "r"))
    first.sendall(b"echo o''ne\r")
    shows(service, "r", b"\r\none\r\n")
    first.close()
    again = TaskService(tmp_path / "state")
    again.write_stdin("test", "r", b"stty size\r")
    again.resize("test", "r", 33, 77)
    again.write_stdin("test", "r", b"stty size; exit 5\r")
    shows(service, "r", b"33 77\r\n")
    assert again.wait("test", "r", timeout=10).exit_status == 5


def test_exec_on_a_terminal(service: TaskService, busybox_rootfs: Path) -> None:
    service.create("test", "host", container_spec(busybox_rootfs, ["sleep", "100"]))
    service.start("test", "host")
    with pytest.raises(InvalidArgument, match="no terminal"):
        service.resize("test", "host", 40, 100)
    service.exec("test", "host", "e", {"args": ["sh"], "terminal": True}, stdin=True)
    assert service.terminal("test", "host", "e") and not service.terminal("test", "host")
    service.resize("test", "host", 30, 90, exec_id="e")  # before start: its consoleSize
    service.start("test", "host", "e")
    service.write_stdin("test", "host", b"stty size\r", exec_id="e")
    shows(service, "host", b"30 90\r\n", "e")
    service.resize("test", "host", 40, 100, exec_id="e")
    service.write_stdin("test", "host", b"stty size; exit 4\r", exec_id="e")
    shows(service, "host", b"40 100\r\n", "e")
    assert service.wait("test", "host", "e", timeout=10).exit_status == 4
    assert service.state("test", "host").status == Status.RUNNING


@pytest.mark.parametrize(("rows", "cols"), [(0, 80), (24, 65536), (-1, 1)])
def test_bad_sizes_are_refused(service: TaskService, busybox_rootfs: Path, rows: int,
                               cols: int) -> None:
    service.create("test", "s", container_spec(busybox_rootfs, ["sh"], terminal=True))
    with pytest.raises(InvalidArgument, match=r"must be 1\.\.65535"):
        service.resize("test", "s", rows, cols)
