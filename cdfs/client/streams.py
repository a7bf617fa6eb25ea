"""Moving bytes between the local terminal or pipes and a task's files.

A task's output is followed through its stream files (`follow/stdout`, `tty`), which
block for more and end when the task exits; input goes to `stdin` or `tty`. Each
pump is a thread, since all of it is blocking file I/O: the main thread stays free
to wait for the exit and to take signals.
"""

import contextlib
import io
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

from runtime.logs import parse_record

_CHUNK = 1 << 16
_EXIT_SEEN_SECONDS = 5.0  # how long a refused keystroke waits to see the output end


def copy_out(source: Path, sink: BinaryIO) -> threading.Thread:
    """Copy the stream file `source` to `sink` until it ends, in a thread. It is
    opened here, so a task without it fails the caller rather than the thread."""
    stream = open(source, "rb", buffering=0)  # noqa: SIM115 (closed by the pump)

    def pump() -> None:
        with contextlib.suppress(OSError), stream:
            while chunk := stream.read(_CHUNK):
                sink.write(chunk)
                sink.flush()

    return _started(pump)


@contextlib.contextmanager
def open_stream(path: Path) -> Iterator[BinaryIO]:
    """The stream file `path`, opened so that a signal ends a wait in it however
    close to the read it lands.

    A plain blocking read() misses a signal that lands just before it: Python's C
    handler takes the signal (so it is no longer pending, and the daemon, which ends
    a blocked read once its reader has a signal pending, never sees one) and leaves
    the Python handler for the next bytecode, after the read, that is after the next
    data. So each read first waits in poll() beside the signal wakeup fd, which that
    C handler writes to (the self-pipe trick), and reads only what is there."""
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        previous = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        try:
            with open(path, "rb", buffering=0) as stream:
                yield io.BufferedReader(_ReadWhenReady(stream.fileno(), wake_read))
        finally:
            signal.set_wakeup_fd(previous)
    finally:
        os.close(wake_read)
        os.close(wake_write)


class _ReadWhenReady(io.RawIOBase):
    """Reads of `fd` that wait in poll() with the signal wakeup fd `wake` (open_stream)."""

    def __init__(self, fd: int, wake: int) -> None:
        super().__init__()
        self._fd = fd
        self._wake = wake
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._poller.register(wake, select.POLLIN)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            ready = {fd for fd, _ in self._poller.poll()}  # a raising handler raises here
            if self._wake in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake, _CHUNK)
            if self._fd in ready:
                return os.readv(self._fd, [buffer])


def copy_in(source: BinaryIO, target: Path) -> threading.Thread:
    """Copy `source` (our stdin) into the task's `stdin` file until end of file; the
    last close of that file is the task's end of file."""

    def pump() -> None:
        with contextlib.suppress(OSError), open(target, "wb", buffering=0) as stdin:
            while chunk := os.read(source.fileno(), _CHUNK):
                stdin.write(chunk)

    return _started(pump)


def demux_log(lines: BinaryIO, stdout: BinaryIO, stderr: BinaryIO) -> None:
    """Print a task's combined log (`<time> stdout|stderr F|P <text>` lines) as the
    two streams it was written as, in the order it was written."""
    for line in lines:
        record = parse_record(line.rstrip(b"\n"))
        if record is not None:
            sink = stdout if record.stream == "stdout" else stderr
            sink.write(record.data)
            sink.flush()


def _started(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# -- the local terminal ------------------------------------------------------------------
def window_size() -> tuple[int, int]:
    size = os.get_terminal_size(sys.stdout.fileno())
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal() -> Iterator[None]:
    """Our terminal in raw mode (keystrokes go through as typed, Ctrl-C included),
    restored however the block ends. What was typed before is kept (TCSADRAIN, not
    tty's default TCSAFLUSH, which dropped keystrokes typed while the container
    started)."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def on_window_change(resize: Callable[[int, int], None]) -> Iterator[None]:
    """Call `resize(rows, cols)` now and on every SIGWINCH while the block runs."""

    def changed(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError, ValueError):
            resize(*window_size())

    previous = signal.signal(signal.SIGWINCH, changed)
    try:
        changed(signal.SIGWINCH, None)
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def type_into(target: Path, until: threading.Event) -> None:
    """Send our keystrokes to the terminal file `target` until `until` is set (the
    task's output ended) or our input ends, which is typed as ^D. Keys typed after
    the process exited are refused (EINVAL) and dropped, as a terminal's would be."""
    fd = sys.stdin.fileno()
    with open(target, "wb", buffering=0) as terminal:
        while not until.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(fd, _CHUNK)
            try:
                terminal.write(chunk or b"\x04")  # our input's end is the terminal's (^D)
            except OSError:
                if until.wait(_EXIT_SEEN_SECONDS):  # it exited meanwhile
                    return
                raise
            if not chunk:
                return
