"""Pull: fetch what a reference names into the content store (unpacking is the caller's)."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from base.errors import CdfsError, InvalidArgument, NotFound, PermissionDenied, Unavailable
from content.descriptor import Descriptor
from content.manifest import (
    MAX_CONFIG_SIZE,
    ImageConfig,
    ImageManifest,
    Platform,
    candidates,
    fits,
    no_manifest_for,
    parse_config,
    parse_image_manifest,
    parse_manifest,
)
from content.reference import Reference
from content.registry.client import Progress, Registries, Source
from content.store import ContentStore

LAYER_WORKERS = 3


@dataclass(frozen=True)
class PullResult:
    """What a pull brought in: `root` is what the reference points to (an index or a
    manifest), `manifest` the one chosen for the platform (== root without an index),
    `source` the endpoint that had it (the layers come from there too)."""

    reference: Reference
    root: Descriptor
    manifest: Descriptor
    image: ImageManifest
    config: ImageConfig
    source: Source

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.image.layers


def resolve(ref: Reference, store: ContentStore, platform: Platform | None = None,
            progress: Progress | None = None, registries: Registries | None = None
            ) -> PullResult:
    """Fetch the root manifest or index of `ref`, the manifest for `platform` (default:
    this host) and its config into `store`: everything but the layers. NotFound if the
    registry lacks the reference or no manifest fits the platform (an index entry
    without a platform fits only if its config does, as in containerd), PermissionDenied on
    refused credentials, Unavailable for network and registry failures. The host's
    mirrors are tried first, in order; when every source fails, the error names each
    failure (and is of the last one's kind)."""
    own = registries is None
    registries = registries or Registries()
    failures: list[CdfsError] = []
    try:
        for source in registries.sources(ref.domain, ref.path):
            try:
                return _resolve_at(source, ref, store, platform, progress)
            except (NotFound, PermissionDenied, Unavailable) as exc:
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        raise type(failures[-1])("; ".join(str(f) for f in failures))
    finally:
        if own:
            registries.close()


def _resolve_at(source: Source, ref: Reference, store: ContentStore, platform: Platform | None,
                progress: Progress | None) -> PullResult:
    client, path = source.client, source.path
    root, data = client.fetch_manifest(path, ref.object, store)
    parsed = parse_manifest(data, root.media_type)
    if isinstance(parsed, ImageManifest):
        config = _fetch_config(source, ref, parsed, store, progress)
        if platform is not None and not fits(platform, config):
            raise NotFound(f'"{ref}" is for {config.platform}, not "{platform}"')
        return PullResult(ref, root, root, parsed, config, source)
    for entry in candidates(parsed, platform):
        data = client.fetch_manifest(path, entry.digest, store, expected=entry)[1]
        manifest = parse_image_manifest(data, entry.media_type)
        config = _fetch_config(source, ref, manifest, store, progress)
        if entry.platform is not None or fits(platform, config):
            return PullResult(ref, root, entry, manifest, config, source)
    raise no_manifest_for(platform, parsed)


def _fetch_config(source: Source, ref: Reference, manifest: ImageManifest,
                  store: ContentStore, progress: Progress | None) -> ImageConfig:
    if manifest.config.size > MAX_CONFIG_SIZE:
        raise Unavailable(f'config of "{ref}" is larger than {MAX_CONFIG_SIZE} bytes')
    source.client.fetch_blob(source.path, manifest.config, store, progress)
    try:
        return parse_config(store.read(manifest.config.digest, MAX_CONFIG_SIZE))
    except InvalidArgument as e:
        raise Unavailable(f'config of "{ref}": {e}') from None


def fetch_layers(image: PullResult, store: ContentStore, progress: Progress | None = None,
                 fetched: Callable[[Descriptor], None] | None = None) -> None:
    """Fetch the layers of a resolved image from the source that had it, a few in
    parallel, every one verified before it is committed; `fetched(layer)` is called
    (from a worker thread) as each is in the store, so that unpacking can start before
    the last one arrives."""
    source = image.source

    def fetch(layer: Descriptor) -> None:
        source.client.fetch_blob(source.path, layer, store, progress)
        if fetched is not None:
            fetched(layer)

    unique = list({layer.digest: layer for layer in image.layers}.values())
    with ThreadPoolExecutor(LAYER_WORKERS, thread_name_prefix="cdfs-pull") as pool:
        for done in [pool.submit(fetch, layer) for layer in unique]:
            done.result()


def pull(ref: Reference, store: ContentStore, platform: Platform | None = None,
         progress: Progress | None = None, registries: Registries | None = None) -> PullResult:
    """resolve, then fetch_layers: the whole image in the store. A failed pull leaves
    verified blobs behind, never a wrong blob or an ingest."""
    own = registries is None
    registries = registries or Registries()
    try:
        image = resolve(ref, store, platform, progress, registries)
        fetch_layers(image, store, progress)
        return image
    finally:
        if own:
            registries.close()
