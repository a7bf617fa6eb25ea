"""content/: the CAS shared by every namespace."""

from cdfs.services.container_config import format_labels
from content.descriptor import digest_hex
from content.store import IngestStatus
from mountpoint.ctl import Verb, VerbTable
from mountpoint.table import (
    Children,
    Ctl,
    Dir,
    Err,
    HostFile,
    Scope,
    Services,
    Table,
    Value,
    show,
    take,
)


async def _blob_names(app: Services, scope: Scope) -> list[str]:
    return [digest_hex(d) for d in await app.cas.digests()]


async def _blob_exists(app: Services, scope: Scope, name: str) -> bool:
    return len(name) == 64 and await app.cas.has("sha256:" + name)


async def _blob_path(app: Services, scope: Scope) -> str:
    return app.cas.blob_file("sha256:" + scope["hex"])


async def _ingest_names(app: Services, scope: Scope) -> list[str]:
    return [status.ref for status in await app.cas.ingests()]


async def _ingest_status(app: Services, scope: Scope) -> str:
    for status in await app.cas.ingests():
        if status.ref == scope["ingest"]:
            return _progress(status)
    return ""


def _progress(status: IngestStatus) -> str:
    return (f"offset {status.offset}\n"
            f"expected {status.expected or '-'}\n"
            f"total {status.total if status.total is not None else '-'}\n")


async def _expect(app: Services, scope: Scope, args: list[str]) -> None:
    app.cas.expect(*args)


INGEST_VERBS = VerbTable(
    Verb("expect", "DIGEST [NAME]",
         "the ingest NAME (or else the next one created) must hash to DIGEST", _expect),
    Verb("abort", "NAME", "drop the unfinished ingest NAME",
         lambda app, s, args: app.cas.abort(args[0])),
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
        Dir("labels", "blobs' labels, as containerd's content labels", Table(
            "blobs' labels by algorithm", entries=(
                Dir("sha256", "one labels file per blob", Table(
                    "one labels file per blob",
                    entries=(Err(),),
                    children=Children(
                        "hex", "the blob's labels: key=value lines; writing replaces them\n"
                        "all. `containerd.io/gc.root=…` keeps the blob through gc;\n"
                        "`containerd.io/gc.ref.content.NAME=sha256:…` keeps that blob\n"
                        "while this one is kept",
                        list=_blob_names, exists=_blob_exists,
                        file=Value("labels", "the blob's labels", read=show(
                            lambda app, s: format_labels(app.cas.labels("sha256:" + s["hex"]))),
                            write=take(lambda app, s, text: app.cas.set_labels(
                                "sha256:" + s["hex"], text), strip=False)))),
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
                "create and write any bytes; at the last close (not a dup's or a child's)\n"
                "they are hashed and committed to blobs/sha256/ atomically. A name\n"
                "sha256:<hex> (or `expect` in ctl) makes a mismatch commit nothing: err\n"
                "says so, and a close fails with EINVAL while the bytes so far differ.\n"
                "Reading shows progress: offset, expected, total. rm drops an unfinished\n"
                "ingest.",
                list=_ingest_names,
                create=lambda app, s, name: app.cas.ingest(name),
                unlink=lambda app, s, name: app.cas.abort(name),
                file=Value("ingest", "progress of an ingest", read=_ingest_status)),
        )),
        Value("usage", "blobs and bytes held: `blobs N` and `bytes N` lines",
              read=show(lambda app, s: app.cas.usage(),
                        lambda usage: f"blobs {usage[0]}\nbytes {usage[1]}\n")),
    ),
)
