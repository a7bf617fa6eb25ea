"""The tree declared as data.

Each directory is a `Table` of rows, after Plan 9's Dirtab: a row names a file, says
what kind it is and which handlers serve it. A generic node layer (nodes.py, fs.py)
does lookups, inodes, attributes and caching for every table alike, and the README is
generated from the same rows, so adding a file to the tree is adding a row here.

Handlers are coroutines that receive the daemon's services and the `Scope` of the
directory: the names bound on the way down (`scope["ns"]`, `scope["id"]`). Nothing here
imports pyfuse3, so the tables are plain data to test.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mountpoint.ctl import VerbTable


class Scope(Mapping[str, str]):
    """The names a directory was reached by, e.g. {"ns": "default", "id": "web"}, and
    its path in the tree (which keys its `err` line)."""

    __slots__ = ("_values", "path")

    def __init__(self, path: tuple[str, ...] = (), values: Mapping[str, str] | None = None):
        self.path = path
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def child(self, name: str, param: str | None = None, value: str | None = None) -> "Scope":
        values = dict(self._values)
        if param is not None:
            values[param] = name if value is None else value
        return Scope((*self.path, name), values)

    def __repr__(self) -> str:
        return f"Scope({'/'.join(self.path)!r}, {self._values!r})"


Services = Any  # the daemon's service container (cdfs.app.App); typed loosely to keep layers apart
Read = Callable[[Services, Scope], Awaitable[str | bytes]]
Store = Callable[[Services, Scope, bytes], Awaitable[None]]


class StreamReader(Protocol):
    """What a stream file's open returns. `read` blocks until data is there and
    returns b"" at the end; it must be safe to cancel while it waits."""

    async def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """What a sink file's open returns: bytes written at offsets, acted on at close."""

    async def write(self, offset: int, data: bytes) -> None: ...

    async def close(self) -> None: ...


def ends_with_newline(buffer: bytes) -> bool:
    """A value is complete once its line is: `echo value > file` writes it whole."""
    return buffer.endswith(b"\n")


@dataclass(frozen=True)
class Value:
    """A file holding one value (or key value lines, or JSON). Read renders it
    afresh at each open; a write is stored once the buffered bytes are `complete`
    (at the latest at close), so a refused value fails the write() itself."""

    name: str
    doc: str
    read: Read | None = None
    write: Store | None = None
    complete: Callable[[bytes], bool] = ends_with_newline


@dataclass(frozen=True)
class Err:
    """The directory's `err` file: the last refused request there, in one line."""

    name: str = "err"
    doc: str = "the last refused write in this directory, in one line quoting it"


@dataclass(frozen=True)
class Ctl:
    """A ctl file: text verbs, one per line, dispatched through a verb table;
    reading it prints the table's help."""

    name: str
    doc: str
    verbs: VerbTable


@dataclass(frozen=True)
class Stream:
    """A file whose reads block until there is data, and end cleanly. With `input`
    it is writable too: each open for writing gets a Sink, as an Input file does (a
    terminal: what it shows is read, keystrokes are written)."""

    name: str
    doc: str
    open: Callable[[Services, Scope], Awaitable[StreamReader]]
    input: "Callable[[Services, Scope], Awaitable[Sink]] | None" = None


@dataclass(frozen=True)
class Input:
    """A write-only file whose writes go straight to a `Sink` made at each open (a
    process's stdin): nothing is buffered, and the first close after writing closes
    the sink, which is how `printf 'a\\n' > stdin` sends its bytes and then EOF."""

    name: str
    doc: str
    open: Callable[[Services, Scope], Awaitable[Sink]]


@dataclass(frozen=True)
class HostFile:
    """A read-only file whose bytes live in a host file (blobs): served with pread
    in a worker thread, cacheable since the bytes never change under that name."""

    name: str
    doc: str
    path: Callable[[Services, Scope], Awaitable[str]]


@dataclass(frozen=True)
class Link:
    """A symbolic link."""

    name: str
    doc: str
    target: Callable[[Services, Scope], Awaitable[str]] | str


@dataclass(frozen=True)
class Dir:
    """A fixed subdirectory, sharing its parent's scope."""

    name: str
    doc: str
    table: "Table"


@dataclass(frozen=True)
class Children:
    """The dynamic entries of a directory: objects created by mkdir (or create),
    deleted by rmdir (or unlink), each a directory laid out by `table` (or a file
    for `file`), reached with its name bound as `scope[param]`.

    `lookup` may return another table for a name (multi-level names such as image
    references); by default any name that `list` yields or `exists` admits is a child.
    With `join`, a nested level appends its name to the parameter (`a/b/c`)."""

    param: str
    doc: str
    list: Callable[[Services, Scope], Awaitable[Iterable[str]]]
    table: "Table | None" = None
    file: "Value | HostFile | Link | None" = None
    exists: Callable[[Services, Scope, str], Awaitable[bool]] | None = None
    lookup: Callable[[Services, Scope, str], Awaitable["Table | None"]] | None = None
    mkdir: Callable[[Services, Scope, str], Awaitable[None]] | None = None
    rmdir: Callable[[Services, Scope, str], Awaitable[None]] | None = None
    create: Callable[[Services, Scope, str], Awaitable[Sink]] | None = None
    unlink: Callable[[Services, Scope, str], Awaitable[None]] | None = None
    join: bool = False


Entry = Value | Err | Ctl | Stream | Input | HostFile | Link | Dir


@dataclass(frozen=True)
class Table:
    """One directory: its fixed rows and, optionally, its dynamic children."""

    doc: str
    entries: tuple[Entry, ...] = ()
    children: Children | None = None
    index: Mapping[str, Entry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {entry.name: entry for entry in self.entries}
        if len(index) != len(self.entries):
            raise ValueError(f"duplicate names in table {self.doc!r}")
        object.__setattr__(self, "index", index)

    def has_err(self) -> bool:
        return "err" in self.index and isinstance(self.index["err"], Err)
