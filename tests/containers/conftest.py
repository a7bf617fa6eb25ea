"""Fixtures for the containers tests: a real daemon whose containers are all killed
and forgotten at teardown (conmon and the containers outlive a daemon by design)."""

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Daemon

from cdfs.runtime import conmon, mounts

BUSYBOX = "cdfs.local/busybox:latest"


def cleanup_containers(state: Path) -> None:
    """Kill every container and monitor the daemon on `state` started, and unmount
    their rootfs (runc delete -f by id, conmon by the pid it recorded)."""
    runtime = state / "runtime"
    runc_root = runtime / "runc"
    if runc_root.is_dir():
        for namespace in os.listdir(runc_root):
            for container_id in os.listdir(runc_root / namespace):
                subprocess.run(["runc", "--root", str(runc_root / namespace), "delete", "-f",
                                container_id], capture_output=True, timeout=30)  # fmt: skip
    tasks = runtime / "tasks"
    if tasks.is_dir():
        for pid_file in tasks.rglob("conmon.pid"):
            pid = conmon.read_int(pid_file)
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if pid and str(pid_file.parent).encode() in cmdline:
                    os.kill(pid, signal.SIGKILL)
        for rootfs in tasks.glob("*/*/rootfs"):
            mounts.unmount_all(rootfs)


@pytest.fixture
def make_cdaemon(make_daemon: Callable[..., Daemon]) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(*args: object, **kwargs: object) -> Daemon:
        daemon = make_daemon(*args, **kwargs)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        cleanup_containers(daemon.state)


@pytest.fixture
def daemon(make_cdaemon: Callable[..., Daemon]) -> Daemon:
    return make_cdaemon()


@pytest.fixture(scope="session")
def own_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bring-your-own rootfs: /bin/busybox and its applets."""
    root = tmp_path_factory.mktemp("byo") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "echo", "cat", "sleep", "true", "id"):
        (root / "bin" / applet).symlink_to("busybox")
    for name in ("proc", "dev", "sys", "tmp", "etc", "run"):
        (root / name).mkdir()
    return root
