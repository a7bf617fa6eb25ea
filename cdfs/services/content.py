"""The shared content store as the daemon serves it: async over worker threads, and
ingests that the tree turns into files (`cp x content/ingest/name`)."""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from base.errors import InvalidArgument, NotFound
from cdfs.db import Database, dumps
from cdfs.events import EventBus
from cdfs.services.container_config import parse_labels
from content.descriptor import digest_hex, parse_digest
from content.store import ContentStore, IngestStatus, Writer

DIGEST_PREFIX = "sha256:"


class IngestSink:
    """One ingest file being written: bytes go to the store's writer in a worker
    thread; close (the last one, at release) hashes, checks what was expected and
    commits atomically. A refused commit drops the ingest, so nothing unverified
    stays behind. An earlier close (a dup, a forked child) only checks."""

    def __init__(self, cas: "Cas", writer: Writer) -> None:
        self._cas = cas
        self._writer = writer

    async def write(self, offset: int, data: bytes) -> None:
        await trio.to_thread.run_sync(self._writer.write_at, offset, data)

    async def check(self) -> None:
        """Refuse a close whose bytes so far do not hash to the expected digest;
        the ingest stays open for the copies still writing."""
        writer = self._writer
        so_far = writer.digest_so_far()
        if writer.expected is not None and so_far is not None and so_far != writer.expected:
            raise InvalidArgument(f'ingest "{writer.ref}": content is {so_far}, '
                                  f"expected {writer.expected}")

    async def close(self) -> None:
        with self._cas.committing():
            writer = self._writer
            try:
                digest = await trio.to_thread.run_sync(writer.commit)
            except BaseException:
                await trio.to_thread.run_sync(_discard, writer)
                raise
            await trio.to_thread.run_sync(writer.close)
        self._cas.bus.publish("", "/content/create", digest, digest=digest,
                              size=writer.offset)


def _discard(writer: Writer) -> None:
    writer.close()
    writer.store.abort(writer.ref)


class Cas:
    """The content store plus what ingests are told to expect, and blobs' labels (as
    containerd's content labels: `containerd.io/gc.root` makes a blob a gc root, and
    `containerd.io/gc.ref.content.NAME=sha256:…` keeps that blob while this one lives)."""

    def __init__(self, store: ContentStore, bus: EventBus, db: Database) -> None:
        self.store = store
        self.bus = bus
        self._db = db
        self._expected: dict[str | None, str] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._commits = 0
        self._settled = trio.Event()
        self._settled.set()

    @contextmanager
    def committing(self) -> Iterator[None]:
        """Mark a commit in flight. The kernel sends release (where ingests commit)
        without waiting for it, so `cp x ingest/y; ls blobs` could otherwise look
        before the commit: what lists the store waits for commits in flight."""
        self._commits += 1
        self._settled = trio.Event()
        try:
            yield
        finally:
            self._commits -= 1
            if self._commits == 0:
                self._settled.set()

    async def _settle(self) -> None:
        await self._settled.wait()

    async def load(self) -> None:
        for row in await self._db.query("SELECT digest, labels FROM content_labels"):
            self._labels[row["digest"]] = json.loads(row["labels"])

    def labels(self, digest: str) -> dict[str, str]:
        return dict(self._labels.get(digest, {}))

    def all_labels(self) -> dict[str, dict[str, str]]:
        """Every labelled blob's labels, for gc."""
        return {digest: dict(labels) for digest, labels in self._labels.items()}

    async def set_labels(self, digest: str, text: str) -> None:
        """Replace the blob's labels with `key=value` lines (none: no labels)."""
        labels = parse_labels(text)
        if not await self.has(digest):
            raise NotFound(f"no blob {digest}")
        if labels:
            await self._db.execute(
                "INSERT INTO content_labels (digest, labels) VALUES (?, ?) "
                "ON CONFLICT (digest) DO UPDATE SET labels = excluded.labels",
                (digest, dumps(labels)))
            self._labels[digest] = labels
        else:
            await self._db.execute("DELETE FROM content_labels WHERE digest = ?", (digest,))
            self._labels.pop(digest, None)

    async def forget_labels(self, digests: set[str]) -> None:
        """Drop the labels of blobs that are gone (gc freed them)."""
        gone = sorted(digests & set(self._labels))
        if gone:
            await self._db.transact(lambda conn: conn.executemany(
                "DELETE FROM content_labels WHERE digest = ?", [(d,) for d in gone]))
            for digest in gone:
                del self._labels[digest]
        self._commits = 0
        self._settled = trio.Event()
        self._settled.set()

    def expect(self, digest: str, name: str | None = None) -> None:
        """Make the ingest `name` (or the next one created) require `digest`."""
        self._expected[name] = parse_digest(digest)

    async def ingest(self, name: str) -> IngestSink:
        """Start the ingest `name`; a name of the form sha256:<hex> expects that digest."""
        expected = self._expected.pop(name, None) or self._expected.pop(None, None)
        if name.startswith(DIGEST_PREFIX):
            if expected is not None and expected != name:
                raise InvalidArgument(f'ingest "{name}" was told to expect {expected}')
            expected = parse_digest(name)
        writer = await trio.to_thread.run_sync(
            lambda: self.store.writer(name, expected=expected))
        return IngestSink(self, writer)

    async def ingests(self) -> list[IngestStatus]:
        await self._settle()
        return await trio.to_thread.run_sync(self.store.ingests)

    async def abort(self, name: str) -> None:
        await trio.to_thread.run_sync(self.store.abort, name)

    async def usage(self) -> tuple[int, int]:
        await self._settle()
        return await trio.to_thread.run_sync(self.store.usage)

    async def digests(self) -> list[str]:
        await self._settle()
        return await trio.to_thread.run_sync(lambda: [b.digest for b in self.store.list()])

    async def has(self, digest: str) -> bool:
        await self._settle()
        return await trio.to_thread.run_sync(self.store.has, digest)

    def blob_file(self, digest: str) -> str:
        """Where the blob's bytes are (or would be): a name only, nothing is stat'ed."""
        return str(self.store.blobs / digest_hex(digest))
