"""images/: a namespace's images, each a directory named by its reference.

A reference becomes a path as it reads: images/127.0.0.1:5001/busybox:latest/ and
images/docker.io/library/busybox@sha256:…/ — the levels in between are plain
directories listing the next path component of the images below them.
"""

from base.errors import NotFound
from cdfs.services.images import ImageRecord, parse_pull_options
from content.descriptor import digest_hex
from mountpoint.ctl import WRITER_UID, Verb, VerbTable
from mountpoint.table import (
    Children,
    Ctl,
    Dir,
    Err,
    HostFile,
    HostTree,
    Link,
    Scope,
    Services,
    Table,
    TreeView,
    Value,
    align,
    show,
)


def _record(app: Services, scope: Scope) -> ImageRecord:
    record: ImageRecord | None = app.images.find(scope["ns"], scope["ref"])
    if record is None:
        raise NotFound(f'image "{scope["ref"]}" is not ready')
    return record


# -- ctl ---------------------------------------------------------------------------
async def _pull(app: Services, scope: Scope, args: list[str]) -> None:
    options = parse_pull_options(args[1:])
    await app.images.pull(scope["ns"], args[0], options.get("platform"),
                          options.get("credentials"), WRITER_UID.get())


async def _import(app: Services, scope: Scope, args: list[str]) -> None:
    await app.images.import_archive(scope["ns"], *args)


IMAGE_VERBS = VerbTable(
    Verb("pull", "REF [platform=OS/ARCH[/VARIANT]] [credentials=FILE]",
         "fetch REF into the content store and unpack it; returns when the image is ready.\n"
         "A full disk fails it with ENOSPC, and what it wrote is removed. credentials=FILE:\n"
         "this pull's own, one JSON object as an entry of registries.json's auths, in a\n"
         "file that nobody but its owner may read (mode 600), owned by the user writing\n"
         "the line unless that is root (else EACCES)",
         _pull),
    Verb("push", "REF [TARGET_REF]", "upload the image's blobs and manifests (to TARGET_REF)",
         lambda app, s, args: app.images.push(s["ns"], *args)),
    Verb("tag", "REF NEW_REF", "name the image REF also NEW_REF",
         lambda app, s, args: app.images.tag(s["ns"], *args)),
    Verb("rm", "REF", "forget the name REF (`ctl gc` at the root frees what it held)",
         lambda app, s, args: app.images.remove(s["ns"], args[0])),
    Verb("import", "PATH [REF]",
         "import an OCI image layout (dir or tar) or a docker-archive tar at the host path\n"
         "PATH, naming it REF when the archive does not", _import),
    Verb("export", "REF PATH",
         "write REF as an OCI layout tar to the new host file PATH (skopeo, ctr import it)",
         lambda app, s, args: app.images.export_archive(s["ns"], *args)),
)


# -- image files -------------------------------------------------------------------
def _layers(record: ImageRecord) -> str:
    return "".join(f"{layer.digest} {layer.size} {layer.media_type}\n" for layer in record.layers)


def _blob_file(app: Services, digest: str) -> str:
    return app.cas.blob_file(digest)


async def _manifest_path(app: Services, scope: Scope) -> str:
    return _blob_file(app, _record(app, scope).manifest.digest)


async def _config_path(app: Services, scope: Scope) -> str:
    return _blob_file(app, _record(app, scope).image.config.digest)


async def _index_path(app: Services, scope: Scope) -> str:
    return _blob_file(app, _record(app, scope).target.digest)


async def _rootfs(app: Services, scope: Scope) -> TreeView:
    return await app.images.rootfs(scope["ns"], _record(app, scope).name)


async def _blob_names(app: Services, scope: Scope) -> list[str]:
    record = _record(app, scope)
    digests = {record.target.digest, record.manifest.digest, record.image.config.digest,
               *(layer.digest for layer in record.layers)}
    return sorted(digest_hex(d) for d in digests)


async def _blob_link(app: Services, scope: Scope) -> str:
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
    Value("ref", "the image's name", read=show(lambda app, s: _record(app, s).name)),
    Value("digest", "the digest it points at (an index or a manifest)",
          read=show(lambda app, s: _record(app, s).target.digest)),
    Value("platform", "OS/ARCH[/VARIANT] of the manifest used here",
          read=show(lambda app, s: _record(app, s).platform)),
    Value("size", "bytes of its blobs: manifests, config and layers",
          read=show(lambda app, s: _record(app, s).size)),
    HostFile("manifest.json", "the image manifest, exact bytes", _manifest_path),
    HostFile("config.json", "the image config, exact bytes", _config_path),
    Value("layers", "one line per layer: digest, size, media type",
          read=show(_record, _layers)),
    Dir("blobs", "links to the image's blobs", BLOBS),
    HostTree("rootfs", "the image's files, read-only, as a container of it starts: layers\n"
             "merged, whiteouts applied, real modes, owners, sizes and times, symlinks\n"
             "with their literal targets, device nodes as such", _rootfs),
    Value("progress", "while pulling or pushing: `DIGEST DONE/TOTAL` per blob;\n"
          'the final line is "done" or the error',
          read=show(lambda app, s: app.images.progress(s["ns"], s["ref"]))),
)

async def _updated_at(app: Services, scope: Scope) -> str | None:
    record: ImageRecord | None = app.images.find(scope["ns"], scope["ref"])
    return record.updated_at if record is not None else None


IMAGE = Table("one image", entries=_IMAGE_ENTRIES, time=_updated_at)
IMAGE_FROM_INDEX = Table("one image pulled through an index", entries=(
    *_IMAGE_ENTRIES,
    HostFile("index.json", "the index the name points at, exact bytes (when pulled through\n"
             "an index)", _index_path),
), time=_updated_at)


# -- the levels of reference paths --------------------------------------------------
def _prefix(scope: Scope) -> str:
    return scope.get("ref", "")


async def _level_names(app: Services, scope: Scope) -> list[str]:
    prefix = _prefix(scope)
    start = prefix + "/" if prefix else ""
    names: list[str] = app.images.names(scope["ns"])
    return sorted({name[len(start):].split("/", 1)[0] for name in names
                   if name.startswith(start)})


async def _level_lookup(app: Services, scope: Scope, name: str) -> Table | None:
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

LIST_COLUMNS = ("REF", "DIGEST", "CONFIG", "SIZE", "PLATFORM")


async def _list(app: Services, scope: Scope) -> str:
    """The rows from the records the service keeps in memory: what CRI's image
    lookups read instead of five files of every image."""
    rows: list[tuple[str, ...]] = [LIST_COLUMNS]
    for name in app.images.names(scope["ns"]):
        record = app.images.find(scope["ns"], name)
        if record is not None:  # else still being pulled: not an image yet
            rows.append((name, record.target.digest, record.image.config.digest,
                         str(record.size), str(record.platform)))
    return align(rows)


IMAGES = Table(
    "the namespace's images",
    entries=(
        Value("list", "one line per image, a header first: REF DIGEST CONFIG SIZE PLATFORM,\n"
              "aligned; CONFIG is the config's digest, the image id of CRI and docker:\n"
              "`ctr images ls` in one read",
              read=_list),
        Ctl("ctl", "image verbs; a write blocks until the work is done and fails with an errno\n"
            "(and a line in err) if it failed. A signal releases the writer (EINTR) and\n"
            "the work goes on: progress shows it, err any failure", IMAGE_VERBS),
        Err(),
    ),
    children=_CHILDREN,
)
