"""What the kernel caches of the tree (the names of namespaces and containers, the
attributes of their directories) never outlives a change: each step walks the same
paths again at once, as a script does, and sees the new state."""

import json
from pathlib import Path

import pytest
from posix_tree import BUSYBOX, Tree
from support import wait_until, write

from base.clock import parse_rfc3339


def _values_agree(container: Path) -> None:
    """Every task file's size is what a read returns."""
    for name in ("status", "pid", "exit", "created", "started", "exited", "info"):
        path = container / name
        assert path.stat().st_size == len(path.read_bytes()), name


def _dated_by(container: Path, value: str) -> bool:
    """Whether the directory's mtime is the time its `value` file says."""
    return container.stat().st_mtime_ns == parse_rfc3339((container / value).read_text())


def test_a_start_and_an_exit_show_at_once(tree: Tree) -> None:
    container = tree.daemon.path("containers", "told")
    container.mkdir()
    assert (container / "status").read_text() == "empty\n"
    write(container / "image", BUSYBOX + "\n")
    write(container / "config.json",
          json.dumps({"process": {"args": ["sh", "-c", "read line; exit 7"]}}))
    assert (container / "status").read_text() == "created\n"
    assert _dated_by(container, "created")
    _values_agree(container)
    write(container / "ctl", "start\n")
    assert (container / "status").read_text() == "running\n"
    assert (container / "pid").read_text().strip().isdigit()
    assert _dated_by(container, "started")  # /tasks/start withdrew the cached mtime
    assert (container / "stats").stat().st_mtime_ns == container.stat().st_mtime_ns
    _values_agree(container)
    write(container / "stdin", "go\n")
    assert tree.run("cat", container / "wait").stdout == "7\n"
    assert (container / "status").read_text() == "stopped\n"
    assert (container / "exit").read_text() == "7\n"
    assert (container / "pid").read_text() == ""
    _values_agree(container)
    # the /tasks/exit event comes just after wait's reader learns of the exit
    assert wait_until(lambda: _dated_by(container, "exited"), timeout=5)
    container.rmdir()


def test_a_removed_container_is_gone_and_one_made_again_is_new(tree: Tree) -> None:
    by_link = tree.mount / "containers" / "again"
    by_path = tree.daemon.path("containers", "again")
    by_path.mkdir()
    write(by_path / "image", BUSYBOX + "\n")
    write(by_path / "config.json", json.dumps({"process": {"args": ["true"]}}))
    for path in (by_link, by_path):  # both walks are cached now
        assert (path / "status").read_text() == "created\n"
        assert (path / "created").read_text()
    by_path.rmdir()
    for path in (by_link, by_path):
        with pytest.raises(FileNotFoundError):
            path.stat()
        with pytest.raises(FileNotFoundError):
            (path / "status").read_text()
    assert "again" not in [p.name for p in by_path.parent.iterdir()]
    by_link.mkdir()  # through the other walk this time
    for path in (by_link, by_path):
        assert (path / "status").read_text() == "empty\n"
        assert (path / "created").read_text() == ""
        assert (path / "config.json").read_text() == ""
    by_link.rmdir()
    with pytest.raises(FileNotFoundError):
        (by_path / "status").stat()


def test_a_removed_namespace_is_gone_and_one_made_again_is_empty(tree: Tree) -> None:
    namespace = tree.mount / "namespaces" / "cached"
    namespace.mkdir()
    (namespace / "containers" / "c").mkdir()
    assert (namespace / "containers" / "c" / "status").read_text() == "empty\n"
    (namespace / "containers" / "c").rmdir()
    namespace.rmdir()
    with pytest.raises(FileNotFoundError):
        (namespace / "containers").stat()
    namespace.mkdir()
    assert sorted(p.name for p in (namespace / "containers").iterdir()) == ["err", "list"]
    with pytest.raises(FileNotFoundError):
        (namespace / "containers" / "c").stat()
    namespace.rmdir()
