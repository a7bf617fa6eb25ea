"""Fixtures shared by every test: a real cdfs daemon on a temp mount."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Daemon, Names, cleanup_runtime, remove_cgroups, start_registry


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory of daemons on this test's temp dirs, all stopped at teardown."""
    made: list[Daemon] = []

    def make(name: str = "cdfs", extra_args: list[str] | None = None,
             root: Path | None = None, state: Path | None = None,
             mount: Path | None = None) -> Daemon:
        base = tmp_path / name
        for sub in ("mnt", "root", "state"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        daemon = Daemon(mount or base / "mnt", root or base / "root", state or base / "state",
                        base / "daemon.log", extra_args or [])
        made.append(daemon)
        return daemon.start()

    yield make
    for daemon in made:
        daemon.stop()
        cleanup_runtime(daemon.state / "runtime")
        remove_cgroups(daemon.cgroup_parent)


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """A docker-registry on loopback for this test; yields its host:port."""
    address, proc = start_registry(tmp_path)
    try:
        yield address
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def names() -> Iterator[Names]:
    """Network namespace and interface names that are deleted after the test."""
    made = Names()
    try:
        yield made
    finally:
        made.delete()
