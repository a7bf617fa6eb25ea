"""content/: the CAS shared by every namespace."""

from content.descriptor import digest_hex
from mountpoint.ctl import Verb, VerbTable
from mountpoint.table import Children, Ctl, Dir, Err, HostFile, Scope, Sink, Table, Value
from mountpoint.table import Services as S


async def _blob_names(app: S, scope: Scope) -> list[str]:
    return [digest_hex(d) for d in await app.cas.digests()]


async def _blob_exists(app: S, scope: Scope, name: str) -> bool:
    return len(name) == 64 and await app.cas.has("sha256:" + name)


async def _blob_path(app: S, scope: Scope) -> str:
    return str(app.cas.store.blobs / digest_hex("sha256:" + scope["hex"]))


async def _usage(app: S, scope: Scope) -> str:
    blobs, size = await app.cas.usage()
    return f"blobs {blobs}\nbytes {size}\n"


async def _ingest_names(app: S, scope: Scope) -> list[str]:
    return [status.ref for status in await app.cas.ingests()]


async def _ingest_status(app: S, scope: Scope) -> str:
    for status in await app.cas.ingests():
        if status.ref == scope["ingest"]:
            return (f"offset {status.offset}\n"
                    f"expected {status.expected or '-'}\n"
                    f"total {status.total if status.total is not None else '-'}\n")
    return ""


async def _create_ingest(app: S, scope: Scope, name: str) -> Sink:
    sink: Sink = await app.cas.ingest(name)
    return sink


async def _abort_ingest(app: S, scope: Scope, name: str) -> None:
    await app.cas.abort(name)


async def _expect(app: S, scope: Scope, args: list[str]) -> None:
    app.cas.expect(*args)


async def _abort(app: S, scope: Scope, args: list[str]) -> None:
    await app.cas.abort(args[0])


INGEST_VERBS = VerbTable(
    Verb("expect", "DIGEST [NAME]",
         "the ingest NAME (or else the next one created) must hash to DIGEST", _expect),
    Verb("abort", "NAME", "drop the unfinished ingest NAME", _abort),
)

CONTENT = Table(
    "the content-addressed store, shared by every namespace",
    entries=(
        Dir("blobs", "blobs by algorithm", Table("blobs by algorithm", entries=(
            Dir("sha256", "one file per blob", Table(
                "one file per blob",
                children=Children(
                    "hex", "a blob: its exact bytes, read-only; its sha256 is its name",
                    list=_blob_names, exists=_blob_exists,
                    file=HostFile("blob", "the blob's bytes", _blob_path))),
                ),
            ))),
        Dir("ingest", "write blobs here", Table(
            "write blobs here",
            entries=(
                Ctl("ctl", "ingest verbs", INGEST_VERBS),
                Err(),
            ),
            children=Children(
                "ingest",
                "create and write any bytes; at close they are hashed and committed to\n"
                "blobs/sha256/ atomically. A name sha256:<hex> (or `expect` in ctl) makes\n"
                "a mismatch fail the close and commit nothing. Reading shows progress:\n"
                "offset, expected, total. rm drops an unfinished ingest.",
                list=_ingest_names, create=_create_ingest, unlink=_abort_ingest,
                file=Value("ingest", "progress of an ingest", read=_ingest_status)),
        )),
        Value("usage", "blobs and bytes held: `blobs N` and `bytes N` lines", read=_usage),
    ),
)
