"""The tree declared as data.

Each directory is a `Table` of rows, after Plan 9's Dirtab: a row names a file, says
what kind it is and which handlers serve it. A generic node layer (nodes.py, fs.py)
does lookups, inodes, attributes and caching for every table alike, and the README is
generated from the same rows, so adding a file to the tree is adding a row here.

Handlers are coroutines that receive the daemon's services, typed as the Protocols of
mountpoint/services.py (so mypy checks every call a row makes), and the `Scope` of the
directory: the names bound on the way down (`scope["ns"]`, `scope["id"]`). Most rows
need no handler function of their own: `show`, `take`, `opens` and `collection` below
make one from a lambda over a service call. Nothing here imports pyfuse3, so the
tables are plain data to test.
"""

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from base.errors import InvalidArgument
from mountpoint.ctl import VerbTable
from mountpoint.scope import Scope as Scope
from mountpoint.services import GrowingFile as GrowingFile
from mountpoint.services import Services as Services
from mountpoint.services import Sink as Sink
from mountpoint.services import StreamReader as StreamReader
from mountpoint.services import TreeView as TreeView
from mountpoint.writes import VALUE_LIMIT

T = TypeVar("T")

Read = Callable[[Services, Scope], Awaitable[str | bytes]]
Store = Callable[[Services, Scope, bytes], Awaitable[None]]


@dataclass(frozen=True)
class Value:
    """A file holding one value (or key value lines, or JSON). Read renders it
    afresh at each open. What one open file is written is one value, at most `limit`
    bytes, stored whole each time it is complete (at each line end; a `json` value
    once its object closes) and at close if it was not, so a refused value fails
    the write() that completed it (mountpoint/writes.py). A `task_state` value shows
    only its task's state (of `scope["id"]`, and `scope["exec"]` for an exec), so the
    kernel may keep its attributes: they are withdrawn at each change of that state
    (mountpoint/kernelcache.py). So may it a `written_only` value's, which changes
    only when it is written through the mount (a setting): the kernel drops them at
    each write, and the tree once more when the value is stored (at a line end or at
    close)."""

    name: str
    doc: str
    read: Read | None = None
    write: Store | None = None
    json: bool = False
    limit: int = VALUE_LIMIT
    task_state: bool = False
    written_only: bool = False

    @property
    def kept(self) -> bool:
        """Whether the kernel may keep its attributes (see above)."""
        return self.task_state or self.written_only


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
class Output:
    """A growing file, as a log file is: what was written so far, with its real size,
    seekable, at end of file where writing has got to; reads never wait (follow/ has
    the streams that do)."""

    name: str
    doc: str
    open: Callable[[Services, Scope], Awaitable[GrowingFile]]


@dataclass(frozen=True)
class Input:
    """A write-only file whose writes go straight to a `Sink` made at each open (a
    process's stdin): nothing is buffered, and the last close of the open file closes
    the sink, which is how `printf 'a\\n' > stdin` sends its bytes and then EOF."""

    name: str
    doc: str
    open: Callable[[Services, Scope], Awaitable[Sink]]


@dataclass(frozen=True)
class HostFile:
    """A read-only file whose bytes live in a host file (blobs): served with pread
    in a worker thread, cacheable while the path names the same host file (the bytes of
    a blob never change; the blob a name points at may)."""

    name: str
    doc: str
    path: Callable[[Services, Scope], Awaitable[str]]


@dataclass(frozen=True)
class HostTree:
    """A directory whose whole subtree is a host directory tree passed through (an
    image's or a container's root filesystem): real modes, owners, sizes, times,
    links and device nodes, served by the `TreeView` that `root` finds afresh for
    each request."""

    name: str
    doc: str
    root: Callable[[Services, Scope], Awaitable[TreeView]]
    # The lstat of the tree's own directory, which the service remembers until it
    # changes (None where it does not, and the tree lstats it in a thread each time):
    # a stat or listing of the directory then hops to no thread.
    remembered: Callable[[Services, Scope], Awaitable[os.stat_result | None]] | None = None


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
    With `join`, a nested level appends its name to the parameter (`a/b/c`).

    `removed` is the topic of the event the service publishes at every removal of a
    child that is not an rmdir through the mount (whose name the kernel drops
    itself), with the child's name as its id: the kernel may then cache the names,
    and the tree tells it to forget one at that event (mountpoint/kernelcache.py)."""

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
    removed: str | None = None

    def __post_init__(self) -> None:
        # An event names its object by namespace and id; the kernel cache finds
        # what it concerns by them (nodes.object_key), so no other binding may be
        # the object of one (a removal or a change it announces).
        announced = self.removed is not None or bool(self.table and self.table.changed_by)
        if announced and self.param not in ("ns", "id"):
            raise ValueError(f"children bound as {self.param!r} cannot be named by an event")


Entry = Value | Err | Ctl | Stream | Output | Input | HostFile | HostTree | Link | Dir


@dataclass(frozen=True)
class Table:
    """One directory: its fixed rows and, optionally, its dynamic children. `time`
    gives when the object the directory stands for was made or last changed (RFC
    3339): the mtime of the directory and the starting mtime of its files.
    `changed_by` names the topics of the events published whenever that time
    changes, naming the object by their container id in its namespace: the kernel
    may then cache the attributes of the directories it dates, and the tree tells it
    to drop them at each such event (mountpoint/kernelcache.py)."""

    doc: str
    entries: tuple[Entry, ...] = ()
    children: Children | None = None
    time: Callable[[Services, Scope], Awaitable[str | None]] | None = None
    changed_by: tuple[str, ...] = ()
    index: Mapping[str, Entry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {entry.name: entry for entry in self.entries}
        if len(index) != len(self.entries):
            raise ValueError(f"duplicate names in table {self.doc!r}")
        object.__setattr__(self, "index", index)

    def has_err(self) -> bool:
        return "err" in self.index and isinstance(self.index["err"], Err)


def access(node: Entry | Table) -> tuple[bool, bool]:
    """(readable, writable): what a row lets its users do. The one derivation behind a
    file's mode bits (fs.py) and its kind in the reference (readme.py), so `ls -l`
    and the docs never disagree. A directory is writable when objects can be made
    in it."""
    if isinstance(node, Table):
        children = node.children
        return True, children is not None and (
            children.mkdir is not None or children.create is not None)
    if isinstance(node, Value):
        return node.read is not None, node.write is not None
    if isinstance(node, Input):
        return False, True
    if isinstance(node, Stream):
        return True, node.input is not None
    return True, isinstance(node, Ctl | Link)


# -- row factories: the common shapes, so a plain file is one row ---------------------
#
# Each takes a function of (services, scope[, …]) that may be plain or return an
# awaitable (a lambda over an async service method returns its coroutine), so a row
# reads `Value("path", doc, read=show(lambda app, s: app.netns.path(s["netns"])))`.


async def _settle(result: Any) -> Any:
    return await result if isinstance(result, Awaitable) else result


def line(value: object) -> str:
    """A value as its file shows it: None or "" is an empty file, text that already
    ends its lines is kept, anything else is one line."""
    if value is None or value == "":
        return ""
    text = str(value)
    return text if text.endswith("\n") else text + "\n"


def align(rows: list[tuple[str, ...]]) -> str:
    """A table file's text: columns padded to their widest cell, three spaces apart
    (as ctr prints tables)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                     strict=True)).rstrip()
                   + "\n" for row in rows)


@overload
def show(get: Callable[[Services, Scope], Awaitable[T]], render: Callable[[T], str | bytes]
         ) -> Read: ...
@overload
def show(get: Callable[[Services, Scope], T], render: Callable[[T], str | bytes]) -> Read: ...
@overload
def show(get: Callable[[Services, Scope], object]) -> Read: ...
def show(get: Callable[[Services, Scope], Any], render: Callable[[Any], str | bytes] = line
         ) -> Read:
    """A Value's read: what `get` returns (or its awaitable gives), rendered (by
    default as one line, see `line`)."""
    async def read(services: Services, scope: Scope) -> str | bytes:
        return render(await _settle(get(services, scope)))

    return read


def text_of(data: bytes, strip: bool = True) -> str:
    """The text a value file was written, UTF-8 only, without its line end."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidArgument("not UTF-8 text") from None
    return text.strip() if strip else text


def take(put: Callable[[Services, Scope, str], Awaitable[None] | None],
         strip: bool = True) -> Store:
    """A Value's write: the written text (stripped unless told not to) handed to `put`."""
    async def store(services: Services, scope: Scope, data: bytes) -> None:
        await _settle(put(services, scope, text_of(data, strip)))

    return store


def opens(get: Callable[[Services, Scope], StreamReader | Awaitable[StreamReader]]
          ) -> Callable[[Services, Scope], Awaitable[StreamReader]]:
    """A Stream's open from a function returning its reader (or an awaitable of it)."""
    async def open_(services: Services, scope: Scope) -> StreamReader:
        reader: StreamReader = await _settle(get(services, scope))
        return reader

    return open_


def collection(
    param: str, doc: str, table: Table,
    names: Callable[[Services, Scope], Iterable[str] | Awaitable[Iterable[str]]],
    exists: Callable[[Services, Scope, str], bool | Awaitable[bool]] | None = None,
    make: Callable[[Services, Scope, str], Awaitable[None] | None] | None = None,
    remove: Callable[[Services, Scope, str], Awaitable[None] | None] | None = None,
    removed: str | None = None,
) -> Children:
    """The Children of a directory of objects a service keeps: listed by `names`,
    admitted by `exists`, made by mkdir (`make`) and deleted by rmdir (`remove`);
    `removed` as in Children."""
    async def list_(services: Services, scope: Scope) -> Iterable[str]:
        found: Iterable[str] = await _settle(names(services, scope))
        return found

    def adapt(f: Callable[[Services, Scope, str], Any] | None
              ) -> Callable[[Services, Scope, str], Awaitable[Any]] | None:
        if f is None:
            return None

        async def call(services: Services, scope: Scope, name: str) -> Any:
            return await _settle(f(services, scope, name))

        return call

    return Children(param, doc, list=list_, table=table, exists=adapt(exists),
                    mkdir=adapt(make), rmdir=adapt(remove), removed=removed)
