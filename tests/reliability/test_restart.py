"""Crash and restart: a daemon killed with -9 comes back on its stale mount however
long it stayed down, and a pull it was in the middle of leaves nothing behind."""

import contextlib
import errno
import json
import os
import subprocess
import time
from collections.abc import Callable

from support import Daemon, is_mounted, wait_until


def _stat_errno(path: os.PathLike[str]) -> int | None:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno
    return None


def test_restart_after_the_attribute_cache_expired(make_daemon: Callable[..., Daemon]) -> None:
    first = make_daemon()
    first.path("namespaces", "survivor").mkdir()
    first.kill9()
    assert is_mounted(first.mount)
    time.sleep(6)  # past the kernel's attribute cache: now every stat says ENOTCONN
    assert _stat_errno(first.mount) == errno.ENOTCONN
    second = first.start()
    assert "survivor" in os.listdir(second.path("namespaces"))


def _write(path: os.PathLike[str], text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _events_of(daemon: Daemon, container_id: str, until: str) -> list[tuple[str, object]]:
    """(topic, exit_status) of the container's events from a reader opened now, up to
    the first `until` topic."""
    reader = subprocess.Popen(["timeout", "20", "cat",
                               str(daemon.path("namespaces", "default", "events"))],
                              stdout=subprocess.PIPE, text=True)
    seen: list[tuple[str, object]] = []
    try:
        assert reader.stdout is not None
        for line in reader.stdout:
            event = json.loads(line)
            if event.get("container_id", event["id"]) == container_id:
                seen.append((event["topic"], event.get("exit_status")))
                if event["topic"] == until:
                    break
    finally:
        reader.kill()
        reader.wait(timeout=10)
    return seen


def test_an_oom_kill_while_no_daemon_ran_is_told_after_the_restart(
        make_daemon: Callable[..., Daemon]) -> None:
    first = make_daemon()
    container = first.path("namespaces", "default", "containers", "hog")
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", json.dumps({
        "process": {"args": ["sh", "-c", "sleep 2; x=0123456789; while :; do x=$x$x; done"]},
        "linux": {"resources": {"memory": {"limit": 32 << 20, "swap": 32 << 20}}}}))
    _write(container / "ctl", "start\n")
    first.kill9()
    task = first.state / "runtime" / "tasks" / "default" / "hog"
    assert wait_until(lambda: (task / "exit").exists(), timeout=30)
    assert (task / "oom").exists()  # conmon saw the kill
    second = first.start()
    assert _events_of(second, "hog", "/tasks/exit") == [("/tasks/oom", None),
                                                       ("/tasks/exit", 137)]
    second.stop()
    third = second.start()  # told once: not again after another restart
    assert (third.path("namespaces", "default", "containers", "hog", "wait")
            ).read_text().strip() == "137"
    reader = subprocess.run(["timeout", "2", "cat",
                             str(third.path("namespaces", "default", "events"))],
                            capture_output=True, text=True, timeout=10)
    assert '"hog"' not in reader.stdout


def test_stdin_stays_open_and_writable_across_restarts(
        make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon()
    container = daemon.path("namespaces", "default", "containers", "reader")
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", json.dumps({"process": {"args": [
        "sh", "-c", "while read line; do echo got $line; done; echo eof"]}}))
    _write(container / "ctl", "start\n")
    log = daemon.state / "runtime" / "tasks" / "default" / "reader" / "log"

    def typed(text: str, then: Callable[[], None]) -> None:
        """Write `text` to stdin, see the program answer, and `then` (with the file
        still open: a stop or a kill of the daemon under it)."""
        fd = os.open(daemon.path("namespaces", "default", "containers", "reader", "stdin"),
                     os.O_WRONLY)
        try:
            os.write(fd, text.encode())
            assert wait_until(lambda: f"got {text.strip()}" in log.read_text(), timeout=10)
            then()
        finally:
            with contextlib.suppress(OSError):  # the mount under it may be gone
                os.close(fd)

    typed("one\n", daemon.stop)
    daemon = daemon.start()
    container = daemon.path("namespaces", "default", "containers", "reader")
    assert (container / "status").read_text().strip() == "running"  # no EOF at the stop
    typed("two\n", daemon.kill9)
    daemon.force_unmount()
    daemon = daemon.start()
    typed("last\n", lambda: None)  # this close sends end of file
    container = daemon.path("namespaces", "default", "containers", "reader")
    status = subprocess.run(["timeout", "20", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    assert status == "0"
    assert (container / "stdout").read_text() == "got one\ngot two\ngot last\neof\n"
