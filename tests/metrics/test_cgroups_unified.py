"""The v2 reader against the real unified hierarchy of this hybrid host, where only the
core files (cpu.stat's usage counters) are there; the rest must read as zero/unlimited."""

import time

import pytest

from base.errors import NotFound
from runtime.cgroups import UNLIMITED, CgroupV2, is_pure_v2, open_cgroup
from runtime.oom import watch_oom

from .conftest import CGROUP_ROOT, OwnedCgroup

UNIFIED = CGROUP_ROOT / "unified"

pytestmark = pytest.mark.skipif(
    not (UNIFIED / "cgroup.controllers").exists(), reason="no unified hierarchy at " + str(UNIFIED)
)


def test_cpu_usage_grows_on_the_real_unified_hierarchy(unified_cgroup: OwnedCgroup) -> None:
    assert is_pure_v2(UNIFIED)
    cgroup = open_cgroup(unified_cgroup.cgroups_path, UNIFIED)
    assert isinstance(cgroup, CgroupV2)
    unified_cgroup.spawn("while True: pass")
    before = cgroup.cpu()  # 200 ms of CPU, in as long as a loaded host takes to give it
    deadline = time.monotonic() + 10
    while cgroup.cpu()["usage_usec"] - before["usage_usec"] <= 200_000:
        assert time.monotonic() < deadline, "no CPU time in 10 s"
        time.sleep(0.02)
    after = cgroup.cpu()
    assert after["user_usec"] > before["user_usec"]


def test_controllers_not_enabled_read_as_zero_and_unlimited(unified_cgroup: OwnedCgroup) -> None:
    enabled = (UNIFIED / "cgroup.subtree_control").read_text().split()
    if "memory" in enabled or "pids" in enabled:
        pytest.skip("memory or pids are enabled on this unified hierarchy")
    cgroup = open_cgroup(unified_cgroup.cgroups_path, UNIFIED)
    assert cgroup.memory()["limit"] == UNLIMITED
    assert cgroup.memory()["usage"] == 0
    assert cgroup.pids() == {"current": 0, "limit": UNLIMITED}
    with pytest.raises(NotFound, match="no memory controller"):
        watch_oom(unified_cgroup.cgroups_path, UNIFIED)


def test_removed_cgroup(unified_cgroup: OwnedCgroup) -> None:
    cgroup = open_cgroup(unified_cgroup.cgroups_path, UNIFIED)
    unified_cgroup.dirs[0].rmdir()
    with pytest.raises(NotFound):
        cgroup.cpu()
