"""Output files as log files for the tools people reach for, and follow/ as streams.
Every program runs under a timeout."""

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from posix_tree import STOPPED_ERR, STOPPED_OUT, Tree, make_container
from support import Daemon, wait_until


def test_sizes_and_content_of_a_stopped_containers_output(tree: Tree) -> None:
    assert (tree.stopped / "stdout").stat().st_size == len(STOPPED_OUT)
    assert (tree.stopped / "stdout").read_text() == STOPPED_OUT
    assert (tree.stopped / "stderr").read_text() == STOPPED_ERR
    host_log = tree.daemon.state / "runtime" / "tasks" / "default" / "stopped" / "log"
    assert (tree.stopped / "log").read_bytes() == host_log.read_bytes()
    assert (tree.stopped / "log").stat().st_size == host_log.stat().st_size
    assert (tree.stopped / "stdout").stat().st_mtime_ns == host_log.stat().st_mtime_ns


def test_a_stat_after_the_exit_counts_all_the_output(tree: Tree) -> None:
    """stat's size of an output comes from memory only while the index has read
    every write the watcher saw (tests/runtime/test_logs.py): after a burst of output
    and the exit (`wait` returns), the size is all of it at once."""
    burst = make_container(tree.daemon, "burst", "echo first; sleep 0.5; seq 1 200000")
    assert wait_until(lambda: (burst / "stdout").stat().st_size > 0)
    assert tree.run("timeout", "20", "cat", burst / "wait").stdout == "0\n"
    size = (burst / "stdout").stat().st_size
    assert size == len("first\n") + sum(len(f"{i}\n") for i in range(1, 200001))
    assert size == len((burst / "stdout").read_bytes())


def test_head_tail_grep_less_on_output(tree: Tree) -> None:
    for directory in (tree.stopped, tree.running):  # a running one never blocks them
        out = directory / "stdout"
        head = tree.run("head", "-n", "2", out, timeout=10).stdout
        assert head == ("line 1\nline 2\n" if directory == tree.stopped else "first\nsecond\n")
        tail = tree.run("tail", "-n", "2", out, timeout=10).stdout.splitlines()
        assert len(tail) == 2
        assert tree.run("grep", "-c", "e", out, timeout=10).stdout.strip() != "0"
    assert tree.run("tail", "-n", "2", tree.stopped / "stdout").stdout == "line 99\nline 100\n"
    assert tree.run("tail", "-c", "+8", tree.stopped / "stdout").stdout == STOPPED_OUT[7:]
    tick = tree.run("grep", "-m1", "tick", tree.running / "stdout").stdout
    assert tick.startswith("tick ")
    less = subprocess.run(["less", "-F", "-X", str(tree.stopped / "stdout")],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=10, env={**os.environ, "TERM": "dumb"})
    assert less.stdout == STOPPED_OUT


def _follow_for(argv: list[str], seconds: float) -> str:
    """What a follower (tail -f) printed in `seconds`; it is then ended by timeout."""
    done = subprocess.run(["timeout", str(seconds), *argv], capture_output=True, text=True,
                          timeout=seconds + 10)
    assert done.returncode == 124, done.stderr  # still following when stopped
    assert "truncated" not in done.stderr and "seek" not in done.stderr, done.stderr
    return done.stdout


def test_tail_follows_a_growing_output(tree: Tree) -> None:
    for flag in ("-f", "-F"):
        seen = _follow_for(["tail", "-s", "0.2", "-n", "+1", flag, str(tree.running / "stdout")],
                           2.5)
        lines = seen.splitlines()
        assert lines[:2] == ["first", "second"], seen
        now = len((tree.running / "stdout").read_text().splitlines())
        assert len(lines) >= now - 2, seen  # it kept up with the growth
    last = _follow_for(["tail", "-s", "0.2", "-n", "1", "-f", str(tree.running / "stdout")], 2)
    ticks = [int(line.split()[1]) for line in last.splitlines()]
    assert len(ticks) >= 3 and ticks == sorted(ticks), last


def test_tail_pid_ends_with_the_process(tree: Tree) -> None:
    started = time.monotonic()  # bash reaps the sleep, so tail sees it gone
    done = tree.sh(f'sleep 1 & tail -s 0.2 --pid=$! -f "{tree.stopped}/stdout"', timeout=15)
    assert done.stdout.splitlines()[-1] == "line 100"
    assert time.monotonic() - started < 10


def test_tar_cp_python_keep_the_output(tree: Tree, tmp_path: Path) -> None:
    names = ("stdout", "stderr", "log")
    archive = tmp_path / "out.tar"
    tree.run("tar", "-C", tree.stopped, "-cf", archive, *names)
    (tmp_path / "x").mkdir()
    tree.run("tar", "-C", tmp_path / "x", "-xf", archive)
    tree.run("cp", "-r", tree.stopped / "stdout", tmp_path / "copy")
    assert (tmp_path / "x" / "stdout").read_text() == STOPPED_OUT
    assert (tmp_path / "x" / "stderr").read_text() == STOPPED_ERR
    assert (tmp_path / "x" / "log").read_bytes() == (tree.stopped / "log").read_bytes()
    assert (tmp_path / "copy").read_text() == STOPPED_OUT
    with open(tree.stopped / "stdout", "rb") as out:
        for offset in (0, 5, 333, len(STOPPED_OUT) - 9, len(STOPPED_OUT)):
            out.seek(offset)
            assert out.read(20) == STOPPED_OUT.encode()[offset:offset + 20]
        out.seek(0, os.SEEK_END)
        assert out.tell() == len(STOPPED_OUT) and out.read() == b""


def test_follow_streams_like_docker_logs_f(tree: Tree) -> None:
    whole = tree.run("timeout", "10", "cat", tree.stopped / "follow" / "stdout").stdout
    assert whole == STOPPED_OUT  # from the start, ends at exit
    assert tree.run("timeout", "10", "cat", tree.stopped / "follow" / "stderr").stdout == \
        STOPPED_ERR
    first = tree.run("timeout", "10", "head", "-n", "3", tree.running / "follow" / "stdout")
    assert first.stdout.splitlines() == ["first", "second", "tick 1"]
    waited = subprocess.run(["timeout", "1", "cat", str(tree.running / "follow" / "stdout")],
                            capture_output=True, timeout=10)
    assert waited.returncode == 124  # it follows while the process runs


def test_a_capped_log_says_what_it_dropped(make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon(extra_args=["--log-size-max", "4096"])
    noisy = make_container(daemon, "noisy", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); "
                           "echo line $i; done; echo done")
    assert wait_until(lambda: (noisy / "status").read_text() == "stopped\n")
    out = (noisy / "stdout").read_text()
    marker, kept = out.split("\n", 1)
    assert marker.startswith("[cdfs: ") and "were dropped here" in marker, marker
    words = marker.split()
    dropped = int(words[1])
    unread = int(words[words.index("whole") - 1]) if "whole" in words else 0
    wrote = "".join(f"line {i}\n" for i in range(1, 2001)) + "done\n"
    assert wrote.endswith(kept)
    missing = len(wrote) - dropped - len(kept)  # what whole unread logs held
    assert missing == 0 if not unread else 0 < missing <= unread * 4096, marker
    assert (noisy / "stdout").stat().st_size == len(out)
    assert (noisy / "log").read_text().startswith("[cdfs: ")
    followed = subprocess.run(["timeout", "10", "cat", str(noisy / "follow" / "stdout")],
                              capture_output=True, text=True, timeout=20).stdout
    assert followed == out
