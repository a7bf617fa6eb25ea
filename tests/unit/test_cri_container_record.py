"""The CRI container record and stats without a mount: labels out and back, the tree's
info read as CRI states, reasons and nanosecond times, stats files as ContainerStats."""

import errno

import pytest

from cdfs.client.tree import TreeError
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.container_record import ContainerRecord, MountRecord, nanoseconds
from cdfs.cri.container_stats import container_stats

RECORD = ContainerRecord(id="c" * 64, sandbox_id="s" * 64, name="web", attempt=2,
                         labels={"app": "web"}, annotations={"note": "two\nlines"},
                         image="busybox", image_ref="sha256:" + "0" * 64,
                         log_path="/var/log/pods/x/web/0.log",
                         mounts=(MountRecord("/data", "/h", True, True, 1),))


def info(status: str, **facts: object) -> dict[str, object]:
    return {"id": RECORD.id, "status": status, "labels": RECORD.to_labels(), "pid": None,
            "created": "2026-12-01T12:00:00.123456789Z", "started": None, "exited": None,
            "exit": None, "oom_killed": False, **facts}


def test_the_record_survives_its_labels() -> None:
    read = ContainerRecord.from_info(info("created"))
    assert read.sandbox_id == RECORD.sandbox_id and (read.name, read.attempt) == ("web", 2)
    assert read.labels == RECORD.labels and read.annotations == RECORD.annotations
    assert (read.image, read.image_ref, read.log_path) == (RECORD.image, RECORD.image_ref,
                                                           RECORD.log_path)
    assert read.mounts == RECORD.mounts
    assert all("\n" not in value for value in RECORD.to_labels().values())


def test_a_tree_container_that_is_not_a_cri_container_is_not_found() -> None:
    with pytest.raises(TreeError) as refused:
        ContainerRecord.from_info({"id": "x", "labels": {"io.cdfs.cri.kind": "sandbox"}})
    assert refused.value.errno == errno.ENOENT


@pytest.mark.parametrize(("status", "facts", "state", "reason"), [
    ("empty", {}, pb.CONTAINER_UNKNOWN, ""),
    ("created", {}, pb.CONTAINER_CREATED, ""),
    ("running", {"pid": 7}, pb.CONTAINER_RUNNING, ""),
    ("paused", {"pid": 7}, pb.CONTAINER_RUNNING, ""),
    ("stopped", {"exit": 0}, pb.CONTAINER_EXITED, "Completed"),
    ("stopped", {"exit": 2}, pb.CONTAINER_EXITED, "Error"),
    ("stopped", {"exit": 137, "oom_killed": True}, pb.CONTAINER_EXITED, "OOMKilled"),
])
def test_states_and_reasons(status: str, facts: dict[str, object], state: int,
                            reason: str) -> None:
    read = ContainerRecord.from_info(info(status, **facts))
    assert (read.state, read.reason) == (state, reason)


def test_times_keep_their_nanoseconds() -> None:
    assert nanoseconds("2026-12-01T12:00:00.123456789Z") == 1796126400123456789
    assert nanoseconds("2026-12-01T12:00:00Z") == 1796126400000000000
    assert nanoseconds(None) == 0 and nanoseconds("") == 0


def test_stats_files_as_container_stats() -> None:
    cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
    memory = ("usage 10000\nlimit 50000\nrss 4000\ninactive_file 3000\npgfault 12\n"
              "pgmajfault 1\n")
    stats = container_stats(RECORD, cpu, memory, 99)
    assert stats.attributes.id == RECORD.id and stats.attributes.metadata.attempt == 2
    assert (stats.cpu.timestamp, stats.cpu.usage_core_nano_seconds.value) == (99, 1500000)
    assert stats.memory.working_set_bytes.value == 7000
    assert stats.memory.available_bytes.value == 43000
    assert (stats.memory.rss_bytes.value, stats.memory.page_faults.value,
            stats.memory.major_page_faults.value) == (4000, 12, 1)
    unlimited = container_stats(RECORD, cpu, f"usage 10\nlimit {2**64 - 1}\n", 1)
    assert unlimited.memory.available_bytes.value == 0
