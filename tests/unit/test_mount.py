"""Performing Mounts with mount(2): overlays, bind mounts with flags, undoing."""

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from base.errors import Unavailable
from base.mount import Mount
from runtime.mounts import is_mounted, mount_all, split_options, unmount_all


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "target"
    where.mkdir()
    try:
        yield where
    finally:
        unmount_all(where)


def test_split_options() -> None:
    assert split_options(["rbind", "ro", "nosuid"]) == (0x1000 | 0x4000 | 0x1 | 0x2, "")
    assert split_options(["lowerdir=/a:/b", "rw"]) == (0, "lowerdir=/a:/b")


def test_overlay(tmp_path: Path, target: Path) -> None:
    lower, upper, work = (tmp_path / n for n in ("lower", "upper", "work"))
    for d in (lower, upper, work):
        d.mkdir()
    (lower / "below").write_text("lower\n")
    mount_all([Mount("overlay", "overlay", (f"lowerdir={lower}", f"upperdir={upper}",
                                             f"workdir={work}"))], target)
    assert is_mounted(target)
    assert (target / "below").read_text() == "lower\n"
    (target / "new").write_text("upper\n")
    assert (upper / "new").read_text() == "upper\n"
    unmount_all(target)
    assert not is_mounted(target)


def test_read_only_bind(tmp_path: Path, target: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "file").write_text("x")
    mount_all([Mount("bind", str(source), ("rbind", "ro"))], target)
    assert (target / "file").read_text() == "x"
    with pytest.raises(OSError) as refused:
        (target / "other").write_text("y")
    assert refused.value.errno == errno.EROFS


def test_a_failed_mount_undoes_the_ones_before(tmp_path: Path, target: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    with pytest.raises(Unavailable, match="nowhere"):
        mount_all([Mount("bind", str(source), ("rbind",)),
                   Mount("bind", str(tmp_path / "nowhere"), ("rbind",))], target)
    assert not is_mounted(target)
