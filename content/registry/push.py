"""Push: copy an image from the content store to a registry under a reference."""

from concurrent.futures import ThreadPoolExecutor

from base.errors import InvalidArgument
from content import mediatypes as mt
from content.descriptor import Descriptor
from content.manifest import walk
from content.reference import Reference
from content.registry.client import Progress, Registries, RegistryClient
from content.store import ContentStore

BLOB_WORKERS = 3


def push(store: ContentStore, root: Descriptor, target: Reference,
         progress: Progress | None = None, registries: Registries | None = None,
         mount_from: Reference | None = None) -> None:
    """Push the image `root` (an index or a manifest in `store`) to `target`.

    Blobs the registry lacks are uploaded first (HEAD check first; mounted from
    `mount_from`'s repository instead when it is on the same registry and the
    registry agrees), then manifests, children before the index that lists them, and
    last the root under target's tag (or digest). Everything `root` reaches must be
    in the store (NotFound otherwise, before anything is sent); non-distributable
    layers are not pushed."""
    if target.digest is not None and target.digest != root.digest:
        raise InvalidArgument(f'cannot push {root.digest} as "{target}"')
    reachable = walk(root, store.read)
    for desc in reachable:
        store.info(desc.digest)  # NotFound now rather than half way through the push
    manifests = [d for d in reachable if d.media_type in mt.MANIFESTS | mt.INDEXES]
    blobs = list({d.digest: d for d in reachable
                  if d not in manifests and d.media_type not in mt.NONDISTRIBUTABLE}.values())
    own = registries is None
    registries = registries or Registries()
    try:
        client = registries.client(target.domain)
        source = mount_from.path if mount_from and mount_from.domain == target.domain \
            and mount_from.path != target.path else None
        with ThreadPoolExecutor(BLOB_WORKERS, thread_name_prefix="cdfs-push") as pool:
            for done in [pool.submit(_push_blob, client, store, target.path, blob, source,
                                     progress) for blob in blobs]:
                done.result()
        for manifest in reversed(manifests):
            client.put_manifest(target.path, manifest.digest, manifest.media_type,
                                store.read(manifest.digest))
        client.put_manifest(target.path, target.tag or root.digest, root.media_type,
                            store.read(root.digest))
    finally:
        if own:
            registries.close()


def _push_blob(client: RegistryClient, store: ContentStore, path: str, blob: Descriptor,
               source: str | None, progress: Progress | None) -> None:
    if client.has_blob(path, blob):
        if progress:
            progress(blob.digest, blob.size, blob.size)
        return
    location = None
    if source is not None:
        location = client.mount_blob(path, blob, source)
        if location is None:
            if progress:
                progress(blob.digest, blob.size, blob.size)
            return
    client.upload_blob(path, blob, store.blob_path(blob.digest), progress, location)
