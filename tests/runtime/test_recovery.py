"""A new TaskService on the same state dir finds what the last one left running."""

import os
import signal
import time
from pathlib import Path

from support import task_output

from base.mount import Mount
from runtime import conmon
from runtime.state import Status
from runtime.tasks import TaskService

from .conftest import container_spec


def test_restart_sees_running_and_stopped(tmp_path: Path, service: TaskService,
                                          busybox_rootfs: Path) -> None:
    flag = tmp_path / "flag"
    flag.mkdir()
    bind = {"destination": "/flag", "type": "bind", "source": str(flag), "options": ["rbind"]}
    script = "echo started; while [ ! -e /flag/go ]; do sleep 0.05; done; echo leaving; exit 4"
    waiting = container_spec(busybox_rootfs, ["sh", "-c", script])
    waiting["mounts"] = [*waiting["mounts"], bind]
    service.create("test", "live", waiting)
    service.start("test", "live")
    service.create("test", "done", container_spec(busybox_rootfs, ["sh", "-c", "exit 9"]))
    service.start("test", "done")
    assert service.wait("test", "done", timeout=10).exit_status == 9
    before = service.state("test", "live")
    del service  # the daemon dies; conmon keeps the containers

    again = TaskService(tmp_path / "state")
    infos = {info.id: info for info in again.recover()}
    assert infos["live"].status == Status.RUNNING and infos["live"].pid == before.pid
    assert (infos["done"].status, infos["done"].exit_status) == (Status.STOPPED, 9)
    deadline = time.monotonic() + 10
    while task_output(again, "stdout", "test", "live") != b"started\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (flag / "go").touch()
    info = again.wait("test", "live", timeout=10)
    assert (info.status, info.exit_status) == (Status.STOPPED, 4)
    assert task_output(again, "stdout", "test", "live") == b"started\nleaving\n"


def test_dead_monitor_is_reported_stopped(service: TaskService, busybox_rootfs: Path) -> None:
    service.create("test", "orphan", container_spec(busybox_rootfs, ["sleep", "100"]))
    service.start("test", "orphan")
    files = service.files("test", "orphan")
    monitor = conmon.read_int(files.conmon_pid)
    assert monitor is not None
    os.kill(monitor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{monitor}/cmdline").exists() and \
            Path(f"/proc/{monitor}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    again = TaskService(service.state_dir)
    (info,) = again.recover()
    assert (info.status, info.exit_status) == (Status.STOPPED, 137)
    again.delete("test", "orphan")
    assert again.list() == []


def test_many_containers_at_once(service: TaskService, busybox_rootfs: Path) -> None:
    count = 24
    for i in range(count):
        service.create("many", f"c{i}", container_spec(busybox_rootfs, ["sh", "-c",
                       f"echo {i}; read line; exit {i % 7}"]), stdin=True)
        service.start("many", f"c{i}")
    monitors = [conmon.read_int(service.files("many", f"c{i}").conmon_pid) for i in range(count)]
    rss_kib = [int(line.split()[1]) for pid in monitors
               for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:")]
    print(f"conmon RSS per container: {sum(rss_kib) / len(rss_kib) / 1024:.1f} MiB")
    assert all(info.status == Status.RUNNING for info in TaskService(service.state_dir).recover())
    for i in range(count):
        service.write_stdin("many", f"c{i}", b"go\n")
    for i in range(count):
        info = service.wait("many", f"c{i}", timeout=20)
        assert info.exit_status == i % 7
        assert task_output(service, "stdout", "many", f"c{i}") == f"{i}\n".encode()
    for i in range(count):
        service.delete("many", f"c{i}")
    assert service.list() == []


def test_rootfs_from_mounts(tmp_path: Path, service: TaskService, busybox_rootfs: Path) -> None:
    """The snapshotter's answer: an overlay of the busybox tree (lower) and a fresh upper."""
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    overlay = Mount("overlay", "overlay",
                    (f"lowerdir={busybox_rootfs}", f"upperdir={upper}", f"workdir={work}"))
    oci = container_spec(busybox_rootfs, ["sh", "-c", "echo written > /new; cat /new"])
    oci["root"] = {"path": "rootfs", "readonly": False}
    service.create("test", "ov", oci, rootfs=[overlay])
    rootfs = service.bundle("test", "ov") / "rootfs"
    assert (rootfs / "bin" / "busybox").exists()
    service.start("test", "ov")
    assert service.wait("test", "ov", timeout=10).exit_status == 0
    assert task_output(service, "stdout", "test", "ov") == b"written\n"
    assert (upper / "new").read_text() == "written\n"
    service.delete("test", "ov")
    assert not rootfs.exists()
    assert not (busybox_rootfs / "new").exists()
