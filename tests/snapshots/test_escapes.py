"""Hostile layers: whatever a layer contains, nothing outside the target changes.

Every case runs in both whiteout modes against a target next to a `host` directory
holding a sentinel; afterwards the host tree must be byte-for-byte and inode-for-inode
what it was, and nothing new may appear beside the target.
"""

import contextlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from base.errors import InvalidArgument
from content.apply import apply_layer


def snapshot_tree(path: Path) -> dict[str, tuple[int, int, int, int, int, bytes]]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (".", *dirnames, *filenames):
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            data = Path(full).read_bytes() if os.path.isfile(full) else b""
            found[full] = (info.st_mode, info.st_uid, info.st_nlink, info.st_mtime_ns,
                           info.st_ino, data)
    return found


@pytest.fixture
def world(tmp_path: Path):
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    (host / "sentinel").write_bytes(b"host data")
    (host / "dir" / "inner").write_bytes(b"inner")
    os.chmod(host / "sentinel", 0o640)
    target = tmp_path / "target"
    target.mkdir()
    return tmp_path, host, target


H = "HOST"  # stands for the absolute path of the host directory

# name -> (symlinks already in the target, entries as (kind, name, argument)) where
# kind is f(ile), d(ir), s(ymlink), l(hard link), c(har device), x (file with xattr).
CASES: dict[str, tuple[dict[str, str], list[tuple[str, str, str]]]] = {
    "dotdot file": ({}, [("f", "../host/pwn", "")]),
    "dotdot deep": ({}, [("f", "a/b/../../../host/sentinel", "")]),
    "absolute name": ({}, [("f", H + "/sentinel", ""), ("f", H + "/pwn", "")]),
    "write through absolute symlink": ({}, [("s", "l", H), ("f", "l/pwn", "")]),
    "write through relative symlink": ({}, [("s", "l", "../host"), ("f", "l/sentinel", "")]),
    "write through symlink chain": ({}, [("s", "a", "."), ("s", "b", "a/../.."),
                                         ("f", "b/host/pwn", "")]),
    "dir through symlink": ({}, [("s", "l", H), ("d", "l/newdir", "")]),
    "device through symlink": ({}, [("s", "l", H), ("c", "l/null", "")]),
    "symlink through symlink": ({}, [("s", "l", H), ("s", "l/evil", "/")]),
    "replace symlink to sentinel": ({}, [("s", "l", H + "/sentinel"), ("f", "l", "")]),
    "dir entry over symlink": ({}, [("s", "l", H), ("d", "l", "")]),
    "pre-existing symlink in target": ({"etc": H}, [("f", "etc/pwn", ""),
                                                     ("f", "etc/sentinel", "")]),
    "hardlink dotdot": ({}, [("l", "h", "../host/sentinel")]),
    "hardlink absolute": ({}, [("l", "h", H + "/sentinel")]),
    "hardlink through symlink": ({}, [("s", "l", H), ("l", "h", "l/sentinel")]),
    "hardlink to symlink": ({}, [("s", "l", H + "/sentinel"), ("l", "h", "l"), ("f", "h", "")]),
    "hardlink through pre-existing symlink": ({"l": H}, [("l", "h", "l/sentinel")]),
    "whiteout dotdot": ({}, [("f", "../host/.wh.sentinel", "")]),
    "whiteout through symlink": ({}, [("s", "l", H), ("f", "l/.wh.sentinel", "")]),
    "whiteout of a dir through symlink": ({}, [("s", "l", H), ("f", "l/.wh.dir", "")]),
    "whiteout of the symlink itself": ({"l": H}, [("f", ".wh.l", "")]),
    "opaque through symlink": ({}, [("s", "l", H), ("f", "l/.wh..wh..opq", "")]),
    "opaque through pre-existing symlink": ({"l": H}, [("f", "l/.wh..wh..opq", "")]),
    "whiteout named dotdot": ({}, [("f", "x/.wh...", ""), ("f", ".wh...", "")]),
    "xattr through symlink": ({}, [("s", "l", H + "/sentinel"), ("x", "l", "")]),
}


def build_entries(layers, spec: list[tuple[str, str, str]], host: Path) -> list:
    entries = []
    for kind, name, argument in spec:
        name, argument = name.replace(H, str(host)), argument.replace(H, str(host))
        if kind == "f":
            entries.append(layers.file(name, b"pwned", mode=0o777, uid=99))
        elif kind == "x":
            entries.append(layers.file(name, b"pwned", xattrs={"user.pwn": b"1"}))
        elif kind == "d":
            entries.append(layers.dir(name, mode=0o777, uid=99))
        elif kind == "s":
            entries.append(layers.symlink(name, argument))
        elif kind == "l":
            entries.append(layers.hardlink(name, argument))
        else:
            entries.append(layers.device(name, tarfile.CHRTYPE, 1, 3))
    return entries


@pytest.mark.parametrize("mode", ["delete", "overlay"])
@pytest.mark.parametrize("case", list(CASES))
def test_layer_cannot_touch_the_host(layers, world, case: str, mode: str) -> None:
    tmp_path, host, target = world
    links, spec = CASES[case]
    for name, dest in links.items():
        os.symlink(dest.replace(H, str(host)), target / name)
    entries = build_entries(layers, spec, host)
    before = snapshot_tree(host)
    beside = sorted(os.listdir(tmp_path))
    blob, media_type, _ = layers.build(entries, "gzip")
    with contextlib.suppress(InvalidArgument):  # refusing is fine; changing the host is not
        apply_layer(io.BytesIO(blob), target, media_type, mode)  # type: ignore[arg-type]
    assert snapshot_tree(host) == before
    assert sorted(os.listdir(tmp_path)) == beside
    assert not Path("/pwn").exists()
