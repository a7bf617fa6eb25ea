"""ExecSync: a command run in a running container to its end, as a tree exec.

`mkdir exec/<id>`, its process.json, `start`; then the exec's `wait` stream says
when it exited (poll(2) on it bounds the wait by the timeout), and its stdout and
stderr (the first 16 MiB of each) and exit files give the result. A command that
outlives its timeout is killed and the call fails with DEADLINE_EXCEEDED, as
containerd's; either way the exec directory is removed.
"""

import contextlib
import errno
import json
import os
import secrets
import select
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from cdfs.client.tree import Tree, TreeError
from cdfs.cri.errors import CriError

KILL_WAIT = 10.0  # seconds for a timed-out command to go once killed
OUTPUT_MAX = 16 << 20
"""The bytes of each stream an answer holds, the rest dropped: kubelet's gRPC
message limit, so a command writing gigabytes is never held in memory whole."""


@dataclass(frozen=True)
class Result:
    stdout: bytes
    stderr: bytes
    exit_code: int


def exec_sync(tree: Tree, container_id: str, command: list[str], timeout: float | None
              ) -> Result:
    """Run `command` in the container; `timeout` seconds at most (None: no bound)."""
    exec_dir = tree.container(container_id) / "exec" / f"sync-{secrets.token_hex(8)}"
    tree.mkdir(exec_dir)
    try:
        tree.write(exec_dir / "process.json", json.dumps({"args": command}))
        tree.write(exec_dir / "ctl", "start\n")
        if not wait_exit(exec_dir / "wait", timeout):
            _kill(tree, exec_dir)
            raise CriError(grpc.StatusCode.DEADLINE_EXCEEDED,
                           f"timeout {timeout:g}s exceeded running {command[0]}")
        return Result(_head(exec_dir / "stdout"), _head(exec_dir / "stderr"),
                      int(tree.read(exec_dir / "exit").strip()))
    finally:
        with contextlib.suppress(TreeError):
            tree.rmdir(exec_dir)


def _head(output: Path) -> bytes:
    """An output file's first OUTPUT_MAX bytes."""
    chunks: list[bytes] = []
    size = 0
    try:
        with output.open("rb", buffering=0) as file:
            while size < OUTPUT_MAX and (chunk := file.read(min(OUTPUT_MAX - size, 1 << 20))):
                chunks.append(chunk)
                size += len(chunk)
    except OSError as exc:
        raise TreeError(f"{output}: {exc.strerror}", exc.errno) from None
    return b"".join(chunks)


def wait_exit(wait: Path, timeout: float | None) -> bool:
    """Whether the process behind a `wait` file exited within `timeout` seconds (None:
    however long it takes). The file is a stream the tree lets poll(2) wait on."""
    deadline = None if timeout is None else time.monotonic() + timeout
    fd = os.open(wait, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if poller.poll(None if left is None else left * 1000):
                try:
                    os.read(fd, 64)  # the exit status, or end of file: either way, gone
                    return True
                except BlockingIOError:
                    pass
            if left is not None and left <= 0:
                return False
    finally:
        os.close(fd)


def _kill(tree: Tree, exec_dir: Path) -> None:
    try:
        tree.write(exec_dir / "ctl", "kill KILL\n")
    except TreeError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: it exited meanwhile
            raise
    wait_exit(exec_dir / "wait", KILL_WAIT)
