"""The pause program: it waits, reaps what it inherits as PID 1, and exits 0 when told."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cdfs.cri.pause import compile_pause


@pytest.fixture(scope="module")
def pause_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("pause") / "pause"
    compile_pause(binary)
    return binary


def children(pid: int) -> list[str]:
    """The states (R, S, Z...) of the children of `pid`."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    states = []
    for child in path.read_text().split():
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except FileNotFoundError:
            continue
        states.append(stat.rpartition(")")[2].split()[0])
    return states


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_exits_zero_on_a_stop_signal(pause_binary: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen([pause_binary])
    try:
        time.sleep(0.2)
        assert proc.poll() is None, "pause ended on its own"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_is_static(pause_binary: Path) -> None:
    """It runs in an image that has no libc."""
    assert b"ld-linux" not in pause_binary.read_bytes()[:4096]
    result = subprocess.run(["ldd", pause_binary], capture_output=True, text=True, timeout=10)
    assert "not a dynamic executable" in result.stdout + result.stderr


def test_reaps_orphans_as_pid_1(pause_binary: Path) -> None:
    """In a PID namespace of its own, orphans are handed to pause: none stays a zombie."""
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", pause_binary])
    try:
        deadline = time.monotonic() + 10
        while not children(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        (pause_pid,) = (int(c) for c in
                        Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())
        # A shell in its namespace starts sleeps and exits: they become pause's children.
        subprocess.run(["nsenter", "-t", str(pause_pid), "-p", "--", "sh", "-c",
                        "sleep 0.3 & sleep 0.3 & exit 0"], check=True, timeout=10)
        assert children(pause_pid), "the orphans were not handed to pause"
        while children(pause_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert children(pause_pid) == [], "pause left zombies"
        os.kill(pause_pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait(timeout=10)
