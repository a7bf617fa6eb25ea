"""Reading conmon's k8s-file logs: one stream's bytes, or the combined timestamped log.

conmon writes each chunk of output as `<RFC3339Nano> stdout|stderr F|P <text>\\n`, where
F ends a line (the newline was the process's) and P is a partial line. A stream's bytes
are the texts of its records, plus a newline after each F.

Bound: conmon's `--log-size-max` keeps the log under a size by starting it afresh when
the next write would pass the bound (a rotation that keeps no old generation). Offsets
count bytes of the current log, so after such a restart readers start again at 0; the
runtime sets the bound high (see tasks.DEFAULT_LOG_SIZE_MAX) so that this is rare.
"""

import os
import sys
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


@dataclass
class _Cursor:
    """Where the log was read up to: file identity, byte position, and stream offset."""

    inode: int = -1
    position: int = 0
    offset: int = 0


class LogReader:
    """Random access to the streams of one growing log file.

    Reads usually continue where the last one ended (a follower's `cat`), so each stream
    keeps a cursor and a read from at or past it never rescans the file; a read from
    before the cursor scans from the start, streaming in 64 KiB chunks.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cursors: dict[str, _Cursor] = {}
        self._lock = threading.Lock()

    def read_combined(self, offset: int, size: int) -> bytes:
        """The timestamped log itself, as conmon wrote it."""
        try:
            with open(self.path, "rb") as f:
                return os.pread(f.fileno(), size, offset)
        except FileNotFoundError:
            return b""

    def read_stream(self, stream: str, offset: int, size: int) -> bytes:
        """Up to `size` bytes of `stream` (stdout or stderr) from byte `offset`; fewer
        (or none) when the process has not written that much yet."""
        if stream not in STREAMS:
            raise ValueError(stream)
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return b""
            try:
                return self._read(fd, stream, offset, size)
            finally:
                os.close(fd)

    def length(self, stream: str) -> int:
        """How many bytes of `stream` the log holds now (where a reader that wants
        only what comes next starts)."""
        if stream not in STREAMS:
            raise ValueError(stream)
        with self._lock:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return 0
            try:
                self._read(fd, stream, sys.maxsize, 1)  # moves the cursor to the end
                return self._cursors[stream].offset
            finally:
                os.close(fd)

    def _read(self, fd: int, stream: str, offset: int, size: int) -> bytes:
        inode = os.fstat(fd).st_ino
        cursor = self._cursors.get(stream)
        if cursor is None or cursor.inode != inode or cursor.offset > offset:
            cursor = _Cursor(inode)
        out = bytearray()
        stream_offset = cursor.offset  # invariant: never past offset + len(out)
        for line_end, line in _complete_lines(fd, cursor.position):
            record = parse_record(line)
            data = record.data if record is not None and record.stream == stream else b""
            skip = offset + len(out) - stream_offset
            if skip < len(data):
                out += data[skip : skip + size - len(out)]
            if stream_offset + len(data) > offset + len(out):
                break  # `size` reached inside this record: the cursor stays before it
            stream_offset += len(data)
            cursor = _Cursor(inode, line_end, stream_offset)
            if len(out) >= size:
                break
        self._cursors[stream] = cursor
        return bytes(out)


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
