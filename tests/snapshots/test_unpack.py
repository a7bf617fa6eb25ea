"""apply_layer: what a layer puts in a directory, in both whiteout modes."""

import io
import os
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from base.errors import InvalidArgument, NoSpace
from content import apply as apply_module
from content.apply import apply_layer, entry_parts, whiteout_target
from content.compression import Limits


def apply(layers, target: Path, entries, mode: str = "delete", compression: str = "gzip",
          limits: Limits | None = None) -> str:
    blob, media_type, diff_id = layers.build(entries, compression)
    actual = apply_layer(io.BytesIO(blob), target, media_type, mode, limits)  # type: ignore[arg-type]
    assert actual == diff_id
    return actual


# -- pure cores ---------------------------------------------------------------------
def test_entry_parts_normalises_and_refuses_dotdot() -> None:
    assert entry_parts("./usr//bin/") == ("usr", "bin")
    assert entry_parts("/etc/passwd") == ("etc", "passwd")
    assert entry_parts("./") == ()
    for bad in ("../x", "a/../../x", "a/..", ".."):
        with pytest.raises(InvalidArgument, match="escapes"):
            entry_parts(bad)


def test_whiteout_target() -> None:
    assert whiteout_target(("a", ".wh.b")) == "b"
    assert whiteout_target(("a", ".wh..wh..opq")) == ""
    assert whiteout_target(("a", "b")) is None
    assert whiteout_target(()) is None
    for bad in (".wh.", ".wh..", ".wh..."):
        with pytest.raises(InvalidArgument, match="bad whiteout"):
            whiteout_target(("a", bad))


# -- entry types --------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_every_entry_type_and_its_metadata(layers, tmp_path: Path, compression: str) -> None:
    target = tmp_path / "t"
    target.mkdir()
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    apply(layers, target, [
        layers.dir("./", mode=0o751),
        layers.dir("bin", mode=0o755, uid=1, gid=2, mtime=1_500_000_000),
        layers.file("bin/su", b"#!su\n", mode=0o4755, uid=0, gid=0),
        layers.file("bin/ping", b"ping", mode=0o755,
                    xattrs={"security.capability": cap, "user.note": b"hi\xff",
                            "trusted.overlay.opaque": b"y"}),
        layers.file("home/u/data", b"x" * 3_000_000, mode=0o600, uid=1234, gid=5678),
        layers.symlink("abs", "/etc/shadow"),
        layers.symlink("rel", "bin/su"),
        layers.hardlink("bin/su2", "bin/su"),
        layers.device("dev/null", tarfile.CHRTYPE, 1, 3),
        layers.device("dev/sda", tarfile.BLKTYPE, 8, 0, mode=0o660),
        layers.device("run/fifo", tarfile.FIFOTYPE, mode=0o620),
    ], compression=compression)

    assert stat.S_IMODE(target.stat().st_mode) == 0o751
    su = (target / "bin/su").stat()
    assert stat.S_IMODE(su.st_mode) == 0o4755 and (target / "bin/su").read_bytes() == b"#!su\n"
    assert su.st_mtime == 1_600_000_000
    assert (target / "bin/su2").stat().st_ino == su.st_ino and su.st_nlink == 2
    binstat = (target / "bin").stat()
    assert (binstat.st_uid, binstat.st_gid, binstat.st_mtime) == (1, 2, 1_500_000_000)
    ping = target / "bin/ping"
    assert os.getxattr(ping, "security.capability") == cap
    assert os.getxattr(ping, "user.note") == b"hi\xff"
    assert "trusted.overlay.opaque" not in os.listxattr(ping)
    data = (target / "home/u/data").stat()
    assert (data.st_uid, data.st_gid, data.st_size) == (1234, 5678, 3_000_000)
    assert os.readlink(target / "abs") == "/etc/shadow"
    assert os.readlink(target / "rel") == "bin/su"
    null = (target / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    sda = (target / "dev/sda").lstat()
    assert stat.S_ISBLK(sda.st_mode) and os.major(sda.st_rdev) == 8
    assert stat.S_ISFIFO((target / "run/fifo").lstat().st_mode)
    assert stat.S_IMODE((target / "run/fifo").lstat().st_mode) == 0o620


@pytest.mark.parametrize("target_at_start", ["empty", "not empty", "past the memory"])
def test_later_entries_replace_earlier_ones(layers, tmp_path: Path, monkeypatch,
                                            target_at_start: str) -> None:
    """In an empty target what is there is known from what the layer made (no lstat);
    in any other, and past _MADE_MAX names, the kernel is asked: all three agree."""
    target = tmp_path / "t"
    target.mkdir()
    if target_at_start == "not empty":
        (target / "other").write_bytes(b"")
    if target_at_start == "past the memory":
        monkeypatch.setattr(apply_module, "_MADE_MAX", 5)
    apply(layers, target, [
        layers.file("a", b"file"), layers.dir("a"), layers.file("a/in", b"1"),
        layers.dir("b"), layers.file("b/x"), layers.file("b", b"now a file"),
        layers.symlink("c", "/nowhere"), layers.file("c", b"plain"),
        layers.dir("d", mode=0o700), layers.dir("d", mode=0o755),
        layers.dir("e"), layers.file("e/x", b"old"), layers.file("e", b"f"), layers.dir("e"),
        layers.file("e/x", b"new"),
    ])
    assert (target / "a/in").read_bytes() == b"1"
    assert (target / "e/x").read_bytes() == b"new"
    assert (target / "b").read_bytes() == b"now a file"
    assert (target / "c").read_bytes() == b"plain" and not (target / "c").is_symlink()
    assert stat.S_IMODE((target / "d").stat().st_mode) == 0o755


def test_hardlink_replacement_does_not_write_through_the_link(layers, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    apply(layers, target, [layers.file("a", b"original"), layers.hardlink("b", "a"),
                           layers.file("b", b"replaced")])
    assert (target / "a").read_bytes() == b"original"
    assert (target / "b").read_bytes() == b"replaced"


def test_files_in_flight_meet_later_entries(layers, tmp_path: Path) -> None:
    """Small files are created by worker threads while parsing goes on; every later
    entry that meets one waits for it: a second copy, a link to it, a whiteout of it,
    a directory in its place, a file beneath it."""
    target = tmp_path / "t"
    target.mkdir()
    many = [layers.file(f"bulk/{i}", os.urandom(3000)) for i in range(300)]
    apply(layers, target, [
        *many, layers.file("twice", b"first"), layers.file("twice", b"second"),
        layers.file("f", b"linked"), layers.hardlink("g", "f"),
        layers.file("gone", b"x"), layers.file(".wh.gone"),
        layers.file("d", b"file"), layers.dir("d"), layers.file("d/in", b"in"),
    ])
    assert [(target / "bulk" / str(i)).read_bytes() for i in range(300)] == [
        data for _, data in many]
    assert (target / "twice").read_bytes() == b"second"
    assert (target / "g").stat().st_ino == (target / "f").stat().st_ino
    assert not (target / "gone").exists()
    assert (target / "d/in").read_bytes() == b"in"
    with pytest.raises(InvalidArgument, match="non-directory"):
        apply(layers, tmp_path, [layers.file("x", b"x"), layers.file("x/y", b"y")])
    assert not (tmp_path / "x" / "y").exists()


def test_a_failing_file_in_flight_fails_the_layer_and_stops_every_thread(
        layers, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    entries = [layers.file(f"f{i}", b"x" * 100) for i in range(200)]
    entries[50] = layers.file("bad", b"x", xattrs={"bogus.name": b"v"})
    with pytest.raises(InvalidArgument, match='"bad"'):
        apply(layers, target, entries)
    assert not [t for t in threading.enumerate() if t.name.startswith("cdfs-create")]


def test_small_files_keep_the_reserve(layers, tmp_path: Path) -> None:
    """The room check counts the files in flight: a layer of small files on a nearly
    full filesystem stops with the reserve (1 MiB on 16 MiB) still free."""
    target = tmp_path / "small"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(target)],
                   check=True, timeout=30)
    try:
        with pytest.raises(NoSpace):
            apply(layers, target, [layers.file(f"f{i}", os.urandom(200_000))
                                   for i in range(100)], compression="none")
        st = os.statvfs(target)
        assert st.f_bavail * st.f_frsize >= 1 << 20
    finally:
        subprocess.run(["umount", str(target)], check=True, timeout=30)


# -- whiteouts ----------------------------------------------------------------------
def lower(layers, target: Path) -> None:
    apply(layers, target, [layers.file("etc/keep", b"k"), layers.file("etc/gone", b"g"),
                           layers.file("opq/old", b"o"), layers.file("opq/sub/old", b"o"),
                           layers.dir("tree"), layers.file("tree/deep/x")])


def test_whiteouts_delete_mode(layers, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    lower(layers, target)
    apply(layers, target, [
        layers.file("opq/new", b"n"),
        layers.file("opq/sub/new", b"n"),
        layers.file("opq/.wh..wh..opq"),
        layers.file("etc/.wh.gone"),
        layers.file(".wh.tree"),
        layers.file("missing/.wh.thing"),
        layers.file(".wh.never-was"),
    ])
    assert sorted(os.listdir(target)) == ["etc", "opq"]
    assert sorted(os.listdir(target / "etc")) == ["keep"]
    assert sorted(os.listdir(target / "opq")) == ["new", "sub"]
    assert sorted(os.listdir(target / "opq/sub")) == ["new"]


def test_whiteouts_overlay_mode(layers, tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    apply(layers, upper, [
        layers.file("etc/.wh.gone"), layers.file("opq/.wh..wh..opq"),
        layers.file("opq/new", b"n"),
    ], mode="overlay")
    gone = (upper / "etc/gone").lstat()
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "opq", "trusted.overlay.opaque") == b"y"
    assert (upper / "opq/new").read_bytes() == b"n"
    assert not (upper / ".wh.gone").exists()


# -- refusals -----------------------------------------------------------------------
def test_bombs_are_bounded(layers, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    zeros = [layers.file("zeros", bytes(4 << 20))]
    with pytest.raises(InvalidArgument, match="expands past"):
        apply(layers, target, zeros, limits=Limits(max_bytes=1 << 20))
    with pytest.raises(InvalidArgument, match="times its compressed size"):
        apply(layers, target, zeros, compression="zstd",
              limits=Limits(max_ratio=50, ratio_floor=1 << 20))
    many = [layers.file(f"f{i}") for i in range(20)]
    with pytest.raises(InvalidArgument, match="more than 10 entries"):
        apply(layers, target, many, limits=Limits(max_entries=10))


def test_malformed_layers_are_refused(layers, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    blob, media_type, _ = layers.build([layers.file("a", b"x" * 100_000)], "gzip")
    for broken in (blob[: len(blob) // 2], b"not gzip at all"):
        with pytest.raises(InvalidArgument):
            apply_layer(io.BytesIO(broken), target, media_type, "delete")
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        apply_layer(io.BytesIO(b"x" * 1024), target, "application/vnd.oci.image.layer.v1.tar",
                    "delete")
    with pytest.raises(InvalidArgument, match="not a layer media type"):
        apply_layer(io.BytesIO(blob), target, "application/json", "delete")
    with pytest.raises(InvalidArgument, match="entry \"h\""):
        apply(layers, target, [layers.hardlink("h", "nothing")])


def test_empty_layer_has_the_well_known_diff_id(layers, tmp_path: Path) -> None:
    """Docker's empty layer: two zero blocks, nothing else."""
    target = tmp_path / "t"
    target.mkdir()
    blob = layers.compress(bytes(1024), "gzip")
    media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    diff_id = apply_layer(io.BytesIO(blob), target, media_type, "overlay")
    assert diff_id == "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
    assert os.listdir(target) == []
