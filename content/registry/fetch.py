"""Pull: fetch what a reference names into the content store (unpacking is the caller's)."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cdfs.content.descriptor import Descriptor
from cdfs.content.manifest import (
    MAX_CONFIG_SIZE,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_config,
    parse_image_manifest,
    parse_manifest,
    select_manifest,
)
from cdfs.content.reference import Reference
from cdfs.content.registry.client import Progress, Registries
from cdfs.content.store import ContentStore
from cdfs.errors import InvalidArgument, Unavailable

LAYER_WORKERS = 3


@dataclass(frozen=True)
class PullResult:
    """What a pull brought in: `root` is what the reference points to (an index or a
    manifest), `manifest` the one chosen for the platform (== root without an index)."""

    reference: Reference
    root: Descriptor
    manifest: Descriptor
    image: ImageManifest
    config: ImageConfig

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.image.layers


def pull(ref: Reference, store: ContentStore, platform: Platform | None = None,
         progress: Progress | None = None, registries: Registries | None = None) -> PullResult:
    """Fetch the root manifest or index of `ref`, the manifest for `platform` (default:
    this host), its config and its layers (a few in parallel) into `store`.

    Every blob is verified before it is committed; a failed pull leaves verified blobs
    and resumable ingests behind, never a wrong blob. NotFound if the registry lacks
    the reference or the index lacks the platform, PermissionDenied on refused
    credentials, Unavailable for network and registry failures."""
    own = registries is None
    registries = registries or Registries()
    try:
        client = registries.client(ref.domain)
        root, data = client.fetch_manifest(ref.path, ref.object, store)
        manifest_desc, manifest = root, parse_manifest(data, root.media_type)
        if isinstance(manifest, ImageIndex):
            manifest_desc = select_manifest(manifest, platform)
            data = client.fetch_manifest(ref.path, manifest_desc.digest, store,
                                         expected=manifest_desc)[1]
            manifest = parse_image_manifest(data, manifest_desc.media_type)
        if manifest.config.size > MAX_CONFIG_SIZE:
            raise Unavailable(f'config of "{ref}" is larger than {MAX_CONFIG_SIZE} bytes')
        client.fetch_blob(ref.path, manifest.config, store, progress)
        try:
            config = parse_config(store.read(manifest.config.digest, MAX_CONFIG_SIZE))
        except InvalidArgument as e:
            raise Unavailable(f'config of "{ref}": {e}') from None
        unique = list({layer.digest: layer for layer in manifest.layers}.values())
        with ThreadPoolExecutor(LAYER_WORKERS, thread_name_prefix="cdfs-pull") as pool:
            for done in [pool.submit(client.fetch_blob, ref.path, layer, store, progress)
                         for layer in unique]:
                done.result()
        return PullResult(ref, root, manifest_desc, manifest, config)
    finally:
        if own:
            registries.close()
