"""Terminals through the mounted tree: a shell from the busybox image on a pty, driven
through its `tty` file (keystrokes in, what the terminal shows out), resized in ctl."""

import errno
import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from support import Daemon, wait_until

from .test_containers import Container, read_with_timeout, refused, write


class Screen:
    """What a terminal shows from the moment `cat tty` opened it, read in the
    background (the waits below are bounded; cat is killed at the end)."""

    def __init__(self, tty: Path) -> None:
        self.data = b""
        self.proc = subprocess.Popen(["cat", str(tty)], stdout=subprocess.PIPE)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        assert wait_until(lambda: self._has_open(tty), 10), "cat did not open the tty"

    def _has_open(self, tty: Path) -> bool:
        fds = Path(f"/proc/{self.proc.pid}/fd")
        try:
            return any(os.readlink(fd) == str(tty) for fd in fds.iterdir())
        except FileNotFoundError:
            return False

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(4096):
            self.data += chunk

    def shows(self, text: bytes, timeout: float = 20) -> None:
        assert wait_until(lambda: text in self.data, timeout), f"{text!r} not in {self.data!r}"

    def ends(self, timeout: float = 20) -> int:
        """cat's exit status once the stream ended (0: it ended at the process's exit)."""
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def screens() -> Callable[[Path], Screen]:
    opened: list[Screen] = []

    def open_(tty: Path) -> Screen:
        opened.append(Screen(tty))
        return opened[-1]

    yield open_  # type: ignore[misc]
    for screen in opened:
        screen.close()


def type_(tty: Path, keys: str) -> None:
    write(tty, keys)


def read_to_end(fd: int, timeout: float = 20) -> bytes:
    """Everything read from `fd` until end of file, in a thread bounded by `timeout`."""
    chunks: list[bytes] = []

    def pump() -> None:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"no end of file after {timeout} s: {b''.join(chunks)!r}"
    return b"".join(chunks)


def test_terminal_shell_driven_through_tty(daemon: Daemon,
                                           screens: Callable[[Path], Screen]) -> None:
    c = Container(daemon, "term").make(["sh"], process={"terminal": True})
    c.ctl("start")
    screen = screens(c / "tty")
    type_(c / "tty", "tty; echo h''i\r")
    screen.shows(b"/dev/pts/")
    screen.shows(b"\r\nhi\r\n")
    later = screens(c / "tty")  # sees only what comes after its open
    c.ctl("resize 40 100")
    type_(c / "tty", "stty size\r")
    screen.shows(b"40 100\r\n")
    later.shows(b"40 100\r\n")
    assert b"\r\nhi\r\n" not in later.data
    assert refused(c / "ctl", "resize 40 wide\n") == errno.EINVAL
    assert '"40 wide"' in c.value("err")
    assert refused(c / "ctl", "resize 0 100\n") == errno.EINVAL
    both = os.open(c / "tty", os.O_RDWR)  # one descriptor, both ways
    try:
        os.write(both, b"echo $((6*7)) >&2; exit 3\r")
        shown_here = read_to_end(both)
    finally:
        os.close(both)
    assert b"42\r\n" in shown_here  # stderr, on the terminal
    assert c.wait() == 3
    assert c.value("exit") == "3"
    assert screen.ends() == 0 and later.ends() == 0
    assert b"42\r\n" in screen.data
    shown = read_with_timeout(c / "follow" / "stdout")  # text mode: \r\n reads as \n
    assert "\nhi\n" in shown and "\n40 100\n" in shown and "\n42\n" in shown
    assert read_with_timeout(c / "follow" / "stderr") == ""
    assert " stdout P " in read_with_timeout(c / "follow" / "log")  # the prompt, a line not ended
    assert read_with_timeout(c / "tty") == ""  # nothing more to show: it has exited
    c.dir.rmdir()


def test_tty_needs_a_terminal(daemon: Daemon) -> None:
    c = Container(daemon, "pipes").make(["sleep", "100"])
    c.ctl("start")
    for mode in (os.O_RDONLY, os.O_WRONLY):
        with pytest.raises(OSError) as refusal:
            os.close(os.open(c / "tty", mode))
        assert refusal.value.errno == errno.EINVAL
    assert refused(c / "ctl", "resize 40 100\n") == errno.EINVAL
    assert "has no terminal" in c.value("err")
    c.ctl("kill KILL")
    assert c.wait() == 137


def test_exec_on_a_terminal(daemon: Daemon, screens: Callable[[Path], Screen]) -> None:
    c = Container(daemon, "host").make(["sleep", "100"])
    c.ctl("start")
    e = c / "exec" / "sh"
    e.mkdir()
    write(e / "process.json", json.dumps({"args": ["sh"], "terminal": True}))
    write(e / "ctl", "resize 30 90\n")  # before start: the size it starts with
    write(e / "ctl", "start\n")
    screen = screens(e / "tty")
    type_(e / "tty", "stty size\r")
    screen.shows(b"30 90\r\n")
    write(e / "ctl", "resize 40 100\n")
    type_(e / "tty", "stty size; exit 4\r")
    screen.shows(b"40 100\r\n")
    assert read_with_timeout(e / "wait") == "4\n"
    assert (e / "exit").read_text() == "4\n"
    assert screen.ends() == 0
    assert c.value("status") == "running"
    c.ctl("kill KILL")
    assert c.wait() == 137


def test_terminal_after_a_daemon_restart(make_daemon: Callable[..., Daemon],
                                         screens: Callable[[Path], Screen]) -> None:
    first = make_daemon()
    c = Container(first, "kept").make(["sh"], process={"terminal": True})
    c.ctl("start")
    screen = screens(c / "tty")
    type_(c / "tty", "echo o''ne\r")
    screen.shows(b"\r\none\r\n")
    screen.close()
    first.kill9()
    second = first.start()
    c = Container(second, "kept")
    assert c.value("status") == "running"
    screen = screens(c / "tty")
    c.ctl("resize 33 77")
    type_(c / "tty", "stty size\r")
    screen.shows(b"33 77\r\n")
    type_(c / "tty", "exit 5\r")
    assert c.wait() == 5
    assert screen.ends() == 0
    assert "\none\n" in read_with_timeout(c / "follow" / "stdout")
