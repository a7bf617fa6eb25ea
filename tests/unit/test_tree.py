"""The tree's file contract over fake services, without a mount (tests/unit/harness.py):
names, listings, values, ctl verbs, mkdir/rmdir, errnos and err lines."""

import errno
import os
import stat
from typing import Any

import pytest
from unit.harness import CTX, Refused, Tree

from mountpoint.ctl import VerbTable
from mountpoint.readme import reference
from mountpoint.table import (
    Ctl,
    Dir,
    Err,
    Input,
    Output,
    Stream,
    Table,
    Value,
    collection,
    show,
    take,
)


async def test_lookup_and_getattr_say_what_each_file_is() -> None:
    tree = Tree()
    assert stat.S_ISDIR((await tree.stat("namespaces")).st_mode)
    version = await tree.stat("version")
    assert stat.S_ISREG(version.st_mode) and version.st_mode & 0o777 == 0o400
    assert (await tree.stat("ctl")).st_mode & 0o777 == 0o600
    assert stat.S_ISLNK((await tree.stat("images")).st_mode)
    with pytest.raises(Refused) as e:
        await tree.stat("namespaces/nowhere")
    assert e.value.errno == errno.ENOENT


async def test_readdir_lists_fixed_rows_then_objects() -> None:
    tree = Tree()
    assert {"README", "version", "ctl", "err", "events", "namespaces"} <= set(
        await tree.listdir(""))
    await tree.mkdir("namespaces/b")
    await tree.mkdir("namespaces/a")
    assert await tree.listdir("namespaces") == ["a", "b", "default"]


async def test_a_value_reads_whole_with_its_line_end() -> None:
    assert await Tree().read("version") == b"cdfs 0.0-harness\n"


async def test_mkdir_makes_an_object_whose_table_appears_at_once() -> None:
    tree = Tree()
    await tree.mkdir("namespaces/web")
    assert tree.services.namespaces.exists("web")
    assert {"images", "containers", "snapshots", "events"} <= set(
        await tree.listdir("namespaces/web"))


async def test_a_refused_mkdir_fails_with_its_errno_and_says_why_in_err() -> None:
    tree = Tree()
    with pytest.raises(Refused) as e:
        await tree.mkdir("netns/bad name")
    assert e.value.errno == errno.EINVAL
    assert b'mkdir "bad name"' in await tree.read("netns/err")
    with pytest.raises(Refused) as e:
        await tree.mkdir("namespaces/default")
    assert e.value.errno == errno.EEXIST


async def test_rmdir_is_busy_while_in_use_and_then_removes() -> None:
    tree = Tree()
    await tree.mkdir("namespaces/web")
    tree.services.namespaces.busy.add("web")
    with pytest.raises(Refused) as e:
        await tree.rmdir("namespaces/web")
    assert e.value.errno == errno.EBUSY
    tree.services.namespaces.busy.clear()
    await tree.rmdir("namespaces/web")
    assert await tree.listdir("namespaces") == ["default"]


async def test_ctl_verbs_reach_the_service_and_bad_ones_fail_the_write() -> None:
    tree = Tree()
    await tree.mkdir("netns/blue")
    await tree.write("netns/blue/ctl", b"veth h0 p0\n", b"up p0\n")
    assert tree.services.netns.wired == [("veth", "blue", "h0", "p0"), ("up", "blue", "p0")]
    with pytest.raises(Refused) as e:
        await tree.write("netns/blue/ctl", b"explode now\n")
    assert e.value.errno == errno.EINVAL
    assert (await tree.read("netns/blue/err")).startswith(b'ctl "explode now": unknown')
    assert b"veth HOST_IF PEER_IF" in await tree.read("netns/blue/ctl")


async def test_a_ctl_file_open_for_writing_keeps_its_inode_to_itself() -> None:
    """The kernel runs the writes to one inode one at a time, so while an open of a
    ctl file writes (a pull, say), the next lookup makes it a new inode; the busy one
    is freed when the kernel forgets it."""
    tree = Tree()
    busy = await tree.inode("ctl")
    fh = (await tree.fs.open(busy, os.O_WRONLY, CTX)).fh
    beside = await tree.inode("ctl")
    assert beside != busy
    assert await tree.inode("ctl") == beside  # nobody writes to this one: kept
    await tree.fs.write(fh, 0, b"gc\n")
    await tree.fs.release(fh)
    assert await tree.inode("ctl") == beside
    held = len(tree.fs.nodes)
    await tree.fs.forget([(busy, 1)])
    assert len(tree.fs.nodes) == held - 1
    assert tree.services.collected == 1


async def test_a_value_backed_by_a_service_reads_its_state() -> None:
    tree = Tree()
    await tree.mkdir("netns/blue")
    assert await tree.read("netns/blue/path") == b"/run/netns/blue\n"
    assert await tree.read("netns/blue/links") == b"lo UP 127.0.0.1/8\n"


async def test_read_only_files_refuse_writing_and_root_verbs_run() -> None:
    tree = Tree()
    with pytest.raises(Refused) as e:
        await tree.write("version", b"2\n")
    assert e.value.errno == errno.EACCES
    await tree.write("ctl", b"gc\n")
    assert tree.services.collected == 1


async def test_a_service_the_harness_does_not_serve_is_an_eio() -> None:
    with pytest.raises(Refused) as e:
        await Tree().listdir("content/blobs/sha256")
    assert e.value.errno == errno.EIO


async def _never_opened(app: object, scope: object) -> Any:
    raise AssertionError("stat opens nothing")


async def test_modes_and_the_references_kinds_come_from_one_derivation() -> None:
    """mountpoint.table.access: what `ls -l` shows is what the reference says."""
    kinds = {"read-only": 0o400, "write-only": 0o200, "read-write": 0o600, "ctl": 0o600,
             "stream": 0o400, "stream rw": 0o600, "output": 0o400, "dir": 0o500, "mkdir": 0o700}
    rows = Table("every kind of row", entries=(
        Value("shown", "r", read=show(lambda app, s: "x")),
        Value("taken", "w", write=take(lambda app, s, text: None)),
        Value("both", "rw", read=show(lambda app, s: "x"), write=take(lambda app, s, t: None)),
        Input("stdin", "w", open=_never_opened),
        Ctl("ctl", "verbs", VerbTable()),
        Stream("events", "s", open=_never_opened),
        Stream("tty", "s rw", open=_never_opened, input=_never_opened),
        Output("stdout", "o", open=_never_opened),
        Err(),
        Dir("fixed", "d", Table("fixed")),
        Dir("made", "d", Table("made", children=collection(
            "x", "made", Table("x"), names=lambda app, s: [], make=lambda app, s, name: None))),
    ))
    # the reference's rows: a name in 34 columns, then the kind in 10
    listing = {line[:34].strip(): line[35:45].strip() for line in reference(rows).splitlines()
               if line[:1].isalpha() and line[34:35] == " "}
    tree = Tree(root=rows)
    for entry in rows.entries:
        name = entry.name + ("/" if isinstance(entry, Dir) else "")
        kind = "mkdir" if listing[name] == "dir" and entry.name == "made" else listing[name]
        assert (await tree.stat(entry.name)).st_mode & 0o777 == kinds[kind], name
