"""Import of `docker save` archives (and skopeo's docker-archive:).

Such an archive has no manifests, only manifest.json listing per image a config
file, its layer tars and its RepoTags. Like containerd's importer, this stores the
config and layers as they are and writes a Docker schema 2 manifest over them. The
layers carry no digests to check against, so each layer's uncompressed content is
checked against the config's rootfs.diff_ids instead.
"""

import hashlib
import json
import zlib
from typing import Any

import zstandard

from base.errors import InvalidArgument, NotFound
from content import mediatypes
from content.archive_source import ArchiveSource, ImportedImage, copy_member, read_member
from content.build import canonical_json
from content.descriptor import Descriptor
from content.manifest import MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, parse_config
from content.reference import parse_reference
from content.store import ContentStore

MANIFEST_FILE = "manifest.json"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


def is_docker_archive(source: ArchiveSource) -> bool:
    return source.has(MANIFEST_FILE)


def _entries(data: bytes) -> list[dict[str, Any]]:
    """manifest.json's entries, each checked to have Config, Layers and RepoTags."""
    try:
        entries = json.loads(data)
    except ValueError as error:
        raise InvalidArgument(f"manifest.json is not JSON: {error}") from None
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("manifest.json is not a non-empty list")
    for entry in entries:
        if not (isinstance(entry, dict) and isinstance(entry.get("Config"), str)
                and isinstance(entry.get("Layers"), list)
                and all(isinstance(layer, str) for layer in entry["Layers"])
                and isinstance(entry.get("RepoTags") or [], list)):
            raise InvalidArgument(f"manifest.json has a malformed entry: {str(entry)[:200]}")
    return entries


def _uncompressed_digest(store: ContentStore, digest: str, compression: str | None) -> str:
    """The sha256 of a stored layer's tar, decompressing it as a stream if need be."""
    hasher = hashlib.sha256()
    with open(store.blob_path(digest), "rb") as blob:
        if compression == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(blob)
            while chunk := reader.read(_CHUNK):
                hasher.update(chunk)
        elif compression == "gzip":
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            while chunk := blob.read(_CHUNK):
                while chunk:
                    hasher.update(inflater.decompress(chunk, _CHUNK))
                    chunk = inflater.unconsumed_tail
        else:
            while chunk := blob.read(_CHUNK):
                hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _compression(source: ArchiveSource, name: str) -> str | None:
    with source.open(name) as stream:
        head = stream.read(4)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return None


_LAYER_TYPES = {None: mediatypes.DOCKER_LAYER, "gzip": mediatypes.DOCKER_LAYER_GZIP,
                "zstd": mediatypes.OCI_LAYER_ZSTD}


def _import_layer(store: ContentStore, source: ArchiveSource, name: str,
                  diff_id: str) -> Descriptor:
    compression = _compression(source, name)
    digest, size = copy_member(store, source, name)
    if _uncompressed_digest(store, digest, compression) != diff_id:
        raise InvalidArgument(f'layer "{name}" does not match its diff_id {diff_id}')
    return Descriptor(_LAYER_TYPES[compression], digest, size)


def _import_image(store: ContentStore, source: ArchiveSource,
                  entry: dict[str, Any]) -> Descriptor:
    config_name: str = entry["Config"]
    config_bytes = read_member(source, config_name, MAX_CONFIG_SIZE)
    diff_ids = parse_config(config_bytes).diff_ids
    layer_names: list[str] = entry["Layers"]
    if len(diff_ids) != len(layer_names):
        raise InvalidArgument(f'"{config_name}" lists {len(diff_ids)} diff_ids for '
                              f"{len(layer_names)} layers")
    config = Descriptor(mediatypes.DOCKER_CONFIG, store.add(config_bytes), len(config_bytes))
    layers = [_import_layer(store, source, name, diff_id)
              for name, diff_id in zip(layer_names, diff_ids, strict=True)]
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    })
    return Descriptor(mediatypes.DOCKER_MANIFEST, store.add(manifest), len(manifest))


def import_docker_archive(store: ContentStore, source: ArchiveSource) -> list[ImportedImage]:
    """Store every image of the archive; one ImportedImage per RepoTag (name None for
    an image without tags), after all images are complete."""
    entries = _entries(read_member(source, MANIFEST_FILE, MAX_MANIFEST_SIZE))
    names: list[list[str | None]] = [
        [str(parse_reference(tag)) for tag in entry.get("RepoTags") or []] or [None]
        for entry in entries]
    imported: list[ImportedImage] = []
    for entry, tags in zip(entries, names, strict=True):
        try:
            descriptor = _import_image(store, source, entry)
        except NotFound as error:
            raise InvalidArgument(f"incomplete docker archive: {error}") from None
        imported += [ImportedImage(tag, descriptor) for tag in tags]
    return imported
