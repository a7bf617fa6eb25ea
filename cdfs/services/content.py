"""The shared content store as the daemon serves it: async over worker threads, and
ingests that the tree turns into files (`cp x content/ingest/name`)."""

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from base.errors import InvalidArgument
from cdfs.events import EventBus
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
    """The content store plus what ingests are told to expect."""

    def __init__(self, store: ContentStore, bus: EventBus) -> None:
        self.store = store
        self.bus = bus
        self._expected: dict[str | None, str] = {}
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
