"""The shared content store as the daemon serves it: async over worker threads, and
ingests that the tree turns into files (`cp x content/ingest/name`)."""

import trio

from base.errors import InvalidArgument
from cdfs.events import EventBus
from content.descriptor import digest_hex, parse_digest
from content.store import ContentStore, IngestStatus, Writer

DIGEST_PREFIX = "sha256:"


class IngestSink:
    """One ingest file being written: bytes go to the store's writer in a worker
    thread; close hashes, checks what was expected and commits atomically. A refused
    commit drops the ingest, so nothing unverified stays behind."""

    def __init__(self, cas: "Cas", writer: Writer) -> None:
        self._cas = cas
        self._writer = writer

    async def write(self, offset: int, data: bytes) -> None:
        await trio.to_thread.run_sync(self._writer.write_at, offset, data)

    async def close(self) -> None:
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
        return await trio.to_thread.run_sync(self.store.ingests)

    async def abort(self, name: str) -> None:
        await trio.to_thread.run_sync(self.store.abort, name)

    async def usage(self) -> tuple[int, int]:
        return await trio.to_thread.run_sync(self.store.usage)

    async def digests(self) -> list[str]:
        return await trio.to_thread.run_sync(lambda: [b.digest for b in self.store.list()])

    async def has(self, digest: str) -> bool:
        return await trio.to_thread.run_sync(self.store.has, digest)

    def blob_file(self, digest: str) -> str:
        """Where the blob's bytes are (or would be): a name only, nothing is stat'ed."""
        return str(self.store.blobs / digest_hex(digest))
