"""Reading a file from an image's layers as the container sees it, without mounting."""

import os
from pathlib import Path

import pytest

from base.errors import InvalidArgument
from content.rootfs import read_from_layers


def layer(root: Path, name: str, files: dict[str, bytes]) -> Path:
    top = root / name
    for path, data in files.items():
        target = top / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    top.mkdir(exist_ok=True)
    return top


def test_the_topmost_layer_wins(tmp_path: Path) -> None:
    lower = layer(tmp_path, "lower", {"etc/passwd": b"lower\n"})
    upper = layer(tmp_path, "upper", {"etc/passwd": b"upper\n"})
    assert read_from_layers([upper, lower], "/etc/passwd") == b"upper\n"
    assert read_from_layers([layer(tmp_path, "empty", {}), lower], "/etc/passwd") == b"lower\n"
    assert read_from_layers([lower], "/etc/group") is None


def test_a_whiteout_hides_the_file_below(tmp_path: Path) -> None:
    lower = layer(tmp_path, "lower", {"etc/passwd": b"lower\n"})
    upper = layer(tmp_path, "upper", {"etc/keep": b""})
    os.mknod(upper / "etc" / "passwd", 0o600 | 0o020000, os.makedev(0, 0))
    assert read_from_layers([upper, lower], "/etc/passwd") is None


def test_symlinks_resolve_inside_the_layer_not_on_the_host(tmp_path: Path) -> None:
    top = layer(tmp_path, "image", {"usr/share/passwd": b"inside\n", "etc/x": b""})
    os.symlink("/usr/share/passwd", top / "etc" / "passwd")
    os.symlink("/etc/hostname", top / "etc" / "hostname")  # the host has one; the image not
    os.symlink("../../../../../../../etc/hostname", top / "etc" / "escape")
    assert read_from_layers([top], "/etc/passwd") == b"inside\n"
    assert read_from_layers([top], "/etc/hostname") is None
    assert read_from_layers([top], "/etc/escape") is None


def test_size_limit(tmp_path: Path) -> None:
    top = layer(tmp_path, "image", {"etc/passwd": b"x" * 100})
    with pytest.raises(InvalidArgument):
        read_from_layers([top], "/etc/passwd", limit=10)
