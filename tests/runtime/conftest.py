"""Fixtures for the runtime tests: a busybox rootfs, and a TaskService whose every
container, conmon and mount is removed after the test, even when it fails."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import cleanup_runtime, make_busybox_rootfs

from runtime import spec
from runtime.tasks import TaskService


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[TaskService]:
    state = tmp_path / "state"
    try:
        yield TaskService(state)
    finally:
        cleanup_runtime(state)


def container_spec(rootfs: Path, args: list[str], **process: Any) -> dict[str, Any]:
    """The default spec running `args` in the bring-your-own `rootfs`, in a cgroup of
    its own."""
    base = spec.default_spec("test", f"t{uuid.uuid4().hex[:12]}", spec.host_rlimits())
    return spec.merge(base, {"root": {"path": str(rootfs)},
                             "process": {"args": args, **process}})
