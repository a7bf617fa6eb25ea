"""images/: a namespace's images, each a directory named by its reference.

A reference becomes a path as it reads: images/127.0.0.1:5001/busybox:latest/ and
images/docker.io/library/busybox@sha256:…/ — the levels in between are plain
directories listing the next path component of the images below them.
"""

from base.errors import NotFound
from cdfs.services.images import ImageRecord, parse_platform_argument
from content.descriptor import digest_hex
from mountpoint.ctl import Verb, VerbTable
from mountpoint.table import (
    Children,
    Ctl,
    Dir,
    Err,
    HostFile,
    Link,
    Scope,
    Table,
    Value,
)
from mountpoint.table import Services as S


def _record(app: S, scope: Scope) -> ImageRecord:
    record: ImageRecord | None = app.images.find(scope["ns"], scope["ref"])
    if record is None:
        raise NotFound(f'image "{scope["ref"]}" is not ready')
    return record


# -- ctl ---------------------------------------------------------------------------
async def _pull(app: S, scope: Scope, args: list[str]) -> None:
    platform = parse_platform_argument(args[1]) if len(args) > 1 else None
    await app.images.pull(scope["ns"], args[0], platform)


async def _push(app: S, scope: Scope, args: list[str]) -> None:
    await app.images.push(scope["ns"], *args)


async def _tag(app: S, scope: Scope, args: list[str]) -> None:
    await app.images.tag(scope["ns"], *args)


async def _rm(app: S, scope: Scope, args: list[str]) -> None:
    await app.images.remove(scope["ns"], args[0])


async def _import(app: S, scope: Scope, args: list[str]) -> None:
    await app.images.import_archive(scope["ns"], *args)


async def _export(app: S, scope: Scope, args: list[str]) -> None:
    await app.images.export_archive(scope["ns"], *args)


IMAGE_VERBS = VerbTable(
    Verb("pull", "REF [platform=OS/ARCH[/VARIANT]]",
         "fetch REF into the content store and unpack it; returns when the image is ready",
         _pull),
    Verb("push", "REF [TARGET_REF]", "upload the image's blobs and manifests (to TARGET_REF)",
         _push),
    Verb("tag", "REF NEW_REF", "name the image REF also NEW_REF", _tag),
    Verb("rm", "REF", "forget the name REF (`ctl gc` at the root frees what it held)", _rm),
    Verb("import", "PATH [REF]",
         "import an OCI image layout (dir or tar) or a docker-archive tar at the host path\n"
         "PATH, naming it REF when the archive does not", _import),
    Verb("export", "REF PATH",
         "write REF as an OCI layout tar to the new host file PATH (skopeo, ctr import it)",
         _export),
)


# -- image files -------------------------------------------------------------------
async def _ref(app: S, scope: Scope) -> str:
    return _record(app, scope).name + "\n"


async def _digest(app: S, scope: Scope) -> str:
    return _record(app, scope).target.digest + "\n"


async def _platform(app: S, scope: Scope) -> str:
    return f"{_record(app, scope).platform}\n"


async def _size(app: S, scope: Scope) -> str:
    return f"{_record(app, scope).size}\n"


async def _layers(app: S, scope: Scope) -> str:
    return "".join(f"{layer.digest} {layer.size} {layer.media_type}\n"
                   for layer in _record(app, scope).layers)


async def _progress(app: S, scope: Scope) -> str:
    progress: str = app.images.progress(scope["ns"], scope["ref"])
    return progress


def _blob_file(app: S, digest: str) -> str:
    return str(app.cas.store.blobs / digest_hex(digest))


async def _manifest_path(app: S, scope: Scope) -> str:
    return _blob_file(app, _record(app, scope).manifest.digest)


async def _config_path(app: S, scope: Scope) -> str:
    return _blob_file(app, _record(app, scope).image.config.digest)


async def _index_path(app: S, scope: Scope) -> str:
    return _blob_file(app, _record(app, scope).target.digest)


async def _blob_names(app: S, scope: Scope) -> list[str]:
    record = _record(app, scope)
    digests = {record.target.digest, record.manifest.digest, record.image.config.digest,
               *(layer.digest for layer in record.layers)}
    return sorted(digest_hex(d) for d in digests)


async def _blob_link(app: S, scope: Scope) -> str:
    """Relative, so it resolves inside the mount wherever that is: up from
    namespaces/<ns>/images/<ref…>/blobs/ to the root, then into content/."""
    depth = len(scope.path) - 1
    return "../" * depth + f"content/blobs/sha256/{scope['hex']}"


BLOBS = Table(
    "links to the image's blobs",
    children=Children(
        "hex", "a link into content/blobs/sha256/ for the manifest, config or a layer",
        list=_blob_names,
        file=Link("blob", "a blob of the image", _blob_link)),
)

_IMAGE_ENTRIES = (
    Value("ref", "the image's name", read=_ref),
    Value("digest", "the digest it points at (an index or a manifest)", read=_digest),
    Value("platform", "OS/ARCH[/VARIANT] of the manifest used here", read=_platform),
    Value("size", "bytes of its blobs: manifests, config and layers", read=_size),
    HostFile("manifest.json", "the image manifest, exact bytes", _manifest_path),
    HostFile("config.json", "the image config, exact bytes", _config_path),
    Value("layers", "one line per layer: digest, size, media type", read=_layers),
    Dir("blobs", "links to the image's blobs", BLOBS),
    Value("progress", "while pulling or pushing: `DIGEST DONE/TOTAL` per blob;\n"
          'the final line is "done" or the error', read=_progress),
)

IMAGE = Table("one image", entries=_IMAGE_ENTRIES)
IMAGE_FROM_INDEX = Table("one image pulled through an index", entries=(
    *_IMAGE_ENTRIES,
    HostFile("index.json", "the index the name points at, exact bytes (when pulled through\n"
             "an index)", _index_path),
))


# -- the levels of reference paths --------------------------------------------------
def _prefix(scope: Scope) -> str:
    return scope.get("ref", "")


async def _level_names(app: S, scope: Scope) -> list[str]:
    prefix = _prefix(scope)
    start = prefix + "/" if prefix else ""
    names: list[str] = app.images.names(scope["ns"])
    return sorted({name[len(start):].split("/", 1)[0] for name in names
                   if name.startswith(start)})


async def _level_lookup(app: S, scope: Scope, name: str) -> Table | None:
    prefix = _prefix(scope)
    full = f"{prefix}/{name}" if prefix else name
    names: list[str] = app.images.names(scope["ns"])
    if full in names:
        record = app.images.find(scope["ns"], full)
        if record is not None and record.target.digest != record.manifest.digest:
            return IMAGE_FROM_INDEX
        return IMAGE
    if any(n.startswith(full + "/") for n in names):
        return LEVEL
    return None


_CHILDREN = Children(
    "ref", "an image, at the path of its reference (e.g. 127.0.0.1:5001/busybox:latest/);\n"
    "the directories on the way list the next path component. An image pulled through\n"
    "an index also has index.json: the index's exact bytes.",
    list=_level_names, lookup=_level_lookup, table=IMAGE, join=True)

LEVEL = Table("a level of image references", children=_CHILDREN)

IMAGES = Table(
    "the namespace's images",
    entries=(
        Ctl("ctl", "image verbs; a write blocks until the work is done and fails with an errno\n"
            "(and a line in err) if it failed", IMAGE_VERBS),
        Err(),
    ),
    children=_CHILDREN,
)
