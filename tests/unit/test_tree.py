"""The tree's file contract over fake services, without a mount (tests/unit/harness.py):
names, listings, values, ctl verbs, mkdir/rmdir, errnos and err lines."""

import errno
import stat

import pytest
from unit.harness import Refused, Tree


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
