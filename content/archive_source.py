"""Reading image archives: an OCI layout directory or any tar, seen as named members.

Import only ever looks members up by names it derives (`blobs/sha256/<hex>`, the
paths in a docker manifest.json) and copies them into the store; nothing is
extracted to disk. Names that climb out of the archive (`..`, absolute paths) are
refused all the same, since an archive carrying them is malformed or hostile.
"""

import os
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from base.errors import InvalidArgument, NotFound
from content.descriptor import Descriptor, digest_hex
from content.store import ContentStore

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImportedImage:
    """An image found in an archive: the name it carries (None when it has none, or
    only a bare tag) and its root descriptor (manifest or index)."""

    name: str | None
    descriptor: Descriptor


def member_name(name: str) -> str:
    """A member name normalised (`./a//b` -> `a/b`); InvalidArgument if it leaves the archive."""
    parts = [part for part in PurePosixPath(name).parts if part != "."]
    if not parts or parts[0] == "/" or ".." in parts or "\0" in name:
        raise InvalidArgument(f'unsafe path in archive: "{name}"')
    return "/".join(parts)


def blob_member(digest: str) -> str:
    return f"blobs/sha256/{digest_hex(digest)}"


class ArchiveSource(Protocol):
    """What import needs of an archive: whether a member exists, and its bytes."""

    def has(self, name: str) -> bool: ...

    def open(self, name: str) -> IO[bytes]: ...


class DirectorySource:
    """An unpacked archive (an OCI layout directory as `skopeo copy ... oci:DIR` writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / member_name(name)

    def has(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> IO[bytes]:
        path = self._path(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f'archive has no "{name}"') from None
        except OSError as error:
            raise InvalidArgument(f'cannot read "{name}" in archive: {error.strerror}') from None
        return os.fdopen(fd, "rb")


class TarSource:
    """A tar archive (plain or compressed), its member names checked when opened."""

    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by close())
        except (tarfile.TarError, OSError) as error:
            raise InvalidArgument(f'not a readable tar archive: "{path}": {error}') from None
        try:
            self.members = {member_name(m.name): m for m in self.tar.getmembers()}
        except BaseException:
            self.tar.close()
            raise

    def has(self, name: str) -> bool:
        member = self.members.get(member_name(name))
        return member is not None and (member.isfile() or member.islnk() or member.issym())

    def open(self, name: str) -> IO[bytes]:
        member = self.members.get(member_name(name))
        if member is None:
            raise NotFound(f'archive has no "{name}"')
        try:
            stream = self.tar.extractfile(member)
        except (tarfile.TarError, KeyError) as error:
            raise InvalidArgument(f'cannot read "{name}" in archive: {error}') from None
        if stream is None:
            raise InvalidArgument(f'"{name}" in archive is not a file')
        return stream

    def close(self) -> None:
        self.tar.close()


@contextmanager
def open_archive(path: Path) -> Iterator[ArchiveSource]:
    """The archive at `path`, a directory or a tar file."""
    if path.is_dir():
        yield DirectorySource(path)
        return
    if not path.is_file():
        raise NotFound(f'no archive at "{path}"')
    source = TarSource(path)
    try:
        yield source
    finally:
        source.close()


def read_member(source: ArchiveSource, name: str, limit: int) -> bytes:
    """A small member whole (index.json, manifest.json), refusing one over `limit` bytes."""
    with source.open(name) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f'"{name}" in archive is larger than {limit} bytes')
    return data


def copy_member(store: ContentStore, source: ArchiveSource, name: str,
                digest: str | None = None, size: int | None = None) -> tuple[str, int]:
    """Stream a member into the store and return its (digest, size). The bytes must
    match `digest` and `size` when given, or nothing is committed (InvalidArgument)
    and the ingest is dropped."""
    writer = store.writer(f"import-{uuid.uuid4().hex}", expected=digest, total=size)
    try:
        with source.open(name) as stream:
            while chunk := stream.read(_CHUNK):
                writer.write(chunk)
                if size is not None and writer.offset > size:
                    raise InvalidArgument(
                        f'"{name}" in archive is larger than its descriptor says ({size})')
        return writer.commit(), writer.offset
    except BaseException:
        writer.close()
        store.abort(writer.ref)
        raise
    finally:
        writer.close()
