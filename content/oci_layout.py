"""OCI image layouts (image-spec image-layout.md): import from and export to them.

A layout is `oci-layout`, `index.json` and `blobs/sha256/<hex>`. Import copies into
the store every blob reachable from index.json, each verified against the digest
(and size) its parent gives, before any image is reported; export writes the tar
that `skopeo copy oci-archive:` and `ctr images import` read.
"""

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

from base.errors import AlreadyExists, InvalidArgument, NotFound
from content import mediatypes
from content.archive_source import (
    ArchiveSource,
    ImportedImage,
    blob_member,
    copy_member,
    read_member,
)
from content.build import canonical_json
from content.descriptor import Descriptor
from content.manifest import MAX_MANIFEST_SIZE, ImageIndex, parse_manifest, walk
from content.reference import parse_reference
from content.store import ContentStore

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"

# containerd names images by this annotation; OCI's ref.name holds only the tag.
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


def is_layout(source: ArchiveSource) -> bool:
    return source.has(LAYOUT_FILE) and source.has(INDEX_FILE)


def _check_layout_file(source: ArchiveSource) -> None:
    data = read_member(source, LAYOUT_FILE, 4096)
    try:
        version = json.loads(data).get("imageLayoutVersion")
    except (ValueError, AttributeError):
        version = None
    if not isinstance(version, str) or not version.startswith("1."):
        raise InvalidArgument(f'unsupported oci-layout: "{data[:100].decode(errors="replace")}"')


def image_name(annotations: dict[str, str]) -> str | None:
    """The name an index.json entry gives its image: containerd's full-name annotation,
    else OCI's ref.name when it is a whole reference rather than a bare tag."""
    name = annotations.get(IMAGE_NAME_ANNOTATION)
    if name is None:
        ref_name = annotations.get(REF_NAME_ANNOTATION, "")
        if not any(sep in ref_name for sep in "/:@"):
            return None
        name = ref_name
    return str(parse_reference(name))


def _ingest(store: ContentStore, source: ArchiveSource, digest: str,
            size: int | None = None) -> None:
    """Make sure the store holds `digest` (of `size` bytes), copying it from the archive."""
    if store.reuse(digest):
        held = store.info(digest).size
        if size is not None and held != size:
            raise InvalidArgument(f'blob "{digest}" has {held} bytes, descriptor says {size}')
        return
    try:
        copy_member(store, source, blob_member(digest), digest, size)
    except NotFound:
        raise InvalidArgument(f'archive lacks blob "{digest}"') from None


def import_layout(store: ContentStore, source: ArchiveSource) -> list[ImportedImage]:
    """Copy every image of the layout into the store; its images, in index.json order."""
    _check_layout_file(source)
    index = parse_manifest(read_member(source, INDEX_FILE, MAX_MANIFEST_SIZE),
                           mediatypes.OCI_INDEX)
    assert isinstance(index, ImageIndex)
    names = [image_name(entry.annotations) for entry in index.manifests]

    def read(digest: str) -> bytes:
        _ingest(store, source, digest)
        return store.read(digest, MAX_MANIFEST_SIZE)

    for entry in index.manifests:
        _ingest(store, source, entry.digest, entry.size)
        for child in walk(entry, read):
            _ingest(store, source, child.digest, child.size)
    return [ImportedImage(name, entry) for name, entry in zip(names, index.manifests, strict=True)]


def _index_json(root: Descriptor, name: str) -> bytes:
    ref = parse_reference(name)
    annotations = {IMAGE_NAME_ANNOTATION: str(ref)}
    if ref.tag:
        annotations[REF_NAME_ANNOTATION] = ref.tag
    entry = Descriptor(root.media_type, root.digest, root.size, annotations, root.platform)
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [entry.to_json()],
    }
    return canonical_json(index)


def _tar_entry(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = 0
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_tar_entry(name, len(data)), io.BytesIO(data))


def export_layout(store: ContentStore, root: Descriptor, name: str, path: Path) -> None:
    """Write `root` and everything it refers to as an OCI layout tar at `path`, named
    `name` (a reference) in index.json. The tar is written beside `path` and linked
    there, so `path` is never seen half written, and a file that appeared at `path`
    meanwhile is never replaced (AlreadyExists). NotFound if the store lacks a blob."""
    index_bytes = _index_json(root, name)
    if not path.parent.is_dir():
        raise NotFound(f'no directory "{path.parent}" to export into')
    blobs = [root, *walk(root, lambda digest: store.read(digest, MAX_MANIFEST_SIZE))]
    sources = [(blob, store.blob_path(blob.digest)) for blob in blobs]
    for blob, blob_path in sources:
        if blob_path.stat().st_size != blob.size:
            raise InvalidArgument(f'blob "{blob.digest}" is not the size its descriptor says')
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                    format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, LAYOUT_FILE, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
            tar.addfile(_tar_entry("blobs", 0, directory=True))
            tar.addfile(_tar_entry("blobs/sha256", 0, directory=True))
            for blob, blob_path in sources:
                with open(blob_path, "rb") as data:
                    tar.addfile(_tar_entry(blob_member(blob.digest), blob.size), data)
            _add_bytes(tar, INDEX_FILE, index_bytes)
            tar.close()
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)  # no-replace: unlike rename, fails if `path` exists
        except FileExistsError:
            raise AlreadyExists(f'"{path}" exists; export does not overwrite') from None
    finally:
        temp.unlink(missing_ok=True)
