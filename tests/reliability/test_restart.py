"""Crash and restart: a daemon killed with -9 comes back on its stale mount however
long it stayed down, and a pull it was in the middle of leaves nothing behind."""

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

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


def _run_true(daemon: Daemon, name: str) -> Path:
    """A container `name` that ran `true` to its exit; its directory."""
    container = daemon.path("namespaces", "default", "containers", name)
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", json.dumps({"process": {"args": ["true"]}}))
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "20", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    assert status == "0"
    return container


def _left_of(daemon: Daemon, name: str) -> list[str]:
    """What is still on the host of container `name`: its task directory, runc's
    state, a mount under the daemon's state dir, its snapshot."""
    runtime = daemon.state / "runtime"
    left = [str(p) for p in (runtime / "tasks" / "default" / name,
                             runtime / "runc" / "default" / name) if p.exists()]
    with open("/proc/self/mountinfo") as mountinfo:
        left += [line.split()[4] for line in mountinfo
                 if line.split()[4].startswith(f"{runtime}/")]
    if name in os.listdir(daemon.path("namespaces", "default", "snapshots")):
        left.append(f"snapshot {name}")
    return left


def _restart_after_kill9(daemon: Daemon, edit_sql: str = "") -> Daemon:
    """Kill the daemon with -9, apply `edit_sql` to its metadata (what a kill at an
    earlier moment would have left there), and start a new daemon on the same root."""
    daemon.kill9()
    daemon.force_unmount()
    if edit_sql:
        with contextlib.closing(sqlite3.connect(daemon.root / "metadata.db")) as db, db:
            db.execute(edit_sql)
    return daemon.start()


def test_a_kill_right_after_rmdir_leaves_nothing_after_the_restart(
        make_daemon: Callable[..., Daemon]) -> None:
    """rmdir returns before the task and snapshot are deleted from disk; a daemon
    killed at once leaves them to the next start, which reclaims them."""
    daemon = make_daemon()
    _run_true(daemon, "brief").rmdir()
    daemon = _restart_after_kill9(daemon)
    assert "brief" not in os.listdir(daemon.path("namespaces", "default", "containers"))
    assert _left_of(daemon, "brief") == []
    _run_true(daemon, "brief").rmdir()  # the name is free


def test_start_up_reclaims_a_removal_cut_short_after_its_row(
        make_daemon: Callable[..., Daemon]) -> None:
    """What a daemon killed between deleting the row and deleting the task leaves: a
    task directory (with its mounted rootfs and runc's state) and an active snapshot
    that no container names. The next start deletes them."""
    daemon = make_daemon()
    _run_true(daemon, "cut")
    daemon = _restart_after_kill9(daemon, "DELETE FROM containers WHERE id = 'cut'")
    assert _left_of(daemon, "cut") == []
    _run_true(daemon, "cut").rmdir()
    assert wait_until(lambda: _left_of(daemon, "cut") == [], timeout=10)


def test_start_up_reclaims_a_create_cut_short(make_daemon: Callable[..., Daemon]) -> None:
    """A daemon killed while creating a container (the task made, its spec not yet in
    the row) leaves a task and a snapshot the slot does not name: the next start
    deletes them (the process killed) and config.json can be written again."""
    daemon = make_daemon()
    container = daemon.path("namespaces", "default", "containers", "half")
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", json.dumps({"process": {"args": ["sleep", "300"]}}))
    daemon = _restart_after_kill9(
        daemon, "UPDATE containers SET spec = '', snapshot = '' WHERE id = 'half'")
    assert _left_of(daemon, "half") == []
    container = daemon.path("namespaces", "default", "containers", "half")
    assert (container / "status").read_text().strip() == "empty"
    _write(container / "config.json", json.dumps({"process": {"args": ["true"]}}))
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "20", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    assert status == "0"
