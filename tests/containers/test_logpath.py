"""logpath, reopen-log and oom_killed: what a CRI server needs of a container's files,
driven through the mounted tree with real runc and conmon."""

import errno
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from support import Daemon, wait_until, write

from .test_containers import Container, read_with_timeout, refused

CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) "
                      r"(stdout|stderr) [FP] ")


def logged(daemon: Daemon, name: str, log_path: Path, script: str) -> Container:
    c = Container(daemon, name)
    c.dir.mkdir()
    write(c / "image", "cdfs.local/busybox:latest\n")
    write(c / "logpath", f"{log_path}\n")
    write(c / "config.json", json.dumps({"process": {"args": ["sh", "-c", script]}}))
    c.ctl("start")
    return c


def test_the_log_is_written_at_logpath_in_cri_format_and_read_through_the_tree(
        daemon: Daemon, tmp_path: Path) -> None:
    log_path = tmp_path / "pods" / "uid" / "ctr" / "0.log"  # its directories are made
    c = logged(daemon, "logged", log_path, "echo out; echo err >&2; printf part")
    assert c.wait() == 0
    lines = log_path.read_text().splitlines()
    assert len(lines) == 3 and all(CRI_LINE.match(line) for line in lines), lines
    records = [line.split(" ", 3)[1:] for line in lines]  # the pipes interleave as they may
    assert sorted(records) == [["stderr", "F", "err"], ["stdout", "F", "out"],
                               ["stdout", "P", "part"]]
    assert c.value("logpath") == str(log_path)
    assert (c / "stdout").read_text() == "out\npart"
    assert (c / "stderr").read_text() == "err\n"
    assert read_with_timeout(c / "follow" / "stdout") == "out\npart"
    assert json.loads((c / "info").read_text())["logpath"] == str(log_path)
    c.dir.rmdir()
    assert log_path.exists()  # the log is the client's: kubelet removes it


def test_reopen_log_after_a_rename_starts_a_new_file_and_follow_goes_on(
        daemon: Daemon, tmp_path: Path) -> None:
    log_path = tmp_path / "0.log"
    c = logged(daemon, "rotated", log_path,
               "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; "
               "sleep 0.3; echo third")
    assert wait_until(lambda: "first" in (c / "stdout").read_text())
    follower = subprocess.Popen(["timeout", "30", "cat", str(c / "follow" / "stdout")],
                                stdout=subprocess.PIPE, text=True)
    assert follower.stdout is not None
    assert follower.stdout.readline() == "first\n"  # it follows from before the rotation
    log_path.rename(tmp_path / "0.log.1")  # as kubelet rotates
    c.ctl("reopen-log")
    assert log_path.exists()  # the verb returns once the new log is there
    (c / "rootfs" / "tmp" / "go").touch()
    assert c.wait() == 0
    assert [line.split(" ", 3)[3] for line in (tmp_path / "0.log.1").read_text().splitlines()
            ] == ["first"]
    assert [line.split(" ", 3)[3] for line in log_path.read_text().splitlines()
            ] == ["second", "third"]
    stdout = (c / "stdout").read_text()
    assert stdout.startswith("[cdfs: 6 earlier bytes of stdout were dropped here")
    assert stdout.endswith("\nsecond\nthird\n")
    followed, _ = follower.communicate(timeout=40)
    assert followed.endswith("\nsecond\nthird\n")
    assert refused(c / "ctl", "reopen-log\n") == errno.EINVAL  # no conmon is left
    assert "stopped" in (c / "err").read_text()


def test_logpath_is_refused_when_relative_or_after_config(daemon: Daemon,
                                                          tmp_path: Path) -> None:
    c = Container(daemon, "refusals")
    c.dir.mkdir()
    assert refused(c / "logpath", "relative/0.log\n") == errno.EINVAL
    assert "relative/0.log" in (c / "err").read_text()
    assert refused(c / "logpath", f"{daemon.mount}/x.log\n") == errno.EINVAL
    write(c / "image", "cdfs.local/busybox:latest\n")
    write(c / "config.json", json.dumps({"process": {"args": ["true"]}}))
    assert refused(c / "logpath", f"{tmp_path}/late.log\n") == errno.EINVAL
    assert json.loads((c / "info").read_text())["oom_killed"] is False
    c.dir.rmdir()


def test_an_oom_kill_conmon_missed_is_told_and_kept_across_a_restart(daemon: Daemon) -> None:
    """Its monitor gone (kill -9) before the kill, nothing writes conmon's record of it:
    the daemon's own count of the cgroup's kills (/tasks/oom) is kept in its place."""
    c = Container(daemon, "unwatched")
    c.make(["sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; "
                        "dd if=/dev/zero of=/dev/null bs=64M count=1"],
           linux={"resources": {"memory": {"limit": 16 << 20, "swap": 16 << 20}}})
    c.ctl("start")
    task = daemon.state / "runtime" / "tasks" / "default" / "unwatched"
    os.kill(int((task / "conmon.pid").read_text()), signal.SIGKILL)
    (c / "rootfs" / "go").touch()
    assert wait_until(lambda: c.value("status") == "stopped")
    assert wait_until(lambda: json.loads((c / "info").read_text())["oom_killed"] is True)
    daemon.stop()
    daemon.start()
    assert json.loads((c / "info").read_text())["oom_killed"] is True
    c.dir.rmdir()


def test_oom_killed_is_told_and_kept_across_a_restart(daemon: Daemon) -> None:
    c = Container(daemon, "hog")
    c.make(["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
           linux={"resources": {"memory": {"limit": 16 << 20, "swap": 16 << 20}}})
    assert json.loads((c / "info").read_text())["oom_killed"] is False  # now kept in memory
    c.ctl("start")
    assert c.wait() == 137
    assert wait_until(lambda: json.loads((c / "info").read_text())["oom_killed"] is True)
    daemon.stop()
    daemon.start()
    time.sleep(0.2)
    assert json.loads((c / "info").read_text())["oom_killed"] is True
    c.dir.rmdir()
