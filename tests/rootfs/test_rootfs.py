"""images/<ref>/rootfs/ and containers/<id>/rootfs/ on a real mount, with find, stat,
cat, cp and tar, and hostile images and containers that try to make cdfs reach past
their root."""

import errno
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from support import Daemon, wait_until, write

from content.archive import export_archive
from content.build import BuildConfig, Entry, Layer, build_image
from content.store import ContentStore

MTIME = 1_600_000_000



def import_image(daemon: Daemon, tmp_path: Path, ref: str, layers: list[Layer]) -> Path:
    """Build `layers` into an image, import it as `ref`; its rootfs/ directory."""
    store = ContentStore(tmp_path / "build")
    image = build_image(store, layers, BuildConfig(cmd=["sh"]))
    archive = tmp_path / "image.tar"
    export_archive(store, image, ref, archive)
    daemon.sh(f'echo "import {archive}" > "$M/images/ctl"')
    return daemon.path("images", *ref.split("/"), "rootfs")


def busybox_layer() -> Layer:
    return Layer([Entry.dir("bin"), Entry.dir("proc"), Entry.dir("dev"), Entry.dir("sys"),
                  Entry.dir("tmp", mode=0o1777),
                  Entry.file("bin/busybox", source=Path("/bin/busybox"), mode=0o755),
                  *(Entry.symlink(f"bin/{n}", "busybox") for n in ("sh", "sleep", "cat"))])


def sh(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          check=check)


def test_image_rootfs_is_the_merged_read_only_tree(daemon: Daemon, tmp_path: Path) -> None:
    bottom = Layer([
        Entry.dir("etc"), Entry.file("etc/keep", b"kept\n"), Entry.file("etc/gone", b"x"),
        Entry.dir("etc/old"), Entry.file("etc/old/a", b"a"),
        Entry.dir("opaque"), Entry.file("opaque/below", b"below"),
        Entry.file("etc/shadow", b"secret\n", mode=0o4750, uid=1000, gid=50),
        Entry.symlink("etc/abs", "/etc/keep"), Entry.symlink("etc/up", "../../../../.."),
        Entry.hardlink("etc/keep2", "etc/keep"),
        Entry.device("null", "c", 1, 3), Entry.file("replaced", b"old"),
    ])
    top = Layer([Entry.whiteout("etc/gone"), Entry.whiteout("etc/old"),
                 Entry.opaque("opaque"), Entry.file("opaque/above", b"above"),
                 Entry.file("replaced", b"new!")])
    rootfs = import_image(daemon, tmp_path, "example.com/merged:1", [bottom, top])
    found = sh(f'cd "{rootfs}" && find . | sort').stdout.split()
    assert found == [".", "./etc", "./etc/abs", "./etc/keep", "./etc/keep2", "./etc/shadow",
                     "./etc/up", "./null", "./opaque", "./opaque/above", "./replaced"]
    assert (rootfs / "etc/keep").read_text() == "kept\n"
    assert (rootfs / "replaced").read_bytes() == b"new!"
    shadow = os.lstat(rootfs / "etc/shadow")
    assert (stat.S_IMODE(shadow.st_mode), shadow.st_uid, shadow.st_gid) == (0o4750, 1000, 50)
    assert shadow.st_size == 7 and shadow.st_mtime == 0  # the builder's mtime
    assert os.lstat(rootfs / "etc/keep").st_nlink == 2
    assert os.readlink(rootfs / "etc/abs") == "/etc/keep"
    assert os.readlink(rootfs / "etc/up") == "../../../../.."
    null = os.lstat(rootfs / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    with pytest.raises(PermissionError):  # nodev: never a host device through cdfs
        (rootfs / "null").read_bytes()
    assert sh(f'stat -c "%A %s" "{rootfs}/etc/keep"').stdout == "-rw-r--r-- 5\n"
    for attempt in (lambda: (rootfs / "etc/new").write_text("x"),
                    lambda: write(rootfs / "etc/keep", "changed"),
                    lambda: (rootfs / "etc/dir").mkdir(), lambda: (rootfs / "etc/keep").unlink(),
                    lambda: os.chmod(rootfs / "etc/keep", 0o777)):
        with pytest.raises(OSError) as refused:
            attempt()
        assert refused.value.errno == errno.EROFS
    copied = tmp_path / "copied"
    sh(f'cp -a "{rootfs}" "{copied}"')
    assert (copied / "etc/keep").read_text() == "kept\n"
    assert os.readlink(copied / "etc/up") == "../../../../.."


def test_container_rootfs_is_docker_cp(daemon: Daemon, tmp_path: Path) -> None:
    import_image(daemon, tmp_path, "example.com/box:1", [busybox_layer()])
    box = daemon.path("containers", "box")
    box.mkdir()
    write(box / "image", "example.com/box:1\n")
    write(box / "config.json", json.dumps({"process": {"args": ["sleep", "60"]}}))
    write(box / "ctl", "start\n")
    rootfs = box / "rootfs"
    source = tmp_path / "hello.txt"
    source.write_text("hello from the host\n")
    sh(f'cp "{source}" "{rootfs}/tmp/" && mkdir "{rootfs}/tmp/d" && '
       f'chmod 0750 "{rootfs}/tmp/d" && chown 123:45 "{rootfs}/tmp/d"')
    made = os.lstat(rootfs / "tmp/d")
    assert (stat.S_IMODE(made.st_mode), made.st_uid, made.st_gid) == (0o750, 123, 45)
    run = box / "exec" / "look"
    run.mkdir()
    write(run / "process.json", json.dumps({"args": ["cat", "/tmp/hello.txt"]}))
    write(run / "ctl", "start\n")
    assert sh(f'timeout 20 cat "{run}/follow/stdout"').stdout == "hello from the host\n"
    out = tmp_path / "out"
    sh(f'cp "{rootfs}/bin/busybox" "{out}"')
    assert out.read_bytes() == Path("/bin/busybox").read_bytes()
    os.truncate(rootfs / "tmp/hello.txt", 5)
    assert (rootfs / "tmp/hello.txt").read_text() == "hello"
    with open(rootfs / "tmp/hello.txt", "a") as appended:
        appended.write(" again")
    assert (rootfs / "tmp/hello.txt").read_text() == "hello again"
    (rootfs / "tmp/hello.txt").unlink()
    (rootfs / "tmp/d").rmdir()
    assert os.listdir(rootfs / "tmp") == []
    write(box / "ctl", "kill KILL\n")
    assert sh(f'timeout 20 cat "{box}/wait"').stdout == "137\n"
    box.rmdir()
    assert not rootfs.exists()


def test_hostile_rootfs_cannot_reach_the_host(daemon: Daemon, tmp_path: Path) -> None:
    """Symlinks of a hostile image are shown, never followed by cdfs, and a directory
    the container swaps for a symlink to the host (while a client holds it) is
    refused rather than followed."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "sentinel").write_text("host data")
    hostile = Layer([Entry.symlink("l", str(host)), Entry.symlink("up", "../../../.."),
                     Entry.symlink("a", "."), Entry.symlink("b", "a/../.."),
                     Entry.symlink("tmp/evil", str(host / "sentinel")),
                     Entry.file("inside", b"in"), Entry.hardlink("tmp/hard", "inside")])
    image_root = import_image(daemon, tmp_path, "example.com/hostile:1",
                              [busybox_layer(), hostile])
    before = sorted(os.listdir(host)), (host / "sentinel").read_text()
    archived = sh(f'tar -C "{image_root}" -cf - . | tar -tf -').stdout.split()
    assert "./tmp/hard" in archived and not any(Path(a).name == "sentinel" for a in archived)
    assert os.readlink(image_root / "l") == str(host)
    assert (image_root / "tmp/hard").read_bytes() == b"in"

    box = daemon.path("containers", "hostile")
    box.mkdir()
    write(box / "image", "example.com/hostile:1\n")
    write(box / "config.json", json.dumps({"process": {"args": ["sleep", "60"]}}))
    rootfs = box / "rootfs"
    (rootfs / "tmp/d").mkdir()
    held = os.open(rootfs / "tmp/d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        # the container (its mounted root, seen from the host) swaps the directory
        live = daemon.state / "runtime" / "tasks" / "default" / "hostile" / "rootfs"
        assert wait_until(lambda: (live / "tmp" / "d").is_dir())
        (live / "tmp" / "d").rmdir()
        (live / "tmp" / "d").symlink_to(host)
        for attempt in (lambda: os.open("pwn", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=held),
                        lambda: os.mkdir("pwn", dir_fd=held),
                        lambda: os.unlink("sentinel", dir_fd=held),
                        lambda: os.listdir(held),
                        lambda: os.open("sentinel", os.O_RDONLY, dir_fd=held)):
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR,
                                           errno.ESTALE)
    finally:
        os.close(held)
    for name in ("evil", "d"):  # shown as the links they are
        assert stat.S_ISLNK(os.lstat(rootfs / "tmp" / name).st_mode)
    assert (sorted(os.listdir(host)), (host / "sentinel").read_text()) == before
    box.rmdir()


def test_rootfs_is_gone_once_unmounted(daemon: Daemon, tmp_path: Path) -> None:
    """Nothing is written into the empty directory beneath a container's rootfs."""
    import_image(daemon, tmp_path, "example.com/box:1", [busybox_layer()])
    box = daemon.path("containers", "box")
    box.mkdir()
    write(box / "image", "example.com/box:1\n")
    write(box / "config.json", json.dumps({"process": {"args": ["sleep", "60"]}}))
    live = daemon.state / "runtime" / "tasks" / "default" / "box" / "rootfs"
    assert (box / "rootfs" / "bin" / "busybox").exists()
    subprocess.run(["umount", str(live)], check=True, timeout=30)
    with pytest.raises(FileNotFoundError):
        (box / "rootfs" / "new").write_text("x")
    assert os.listdir(live) == []
    box.rmdir()


def test_a_stat_of_rootfs_is_current_after_each_change(daemon: Daemon, tmp_path: Path) -> None:
    """The daemon remembers the lstat of a container's mounted rootfs (a stat or a
    listing of it hops to no thread) until its inotify watch sees the root change, and
    reads the events queued before it answers: what the container does in its /, what
    the host does in the mounted snapshot and what comes through the tree each show at
    the next stat, and a new container of the same name has its own root."""
    import_image(daemon, tmp_path, "example.com/box:1", [busybox_layer()])
    box = daemon.path("containers", "box")
    rootfs = box / "rootfs"
    live = daemon.state / "runtime" / "tasks" / "default" / "box" / "rootfs"

    def make() -> None:
        box.mkdir()
        write(box / "image", "example.com/box:1\n")
        write(box / "config.json", json.dumps({"process": {"args": ["sleep", "60"]}}))
        write(box / "ctl", "start\n")

    def remove() -> None:
        write(box / "ctl", "kill KILL\n")
        assert sh(f'timeout 20 cat "{box}/wait"').stdout == "137\n"
        box.rmdir()

    def current(before: int | None = None) -> int:
        """The rootfs's ctime, checked against the host's lstat (and moved since
        `before`: each change below comes a tick of the file times after the last)."""
        seen, real = os.stat(rootfs), os.lstat(live)
        assert (seen.st_mode, seen.st_mtime_ns, seen.st_ctime_ns) == \
            (real.st_mode, real.st_mtime_ns, real.st_ctime_ns)
        assert before is None or seen.st_ctime_ns > before
        time.sleep(0.05)
        return seen.st_ctime_ns

    make()
    current()
    then = current()  # from memory
    inside = box / "exec" / "mkdir"
    inside.mkdir()
    write(inside / "process.json", json.dumps({"args": ["busybox", "mkdir", "/made-inside"]}))
    write(inside / "ctl", "start\n")
    assert sh(f'timeout 20 cat "{inside}/wait"').stdout == "0\n"
    then = current(then)
    (live / "made-on-host").mkdir()
    then = current(then)
    (rootfs / "made-through").mkdir()
    then = current(then)
    os.chmod(rootfs, 0o700)
    then = current(then)
    assert stat.S_IMODE(os.stat(rootfs).st_mode) == 0o700
    (rootfs / "made-through").rmdir()
    then = current(then)
    inside.rmdir()
    remove()
    make()
    assert stat.S_IMODE(os.stat(rootfs).st_mode) != 0o700  # the new container's root
    current()
    remove()
