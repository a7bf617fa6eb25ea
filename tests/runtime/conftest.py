"""Fixtures for the runtime tests: a busybox rootfs, and a TaskService whose every
container, conmon and mount is removed after the test, even when it fails."""

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdfs.runtime import conmon, mounts, spec
from cdfs.runtime.tasks import TaskService

BUSYBOX_APPLETS = ("sh", "echo", "cat", "sleep", "ls", "id", "true", "false", "yes", "head",
                   "wc", "sync", "trap", "kill", "env", "pwd", "dd", "seq")  # fmt: skip


def make_busybox_rootfs(root: Path) -> Path:
    """A minimal rootfs: /bin/busybox and links to the applets the tests use."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for name in ("proc", "dev", "sys", "tmp", "etc", "run"):
        (root / name).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


def cleanup_state_dir(state: Path) -> None:
    """Kill and forget every container and monitor under `state` (test teardown)."""
    tasks = state / "tasks"
    runc_root = state / "runc"
    if runc_root.is_dir():
        for namespace in os.listdir(runc_root):
            for cid in os.listdir(runc_root / namespace):
                subprocess.run(["runc", "--root", str(runc_root / namespace), "delete", "-f",
                                cid], capture_output=True, timeout=30)  # fmt: skip
    if tasks.is_dir():
        for pid_file in tasks.rglob("conmon.pid"):
            pid = conmon.read_int(pid_file)
            cmdline = Path(f"/proc/{pid}/cmdline")
            with contextlib.suppress(OSError):
                if pid and str(pid_file.parent).encode() in cmdline.read_bytes():
                    os.kill(pid, signal.SIGKILL)
        for rootfs in tasks.glob("*/*/rootfs"):
            mounts.unmount_all(rootfs)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TaskService]:
    state = tmp_path / "state"
    try:
        yield TaskService(state)
    finally:
        cleanup_state_dir(state)


def container_spec(rootfs: Path, args: list[str], **process: Any) -> dict[str, Any]:
    """The default spec running `args` in the bring-your-own `rootfs`, in a cgroup of
    its own."""
    base = spec.default_spec("test", f"t{uuid.uuid4().hex[:12]}", spec.host_rlimits())
    return spec.merge(base, {"root": {"path": str(rootfs)},
                             "process": {"args": args, **process}})  # fmt: skip
