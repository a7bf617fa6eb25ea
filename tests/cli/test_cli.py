"""The `cdfs` commands for people, end to end on a real mount with real containers.

Each command is run as a user runs it, a process of its own, with a timeout."""

import json
import os
import signal
import subprocess
import sys

import pytest
from support import Daemon, wait_until

IMAGE = "cdfs.local/busybox:latest"


def cdfs(daemon: Daemon, *args: str, stdin: str | None = None, timeout: float = 60,
         namespace: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["-n", namespace] if namespace else []
    return subprocess.run([sys.executable, "-m", "cdfs.cli", "--mount", str(daemon.mount),
                           *extra, *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=timeout)


def test_run_passes_output_and_exit_status_through_and_rm_removes(daemon: Daemon) -> None:
    done = cdfs(daemon, "run", "--rm", "--name", "once", IMAGE,
                "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (done.returncode, done.stdout, done.stderr) == (5, "out\n", "err\n")
    assert not daemon.path("containers", "once").exists()


def test_run_sets_env_workdir_user_and_memory(daemon: Daemon) -> None:
    done = cdfs(daemon, "run", "--name", "flags", "-e", "GREETING=hi", "-w", "/tmp",
                "-u", "1000:1001", "--memory", "64m", IMAGE,
                "sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g)"')
    assert (done.returncode, done.stdout) == (0, "hi /tmp 1000:1001\n")
    spec = json.loads(daemon.path("containers", "flags", "config.json").read_text())
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 << 20
    assert cdfs(daemon, "rm", "flags").returncode == 0


def test_run_as_a_user_named_in_the_image(daemon: Daemon) -> None:
    done = cdfs(daemon, "run", "--rm", "-u", "nobody", IMAGE, "id", "-u")
    assert (done.returncode, done.stdout) == (0, "65534\n"), done.stderr


def test_run_interactive_sends_stdin_then_end_of_file(daemon: Daemon) -> None:
    done = cdfs(daemon, "run", "--rm", "-i", IMAGE, "sh", "-c", "read x; echo got $x; cat",
                stdin="one\ntwo\n")
    assert (done.returncode, done.stdout) == (0, "got one\ntwo\n")


def test_run_without_interactive_gives_no_input(daemon: Daemon) -> None:
    done = cdfs(daemon, "run", "--rm", IMAGE, "cat", stdin="ignored\n", timeout=30)
    assert (done.returncode, done.stdout) == (0, "")


def test_detached_container_through_ps_exec_logs_stop_and_rm(daemon: Daemon) -> None:
    started = cdfs(daemon, "run", "-d", "--name", "web", IMAGE,
                   "sh", "-c", "echo ready; exec sleep 100")
    assert (started.returncode, started.stdout) == (0, "web\n")
    try:
        ps = cdfs(daemon, "ps")
        header, *rows = ps.stdout.splitlines()
        assert header.split()[:3] == ["ID", "STATUS", "PID"]
        assert any(row.split()[:2] == ["web", "running"] for row in rows)
        done = cdfs(daemon, "exec", "web", "sh", "-c", "echo $((6*7)); exit 4")
        assert (done.returncode, done.stdout) == (4, "42\n")
        assert cdfs(daemon, "exec", "-i", "web", "cat", stdin="piped\n").stdout == "piped\n"
        assert daemon.path("containers", "web", "exec").is_dir()
        assert list(daemon.path("containers", "web", "exec").iterdir()) == []
        assert wait_until(lambda: cdfs(daemon, "logs", "web").stdout == "ready\n")
        stopped = cdfs(daemon, "stop", "-t", "1", "web")
        assert stopped.returncode == 0
        assert daemon.path("containers", "web", "status").read_text() == "stopped\n"
    finally:
        assert cdfs(daemon, "rm", "-f", "web").returncode == 0
    assert not daemon.path("containers", "web").exists()


def test_logs_follow_ends_at_exit_and_keeps_the_streams_apart(daemon: Daemon) -> None:
    cdfs(daemon, "run", "-d", "--name", "talk", IMAGE,
         "sh", "-c", "echo one; sleep 1; echo two >&2; echo three")
    done = cdfs(daemon, "logs", "-f", "talk", timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "one\nthree\n", "two\n")
    cdfs(daemon, "rm", "talk")


# The CLI with SIGINT and SIGTERM blocked in its main thread and taken by a side thread:
# there Python's C handler takes the signal while the main thread sits in its read,
# leaving nothing pending for the daemon to see, just as when the signal lands
# between the handler check and a read() of a single-threaded CLI.
_SIGNAL_TAKEN_ASIDE = """
import signal, sys, threading
from cdfs.cli import main
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
def take_signals():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    threading.Event().wait()
threading.Thread(target=take_signals, daemon=True).start()
sys.exit(main(sys.argv[1:]))
"""
# The CLI as people run it, and with a signal that lands before its read.
CLIS = pytest.mark.parametrize("cli", [
    [sys.executable, "-m", "cdfs.cli"], [sys.executable, "-c", _SIGNAL_TAKEN_ASIDE]],
    ids=["plain", "signal-before-the-read"])


@CLIS
def test_ctrl_c_ends_logs_follow_cleanly(daemon: Daemon, cli: list[str]) -> None:
    cdfs(daemon, "run", "-d", "--name", "long", IMAGE, "sh", "-c", "echo up; sleep 100")
    follower = subprocess.Popen([*cli, "--mount", str(daemon.mount), "logs", "-f", "long"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "up\n"
        follower.send_signal(signal.SIGINT)
        _, stderr = follower.communicate(timeout=10)
        assert follower.returncode == 130
        assert "Traceback" not in stderr
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)
        cdfs(daemon, "rm", "-f", "long")


@CLIS
def test_signals_to_run_go_on_to_the_container(daemon: Daemon, cli: list[str]) -> None:
    runner = subprocess.Popen(
        [*cli, "--mount", str(daemon.mount), "run", "--rm", "--name", "trap", IMAGE,
         "sh", "-c", "trap 'echo caught; exit 9' TERM; echo armed; while :; do sleep 0.1; done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        assert runner.stdout.readline() == "armed\n"
        runner.send_signal(signal.SIGTERM)
        out, _ = runner.communicate(timeout=20)
        assert (runner.returncode, out) == (9, "caught\n")
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
        cdfs(daemon, "rm", "-f", "trap")


def test_refusals_come_in_the_daemons_words(daemon: Daemon) -> None:
    done = cdfs(daemon, "exec", "nobody-here", "true")
    assert done.returncode == 125
    assert done.stderr.startswith("cdfs exec: ")
    missing = cdfs(daemon, "--mount", "/nonexistent", "ps")
    assert missing.returncode == 1 and "no cdfs tree" in missing.stderr


def test_pull_and_images_through_a_registry(daemon: Daemon, registry: str) -> None:
    ref = f"{registry}/cli/busybox:1"
    ctl = daemon.path("images", "ctl")
    fd = os.open(ctl, os.O_WRONLY)
    try:
        os.write(fd, f"push {IMAGE} {ref}\n".encode())
    finally:
        os.close(fd)
    mkdir = daemon.path("namespaces", "other")
    mkdir.mkdir()
    done = cdfs(daemon, "pull", ref, namespace="other", timeout=120)
    assert done.returncode == 0, done.stderr
    listed = cdfs(daemon, "images", namespace="other").stdout.splitlines()
    assert listed[0].split() == ["REF", "DIGEST", "PLATFORM", "SIZE"]
    assert [row.split()[0] for row in listed[1:]] == [ref]
    ran = cdfs(daemon, "run", "--rm", ref, "echo", "pulled", namespace="other")
    assert ran.stdout == "pulled\n"


def test_run_pulls_a_missing_image(daemon: Daemon, registry: str) -> None:
    ref = f"{registry}/cli/auto:1"
    fd = os.open(daemon.path("images", "ctl"), os.O_WRONLY)
    try:
        os.write(fd, f"push {IMAGE} {ref}\n".encode())
    finally:
        os.close(fd)
    daemon.path("namespaces", "fresh").mkdir()
    done = cdfs(daemon, "run", "--rm", ref, "echo", "auto", namespace="fresh", timeout=120)
    assert (done.returncode, done.stdout) == (0, "auto\n"), done.stderr


@pytest.mark.parametrize("command", ["run", "exec"])
def test_terminal_under_script(daemon: Daemon, command: str) -> None:
    """-it through a real local terminal (util-linux `script` gives us one)."""
    base = [sys.executable, "-m", "cdfs.cli", "--mount", str(daemon.mount)]
    if command == "exec":
        cdfs(daemon, "run", "-d", "--name", "host", IMAGE, "sleep", "100")
        argv = [*base, "exec", "-it", "host", "sh"]
    else:
        argv = [*base, "run", "-it", "--rm", IMAGE, "sh"]
    inner = " ".join(f"'{a}'" for a in argv)
    try:
        session = subprocess.Popen(
            ["script", "-qec", f"stty rows 33 cols 101; exec {inner}", "/dev/null"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert session.stdin is not None  # typed at once: kept until the shell reads
        session.stdin.write(b"stty size; exit 3\r")
        session.stdin.flush()
        out, _ = session.communicate(timeout=30)
        assert b"33 101" in out, out
        assert session.returncode == 3, out
    finally:
        if command == "exec":
            cdfs(daemon, "rm", "-f", "host")
