"""The content-addressed store: blobs named by their sha256, written through ingests.

Like containerd's content.Store it knows nothing of namespaces or images: it holds
bytes. A blob is only ever created by committing an ingest, which hashes what was
written, checks it against what the writer expected, fsyncs and renames the file
into blobs/ so that a crash never leaves a partial blob under a digest name.
Every method blocks (disk I/O): call them from a worker thread, never the trio loop.
"""

import builtins
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from base.errors import Busy, InvalidArgument, NotFound
from content.descriptor import digest_hex, parse_digest
from content.space import require_room

_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int


@dataclass(frozen=True)
class IngestStatus:
    """An ingest in progress: its name, bytes written so far and what it expects."""

    ref: str
    offset: int
    expected: str | None
    total: int | None


def _check_ref(ref: str) -> str:
    if not ref or len(ref) > 255 or "\0" in ref or "/" in ref or ref in (".", ".."):
        raise InvalidArgument(f'bad ingest name: "{ref}"')
    return ref


class ContentStore:
    """Blobs under `root`/blobs/sha256/<hex>, ingests under `root`/ingest/<ref>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)  # an ingest's writer closed
        self._active: dict[str, Writer] = {}

    # -- blobs ---------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """The file holding `digest`; NotFound if the store lacks it."""
        path = self.blobs / digest_hex(digest)
        if not path.exists():
            raise NotFound(f'no blob "{digest}"')
        return path

    def has(self, digest: str) -> bool:
        return (self.blobs / digest_hex(digest)).exists()

    def reuse(self, digest: str) -> bool:
        """Whether the store has `digest`, asked by a writer that will use the blob
        instead of writing it: the blob's change time becomes now, so gc keeps it for
        the lease in flight of the work that found it (a lease covers everything that
        changed since it began; see `delete_unchanged_since`)."""
        with self._lock:
            try:
                os.utime(self.blobs / digest_hex(digest))
            except FileNotFoundError:
                return False
            return True

    def info(self, digest: str) -> BlobInfo:
        return BlobInfo(digest, self.blob_path(digest).stat().st_size)

    def read(self, digest: str, limit: int | None = None) -> bytes:
        """The whole blob, refusing one larger than `limit` bytes (manifests, configs)."""
        path = self.blob_path(digest)
        if limit is not None and path.stat().st_size > limit:
            raise InvalidArgument(f'blob "{digest}" is larger than {limit} bytes')
        return path.read_bytes()

    def list(self) -> Iterator[BlobInfo]:
        with os.scandir(self.blobs) as entries:
            for entry in entries:
                if len(entry.name) == 64:
                    yield BlobInfo("sha256:" + entry.name, entry.stat().st_size)

    def usage(self) -> tuple[int, int]:
        """How many blobs the store holds and their total size in bytes."""
        count = size = 0
        for blob in self.list():
            count += 1
            size += blob.size
        return count, size

    def delete(self, digest: str) -> None:
        try:
            (self.blobs / digest_hex(digest)).unlink()
        except FileNotFoundError:
            raise NotFound(f'no blob "{digest}"') from None

    def delete_unchanged_since(self, digest: str, since: float | None) -> bool:
        """gc's delete: remove `digest` unless it changed at or after `since` (epoch
        seconds; None: whenever), in one step under the lock `reuse` takes, so that a
        blob a writer has just found is never removed between the finding and its use.
        Whether it was removed; NotFound if it is gone."""
        path = self.blobs / digest_hex(digest)
        with self._lock:
            try:
                if since is not None and os.stat(path).st_ctime >= since:
                    return False
                path.unlink()
            except FileNotFoundError:
                raise NotFound(f'no blob "{digest}"') from None
            return True

    def add(self, data: bytes, expected: str | None = None) -> str:
        """Store `data` as a blob (through an ingest, so with the same checks) and
        return its digest."""
        digest = expected or "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is None and self.reuse(digest):
            return digest
        writer = self.writer(f"add-{digest_hex(digest)}-{threading.get_ident()}",
                             expected=digest, total=len(data))
        try:
            writer.write(data)
            return writer.commit()
        finally:
            writer.close()

    # -- ingests -------------------------------------------------------------
    def writer(self, ref: str, expected: str | None = None, total: int | None = None,
               resume: bool = False) -> "Writer":
        """Open the ingest `ref` for writing. With `resume` an interrupted ingest of
        the same name continues where it stopped; otherwise it starts empty.
        Only one writer may hold a ref at a time (Busy)."""
        _check_ref(ref)
        if expected is not None:
            parse_digest(expected)
        with self._lock:
            if ref in self._active:
                raise Busy(f'ingest "{ref}" is being written')
            writer = Writer(self, ref, expected, total, resume)
            self._active[ref] = writer
            return writer

    def wait_released(self, ref: str, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until no writer holds the ingest `ref`: a
        pull waits so for another fetching the same blob, then finds it stored."""
        with self._released:
            self._released.wait_for(lambda: ref not in self._active, timeout)

    def ingests(self) -> builtins.list[IngestStatus]:
        """Ingests in progress (open writers and interrupted ones left on disk)."""
        found: list[IngestStatus] = []
        for path in sorted(self.ingest_dir.glob("*.data")):
            ref = path.name[: -len(".data")]
            with self._lock:
                writer = self._active.get(ref)
            if writer is not None:
                found.append(IngestStatus(ref, writer.offset, writer.expected, writer.total))
            else:
                found.append(IngestStatus(ref, path.stat().st_size, None, None))
        return found

    def abort(self, ref: str) -> None:
        """Drop the ingest `ref` and what it had written."""
        _check_ref(ref)
        with self._lock:
            if ref in self._active:
                raise Busy(f'ingest "{ref}" is being written')
        try:
            (self.ingest_dir / f"{ref}.data").unlink()
        except FileNotFoundError:
            raise NotFound(f'no ingest "{ref}"') from None

    def remove_abandoned_ingests(self) -> int:
        """Drop every ingest no writer holds (what a killed pull or upload left); their
        number. No daemon resumes them across a restart or a failed pull."""
        removed = 0
        for path in self.ingest_dir.glob("*.data"):
            with self._lock:
                if path.name[: -len(".data")] in self._active:
                    continue
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
            removed += 1
        return removed

    def _release(self, ref: str) -> None:
        with self._released:
            self._active.pop(ref, None)
            self._released.notify_all()


class Writer:
    """One ingest. Sequential writes are hashed as they arrive; a write at another
    offset (a program that seeks) makes commit re-read the file to hash it."""

    def __init__(self, store: ContentStore, ref: str, expected: str | None,
                 total: int | None, resume: bool) -> None:
        self.store = store
        self.ref = ref
        self.expected = expected
        self.total = total
        self.path = store.ingest_dir / f"{ref}.data"
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | (0 if resume else os.O_TRUNC)
        self._fd = os.open(self.path, flags, 0o600)
        self._hash: hashlib._Hash | None = hashlib.sha256()
        self.offset = 0
        self.committed: str | None = None
        if resume:
            self._rehash()

    def _rehash(self) -> None:
        self._hash = hashlib.sha256()
        self.offset = 0
        os.lseek(self._fd, 0, os.SEEK_SET)
        while chunk := os.read(self._fd, _CHUNK):
            self._hash.update(chunk)
            self.offset += len(chunk)

    def write(self, data: bytes) -> None:
        """Append `data`."""
        self.write_at(self.offset, data)

    def write_at(self, offset: int, data: bytes) -> None:
        if self.committed is not None or self._fd < 0:
            raise InvalidArgument(f'ingest "{self.ref}" is already committed')
        require_room(self._fd, len(data))
        written = os.pwrite(self._fd, data, offset)
        if offset == self.offset and self._hash is not None:
            self._hash.update(data[:written])
            self.offset += written
        else:
            self._hash = None
            self.offset = max(self.offset, offset + written)

    def digest_so_far(self) -> str | None:
        """The digest of the bytes written so far, if they came in order (else None:
        only commit re-reads the file)."""
        return None if self._hash is None else "sha256:" + self._hash.hexdigest()

    def truncate(self, size: int) -> None:
        """Cut the ingest to `size` bytes (a resumed download whose server ignored Range)."""
        os.ftruncate(self._fd, size)
        self._rehash()

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        """Verify, fsync and move the bytes into blobs/; return the digest.
        A digest or size mismatch commits nothing and keeps the ingest for inspection."""
        if self.committed is not None:
            return self.committed
        expected = expected or self.expected
        size = size if size is not None else self.total
        if self._hash is None:
            self._rehash()
        assert self._hash is not None
        actual_size = os.fstat(self._fd).st_size
        if size is not None and actual_size != size:
            raise InvalidArgument(
                f'ingest "{self.ref}": size {actual_size} does not match expected {size}')
        digest = "sha256:" + self._hash.hexdigest()
        if expected is not None and digest != expected:
            raise InvalidArgument(
                f'ingest "{self.ref}": content is {digest}, expected {expected}')
        target = self.store.blobs / digest_hex(digest)
        if self.store.reuse(digest):
            os.unlink(self.path)
        else:
            os.fsync(self._fd)
            os.fchmod(self._fd, 0o444)
            os.rename(self.path, target)
            dirfd = os.open(self.store.blobs, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        self.committed = digest
        return digest

    def close(self) -> None:
        """Release the writer; an uncommitted ingest stays on disk to be resumed."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.store._release(self.ref)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

