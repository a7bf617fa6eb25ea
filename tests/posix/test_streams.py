"""Streams as documented: whole-tree tools finish with the documented exclusions, and
poll/select/epoll, O_NONBLOCK and signals behave; a C program does the same with epoll
and poll. Every reader has a timeout."""

import errno
import os
import select
import subprocess
import time
from pathlib import Path

import pytest
from posix_tree import Tree

STREAMS = ("events", "wait", "tty", "stream")
GREP_EXCLUDE = [*(f"--exclude={name}" for name in STREAMS), "--exclude-dir=follow"]

EPOLL_C = r"""
/* epoll on events (woken by a mkdir), poll on follow/stdout of a stopped container
   (readable, then end of file). Usage: streams MOUNT */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char path[4096], buf[65536];
    snprintf(path, sizeof path, "%s/events", argv[1]);
    int events = open(path, O_RDONLY);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN}, got;
    if (events < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, events, &ev) < 0) return 1;
    if (epoll_wait(ep, &got, 1, 300) != 0) { puts("ready too early"); return 1; }
    snprintf(path, sizeof path, "%s/namespaces/from-c", argv[1]);
    if (mkdir(path, 0700) < 0) return 1;
    if (epoll_wait(ep, &got, 1, 5000) != 1) { puts("no event"); return 1; }
    ssize_t n = read(events, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("event %s", strstr(buf, "/namespaces/create") ? "create\n" : buf);
    rmdir(path);
    snprintf(path, sizeof path, "%s/containers/stopped/follow/stdout", argv[1]);
    int out = open(path, O_RDONLY);
    struct pollfd p = {.fd = out, .events = POLLIN};
    size_t total = 0;
    while (poll(&p, 1, 5000) == 1 && (n = read(out, buf, sizeof buf)) > 0) total += n;
    printf("stdout %zu\n", total);
    return 0;
}
"""


def test_whole_tree_tools_finish_with_the_exclusions(tree: Tree, tmp_path: Path) -> None:
    found = tree.run("grep", "-r", "-l", *GREP_EXCLUDE, "line 100", tree.mount, timeout=60,
                     check=False)
    assert "Permission denied" not in found.stderr
    stopped = tree.mount / "namespaces" / "default" / "containers" / "stopped"  # no links
    assert str(stopped / "stdout") in found.stdout.split(), found.stderr
    prune = ["(", *(word for n in STREAMS for word in ("-name", n, "-o")), "-name", "follow",
             ")"]
    catted = subprocess.run(["find", str(tree.mount), *prune, "-prune", "-o", "-type", "f",
                             "-exec", "cat", "{}", "+"], capture_output=True, timeout=60)
    assert b"line 100" in catted.stdout  # blobs too: bytes
    tar = tree.run("tar", "-cf", tmp_path / "tree.tar", *(f"--exclude={n}" for n in STREAMS),
                   "--exclude=follow", "-C", tree.mount, "namespaces", timeout=60,
                   check=False)
    # Write-only files (stdin) read empty. The running container's outputs grow while
    # tar reads them, which GNU tar tells as on any filesystem: exit 1, "file changed".
    changed = [line for line in tar.stderr.splitlines()
               if not line.endswith("file changed as we read it")]
    assert (tar.returncode, changed) in ((0, []), (1, [])), tar.stderr
    listed = tree.run("tar", "-tvf", tmp_path / "tree.tar").stdout
    assert "namespaces/default/containers/stopped/stdout" in listed


def test_select_poll_and_nonblocking_reads(tree: Tree) -> None:
    fd = os.open(tree.running / "follow" / "stdout", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(fd, 1 << 20).startswith(b"first\n")  # what is there already
        while True:  # drain, then nothing until the next tick
            try:
                os.read(fd, 1 << 20)
            except BlockingIOError:
                break
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(5000) == [(fd, select.POLLIN)]  # the next tick
        assert os.read(fd, 100).startswith(b"tick ")
    finally:
        os.close(fd)
    wait = os.open(tree.running / "wait", os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(BlockingIOError) as nothing:
            os.read(wait, 10)
        assert nothing.value.errno == errno.EAGAIN
        assert select.select([wait], [], [], 0.5)[0] == []  # not ready: it runs
    finally:
        os.close(wait)
    with open(tree.stopped / "wait", "rb") as done:
        assert select.select([done], [], [], 5)[0] == [done]
        assert done.read() == b"3\n"


def test_a_signal_releases_a_blocked_read(tree: Tree) -> None:
    started = time.monotonic()
    blocked = subprocess.run(["timeout", "1", "cat", str(tree.running / "wait")],
                             capture_output=True, timeout=15)
    assert blocked.returncode == 124 and time.monotonic() - started < 5


def test_c_program_epoll_and_poll(tree: Tree, tmp_path: Path) -> None:
    source = tmp_path / "streams.c"
    source.write_text(EPOLL_C)
    binary = tmp_path / "streams"
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(binary), str(source)], check=True,
                   timeout=60)
    done = tree.run(binary, tree.mount, timeout=30, check=False)
    stdout_size = (tree.stopped / "stdout").stat().st_size
    assert done.stdout == f"event create\nstdout {stdout_size}\n", done.stdout
    assert done.returncode == 0
