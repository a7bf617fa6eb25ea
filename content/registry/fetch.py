"""Pull: fetch what a reference names into the content store (unpacking is the caller's)."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from base.errors import InvalidArgument, Unavailable
from content.descriptor import Descriptor
from content.manifest import (
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
from content.reference import Reference
from content.registry.client import Progress, Registries
from content.store import ContentStore

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


def resolve(ref: Reference, store: ContentStore, platform: Platform | None = None,
            progress: Progress | None = None, registries: Registries | None = None
            ) -> PullResult:
    """Fetch the root manifest or index of `ref`, the manifest for `platform` (default:
    this host) and its config into `store`: everything but the layers. NotFound if the
    registry lacks the reference or the index lacks the platform, PermissionDenied on
    refused credentials, Unavailable for network and registry failures."""
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
        return PullResult(ref, root, manifest_desc, manifest, config)
    finally:
        if own:
            registries.close()


def fetch_layers(image: PullResult, store: ContentStore, progress: Progress | None = None,
                 registries: Registries | None = None,
                 fetched: Callable[[Descriptor], None] | None = None) -> None:
    """Fetch the layers of a resolved image, a few in parallel, every one verified
    before it is committed; `fetched(layer)` is called (from a worker thread) as each
    is in the store, so that unpacking can start before the last one arrives."""
    own = registries is None
    registries = registries or Registries()
    ref = image.reference
    try:
        client = registries.client(ref.domain)

        def fetch(layer: Descriptor) -> None:
            client.fetch_blob(ref.path, layer, store, progress)
            if fetched is not None:
                fetched(layer)

        unique = list({layer.digest: layer for layer in image.layers}.values())
        with ThreadPoolExecutor(LAYER_WORKERS, thread_name_prefix="cdfs-pull") as pool:
            for done in [pool.submit(fetch, layer) for layer in unique]:
                done.result()
    finally:
        if own:
            registries.close()


def pull(ref: Reference, store: ContentStore, platform: Platform | None = None,
         progress: Progress | None = None, registries: Registries | None = None) -> PullResult:
    """resolve, then fetch_layers: the whole image in the store. A failed pull leaves
    verified blobs and resumable ingests behind, never a wrong blob."""
    image = resolve(ref, store, platform, progress, registries)
    fetch_layers(image, store, progress, registries)
    return image
