"""Fixtures for the containers tests (the shared `daemon` fixture kills every
container it started at teardown)."""

from pathlib import Path

import pytest
from support import make_busybox_rootfs


@pytest.fixture(scope="session")
def own_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bring-your-own rootfs: /bin/busybox and its applets."""
    return make_busybox_rootfs(tmp_path_factory.mktemp("byo") / "rootfs")
