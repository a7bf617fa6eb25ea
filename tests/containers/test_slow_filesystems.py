"""A filesystem that hangs (a stopped NFS or FUSE server) holds up only the requests
that touch it: adding the inotify watch of a container's log directory and closing a
host file opened through the tree run in threads, and the tree answers meanwhile."""

import contextlib
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import REPO, Daemon, is_mounted, terminate, wait_until, write


@dataclass
class StallFs:
    """tests/stallfs.py serving `source` at `mount`, held back through `control`."""

    source: Path
    mount: Path
    control: Path

    def hold(self, what: str, name: str) -> None:
        (self.control / what).write_text(name + "\n")

    def held(self) -> str:
        try:
            return (self.control / "held").read_text().strip()
        except FileNotFoundError:
            return ""

    def release(self) -> None:
        for what in ("lookup", "lookup-after-create", "flush"):
            (self.control / what).unlink(missing_ok=True)


@pytest.fixture
def stallfs(tmp_path: Path) -> Iterator[StallFs]:
    fs = StallFs(tmp_path / "stall-source", tmp_path / "stall", tmp_path / "stall-control")
    for directory in (fs.source, fs.mount, fs.control):
        directory.mkdir()
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "stallfs.py"),
                               str(fs.source), str(fs.mount), str(fs.control)])
    try:
        assert wait_until(lambda: is_mounted(fs.mount) or server.poll() is not None)
        assert server.poll() is None
        yield fs
    finally:
        fs.release()
        subprocess.run(["fusermount3", "-uz", str(fs.mount)], check=False, timeout=30)
        terminate(server)


def _answers(daemon: Daemon) -> bool:
    """Whether the tree answers a plain read within 3 seconds."""
    result = subprocess.run(["timeout", "3", "cat", str(daemon.path("version"))],
                            capture_output=True, text=True, timeout=30)
    return result.returncode == 0 and result.stdout.startswith("cdfs ")


def test_a_log_directory_that_hangs_holds_up_only_its_container(
        daemon: Daemon, stallfs: StallFs) -> None:
    (stallfs.source / "logs").mkdir()
    container = daemon.path("containers", "slowlog")
    container.mkdir()
    write(container / "image", "cdfs.local/busybox:latest\n")
    write(container / "logpath", f"{stallfs.mount / 'logs' / 'slowlog.log'}\n")
    stallfs.hold("lookup-after-create", "logs")  # from conmon's creating the log on
    create = subprocess.Popen(
        ["bash", "-c", f"""echo '{json.dumps({"process": {"args": ["true"]}})}' > """
                       f'"{container / "config.json"}"'], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: stallfs.held() == "lookup logs", timeout=30)
        assert _answers(daemon)  # the watch of the log's directory waits in a thread
        assert create.poll() is None
        stallfs.release()
        _, stderr = create.communicate(timeout=30)
        assert create.returncode == 0, stderr
    finally:
        stallfs.release()
        if create.poll() is None:
            create.kill()
            create.wait(timeout=10)
    write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0"


def test_a_host_file_whose_close_hangs_holds_up_only_its_close(
        daemon: Daemon, stallfs: StallFs) -> None:
    """A directory of the image's layer is a bind mount of the hanging filesystem, so
    the image's rootfs/ in the tree reads a file through it (a release closes it)."""
    (layer,) = glob.glob(str(daemon.root / "snapshots" / "*" / "snapshots" / "*" / "fs"))
    shutil.copytree(Path(layer) / "bin", stallfs.source / "bin", symlinks=True)
    bound = Path(layer) / "bin"
    subprocess.run(["mount", "--bind", str(stallfs.mount / "bin"), str(bound)], check=True,
                   timeout=30)
    try:
        busybox = daemon.path("images", "cdfs.local", "busybox:latest", "rootfs", "bin",
                              "busybox")
        fd = os.open(busybox, os.O_RDONLY)
        assert os.read(fd, 4) == b"\x7fELF"
        stallfs.hold("flush", "busybox")
        os.close(fd)  # returns at once: the daemon's release closes its own descriptor
        assert wait_until(lambda: stallfs.held() == "flush busybox", timeout=30)
        assert _answers(daemon)
        stallfs.release()
    finally:
        stallfs.release()
        subprocess.run(["umount", "-l", str(bound)], check=False, timeout=30)


def test_a_failed_creation_whose_clean_up_fails_leaves_the_slot_usable(
        daemon: Daemon, stallfs: StallFs) -> None:
    """config.json fails with ENOSPC after its snapshot was prepared (the log's
    directory is made on a full filesystem, held until then), and the removal of
    that snapshot fails too (its database is locked, as sqlite on a full disk fails
    to record it): the next config.json of the slot creates the container, where it
    was refused with EEXIST for good (the snapshot kept the slot's name)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=8", "tmpfs",
                    str(stallfs.source)], check=True, timeout=10)
    lock: sqlite3.Connection | None = None
    create: subprocess.Popen[str] | None = None
    try:
        for n in range(8):  # every inode taken: making the log's directory is ENOSPC
            with contextlib.suppress(OSError):
                (stallfs.source / f"filler{n}").touch()
        container = daemon.path("containers", "wedged")
        container.mkdir()
        write(container / "image", "cdfs.local/busybox:latest\n")
        write(container / "logpath", f"{stallfs.mount / 'logs' / 'wedged.log'}\n")
        stallfs.hold("lookup", "logs")
        config = json.dumps({"process": {"args": ["true"]}})
        create = subprocess.Popen(["bash", "-c", f"echo '{config}' > '{container}/config.json'"],
                                  stderr=subprocess.PIPE, text=True)
        assert wait_until(lambda: stallfs.held() == "lookup logs", timeout=30)
        (database,) = daemon.root.glob("snapshots/*/metadata.db")
        lock = sqlite3.connect(database, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the snapshot is prepared; its removal waits
        stallfs.release()
        _, stderr = create.communicate(timeout=60)
        assert create.returncode != 0 and "No space left on device" in stderr, stderr
        lock.execute("ROLLBACK")
        for filler in stallfs.source.glob("filler*"):
            filler.unlink()
        assert (container / "status").read_text() == "empty\n"
        write(container / "config.json", config)  # was EEXIST
        write(container / "ctl", "start\n")
        status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                                capture_output=True, text=True, timeout=40).stdout.strip()
        assert status == "0"
        assert (stallfs.source / "logs" / "wedged.log").exists()
    finally:
        stallfs.release()
        if lock is not None:
            lock.close()
        if create is not None and create.poll() is None:
            create.kill()
            create.wait(timeout=10)
        subprocess.run(["umount", "-l", str(stallfs.source)], check=False, timeout=10)
