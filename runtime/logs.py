"""Reading conmon's k8s-file logs: one stream's bytes, or the combined timestamped log.

conmon writes each chunk of output as `<RFC3339Nano> stdout|stderr F|P <text>\\n`, where
F ends a line (the newline was the process's) and P is a partial line. A stream's bytes
are the texts of its records, plus a newline after each F.

Bound: conmon's `--log-size-max` keeps the log under a size by starting it afresh when
the next write would pass the bound (a rotation that keeps no old generation). Offsets
count bytes of the current log, so after such a restart readers start again at 0; the
daemon sets the bound (cdfs serve --log-size-max, 64 MiB by default) and LogIndex
marks in the output files how much a restart dropped.
"""

import bisect
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STREAMS = ("stdout", "stderr")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Record:
    timestamp: str
    stream: str
    partial: bool
    text: bytes

    @property
    def data(self) -> bytes:
        """The bytes the process wrote, newline restored."""
        return self.text if self.partial else self.text + b"\n"


def parse_record(line: bytes) -> Record | None:
    """One log line (without its newline); None for a line that is not a record."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    text = parts[3] if len(parts) == 4 else b""
    return Record(parts[0].decode(), parts[1].decode(), parts[2] == b"P", text)


def _complete_lines(fd: int, position: int) -> Iterator[tuple[int, bytes]]:
    """(position after the line, line) for each newline-terminated line from `position`;
    a last line still being written is left for a later read."""
    pending = b""
    while chunk := os.pread(fd, _CHUNK, position):
        position += len(chunk)
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        end = position - len(pending) - sum(len(line) + 1 for line in lines)
        for line in lines:
            end += len(line) + 1
            yield end, line


OUTPUTS = ("stdout", "stderr", "log")
_CHECKPOINT_EVERY = 1 << 16  # log bytes between two remembered positions


@dataclass(frozen=True)
class _Checkpoint:
    """A line boundary of the log and how many bytes of each stream lie before it."""

    position: int
    stdout: int
    stderr: int


def dropped_marker(output: str, dropped: int, cap: int, unread: int = 0) -> bytes:
    """The line an output file begins with once its log was cut at the cap; `unread`
    counts whole logs cut before cdfs could read them (output faster than it looks)."""
    if not dropped and not unread:
        return b""
    more = f", and {unread} whole logs of up to {cap} bytes each," if unread else ""
    return (f"[cdfs: {dropped} earlier bytes of {output}{more} were dropped here: the log "
            f"was started afresh, at its cap of {cap} bytes (cdfs serve --log-size-max) "
            "or by reopen-log]\n").encode()


class LogIndex:
    """stdout, stderr and the combined log of one task as growing files: their sizes
    known without rescanning, any offset read from a nearby checkpoint.

    `update` indexes the complete lines conmon appended since the last call, through a
    descriptor the index holds: when conmon reaches its cap it starts a new log under
    the same name, and the old one is still read to its end through that descriptor,
    so the index knows exactly how many bytes of each output were dropped; each output
    then begins with `dropped_marker`. Only what was indexed while the daemon ran is
    counted: a rotation while no daemon watched is not seen. Thread-safe; blocking
    (run it in a worker thread), but for `note_change` and `known_size`, which never
    block: a watcher that sees conmon write calls `note_change`, and until the next
    `update` has read what was written, `known_size` knows nothing (so a size it gives
    includes every write the watcher has seen).
    """

    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.generation = 0
        self.mtime_ns = 0
        self._lock = threading.Lock()
        self._fd = -1
        self._inode = -1
        self._position = 0  # log bytes indexed: complete lines only
        self._sizes = dict.fromkeys(STREAMS, 0)
        self._checkpoints = [_Checkpoint(0, 0, 0)]
        self._dropped = dict.fromkeys(OUTPUTS, 0)
        self._cuts = 0  # new logs conmon started, as the daemon's watcher counted them
        self._changes = 0  # writes the watcher saw (note_change)
        self._indexed = -1  # the changes an update has read through; -1: none yet

    def note_cuts(self, cuts: int) -> None:
        """conmon started its log afresh `cuts` times so far: those this index did not
        read through (more than one cut between two looks) are dropped whole."""
        with self._lock:
            self._cuts = max(self._cuts, cuts)

    def note_change(self) -> None:
        """conmon wrote to (or started afresh) the log since the last look."""
        self._changes += 1

    def known_size(self, output: str) -> int | None:
        """The size of `output` without reading the log, if every change noted so far
        is indexed and no update is under way; else None (ask `size`)."""
        if self._indexed != self._changes or not self._lock.acquire(blocking=False):
            return None
        try:
            return len(self._marker(output)) + self._length(output)
        finally:
            self._lock.release()

    def update(self) -> None:
        with self._lock:
            self._update()

    def size(self, output: str) -> int:
        with self._lock:
            self._update()
            return len(self._marker(output)) + self._length(output)

    def read(self, output: str, offset: int, size: int, generation: int | None = None
             ) -> tuple[int, bytes]:
        """(generation, up to `size` bytes of `output` from `offset`) as of now; a
        reader of an older `generation` reads the new log from its start."""
        with self._lock:
            self._update()
            if generation is not None and generation != self.generation:
                offset = 0
            marker = self._marker(output)
            out = marker[offset:offset + size]
            start = max(0, offset - len(marker))
            want = min(size - len(out), self._length(output) - start)
            if want > 0 and self._fd >= 0:
                if output == "log":
                    out += os.pread(self._fd, want, start)
                else:
                    out += self._read_stream(output, start, want)
            return self.generation, out

    def close(self) -> None:
        """Let the descriptor go (the task exited or is gone); a later call reopens."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _length(self, output: str) -> int:
        return self._position if output == "log" else self._sizes[output]

    def _marker(self, output: str) -> bytes:
        unread = max(0, self._cuts - self.generation)
        return dropped_marker(output, self._dropped[output], self.cap, unread)

    def _update(self) -> None:
        seen = self._changes  # before the stat: what is written after may not be read
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            self._indexed = seen
            return
        if self._fd >= 0 and status.st_ino != self._inode:
            self._scan()  # the rest of the old log, through our descriptor
            self._rotated()
        if self._fd < 0:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return
            inode = os.fstat(self._fd).st_ino
            if self._inode not in (-1, inode):
                self._rotated(keep_fd=True)
            self._inode = inode
        if os.fstat(self._fd).st_size < self._position:  # cut in place: what we had is gone
            self._rotated(keep_fd=True)
        self._scan()
        self.mtime_ns = status.st_mtime_ns
        self._indexed = seen

    def _rotated(self, keep_fd: bool = False) -> None:
        for stream in STREAMS:
            self._dropped[stream] += self._sizes[stream]
        self._dropped["log"] += self._position
        self._position = 0
        self._sizes = dict.fromkeys(STREAMS, 0)
        self._checkpoints = [_Checkpoint(0, 0, 0)]
        self.generation += 1
        if not keep_fd:
            os.close(self._fd)
            self._fd, self._inode = -1, -1

    def _scan(self) -> None:
        for line_end, line in _complete_lines(self._fd, self._position):
            record = parse_record(line)
            if record is not None:
                self._sizes[record.stream] += len(record.data)
            self._position = line_end
            if line_end - self._checkpoints[-1].position >= _CHECKPOINT_EVERY:
                self._checkpoints.append(_Checkpoint(line_end, self._sizes["stdout"],
                                                     self._sizes["stderr"]))

    def _read_stream(self, stream: str, offset: int, size: int) -> bytes:
        """`size` bytes of `stream` from `offset`, all within what is indexed."""
        at = bisect.bisect_right([getattr(c, stream) for c in self._checkpoints], offset) - 1
        checkpoint = self._checkpoints[max(at, 0)]
        stream_offset, out = getattr(checkpoint, stream), bytearray()
        for line_end, line in _complete_lines(self._fd, checkpoint.position):
            if line_end > self._position:
                break
            record = parse_record(line)
            if record is None or record.stream != stream:
                continue
            data = record.data
            if stream_offset + len(data) > offset:
                skip = max(0, offset - stream_offset)
                out += data[skip:skip + size - len(out)]
                if len(out) >= size:
                    break
            stream_offset += len(data)
        return bytes(out)
