"""A real daemon whose containers are killed at teardown, even when a test fails
(containers and their monitors outlive a daemon by design)."""

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Daemon

from cdfs.runtime import mounts


def kill_containers(state: Path) -> None:
    """`runc delete -f` every container of the daemon on `state`, kill its monitors
    (by the pid each recorded, checked against its command line), unmount its rootfs."""
    runc_root = state / "runtime" / "runc"
    for namespace in sorted(runc_root.glob("*")):
        for container in sorted(namespace.glob("*")):
            subprocess.run(["runc", "--root", str(namespace), "delete", "-f", container.name],
                           capture_output=True, timeout=30)
    tasks = state / "runtime" / "tasks"
    for pid_file in tasks.rglob("conmon.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if str(pid_file.parent).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    for rootfs in tasks.glob("*/*/rootfs"):
        mounts.unmount_all(rootfs)


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Iterator[Daemon]:
    made = make_daemon()
    try:
        yield made
    finally:
        kill_containers(made.state)
