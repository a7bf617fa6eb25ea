"""Exec and attach as the tree offers them: the `Attached` programs of remotecommand.

An exec is a directory `exec/<name>/` of the container: process.json creates it (with
`terminal` for a tty), `start` in its ctl runs it, `wait` gives its exit status and
rmdir removes it. Its output is read from `follow/stdout` and `follow/stderr` (from
the first byte) or, with a terminal, from `tty`, opened before the start so that
nothing is missed; input goes to `stdin` or is typed into `tty`. Attaching reads the
container's `follow/now/` streams (its output from the moment of opening) or its
`tty`.

Every blocking read here is of a stream file opened O_NONBLOCK and waited for with
poll() beside a pipe of our own, so `abandon` can release a reader at once (a read
blocked in FUSE would otherwise hold its thread until the program wrote again). A
client that leaves an exec early has it killed: nobody is left to see its output,
and its directory must not outlive the session.
"""

import contextlib
import errno
import json
import logging
import os
import secrets
import select
import threading
import time
from pathlib import Path

from cdfs.client.tree import Tree, TreeError
from cdfs.cri.streaming.remotecommand import Options

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
_EXIT_WAIT = 15.0  # for a killed exec to be gone before its rmdir


class _Releasable:
    """poll() on tree files with a wake-up pipe that `cancel` fills."""

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.cancelled = False

    def read(self, fd: int, timeout: float | None = None) -> bytes:
        """Bytes from `fd` once there are some; b"" at its end, once cancelled, or
        after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self.cancelled:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if left == 0.0:
                return b""
            ready = dict(poller.poll(None if left is None else int(left * 1000) + 1))
            if self._wake_r in ready:
                return b""
            if fd in ready:
                try:
                    return os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
        return b""

    def cancel(self) -> None:
        self.cancelled = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)


class _Task:
    """A task directory (a container or one of its execs) driven through its files."""

    def __init__(self, tree: Tree, task: Path, options: Options) -> None:
        self._tree = tree
        self.dir = task
        self._options = options
        self._io = _Releasable()
        self._outputs: dict[str, int] = {}
        self._input: int | None = None
        self._lock = threading.Lock()

    def _open_streams(self, output_dir: str) -> None:
        """Open what the options ask for: the terminal, or the output streams of
        `output_dir` (follow, or follow/now) and stdin."""
        try:
            if self._options.tty:
                if self._options.stdout:
                    self._outputs["stdout"] = self._open("tty", os.O_RDONLY | os.O_NONBLOCK)
                if self._options.stdin:
                    self._input = self._open("tty", os.O_WRONLY)
                return
            for name in ("stdout", "stderr"):
                if getattr(self._options, name):
                    self._outputs[name] = self._open(f"{output_dir}/{name}",
                                                     os.O_RDONLY | os.O_NONBLOCK)
            if self._options.stdin:
                self._input = self._open("stdin", os.O_WRONLY)
        except BaseException:
            self._close_files()
            raise

    def _open(self, name: str, flags: int) -> int:
        try:
            return os.open(self.dir / name, flags | os.O_CLOEXEC)
        except OSError as exc:
            raise TreeError(f"{self.dir.name}/{name}: {exc.strerror}", exc.errno) from None

    def ctl(self, line: str) -> None:
        self._tree.write(self.dir / "ctl", line + "\n")

    # -- Attached ------------------------------------------------------------------------
    def start(self, rows_cols: tuple[int, int] | None) -> None:
        """The terminal's first size, set before anything is shown on it."""
        if rows_cols is not None:
            self.resize(*rows_cols)

    def read_output(self, name: str) -> bytes:
        fd = self._outputs.get(name)
        return self._io.read(fd) if fd is not None else b""

    def write_input(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._input is not None:
            view = view[os.write(self._input, view):]

    def close_input(self) -> None:
        """The client's end of input: end of file for stdin, ^D typed on a terminal
        (whose input stays open)."""
        with self._lock:
            fd, self._input = self._input, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if self._options.tty:
                os.write(fd, b"\x04")
        os.close(fd)

    def resize(self, rows: int, cols: int) -> None:
        if self._options.tty and rows > 0 and cols > 0:
            with contextlib.suppress(TreeError):
                self.ctl(f"resize {rows} {cols}")

    def exit_status(self, io: "_Releasable | None" = None, timeout: float | None = None
                    ) -> int | None:
        """Block until the task has exited (its `wait`); None when released first."""
        fd = self._open("wait", os.O_RDONLY | os.O_NONBLOCK)
        try:
            text = b""
            while chunk := (io or self._io).read(fd, timeout):
                text += chunk
        finally:
            os.close(fd)
        value = text.decode().strip()
        return int(value) if value.lstrip("-").isdigit() else None

    def abandon(self) -> None:
        self._io.cancel()

    def _close_files(self) -> None:
        for output in self._outputs.values():
            os.close(output)
        self._outputs.clear()
        with self._lock:
            fd, self._input = self._input, None
        if fd is not None:
            os.close(fd)


class TreeExec(_Task):
    """A command run in a container for one remotecommand session."""

    def __init__(self, tree: Tree, container_id: str, cmd: tuple[str, ...],
                 options: Options) -> None:
        container = tree.container(container_id)
        process: dict[str, object] = {"args": list(cmd), "terminal": options.tty}
        if options.tty:
            process["env"] = _with_term(tree, container)
        super().__init__(tree, container / "exec" / f"cri-{secrets.token_hex(6)}", options)
        self._started = self._exited = False
        try:
            tree.mkdir(self.dir)
            try:
                tree.write(self.dir / "process.json", json.dumps(process))
                self._open_streams("follow")
            except BaseException:
                with contextlib.suppress(TreeError):
                    tree.rmdir(self.dir)
                raise
        except BaseException:
            self._io.close()
            raise

    def start(self, rows_cols: tuple[int, int] | None) -> None:
        super().start(rows_cols)
        self.ctl("start")
        self._started = True
        if not self._options.stdin and not self._options.tty:
            self.ctl("closeio")  # no input: the program reads end of file, not forever

    def wait(self) -> int | None:
        status = self.exit_status()
        self._exited = status is not None
        return status

    def abandon(self) -> None:
        super().abandon()
        if not self._exited:
            with contextlib.suppress(TreeError):
                self.ctl("kill KILL")

    def release(self) -> None:
        self._close_files()
        self._io.close()
        if self._started and not self._exited:  # killed by abandon: gone in a moment
            waiter = _Releasable()
            try:
                self.exit_status(waiter, _EXIT_WAIT)
            except (TreeError, OSError):
                pass
            finally:
                waiter.close()
        for _ in range(50):
            try:
                self._tree.rmdir(self.dir)
                return
            except TreeError as exc:
                if exc.errno != errno.EBUSY:
                    log.warning("exec %s: %s", self.dir, exc)
                    return
                time.sleep(0.1)
        log.warning("exec %s: still busy, left behind", self.dir)


class TreeAttach(_Task):
    """A running container's terminal, or its output from now on and its stdin."""

    def __init__(self, tree: Tree, container_id: str, options: Options) -> None:
        super().__init__(tree, tree.container(container_id), options)
        try:
            self._open_streams("follow/now")
        except BaseException:
            self._io.close()
            raise

    def wait(self) -> int | None:
        """Attaching reports no exit status; without outputs to end it, the session
        lasts until the container exits (or the client leaves)."""
        if not self._outputs:
            self.exit_status()
        return None

    def release(self) -> None:
        self._close_files()
        self._io.close()


def _with_term(tree: Tree, container: Path) -> list[str]:
    """The container's environment with TERM=xterm unless it sets TERM, as containerd
    gives a terminal exec."""
    spec = json.loads(tree.read(container / "config.json") or "{}")
    env = list(spec.get("process", {}).get("env") or [])
    if not any(entry.startswith("TERM=") for entry in env):
        env.append("TERM=xterm")
    return env
