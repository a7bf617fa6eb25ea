"""The task service against real runc and conmon, with a busybox rootfs."""

import json
import os
import re
import shutil
import signal
import stat
import time
from pathlib import Path

import pytest
from support import task_output, wait_until

from base.errors import AlreadyExists, Busy, InvalidArgument, NotFound, Unavailable
from runtime import runc
from runtime.state import Status
from runtime.tasks import TaskService

from .conftest import container_spec


def run(service: TaskService, cid: str, rootfs: Path, script: str, stdin: bool = False,
        namespace: str = "test") -> None:
    service.create(namespace, cid, container_spec(rootfs, ["sh", "-c", script]), stdin=stdin)
    service.start(namespace, cid)


def stdout(service: TaskService, cid: str, exec_id: str | None = None) -> bytes:
    return task_output(service, "stdout", "test", cid, exec_id)


def stderr(service: TaskService, cid: str, exec_id: str | None = None) -> bytes:
    return task_output(service, "stderr", "test", cid, exec_id)


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_output_and_exit_code(service: TaskService, busybox_rootfs: Path) -> None:
    info = service.create("test", "c1", container_spec(busybox_rootfs,
                          ["sh", "-c", "echo out; echo err >&2; exit 3"]))
    assert info.status == Status.CREATED and info.pid and info.exit_status is None
    service.start("test", "c1")
    info = service.wait("test", "c1", timeout=10)
    assert (info.status, info.exit_status) == (Status.STOPPED, 3)
    assert info.exited_at is not None and abs(info.exited_at - time.time()) < 30
    assert stdout(service, "c1") == b"out\n"
    assert stderr(service, "c1") == b"err\n"
    log = task_output(service, "log", "test", "c1")
    assert b" stdout F out\n" in log and b" stderr F err\n" in log


def test_exit_zero_and_partial_lines(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "c", busybox_rootfs, "echo -n no-newline; true")
    assert service.wait("test", "c", timeout=10).exit_status == 0
    assert stdout(service, "c") == b"no-newline"


def test_kill_gives_128_plus_signal(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "k", busybox_rootfs, "sleep 100")
    # The kernel spares a pid namespace's init from signals it has no handler for, so
    # a default-action TERM needs a process that is not pid 1.
    no_pid_ns = container_spec(busybox_rootfs, ["sleep", "100"])
    no_pid_ns["linux"]["namespaces"] = [
        ns for ns in no_pid_ns["linux"]["namespaces"] if ns["type"] != "pid"]
    service.create("test", "t", no_pid_ns)
    service.start("test", "t")
    assert service.state("test", "k").status == Status.RUNNING
    service.kill("test", "k", signal.SIGKILL)
    service.kill("test", "t", signal.SIGTERM)
    assert service.wait("test", "k", timeout=10).exit_status == 137
    assert service.wait("test", "t", timeout=10).exit_status == 143
    with pytest.raises(InvalidArgument, match="stopped"):
        service.kill("test", "k", signal.SIGKILL)


def test_stop_with_grace_period(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "trap", busybox_rootfs,
        "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: stdout(service, "trap") == b"ready\n")
    assert service.stop("test", "trap", grace=5).exit_status == 7
    assert stdout(service, "trap") == b"ready\nbye\n"
    run(service, "stubborn", busybox_rootfs,
        "trap '' TERM; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: stdout(service, "stubborn") == b"ready\n")
    started = time.monotonic()
    assert service.stop("test", "stubborn", grace=0.5).exit_status == 137
    assert time.monotonic() - started < 5


def freezer_state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return Path(f"/sys/fs/cgroup/freezer{path}/freezer.state").read_text().strip()
    raise AssertionError("no freezer cgroup")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def test_pause_and_resume(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "p", busybox_rootfs, "while true; do :; done")
    pid = service.state("test", "p").pid
    assert pid is not None
    with pytest.raises(InvalidArgument, match="running"):
        service.resume("test", "p")
    service.pause("test", "p")
    assert service.state("test", "p").status == Status.PAUSED
    assert freezer_state(pid) == "FROZEN"
    before = cpu_ticks(pid)
    time.sleep(0.3)
    assert cpu_ticks(pid) == before
    with pytest.raises(Busy):
        service.delete("test", "p")
    service.resume("test", "p")
    assert service.state("test", "p").status == Status.RUNNING
    assert wait_until(lambda: cpu_ticks(pid) > before, 10)  # however loaded the host
    # sh is the pid namespace's init and has no TERM handler: stop escalates to KILL.
    assert service.stop("test", "p", grace=0.5).exit_status == 137


def test_pause_of_a_container_that_keeps_forking(service: TaskService,
                                                 busybox_rootfs: Path) -> None:
    """New processes keep a cgroup v1 freeze FREEZING, and runc gives up on it
    ("unable to freeze": through the tree, one pause in 40 of this container, and
    of a busy loop's on a loaded host, was EIO); pause asks runc again instead."""
    run(service, "forks", busybox_rootfs, "while :; do /bin/true & /bin/true & wait; done")
    for _ in range(40):
        service.pause("test", "forks")
        assert service.state("test", "forks").status == Status.PAUSED
        service.resume("test", "forks")
    service.kill("test", "forks", signal.SIGKILL)
    assert service.wait("test", "forks", timeout=10).exit_status == 137


def test_stdin_piped_into_cat(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "cat", busybox_rootfs, "cat; echo done", stdin=True)
    attach = service.files("test", "cat").attach
    assert stat.S_ISSOCK(attach.stat().st_mode) and attach.stat().st_mode & 0o777 == 0o600
    service.write_stdin("test", "cat", b"hello\n")
    service.write_stdin("test", "cat", b"x" * 10000 + b"\n")
    wait_for(lambda: stdout(service, "cat").startswith(b"hello\nxxx"))
    assert service.state("test", "cat").status == Status.RUNNING
    service.close_stdin("test", "cat")
    info = service.wait("test", "cat", timeout=10)
    assert info.exit_status == 0
    assert stdout(service, "cat") == b"hello\n" + b"x" * 10000 + b"\ndone\n"


def test_close_stdin_of_a_process_gone_with_its_conmon(service: TaskService,
                                                      busybox_rootfs: Path) -> None:
    """closeio that finds the attach socket gone (the process exited, its conmon with
    it) has nothing to close: it succeeds, as when the exit came before the check."""
    run(service, "gone", busybox_rootfs, "exit 0", stdin=True)
    assert service.wait("test", "gone", timeout=10).exit_status == 0
    assert wait_until(lambda: not service.files("test", "gone").attach.exists(), timeout=10)
    service.close_stdin("test", "gone")
    assert service.state("test", "gone").status == Status.STOPPED


def test_no_stdin_means_empty_stdin(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "n", busybox_rootfs, "cat; echo eof")
    assert service.wait("test", "n", timeout=10).exit_status == 0
    with pytest.raises(InvalidArgument):
        service.write_stdin("test", "n", b"x")


def test_exec_has_own_output_and_exit(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "host", busybox_rootfs, "echo init; sleep 100")
    info = service.exec("test", "host", "e1", {"args": ["sh", "-c", "echo exec; exit 5"]})
    assert info.status == Status.CREATED
    service.start("test", "host", "e1")
    info = service.wait("test", "host", "e1", timeout=10)
    assert (info.status, info.exit_status) == (Status.STOPPED, 5)
    assert stdout(service, "host", "e1") == b"exec\n"
    assert stdout(service, "host") == b"init\n"
    assert service.list_execs("test", "host") == ["e1"]
    with pytest.raises(AlreadyExists):
        service.exec("test", "host", "e1", {"args": ["true"]})
    with pytest.raises(InvalidArgument, match=r"process\.args"):
        service.exec("test", "host", "bad", {"args": []})
    assert service.list_execs("test", "host") == ["e1"]
    service.exec("test", "host", "cat", {"args": ["cat"]}, stdin=True)
    service.start("test", "host", "cat")
    service.write_stdin("test", "host", b"to exec\n", exec_id="cat")
    service.close_stdin("test", "host", exec_id="cat")
    assert service.wait("test", "host", "cat", timeout=10).exit_status == 0
    assert stdout(service, "host", "cat") == b"to exec\n"
    service.exec("test", "host", "long", {"args": ["sleep", "100"]})
    service.start("test", "host", "long")
    service.kill("test", "host", signal.SIGKILL, exec_id="long")
    assert service.wait("test", "host", "long", timeout=10).exit_status == 137
    service.delete("test", "host", exec_id="e1")
    assert service.list_execs("test", "host") == ["cat", "long"]
    assert service.state("test", "host").status == Status.RUNNING


def test_delete_refused_while_running(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "d", busybox_rootfs, "sleep 100")
    with pytest.raises(Busy, match='"d"'):
        service.delete("test", "d")
    assert service.state("test", "d").status == Status.RUNNING
    service.delete("test", "d", force=True)
    assert not service.bundle("test", "d").exists()
    with pytest.raises(NotFound):
        service.state("test", "d")
    assert service.list() == []


def test_refusals_change_nothing(service: TaskService, busybox_rootfs: Path) -> None:
    good = container_spec(busybox_rootfs, ["true"])
    with pytest.raises(InvalidArgument, match="container id"):
        service.create("test", "../x", good)
    with pytest.raises(InvalidArgument, match=r"process\.args"):
        service.create("test", "bad", container_spec(busybox_rootfs, []))
    with pytest.raises(InvalidArgument, match="no rootfs"):
        service.create("test", "bad", {**good, "root": {"path": "rootfs"}})
    service.create("test", "c", good)
    with pytest.raises(AlreadyExists):
        service.create("test", "c", good)
    with pytest.raises(InvalidArgument, match="created"):
        service.pause("test", "c")
    assert service.list() == [("test", "c")]
    service.delete("test", "c")
    assert service.list() == []


def test_runtime_failure_is_unavailable(service: TaskService, busybox_rootfs: Path) -> None:
    missing = container_spec(busybox_rootfs, ["/no/such/program"])
    with pytest.raises(Unavailable, match="/no/such/program"):
        service.create("test", "m", missing)
    assert service.list() == []
    assert not service.bundle("test", "m").exists()


def test_the_runtime_is_found_in_one_place(service: TaskService, busybox_rootfs: Path,
                                           tmp_path: Path) -> None:
    """runc.executable: a name on PATH or a path, refused before anything is made."""
    path = shutil.which("runc")
    assert path is not None and runc.executable("runc") == path
    not_runnable = tmp_path / "runtime"
    not_runnable.write_text("#!/bin/sh\n")
    good = container_spec(busybox_rootfs, ["true"])
    for runtime in ("no-such-runtime", str(not_runnable)):
        complaint = f'runtime: "{re.escape(runtime)}" is not an executable'
        with pytest.raises(InvalidArgument, match=complaint):
            service.create("test", "r", good, runtime=runtime)
        assert service.list() == [] and not service.bundle("test", "r").exists()
    service.create("test", "r", good, runtime=path)
    assert service.state("test", "r").status == Status.CREATED
    service.delete("test", "r")


def test_same_id_in_two_namespaces(service: TaskService, busybox_rootfs: Path) -> None:
    for namespace in ("a", "b"):
        run(service, "same", busybox_rootfs, f"echo {namespace}", namespace=namespace)
    for namespace in ("a", "b"):
        assert service.wait(namespace, "same", timeout=10).exit_status == 0
        assert task_output(service, "stdout", namespace, "same") == \
            f"{namespace}\n".encode()
    assert service.list() == [("a", "same"), ("b", "same")]


def test_no_daemon_fd_leaks_into_container(service: TaskService, busybox_rootfs: Path) -> None:
    leak = os.open("/dev/null", os.O_RDONLY)  # an inheritable fd of the "daemon"
    os.set_inheritable(leak, True)
    try:
        run(service, "fds", busybox_rootfs, "ls /proc/1/fd; true")  # sh stays pid 1
        assert service.wait("test", "fds", timeout=10).exit_status == 0
    finally:
        os.close(leak)
    assert sorted(stdout(service, "fds").split()) == [b"0", b"1", b"2"]


def test_update_resources(service: TaskService, busybox_rootfs: Path) -> None:
    run(service, "u", busybox_rootfs, "sleep 100")
    service.update("test", "u", {"pids": {"limit": 42}})
    pid = service.state("test", "u").pid
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "pids":
            assert Path(f"/sys/fs/cgroup/pids{path}/pids.max").read_text().strip() == "42"
            break
    else:
        pytest.fail("no pids cgroup")
    with pytest.raises(InvalidArgument):
        service.update("test", "u", [])  # type: ignore[arg-type]


def test_status_start_and_delete_without_runc_processes_agree_with_runc(
        service: TaskService, busybox_rootfs: Path) -> None:
    """Runc.status reads state.json, start reads the exec fifo and delete of a stopped
    container removes its cgroups and state, each without a runc process: `runc state`
    must see the same at every step, and nothing may be left behind."""
    runc = service._runc("test")
    service.create("test", "agree", container_spec(busybox_rootfs, ["sleep", "100"]))

    def both() -> tuple[str | None, str | None]:
        state = runc.state("agree")
        return runc.status("agree"), state["status"] if state else None

    assert both() == ("created", "created")
    service.start("test", "agree")
    assert both() == ("running", "running")
    service.pause("test", "agree")
    assert both() == ("paused", "paused")
    service.resume("test", "agree")
    service.kill("test", "agree", signal.SIGKILL)
    service.wait("test", "agree", timeout=10)
    assert both() == ("stopped", "stopped")
    state = runc.state("agree")
    assert state is not None
    saved = json.loads((runc.root / "agree" / "state.json").read_text())
    cgroups = set(saved["cgroup_paths"].values())
    assert any(os.path.isdir(path) for path in cgroups)
    service.delete("test", "agree")
    assert both() == (None, None)
    assert not any(os.path.exists(path) for path in cgroups)
    assert not (runc.root / "agree").exists()
