"""conmon.wait_gone: a wait for a task's monitor to end (it writes the exit file just
before), through a pidfd, on a stand-in process whose command line names the monitor
id as conmon's does."""

import subprocess
import time
from pathlib import Path

from runtime import conmon
from runtime.conmon import MonitorFiles

MONITOR_ID = "0123456789abcdef0123456789abcdef"


def _monitor(tmp_path: Path, seconds: float) -> tuple[MonitorFiles, subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sh", "-c", f"sleep {seconds}", MONITOR_ID])
    files = MonitorFiles(tmp_path)
    files.conmon_pid.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 10  # just after the fork its command line is ours
    while not conmon.is_alive(files, MONITOR_ID):
        assert time.monotonic() < deadline, "the stand-in never ran"
        time.sleep(0.01)
    return files, proc


def test_returns_when_the_monitor_exits_not_at_the_timeout(tmp_path: Path) -> None:
    files, proc = _monitor(tmp_path, 0.3)
    try:
        started = time.monotonic()
        conmon.wait_gone(files, MONITOR_ID, timeout=30)
        assert time.monotonic() - started < 20
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_gives_up_after_the_timeout_while_the_monitor_runs(tmp_path: Path) -> None:
    files, proc = _monitor(tmp_path, 60)
    try:
        started = time.monotonic()
        conmon.wait_gone(files, MONITOR_ID, timeout=0.2)
        assert time.monotonic() - started >= 0.15
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _waited(files: MonitorFiles, monitor_id: str) -> float:
    started = time.monotonic()
    conmon.wait_gone(files, monitor_id, timeout=30)
    return time.monotonic() - started


def test_returns_at_once_for_a_monitor_gone_or_not_ours(tmp_path: Path) -> None:
    files, proc = _monitor(tmp_path, 60)
    try:
        assert _waited(files, "another-monitor-id") < 20  # a pid recycled by another
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert _waited(files, MONITOR_ID) < 20  # reaped: no such pid any more
    files.conmon_pid.unlink()
    assert _waited(files, MONITOR_ID) < 20  # never written
