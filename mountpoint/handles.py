"""The kinds of open file the tree hands out, one per file kind: what each open
remembers between its open, reads, writes and release (fs.py keeps them by fh)."""

from dataclasses import dataclass, field

import trio

from mountpoint.nodes import Node
from mountpoint.streams import OpenStream
from mountpoint.table import GrowingFile, Sink
from mountpoint.writes import Lines, Whole


@dataclass
class ValueHandle:
    """One open of a value, ctl or err file: what it read, and what it was written.
    A value refused once stays refused for this open file (`refused`, an errno).
    `writer`: an open of a ctl file for writing, which keeps its inode to itself."""

    node: Node
    pid: int
    uid: int  # the opener's, whose ctl lines run as its (ctl.WRITER_UID)
    writer: bool = False
    content: bytes = b""
    lines: Lines = field(default_factory=Lines)
    value: Whole | None = None
    refused: int | None = None


@dataclass
class StreamHandle:
    node: Node
    stream: OpenStream
    pid: int  # the opener, whose signals release its blocked writes
    order: trio.Lock = field(default_factory=trio.Lock)

    @property
    def sink(self) -> Sink | None:
        return self.stream.sink


@dataclass
class OutputHandle:
    node: Node
    file: GrowingFile


@dataclass
class HostHandle:
    node: Node
    fd: int


@dataclass
class SinkHandle:
    """One open of a sink (stdin, an ingest): closed once, at release. Its writes
    take `order` so that one a signal left running still comes before the next."""

    node: Node
    sink: Sink
    pid: int
    order: trio.Lock = field(default_factory=trio.Lock)


Handle = ValueHandle | StreamHandle | OutputHandle | HostHandle | SinkHandle
