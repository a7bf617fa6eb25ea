"""Apply one OCI layer tar onto a directory, never touching anything outside it.

Layers are hostile input and cdfs runs as root, so tarfile is used only to parse
headers; every file operation here goes through directory fds, one path component
at a time, with O_NOFOLLOW: a name can never be resolved through a symlink, `..`
is refused, and an absolute name is taken relative to the target (as tar does).
An entry whose parent path passes through a symlink or a non-directory is refused
rather than followed; layer tars produced by a diff never need that.

Whiteouts (OCI image-spec layer.md) are applied in one of two modes:
  "overlay" -- the target is an overlayfs upper dir: `.wh.NAME` becomes a 0/0 char
              device and `.wh..wh..opq` the xattr trusted.overlay.opaque=y;
  "delete"  -- the target is a full copy of the parent layers: `.wh.NAME` deletes
              NAME and `.wh..wh..opq` deletes what this layer did not itself add.
Layer-supplied `trusted.overlay.*` xattrs are dropped: they would let a layer forge
whiteouts or redirects in the overlay.

Creating an inode is most of the cost of a layer (kernel time: see bench/README.md),
so new regular files of up to a MiB are created by a few threads (_Creators) while
the parsing thread goes on: it still resolves every parent dir fd, checks the room
for what is in flight, and waits for them all before anything that could meet one of
them (a name already in flight, a removal, a hard link, a whiteout, the end). Where
the target began empty (every overlay layer), it knows what each name is from what
it made itself (_Made) rather than from an lstat, which would wait for the directory
lock a creator holds.
"""

import errno
import os
import shutil
import stat
import tarfile
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from base.errors import InvalidArgument
from content.compression import LayerStream, Limits, Source
from content.space import require_room

WhiteoutMode = Literal["overlay", "delete"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_CHUNK = 1 << 20
_PATH_DIR = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_READ_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Regular files handed to creator threads: up to this size, this many threads per layer,
# and at most this many bytes (and files) in flight.
_SMALL_FILE = 1 << 20
_CREATORS = 2
_IN_FLIGHT_BYTES = 8 << 20
_IN_FLIGHT_FILES = 64  # each holds a dup of its parent fd
# Names a layer may make below an empty target before its kind of each is forgotten
# (_Made): about 100 bytes each.
_MADE_MAX = 100_000

Parts = tuple[str, ...]


def entry_parts(name: str) -> Parts:
    """The components of a tar entry name, relative to the target. `.` and empty
    components vanish, a leading `/` is dropped; `..` anywhere is refused."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InvalidArgument(f'layer entry escapes the target: "{name}"')
    return parts


def whiteout_target(parts: Parts) -> str | None:
    """For a whiteout entry, the name it deletes in its directory ("" for an opaque
    marker); None for an ordinary entry. Refuses whiteouts that name `.` or `..`."""
    if not parts or not parts[-1].startswith(WHITEOUT_PREFIX):
        return None
    base = parts[-1]
    if base == OPAQUE_MARKER:
        return ""
    victim = base[len(WHITEOUT_PREFIX):]
    if victim in ("", ".", ".."):
        raise InvalidArgument(f'bad whiteout: "{"/".join(parts)}"')
    return victim


def apply_layer(source: Source, target: Path, media_type: str, whiteouts: WhiteoutMode,
                limits: Limits | None = None, lowers: Sequence[Path] = ()) -> str:
    """Apply the layer read from `source` (compressed as `media_type` says) onto
    `target` and return its diff_id, the sha256 of the uncompressed tar.
    `lowers` (overlay mode: the parent layers' dirs, nearest first) lend their
    owner, mode and mtime to directories the layer implies without listing, so an
    upper dir created for `tmp/.wh.x` does not turn a 1777 /tmp into 0755.
    InvalidArgument for a malformed, hostile or over-limit layer; the target may
    then hold part of the layer, so callers apply into a snapshot they can drop."""
    return _apply(source, target, media_type, whiteouts, limits, lowers).diff_id


@dataclass(frozen=True)
class Applied:
    """A layer applied before its lowers were there: its diff_id and the directories
    it implied without listing them (for adopt_lower_dirs)."""

    diff_id: str
    implied: tuple[Parts, ...]


def apply_layer_detached(source: Source, target: Path, media_type: str,
                         limits: Limits | None = None) -> Applied:
    """Apply an overlay layer whose parents are still being applied elsewhere: an
    upper dir holds only the layer's own changes, so only the implied directories'
    metadata depends on the lowers, and adopt_lower_dirs gives it to them later."""
    return _apply(source, target, media_type, "overlay", limits, ())


def adopt_lower_dirs(target: Path, implied: Sequence[Parts], lowers: Sequence[Path]) -> None:
    """Give the directories a detached apply implied the owner, mode and times of the
    same directories in `lowers` (nearest first), as apply_layer would have with
    them. Resolved like every other name: one component at a time, O_NOFOLLOW."""
    root_fd = os.open(target, _PATH_DIR)
    lower_fds: list[int] = []
    try:
        lower_fds.extend(os.open(lower, _PATH_DIR) for lower in lowers)
        for parts in implied:
            fd = _lookup_dir(root_fd, parts)
            if fd is None:  # a later entry of the layer removed or replaced it
                continue
            try:
                times = _take_lower_metadata(lower_fds, parts, fd)
                if times is not None:
                    os.utime(f"/proc/self/fd/{fd}", ns=times)
            finally:
                os.close(fd)
    finally:
        for fd in (root_fd, *lower_fds):
            os.close(fd)


def _apply(source: Source, target: Path, media_type: str, whiteouts: WhiteoutMode,
           limits: Limits | None, lowers: Sequence[Path]) -> Applied:
    if whiteouts not in ("overlay", "delete"):
        raise InvalidArgument(f'unknown whiteout mode: "{whiteouts}"')
    limits = limits or Limits()
    root_fd = os.open(target, _PATH_DIR)
    lower_fds: list[int] = []
    try:
        lower_fds.extend(os.open(lower, _PATH_DIR) for lower in lowers)
        with LayerStream(source, media_type, limits) as stream:
            extractor = _Extractor(root_fd, whiteouts, lower_fds)
            try:
                archive = tarfile.TarFile(fileobj=stream, mode="r",  # type: ignore[arg-type]
                                          encoding="utf-8", errors="surrogateescape")
                entries = 0
                while (member := archive.next()) is not None:
                    # tarfile would keep every header in memory
                    archive.members.clear()  # type: ignore[attr-defined]
                    entries += 1
                    if entries > limits.max_entries:
                        raise InvalidArgument(f"layer has more than {limits.max_entries} entries")
                    extractor.apply(member, stream)
                extractor.finish()
            except tarfile.TarError as exc:
                raise InvalidArgument(f"layer is not a valid tar: {exc}") from None
            finally:
                extractor.close()
            return Applied(stream.finish(), tuple(extractor.implied))
    finally:
        for fd in (root_fd, *lower_fds):
            os.close(fd)


class _Extractor:
    """Applies entries one by one below `root_fd`. Holds one cached parent dir fd,
    since tar entries come grouped by directory."""

    def __init__(self, root_fd: int, whiteouts: WhiteoutMode, lower_fds: list[int]) -> None:
        self.root_fd = root_fd
        self.whiteouts = whiteouts
        self.lower_fds = lower_fds
        self._cached: tuple[Parts, int] | None = None
        self._dir_times: dict[Parts, tuple[int, int]] = {}
        self._unpacked: set[Parts] = set()
        #: directories created for an entry below them, never listed (an ordered set)
        self.implied: dict[Parts, None] = {}
        self._creators = _Creators()
        self._made = _Made(complete=_is_empty(root_fd))

    # -- resolution --------------------------------------------------------------
    def _open_dir(self, parts: Parts, create: bool) -> int | None:
        """A borrowed O_PATH fd of directory `parts`, created (0755) if missing and
        `create`, else None if missing. Never follows a symlink."""
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        self._forget_cached()
        if any(self._creators.has(parts[:depth]) for depth in range(1, len(parts) + 1)):
            self._creators.drain()  # a file of that name may be on its way
        fd = os.dup(self.root_fd)
        try:
            for depth, part in enumerate(parts):
                try:
                    next_fd = os.open(part, _PATH_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    next_fd = os.open(part, _PATH_DIR, dir_fd=fd)
                    self._made.add(parts[: depth + 1], is_dir=True)
                    self.implied[parts[: depth + 1]] = None
                    times = _take_lower_metadata(self.lower_fds, parts[: depth + 1], next_fd)
                    if times is not None:
                        self._dir_times[parts[: depth + 1]] = times
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    raise InvalidArgument(
                        f'layer path passes through a non-directory: "{"/".join(parts)}"'
                    ) from None
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        self._cached = (parts, fd)
        return fd

    def _keep_times(self, parts: Parts, fd: int) -> None:
        """A directory the layer changes without listing keeps its times (as in the
        overlay, where the upper entry lands beside the untouched lower dir)."""
        if parts not in self._dir_times:
            info = os.fstat(fd)
            self._dir_times[parts] = (info.st_atime_ns, info.st_mtime_ns)

    def _forget_cached(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def close(self) -> None:
        """Stop the creators (waiting for those at work) and drop the cached fd."""
        self._creators.close()
        self._forget_cached()

    # -- entries -----------------------------------------------------------------
    def apply(self, member: tarfile.TarInfo, stream: LayerStream) -> None:
        parts = entry_parts(member.name)
        try:
            victim = whiteout_target(parts)
            if victim is not None:
                self._whiteout(parts[:-1], victim)
            elif not parts:
                self._root(member)
            else:
                self._entry(parts, member, stream)
        except OSError as exc:
            raise InvalidArgument(
                f'cannot apply layer entry "{member.name}": {exc.strerror}') from None

    def _root(self, member: tarfile.TarInfo) -> None:
        """The `./` entry carries the target directory's own metadata."""
        if not member.isdir():
            raise InvalidArgument(f'layer root entry is not a directory: "{member.name}"')
        fd = os.open(".", _READ_DIR, dir_fd=self.root_fd)
        try:
            _set_metadata_fd(fd, member)
        finally:
            os.close(fd)
        self._dir_times[()] = _times(member)

    def _entry(self, parts: Parts, member: tarfile.TarInfo, stream: LayerStream) -> None:
        parent = self._open_dir(parts[:-1], create=True)
        assert parent is not None
        self._keep_times(parts[:-1], parent)
        name = parts[-1]
        if self._creators.has(parts):
            self._creators.drain()
        is_dir = self._existing(parent, parts)
        if (is_dir is None and member.isreg() and member.sparse is None
                and member.size <= _SMALL_FILE):
            self._made.add(parts, is_dir=False)
            self._creators.create(parts, parent, member, stream)
            self._mark_unpacked(parts)
            return
        if member.isdir():
            if is_dir is False:
                self._remove(parent, name, False, parts)
            if not is_dir:
                os.mkdir(name, 0o700, dir_fd=parent)
                self._made.add(parts, is_dir=True)
            fd = os.open(name, _READ_DIR, dir_fd=parent)
            try:
                _set_metadata_fd(fd, member)
            finally:
                os.close(fd)
            self._dir_times[parts] = _times(member)
            self.implied.pop(parts, None)
        else:
            if is_dir is not None:
                self._remove(parent, name, is_dir, parts)
            self._made.add(parts, is_dir=False)
            self._create(parent, name, member, stream)
        self._mark_unpacked(parts)

    def _existing(self, parent: int, parts: Parts) -> bool | None:
        """Whether `parts` (in `parent`) is a directory, None if it is missing: from
        what this layer made where the target began empty, else from an lstat."""
        if self._made.complete:
            return self._made.kind(parts)
        info = _lstat(parts[-1], parent)
        return None if info is None else stat.S_ISDIR(info.st_mode)

    def _mark_unpacked(self, parts: Parts) -> None:
        """Remember `parts` and its ancestors as this layer's: an opaque marker in
        delete mode keeps them (overlay mode needs no such memory)."""
        if self.whiteouts != "delete":
            return
        while parts and parts not in self._unpacked:
            self._unpacked.add(parts)
            parts = parts[:-1]

    def _create(self, parent: int, name: str, member: tarfile.TarInfo,
                stream: LayerStream) -> None:
        if member.isreg():
            if member.sparse is not None:
                raise InvalidArgument(f'sparse layer entries are not supported: "{member.name}"')
            fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
            try:
                require_room(fd, member.size + self._creators.bytes)
                _copy(stream, fd, member.size, member.name)
                _set_metadata_fd(fd, member)
            finally:
                os.close(fd)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=_times(member), dir_fd=parent, follow_symlinks=False)
        elif member.islnk():
            self._hardlink(parent, name, member)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = (stat.S_IFCHR if member.ischr() else
                    stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
            os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                     dir_fd=parent)
            self._set_metadata_at(parent, name, member)
        else:
            raise InvalidArgument(
                f'unsupported layer entry type {member.type!r}: "{member.name}"')

    def _hardlink(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        """Link to an entry already inside the target, resolved as strictly as any
        other name (a link through a symlink or out of the target is refused)."""
        self._creators.drain()  # the source may be on its way
        source = entry_parts(member.linkname)
        if not source:
            raise InvalidArgument(f'hardlink to the layer root: "{member.name}"')
        link_parent = os.dup(parent)  # resolving the source moves the dir cache
        try:
            source_parent = self._open_dir(source[:-1], create=False)
            if source_parent is None:
                raise InvalidArgument(f'hardlink to a missing entry: "{member.linkname}"')
            os.link(source[-1], name, src_dir_fd=source_parent, dst_dir_fd=link_parent,
                    follow_symlinks=False)
        finally:
            os.close(link_parent)

    def _whiteout(self, dir_parts: Parts, victim: str) -> None:
        self._creators.drain()
        overlay = self.whiteouts == "overlay"
        parent = self._open_dir(dir_parts, create=overlay)
        if parent is None:
            return
        self._keep_times(dir_parts, parent)
        if overlay and victim:
            is_dir = self._existing(parent, (*dir_parts, victim))
            if is_dir is not None:
                self._remove(parent, victim, is_dir, (*dir_parts, victim))
            self._made.add((*dir_parts, victim), is_dir=False)
            os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        elif overlay:
            fd = os.open(".", _READ_DIR, dir_fd=parent)
            try:
                os.setxattr(fd, "trusted.overlay.opaque", b"y")
            finally:
                os.close(fd)
        elif victim:
            is_dir = self._existing(parent, (*dir_parts, victim))
            if is_dir is not None:
                self._remove(parent, victim, is_dir, (*dir_parts, victim))
        else:
            self._empty_except_unpacked(parent, dir_parts)

    def _empty_except_unpacked(self, dir_fd: int, dir_parts: Parts) -> None:
        """An opaque directory in delete mode: drop all the lower layers put there,
        keeping what this layer has already added."""
        fd = os.open(".", _READ_DIR, dir_fd=dir_fd)
        try:
            for entry in list(os.scandir(fd)):
                child = (*dir_parts, entry.name)
                info = entry.stat(follow_symlinks=False)
                if child not in self._unpacked:
                    self._remove(fd, entry.name, stat.S_ISDIR(info.st_mode), child)
                elif stat.S_ISDIR(info.st_mode):
                    sub = os.open(entry.name, _PATH_DIR, dir_fd=fd)
                    try:
                        self._empty_except_unpacked(sub, child)
                    finally:
                        os.close(sub)
        finally:
            os.close(fd)

    def _remove(self, parent: int, name: str, is_dir: bool, parts: Parts) -> None:
        """Remove `name` (at `parts`) in `parent` without following symlinks; a
        directory goes with everything below it."""
        self._creators.drain()
        self._made.remove(parts)
        if is_dir:
            if self._cached is not None and self._cached[0][: len(parts)] == parts:
                self._forget_cached()
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)

    # -- metadata ----------------------------------------------------------------
    def _set_metadata_at(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        """Metadata of a device or fifo, which must not be opened."""
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
        for key, value in _xattrs(member):
            os.setxattr(f"/proc/self/fd/{parent}/{name}", key, value, follow_symlinks=False)
        os.utime(name, ns=_times(member), dir_fd=parent, follow_symlinks=False)

    def finish(self) -> None:
        """Directory times last: creating their children changed them."""
        self._creators.drain()
        for parts, times in self._dir_times.items():
            try:
                fd = self._open_dir(parts, create=False)
            except InvalidArgument:  # a later entry replaced it with a non-directory
                continue
            if fd is not None:
                os.utime(f"/proc/self/fd/{fd}", ns=times)


class _Made:
    """What an apply has made below a target that was empty when it began: for each
    directory made, its entries' names and whether each is a directory. While it is
    complete it says whether a name exists without asking the kernel: an lstat of a
    missing name waits for its directory's lock, which a creator holds for the whole
    of a create. Past _MADE_MAX names it stops (memory), and lstat answers again.
    It only spares a look-up: files are still made with O_EXCL|O_NOFOLLOW below
    parents resolved with O_NOFOLLOW, so a wrong answer would fail the layer, never
    write outside it."""

    def __init__(self, complete: bool) -> None:
        self._dirs: dict[Parts, dict[str, bool]] | None = {(): {}} if complete else None
        self._count = 0

    @property
    def complete(self) -> bool:
        return self._dirs is not None

    def kind(self, parts: Parts) -> bool | None:
        """Whether `parts` is a directory; None if it is missing."""
        assert self._dirs is not None
        siblings = self._dirs.get(parts[:-1])
        return None if siblings is None else siblings.get(parts[-1])

    def add(self, parts: Parts, is_dir: bool) -> None:
        if self._dirs is None:
            return
        self._count += 1
        if self._count > _MADE_MAX:
            self._dirs = None
            return
        self._dirs.setdefault(parts[:-1], {})[parts[-1]] = is_dir
        if is_dir:
            self._dirs.setdefault(parts, {})

    def remove(self, parts: Parts) -> None:
        """Forget `parts` and, for a directory, everything below it."""
        if self._dirs is None or not self._dirs.get(parts[:-1], {}).pop(parts[-1], False):
            return
        below = [parts]
        while below:
            current = below.pop()
            for name, is_dir in self._dirs.pop(current, {}).items():
                if is_dir:
                    below.append((*current, name))


class _Creators:
    """New small regular files, created and written by a few threads. The parsing
    thread hands each one over with its data read, a dup of its resolved parent fd
    and the room for it checked together with all in flight; a failure is raised in
    the parsing thread at its next hand-over or drain."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._flight: deque[tuple[Future[None], Parts, int, int]] = deque()
        self._names: dict[Parts, int] = {}
        self.bytes = 0  # of files in flight

    def has(self, parts: Parts) -> bool:
        return parts in self._names

    def create(self, parts: Parts, parent: int, member: tarfile.TarInfo,
               stream: LayerStream) -> None:
        while self._flight and (len(self._flight) >= _IN_FLIGHT_FILES
                                or self.bytes + member.size > _IN_FLIGHT_BYTES):
            self._land()
        require_room(parent, member.size + self.bytes)
        data = stream.read(member.size)
        if len(data) != member.size:
            raise InvalidArgument(f'layer ends inside the data of "{member.name}"')
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_CREATORS, thread_name_prefix="cdfs-create")
        fd = os.dup(parent)
        try:
            job = self._pool.submit(_create_file, fd, parts[-1], data, member)
        except BaseException:
            os.close(fd)
            raise
        self._flight.append((job, parts, fd, member.size))
        self._names[parts] = self._names.get(parts, 0) + 1
        self.bytes += member.size
        while self._flight and self._flight[0][0].done():
            self._land()

    def drain(self) -> None:
        """Wait for every file in flight; raise the first failure."""
        while self._flight:
            self._land()

    def _land(self) -> None:
        job, parts, fd, size = self._flight.popleft()
        try:
            job.result()
        finally:
            os.close(fd)
            self.bytes -= size
            if self._names[parts] == 1:
                del self._names[parts]
            else:
                self._names[parts] -= 1

    def close(self) -> None:
        """Cancel what has not started, wait for what has, close every fd."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        while self._flight:
            _, _, fd, _ = self._flight.popleft()
            os.close(fd)
        self._names.clear()
        self.bytes = 0


def _create_file(parent: int, name: str, data: bytes, member: tarfile.TarInfo) -> None:
    """A creator thread's work: the new file `name` in `parent`, never through a link."""
    try:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            _set_metadata_fd(fd, member)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InvalidArgument(
            f'cannot apply layer entry "{member.name}": {exc.strerror}') from None


def _set_metadata_fd(fd: int, member: tarfile.TarInfo) -> None:
    """Owner, then mode (chown clears setuid), then xattrs (chown clears file
    capabilities), then times (writing changes them)."""
    os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)
    for key, value in _xattrs(member):
        os.setxattr(fd, key, value)
    if not member.isdir():
        os.utime(fd, ns=_times(member))


def _take_lower_metadata(lower_fds: Sequence[int], parts: Parts,
                         fd: int) -> tuple[int, int] | None:
    """Give directory `fd` (at `parts`) the owner and mode of the same directory in
    the nearest lower that has it, and return that one's times (None if none has)."""
    for lower_fd in lower_fds:
        below = _lookup_dir(lower_fd, parts)
        if below is None:
            continue
        try:
            info = os.fstat(below)
        finally:
            os.close(below)
        path = f"/proc/self/fd/{fd}"
        os.chown(path, info.st_uid, info.st_gid)
        os.chmod(path, stat.S_IMODE(info.st_mode))
        return info.st_atime_ns, info.st_mtime_ns
    return None


def _lookup_dir(root_fd: int, parts: Parts) -> int | None:
    """An O_PATH fd of directory `parts` below `root_fd`, or None if it is missing
    or any component is not a real directory."""
    fd = os.dup(root_fd)
    for part in parts:
        try:
            next_fd = os.open(part, _PATH_DIR, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = next_fd
    return fd


def _is_empty(dir_fd: int) -> bool:
    fd = os.open(".", _READ_DIR, dir_fd=dir_fd)
    try:
        with os.scandir(fd) as entries:
            return next(entries, None) is None
    finally:
        os.close(fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime = int(float(member.mtime) * 1_000_000_000)
    return mtime, mtime


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """PAX SCHILY.xattr.* records, minus the overlay's own."""
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            if not name.startswith(_OVERLAY_XATTR_PREFIX):
                found.append((name, value.encode("utf-8", "surrogateescape")))
    return found


def _copy(stream: LayerStream, fd: int, size: int, name: str) -> None:
    """Stream `size` bytes of member data into `fd`, in chunks."""
    left = size
    while left:
        data = stream.read(min(left, _CHUNK))
        if not data:
            raise InvalidArgument(f'layer ends inside the data of "{name}"')
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        left -= len(data)
