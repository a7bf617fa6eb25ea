"""The `tree` fixture: one live daemon per test module (see tests/posix_tree.py)."""

from collections.abc import Iterator

import pytest
from posix_tree import BUSYBOX, RUNNING, STOPPED_ERR, STOPPED_OUT, Tree, make_container
from support import Daemon, cleanup_runtime, remove_cgroups, wait_until


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    base = tmp_path_factory.mktemp("posix")
    for sub in ("mnt", "root", "state"):
        (base / sub).mkdir()
    daemon = Daemon(base / "mnt", base / "root", base / "state", base / "daemon.log")
    daemon.start()
    try:
        stopped = make_container(daemon, "stopped",
                                 f"printf '{STOPPED_OUT}'; printf '{STOPPED_ERR}' >&2; exit 3")
        running = make_container(daemon, "running", RUNNING)
        assert wait_until(lambda: (stopped / "status").read_text() == "stopped\n")
        log = daemon.state / "runtime" / "tasks" / "default" / "running" / "log"
        assert wait_until(lambda: log.exists() and b"tick 1" in log.read_bytes())
        yield Tree(daemon, stopped, running, daemon.path("images", *BUSYBOX.split("/")))
    finally:
        daemon.stop()
        cleanup_runtime(daemon.state / "runtime")
        remove_cgroups(daemon.cgroup_parent)
