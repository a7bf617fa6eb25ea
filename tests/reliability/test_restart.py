"""Crash and restart: a daemon killed with -9 comes back on its stale mount however
long it stayed down, and a pull it was in the middle of leaves nothing behind."""

import errno
import os
import time
from collections.abc import Callable

from support import Daemon, is_mounted


def _stat_errno(path: os.PathLike[str]) -> int | None:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno
    return None


def test_restart_after_the_attribute_cache_expired(make_daemon: Callable[..., Daemon]) -> None:
    first = make_daemon()
    first.path("namespaces", "survivor").mkdir()
    first.kill9()
    assert is_mounted(first.mount)
    time.sleep(6)  # past the kernel's attribute cache: now every stat says ENOTCONN
    assert _stat_errno(first.mount) == errno.ENOTCONN
    second = first.start()
    assert "survivor" in os.listdir(second.path("namespaces"))
