"""The foundation through the mounted tree, driven with plain os calls and shell."""

import errno
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import CDFS, REPO, Daemon, is_mounted, wait_opened, wait_until


def read(path: Path) -> str:
    return path.read_text()


def test_readme_version_and_docs_match(daemon: Daemon) -> None:
    assert read(daemon.path("version")).startswith("cdfs ")
    assert read(daemon.path("version")).endswith("\n")
    readme = read(daemon.path("README"))
    for name in ("version", "ctl", "err", "events", "content/", "namespaces/", "netns/",
                 "ingest/", "<ns>/", "log-level"):
        assert name in readme
    assert readme == (REPO / "docs" / "filesystem.md").read_text(), \
        "docs/filesystem.md is stale: run `make docs`"


def test_tree_layout(daemon: Daemon) -> None:
    assert sorted(os.listdir(daemon.mount)) == sorted(
        ["README", "version", "ctl", "err", "events", "content", "namespaces", "images",
         "containers", "netns", "space"])
    assert os.readlink(daemon.path("images")) == "namespaces/default/images"
    assert os.readlink(daemon.path("containers")) == "namespaces/default/containers"
    assert sorted(os.listdir(daemon.path("namespaces", "default"))) == [
        "containers", "events", "images", "leases", "snapshots"]
    assert daemon.path("containers").is_dir() and daemon.path("images").is_dir()
    assert os.stat(daemon.mount).st_uid == 0


def test_bogus_ctl_verb_fails_write_and_err_quotes_it(daemon: Daemon) -> None:
    result = daemon.sh('echo frobnicate now > "$M/ctl"', check=False)
    assert result.returncode == 1
    assert "Invalid argument" in result.stderr
    assert 'frobnicate now' in read(daemon.path("err"))
    fd = os.open(daemon.path("ctl"), os.O_WRONLY)
    try:
        with pytest.raises(OSError) as refused:
            os.write(fd, b"log-level loud\n")
        assert refused.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    assert '"loud"' in read(daemon.path("err"))
    assert "log-level" in read(daemon.path("ctl"))


def test_namespaces_mkdir_rmdir(daemon: Daemon) -> None:
    ns = daemon.path("namespaces")
    (ns / "tenant-1").mkdir()
    assert "tenant-1" in os.listdir(ns)
    assert sorted(os.listdir(ns / "tenant-1")) == ["containers", "events", "images", "leases",
                                               "snapshots"]
    with pytest.raises(FileExistsError):
        (ns / "tenant-1").mkdir()
    with pytest.raises(OSError) as bad:
        (ns / "bad..name").mkdir()
    assert bad.value.errno == errno.EINVAL
    (ns / "tenant-1").rmdir()
    assert "tenant-1" not in os.listdir(ns)
    with pytest.raises(FileNotFoundError):
        (ns / "tenant-1").rmdir()


class LineReader:
    """A process's stdout lines, collected by a thread so that a test can wait for
    them with a timeout."""

    def __init__(self, *command: str) -> None:
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def lines(self, count: int, timeout: float = 10) -> list[str]:
        found: list[str] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            try:
                found.append(self._lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return found

    def kill(self) -> None:
        """Kill the whole process group (`timeout` and the `cat` it runs)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def test_events_are_json_lines(daemon: Daemon) -> None:
    everything = LineReader("timeout", "20", "cat", str(daemon.path("events")))
    mine = LineReader("timeout", "20", "cat", str(daemon.path("namespaces", "default", "events")))
    try:
        wait_opened(everything.proc, daemon.path("events"))  # both open before the event
        wait_opened(mine.proc, daemon.path("namespaces", "default", "events"))
        daemon.path("namespaces", "evts").mkdir()
        daemon.path("namespaces", "evts").rmdir()
        created, deleted = (json.loads(line) for line in everything.lines(2))
        assert created["topic"] == "/namespaces/create"
        assert created["namespace"] == "evts" and created["id"] == "evts"
        assert deleted["topic"] == "/namespaces/delete"
        assert {"time", "namespace", "topic", "id"} <= created.keys()
        assert mine.lines(1, timeout=1) == []  # another namespace's events stay out
    finally:
        everything.kill()
        mine.kill()


def test_blocked_events_reader_ends_on_timeout(daemon: Daemon) -> None:
    started = time.monotonic()
    result = daemon.sh('timeout 2 cat "$M/events"', check=False, timeout=10)
    assert result.returncode == 124
    assert time.monotonic() - started < 3


def test_many_readers_do_not_starve_ctl(daemon: Daemon) -> None:
    readers = [subprocess.Popen(["timeout", "30", "cat", str(daemon.path("events"))],
                                stdout=subprocess.DEVNULL) for _ in range(200)]
    try:
        for reader in readers:  # all blocked in read before the ctl write
            wait_opened(reader, daemon.path("events"), 60)
        started = time.monotonic()
        daemon.sh('echo log-level debug > "$M/ctl"; cat "$M/version"')
        # Starved, it would wait for the readers' end (30 s); a loaded host can take
        # a second or two to run the shell.
        assert time.monotonic() - started < 10.0
    finally:
        for reader in readers:
            reader.kill()
        for reader in readers:
            reader.wait(timeout=10)


def usage(daemon: Daemon) -> dict[str, int]:
    lines = read(daemon.path("content", "usage")).splitlines()
    return {key: int(value) for key, value in (line.split() for line in lines)}


def test_ingest_commits_by_digest_and_is_read_only(daemon: Daemon, tmp_path: Path) -> None:
    before = usage(daemon)
    data = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "random"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    daemon.sh(f'cp {source} "$M/content/ingest/upload"')
    blob = daemon.path("content", "blobs", "sha256", digest)
    assert blob.read_bytes() == data
    assert daemon.sh(f'sha256sum "{blob}"').stdout.split()[0] == digest
    assert blob.stat().st_mode & 0o777 == 0o400  # read-only, and root's alone
    with pytest.raises(PermissionError):
        open(blob, "wb")  # noqa: SIM115
    assert "upload" not in os.listdir(daemon.path("content", "ingest"))
    assert usage(daemon) == {"blobs": before["blobs"] + 1, "bytes": before["bytes"] + len(data)}


def test_ingest_with_expected_digest_refuses_mismatch(daemon: Daemon) -> None:
    blobs = set(os.listdir(daemon.path("content", "blobs", "sha256")))
    wrong = "sha256:" + "0" * 64
    fd = os.open(daemon.path("content", "ingest", wrong), os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"not what was promised")
    with pytest.raises(OSError) as refused:
        os.close(fd)
    assert refused.value.errno == errno.EINVAL
    assert set(os.listdir(daemon.path("content", "blobs", "sha256"))) == blobs
    assert wrong in read(daemon.path("content", "ingest", "err"))

    good = b"promised bytes\n"
    good_digest = "sha256:" + hashlib.sha256(good).hexdigest()
    daemon.sh(f'echo "expect {good_digest} named" > "$M/content/ingest/ctl"')
    daemon.sh('printf "promised bytes\\n" > "$M/content/ingest/named"')
    assert set(os.listdir(daemon.path("content", "blobs", "sha256"))) == {*blobs, good_digest[7:]}


def test_kill9_restart_keeps_state_and_recovers_stale_mount(
        make_daemon: Callable[..., Daemon]) -> None:
    first: Daemon = make_daemon()
    first.path("namespaces", "survivor").mkdir()
    digest = hashlib.sha256(b"kept\n").hexdigest()
    # the commit comes at release, just after close() returns; a look at the blob
    # waits for commits in flight, so once it is seen it is on disk
    first.sh(f'printf "kept\\n" > "$M/content/ingest/blob"; '
             f'test -e "$M/content/blobs/sha256/{digest}"')
    first.kill9()
    assert is_mounted(first.mount)
    result = first.sh('ls "$M"', check=False)
    assert "not connected" in result.stderr
    second = first.start()
    assert "survivor" in os.listdir(second.path("namespaces"))
    assert second.path("content", "blobs", "sha256", digest).read_bytes() == b"kept\n"


def test_second_daemon_on_same_mount_is_refused(
        make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    first: Daemon = make_daemon()
    other = tmp_path / "other"
    for sub in ("root", "state"):
        (other / sub).mkdir(parents=True)
    result = subprocess.run(
        [*CDFS, "serve",
         "--mount", str(first.mount), "--root", str(other / "root"),
         "--state", str(other / "state")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "already served" in result.stderr
    assert wait_until(lambda: is_mounted(first.mount))
    assert read(first.path("version")).startswith("cdfs")


def test_shell_scripts(daemon: Daemon) -> None:
    for script in sorted((REPO / "tests" / "shell").glob("foundation*.sh")):
        result = subprocess.run(["bash", str(script)], env={**os.environ, "M": str(daemon.mount)},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{script.name}:\n{result.stdout}\n{result.stderr}"


def test_err_quotes_the_refused_ctl_message(daemon: Daemon) -> None:
    daemon.sh('printf "log-level debug\\nlog-level nonsense extra\\n" > "$M/ctl"', check=False)
    assert read(daemon.path("err")) == \
        'ctl "log-level nonsense extra": bad arguments: usage: log-level LEVEL\n'


def test_only_root_may_use_the_mount_unless_a_group_is_allowed(
        make_daemon: Callable[..., Daemon]) -> None:
    # Mount points others can reach (pytest's temp dirs are root's alone), so that
    # only cdfs decides who may enter.
    public = Path(tempfile.mkdtemp(prefix="cdfs-access-"))
    public.chmod(0o755)
    try:
        check_access(make_daemon, public)
    finally:
        for mount in public.iterdir():
            if is_mounted(mount):
                subprocess.run(["fusermount3", "-uz", str(mount)], check=False)
        shutil.rmtree(public)


def as_user(gid: int, groups: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", f"--regid={gid}", groups, *command],
                          capture_output=True, text=True, timeout=10)


def check_access(make_daemon: Callable[..., Daemon], public: Path) -> None:
    (public / "closed").mkdir()
    closed = make_daemon("closed", mount=public / "closed")
    refused = as_user(65534, "--clear-groups", "ls", str(closed.mount))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    (public / "opened").mkdir()
    opened = make_daemon("opened", ["--allow-group", "nogroup"], mount=public / "opened")
    mounts = Path("/proc/mounts").read_text().splitlines()
    assert "allow_other" in next(line for line in mounts if str(opened.mount) in line)
    member = as_user(65534, "--init-groups", "cat", str(opened.path("version")))
    assert member.returncode == 0 and member.stdout.startswith("cdfs "), member.stderr
    stranger = as_user(12345, "--clear-groups", "cat", str(opened.path("version")))
    assert stranger.returncode != 0 and "Permission denied" in stranger.stderr
    as_member = as_user(65534, "--init-groups", "mkdir", str(opened.path("namespaces", "x")))
    assert as_member.returncode == 0  # a member may do what root does
