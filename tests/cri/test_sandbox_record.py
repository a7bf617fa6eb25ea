"""The sandbox record's labels: what is written is what is read back, and labels
edited by hand leave the record readable."""

import errno
import json
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from cdfs.client.tree import Tree, TreeError
from cdfs.cri import labels
from cdfs.cri.errors import CriError
from cdfs.cri.sandbox_record import (
    Metadata,
    NamespaceMode,
    NamespaceOptions,
    PortMapping,
    SandboxFiles,
    SandboxRecord,
    read_sandbox,
)

SANDBOX_ID = "ab" * 32


def full_record() -> SandboxRecord:
    return SandboxRecord(
        id=SANDBOX_ID,
        metadata=Metadata("web", "uid-1", "default", attempt=2),
        created_at=1_700_000_000_123_456_789,
        labels={"app": "web", "multi": "a=b"},
        annotations={"note": "line one\nline two"},
        runtime_handler="runc",
        namespace_options=NamespaceOptions(NamespaceMode.POD, NamespaceMode.CONTAINER,
                                           NamespaceMode.NODE),
        netns_name="cri-abab",
        netns_path="/run/netns/cri-abab",
        hostname="web-0",
        files=SandboxFiles("/r/sandboxes/x/hostname", "/r/sandboxes/x/hosts",
                           "/r/sandboxes/x/resolv.conf"),
        cgroup_parent="/kubepods/pod-1",
        log_directory="/var/log/pods/default_web_uid-1",
        privileged=True,
        port_mappings=(PortMapping(80, 8080, "TCP", "127.0.0.1"), PortMapping(53, 5353, "UDP")),
        ip="10.223.0.5",
        additional_ips=("fd00::5",),
    )


def test_labels_round_trip_every_field() -> None:
    record = full_record()
    stored = record.to_labels()
    assert stored[labels.KIND] == labels.SANDBOX_KIND
    assert all(key.startswith(labels.PREFIX) for key in stored)
    assert all("\n" not in value for value in stored.values())
    assert labels.PREFIX + "created-at" not in stored  # the tree's info says it
    back = SandboxRecord.from_labels(SANDBOX_ID, stored, status="running", pause_pid=42,
                                     created_at=record.created_at)
    assert back == replace(record, status="running", pause_pid=42)
    assert back.ready
    assert back.namespace_path("ipc") == "/proc/42/ns/ipc"


def test_through_the_labels_file_text() -> None:
    """The text written to the tree's labels file parses back to the same labels."""
    stored = full_record().to_labels()
    lines = labels.format_lines(stored).splitlines()
    parsed = dict(line.partition("=")[::2] for line in lines)
    assert parsed == stored


def test_a_stopped_sandbox_is_not_ready() -> None:
    record = SandboxRecord.from_labels(SANDBOX_ID, full_record().to_labels(), "stopped")
    assert not record.ready
    assert record.namespace_path("net") == ""


def test_not_a_sandbox_is_not_found() -> None:
    with pytest.raises(TreeError) as caught:
        SandboxRecord.from_labels(SANDBOX_ID, {labels.KIND: labels.CONTAINER_KIND})
    assert caught.value.errno == errno.ENOENT


def test_damaged_labels_give_defaults() -> None:
    stored = {**full_record().to_labels(),
              labels.PREFIX + "metadata": "{not json",
              labels.PREFIX + "port-mappings": '"a string"'}
    record = SandboxRecord.from_labels(SANDBOX_ID, stored)
    assert record.metadata == Metadata("", "", "")
    assert record.port_mappings == ()
    assert record.created_at == 0
    assert record.ip == "10.223.0.5"


def test_the_creation_time_is_the_trees() -> None:
    """As a CRI container's: info's `created`, to the nanosecond, not a label."""
    info = {"id": SANDBOX_ID, "status": "running", "pid": 7,
            "created": "2026-12-01T12:00:00.123456789Z",
            "labels": {**full_record().to_labels(), labels.PREFIX + "created-at": "1"}}
    record = SandboxRecord.from_info(info)
    assert record.created_at == 1_796_126_400_123_456_789
    assert (record.status, record.pause_pid) == ("running", 7)


def test_a_line_break_in_a_string_field_is_refused() -> None:
    record = SandboxRecord(SANDBOX_ID, Metadata("a", "b", "c"), hostname="a\nb")
    with pytest.raises(CriError) as caught:
        record.to_labels()
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_name_that_is_a_path_names_no_sandbox(tmp_path: Path) -> None:
    """read_sandbox never turns an id into a path out of the containers directory."""
    tree = Tree(tmp_path, "k8s.io")
    (tmp_path / "info").write_text(json.dumps(
        {"id": "x", "labels": full_record().to_labels()}))
    for name in ("../../../..", "../..", "a/b", ".", ""):
        with pytest.raises(TreeError) as caught:
            read_sandbox(tree, name)
        assert caught.value.errno == errno.ENOENT
