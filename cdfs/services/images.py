"""Images per namespace: pull, push, tag, rm, import, export, and their unpacking.

An image is a name pointing at a root descriptor in the shared content store (a
manifest, or an index of which one manifest was chosen for this host), plus the
chain ID of its unpacked layers in the namespace's snapshots. The records live in
sqlite and in memory, so the tree lists and looks images up without waiting on disk.
Registry, archive and unpack work blocks: it all runs in worker threads.
"""

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import trio

from base.clock import rfc3339
from base.errors import (
    AlreadyExists,
    CdfsError,
    InvalidArgument,
    NoSpace,
    NotFound,
    Unavailable,
)
from cdfs.db import Database, dumps
from cdfs.events import EventBus
from cdfs.services.leases import Hold, Leases
from cdfs.services.namespaces import Namespaces
from cdfs.services.snapshots import Snapshots
from content import archive, busybox
from content.descriptor import Descriptor
from content.manifest import (
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    ImageConfig,
    ImageManifest,
    Platform,
    candidates,
    fits,
    no_manifest_for,
    parse_config,
    parse_image_manifest,
    parse_manifest,
    parse_platform,
)
from content.reference import Reference, parse_reference
from content.registry.client import Registries
from content.registry.credentials import load_credentials, load_pull_credentials
from content.registry.fetch import PullResult, fetch_layers, resolve
from content.registry.hosts import parse_mirrors
from content.registry.push import push as upload
from content.rootfs import RootView
from content.space import free_bytes, is_out_of_space
from content.store import ContentStore
from content.unpacker import chain_ids, unpack

log = logging.getLogger(__name__)

LOCAL_BUSYBOX = "cdfs.local/busybox:latest"
REGISTRIES_FILE = "registries.json"


@dataclass(frozen=True)
class ImageRecord:
    """One image of a namespace: its name, what it points at (`target`), the manifest
    chosen for this host and its config, and the top snapshot of its layers."""

    namespace: str
    name: str
    target: Descriptor
    manifest: Descriptor
    image: ImageManifest
    config: ImageConfig
    chain_id: str
    created_at: str
    updated_at: str

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.image.layers

    @property
    def platform(self) -> Platform:
        return self.config.platform

    @property
    def size(self) -> int:
        """Bytes of its blobs in the store: manifest(s), config and layers."""
        index = self.target.size if self.target.digest != self.manifest.digest else 0
        return (index + self.manifest.size + self.image.config.size
                + sum(layer.size for layer in self.layers))


@dataclass
class Progress:
    """What a pull or push has done so far, per blob, and how it ended."""

    blobs: dict[str, tuple[int, int]] = field(default_factory=dict)
    outcome: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, digest: str, done: int, total: int) -> None:
        with self.lock:
            self.blobs[digest] = (done, total)

    def render(self) -> str:
        with self.lock:
            lines = [f"{digest} {done}/{total}" for digest, (done, total) in self.blobs.items()]
        if self.outcome:
            lines.append(self.outcome)
        return "".join(line + "\n" for line in lines)


class Arrivals:
    """Layers landing in the store while a pull downloads them, so that unpacking can
    follow the download instead of waiting for its end. The download runs in a thread
    of its own (`run`); the unpack waits for each layer it needs (`wait`)."""

    def __init__(self) -> None:
        self._landed: set[str] = set()
        self._failure: BaseException | None = None
        self._over = False
        self._changed = threading.Condition()

    def run(self, download: Callable[[], None]) -> None:
        try:
            download()
        except BaseException as exc:
            self._failure = exc
        finally:
            with self._changed:
                self._over = True
                self._changed.notify_all()

    def arrived(self, layer: Descriptor) -> None:
        with self._changed:
            self._landed.add(layer.digest)
            self._changed.notify_all()

    def wait(self, layer: Descriptor) -> None:
        """Return once `layer` is in the store; raise what the download failed with."""
        with self._changed:
            self._changed.wait_for(lambda: layer.digest in self._landed or self._over)
            if layer.digest in self._landed:
                return
        self.check()
        raise Unavailable(f'layer "{layer.digest}" was not downloaded')

    def check(self) -> None:
        if self._failure is not None:
            raise self._failure


class Images:
    """The images of every namespace."""

    def __init__(self, db: Database, bus: EventBus, store: ContentStore, snapshots: Snapshots,
                 namespaces: Namespaces, root: Path, leases: Leases) -> None:
        self._db = db
        self._leases = leases
        self._bus = bus
        self._store = store
        self._snapshots = snapshots
        self._namespaces = namespaces
        self._records: dict[str, dict[str, ImageRecord]] = {}
        self._progress: dict[tuple[str, str], Progress] = {}
        self._busy: set[tuple[str, str]] = set()
        # One change of the records at a time: a change looks a name up, then awaits the
        # database, and verbs run side by side (each ctl writer has an inode of its own), so
        # a second `rm` of a name must look after the first has finished.
        self._changing = trio.Lock()
        self._root = root
        self._config_file = root / REGISTRIES_FILE
        self.registries = Registries()
        # Frees what nothing references (the app's gc): run after a failed pull, so
        # that what it wrote goes at once.
        self.reclaim: Callable[[], Awaitable[object]] | None = None

    # -- loading -------------------------------------------------------------
    async def load(self) -> None:
        """Read every image record; an image whose blobs vanished is skipped."""
        rows = await self._db.query("SELECT * FROM images")
        await self.reload_registries()
        for row in rows:
            try:
                record = await trio.to_thread.run_sync(self._record_from_row, row)
            except CdfsError as exc:
                log.warning("image %s in %s is unusable: %s", row["name"], row["namespace"], exc)
                continue
            self._records.setdefault(record.namespace, {})[record.name] = record

    async def reload_registries(self) -> None:
        """(Re)read credentials, insecure hosts and mirrors from <root>/registries.json."""
        def read() -> Registries:
            credentials = load_credentials(self._config_file)
            data = {}
            if self._config_file.exists():
                data = json.loads(self._config_file.read_text() or "{}")
            insecure = frozenset(str(h) for h in data.get("insecure", []))
            return Registries(credentials, insecure, mirrors=parse_mirrors(data.get("mirrors")))

        old, self.registries = self.registries, await trio.to_thread.run_sync(read)
        old.close()

    def _record_from_row(self, row: sqlite3.Row) -> ImageRecord:
        target = Descriptor(row["media_type"], row["digest"], row["size"])
        manifest = Descriptor.from_json(json.loads(row["manifest"])) if row["manifest"] \
            else target
        return self._build_record(row["namespace"], row["name"], target, manifest,
                                  row["chain_id"], row["created_at"], row["updated_at"])

    def _build_record(self, namespace: str, name: str, target: Descriptor,
                      manifest: Descriptor, chain_id: str, created: str,
                      updated: str) -> ImageRecord:
        image = parse_image_manifest(self._store.read(manifest.digest, MAX_MANIFEST_SIZE),
                                     manifest.media_type)
        config = parse_config(self._store.read(image.config.digest, MAX_CONFIG_SIZE))
        return ImageRecord(namespace, name, target, manifest, image, config, chain_id,
                           created, updated)

    # -- queries -------------------------------------------------------------
    def names(self, namespace: str) -> list[str]:
        """Names of the images, and of those being pulled, in `namespace`."""
        names = set(self._records.get(namespace, {}))
        names.update(name for ns, name in self._busy if ns == namespace)
        return sorted(names)

    def find(self, namespace: str, name: str) -> ImageRecord | None:
        return self._records.get(namespace, {}).get(name)

    async def get(self, namespace: str, ref: str) -> ImageRecord:
        """The image `ref` (normalised as docker does) of `namespace`."""
        name = str(parse_reference(ref.strip()))
        record = self.find(namespace, name)
        if record is None:
            raise NotFound(f'no image "{ref}" in namespace "{namespace}"')
        return record

    async def rootfs(self, namespace: str, name: str) -> RootView:
        """The image's unpacked files, read-only, whiteouts applied (its top snapshot's
        layers merged without mounting them)."""
        record = self.find(namespace, name)
        if record is None or not record.chain_id:
            raise NotFound(f'image "{name}" is not unpacked')
        return RootView(await self._snapshots.layers(namespace, record.chain_id))

    def progress(self, namespace: str, name: str) -> str:
        progress = self._progress.get((namespace, name))
        return progress.render() if progress else ""

    def all_records(self) -> list[ImageRecord]:
        return [r for records in self._records.values() for r in records.values()]

    # -- verbs ---------------------------------------------------------------
    async def pull(self, namespace: str, ref_text: str, platform_text: str | None = None,
                   credentials_file: str | None = None, reader_uid: int = 0) -> ImageRecord:
        """Fetch `ref` into the store and unpack it; returns when the image is ready.
        With `credentials_file` (load_pull_credentials, a file `reader_uid` owns) the
        pull uses those credentials and clients of its own."""
        self._namespaces.check(namespace)
        ref = parse_reference(ref_text)
        platform = parse_platform(platform_text) if platform_text else None
        registries = self.registries
        if credentials_file is not None:
            credentials = await trio.to_thread.run_sync(
                load_pull_credentials, Path(credentials_file), ref.domain, reader_uid)
            registries = self.registries.for_pull(credentials)
        try:
            return await self._pull(namespace, ref, platform, registries)
        finally:
            if registries is not self.registries:
                registries.close()

    async def _pull(self, namespace: str, ref: Reference, platform: Platform | None,
                    registries: Registries) -> ImageRecord:
        name = str(ref)
        progress = self._begin(namespace, name)
        token = trio.lowlevel.current_trio_token()
        announced: set[str] = set()

        def report(digest: str, done: int, total: int) -> None:
            progress.update(digest, done, total)
            if done == total or digest not in announced:
                announced.add(digest)
                trio.from_thread.run_sync(
                    lambda: self._bus.publish(namespace, "/images/pull", name, name=name,
                                              digest=digest, done=done, total=total),
                    trio_token=token)

        def fetch_and_unpack(image: PullResult) -> str:
            arrivals = Arrivals()
            downloads = threading.Thread(target=arrivals.run, name="cdfs-pull", args=(
                lambda: fetch_layers(image, self._store, report, arrivals.arrived),))
            downloads.start()
            try:
                chain_id = self._unpack(namespace, image.image, image.config, arrivals.wait)
            finally:
                downloads.join()
            arrivals.check()
            return chain_id

        image: PullResult | None = None
        try:
            async with self._leases.hold(namespace) as hold:
                image = await trio.to_thread.run_sync(
                    lambda: resolve(ref, self._store, platform, report, registries))
                await _name_in(hold, image.root, image.manifest, image.image, image.config)
                chain_id = await trio.to_thread.run_sync(fetch_and_unpack, image)
                record = await self._record(namespace, name, image.root, image.manifest,
                                            image.image, image.config, chain_id)
        except Exception as exc:
            failure: Exception = exc
            if is_out_of_space(exc):
                failure = NoSpace(await trio.to_thread.run_sync(
                    self._no_space_message, name, image))
            progress.outcome = f"error: {failure}"
            await self._reclaim_after(name)
            if failure is exc:
                raise
            raise failure from exc
        except BaseException as exc:
            progress.outcome = f"error: {exc}"
            raise
        finally:
            self._busy.discard((namespace, name))
        progress.outcome = "done"
        return record

    def _free_bytes(self) -> int:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return free_bytes(fd)[0]
        finally:
            os.close(fd)

    def _no_space_message(self, name: str, image: PullResult | None) -> str:
        """What a pull that ran out of disk says: how much the image's blobs take (once
        known; unpacked layers need more) and what was free when it stopped."""
        free = self._free_bytes()
        message = f"no space left on {self._root} while pulling {name}"
        if image is None:
            return f"{message}: {free} bytes free"
        blobs = (image.manifest, image.image.config, *image.image.layers)
        needed = sum(blob.size for blob in {b.digest: b for b in blobs}.values())
        return f"{message}: {needed} bytes needed for its blobs alone, {free} free"

    async def _reclaim_after(self, name: str) -> None:
        """Free what a failed pull wrote (blobs, layer snapshots): nothing names it."""
        if self.reclaim is None:
            return
        with trio.CancelScope(shield=True):
            try:
                await self.reclaim()
            except Exception as exc:  # the pull's own error is what the user must see
                log.warning("gc after the failed pull of %s: %r", name, exc)

    async def push(self, namespace: str, ref_text: str, target_text: str | None = None) -> None:
        record = await self.get(namespace, ref_text)
        target = parse_reference(target_text) if target_text else parse_reference(record.name)
        source = parse_reference(record.name)
        progress = Progress()
        self._progress[(namespace, record.name)] = progress
        try:
            await trio.to_thread.run_sync(
                lambda: upload(self._store, record.target, target, progress.update,
                               self.registries, mount_from=source))
        except BaseException as exc:
            progress.outcome = f"error: {exc}"
            raise
        progress.outcome = "done"
        self._bus.publish(namespace, "/images/push", str(target), name=str(target),
                          digest=record.target.digest)

    async def tag(self, namespace: str, ref_text: str, new_text: str) -> None:
        record = await self.get(namespace, ref_text)
        new = parse_reference(new_text)
        if new.digest and new.digest != record.target.digest:
            raise InvalidArgument(f'"{new_text}" names another digest than "{record.name}"')
        now = rfc3339()
        await self._save(replace(record, name=str(new), created_at=now, updated_at=now))

    async def remove(self, namespace: str, ref_text: str) -> None:
        async with self._changing:
            record = await self.get(namespace, ref_text)
            await self._db.execute("DELETE FROM images WHERE namespace = ? AND name = ?",
                                   (namespace, record.name))
            del self._records[namespace][record.name]
        self._progress.pop((namespace, record.name), None)
        self._bus.publish(namespace, "/images/delete", record.name, name=record.name)

    async def import_archive(self, namespace: str, path_text: str, ref_text: str | None = None
                             ) -> list[ImageRecord]:
        """Import the images of an OCI layout (dir or tar) or docker archive on the host."""
        self._namespaces.check(namespace)
        path = Path(path_text)
        if not path.is_absolute():
            raise InvalidArgument(f'import needs an absolute host path: "{path_text}"')
        try:
            async with self._leases.hold(namespace) as hold:
                return await self._import(namespace, path, path_text, ref_text, hold)
        except Exception as exc:
            failure: Exception = exc
            if is_out_of_space(exc):
                free = await trio.to_thread.run_sync(self._free_bytes)
                failure = NoSpace(f"no space left on {self._root} while importing "
                                  f"{path_text}: {free} bytes free")
            await self._reclaim_after(path_text)  # what the failed import wrote
            if failure is exc:
                raise
            raise failure from exc

    async def _import(self, namespace: str, path: Path, path_text: str, ref_text: str | None,
                      hold: Hold) -> list[ImageRecord]:
        imported = await trio.to_thread.run_sync(archive.import_archive, self._store, path)
        await hold.name(image.descriptor.digest for image in imported)
        if ref_text is not None and len(imported) != 1:
            raise InvalidArgument(f'"{path_text}" holds {len(imported)} images; '
                                  "name them in the archive instead of with REF")
        unnamed = [image for image in imported if image.name is None]
        if unnamed and ref_text is None:
            raise InvalidArgument(f'"{path_text}" holds an unnamed image: give REF')
        records = []
        for image in imported:
            name = str(parse_reference(ref_text or image.name or ""))
            records.append(await self.add_local(namespace, name, image.descriptor))
        return records

    async def export_archive(self, namespace: str, ref_text: str, path_text: str) -> None:
        record = await self.get(namespace, ref_text)
        path = Path(path_text)
        if not path.is_absolute():
            raise InvalidArgument(f'export needs an absolute host path: "{path_text}"')

        def export() -> None:
            if path.exists():
                raise AlreadyExists(f'"{path_text}" exists; export does not overwrite')
            archive.export_archive(self._store, record.target, record.name, path)

        await trio.to_thread.run_sync(export)

    async def add_local(self, namespace: str, name: str, root: Descriptor) -> ImageRecord:
        """Name an image whose blobs are in the store already, and unpack it."""
        async with self._leases.hold(namespace) as hold:
            await hold.name([root.digest])
            manifest_desc, image = await trio.to_thread.run_sync(self._choose_manifest, root)
            config = await trio.to_thread.run_sync(
                lambda: parse_config(self._store.read(image.config.digest, MAX_CONFIG_SIZE)))
            await _name_in(hold, root, manifest_desc, image, config)
            self._busy.add((namespace, name))
            try:
                return await self._unpack_and_save(namespace, name, root, manifest_desc, image,
                                                   config)
            finally:
                self._busy.discard((namespace, name))

    async def ensure_busybox(self) -> None:
        """Build the host's busybox into an image in the default namespace (no network)."""
        root = await trio.to_thread.run_sync(busybox.build_busybox_image, self._store)
        current = self.find("default", LOCAL_BUSYBOX)
        if current is None or current.target.digest != root.digest:
            await self.add_local("default", LOCAL_BUSYBOX, root)

    # -- internals -----------------------------------------------------------
    def _begin(self, namespace: str, name: str) -> Progress:
        if (namespace, name) in self._busy:
            raise AlreadyExists(f'"{name}" is being pulled already')
        self._busy.add((namespace, name))
        progress = Progress()
        self._progress[(namespace, name)] = progress
        return progress

    def _choose_manifest(self, root: Descriptor) -> tuple[Descriptor, ImageManifest]:
        parsed = parse_manifest(self._store.read(root.digest, MAX_MANIFEST_SIZE),
                                root.media_type or None)
        if isinstance(parsed, ImageManifest):
            return root, parsed
        for entry in candidates(parsed):
            image = parse_image_manifest(self._store.read(entry.digest, MAX_MANIFEST_SIZE),
                                         entry.media_type)
            if entry.platform is not None or fits(None, parse_config(
                    self._store.read(image.config.digest, MAX_CONFIG_SIZE))):
                return entry, image
        raise no_manifest_for(None, parsed)

    def _unpack(self, namespace: str, image: ImageManifest, config: ImageConfig,
                ready: Callable[[Descriptor], None] | None = None) -> str:
        """Unpack the image's layers into the namespace's snapshots (blocking); the
        top chain ID."""
        return unpack(self._store, self._snapshots.of(namespace), list(image.layers),
                      list(config.diff_ids), ready=ready)

    async def _unpack_and_save(self, namespace: str, name: str, root: Descriptor,
                               manifest: Descriptor, image: ImageManifest,
                               config: ImageConfig) -> ImageRecord:
        chain_id = await trio.to_thread.run_sync(self._unpack, namespace, image, config)
        return await self._record(namespace, name, root, manifest, image, config, chain_id)

    async def _record(self, namespace: str, name: str, root: Descriptor, manifest: Descriptor,
                      image: ImageManifest, config: ImageConfig, chain_id: str) -> ImageRecord:
        old = self.find(namespace, name)
        now = rfc3339()
        record = ImageRecord(namespace, name, root, manifest, image, config, chain_id,
                             old.created_at if old else now, now)
        await self._save(record)
        return record

    async def _save(self, record: ImageRecord) -> None:
        manifest = dumps(record.manifest.to_json()) if record.manifest != record.target else ""
        async with self._changing:
            old = self.find(record.namespace, record.name)
            await self._db.execute(
                "INSERT OR REPLACE INTO images (namespace, name, media_type, digest, size,"
                " manifest, platform, chain_id, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (record.namespace, record.name, record.target.media_type, record.target.digest,
                 record.target.size, manifest, str(record.platform), record.chain_id,
                 record.created_at, record.updated_at))
            self._records.setdefault(record.namespace, {})[record.name] = record
        topic = "/images/update" if old else "/images/create"
        self._bus.publish(record.namespace, topic, record.name, name=record.name,
                          digest=record.target.digest)


async def _name_in(hold: Hold, root: Descriptor, manifest: Descriptor, image: ImageManifest,
                   config: ImageConfig) -> None:
    """Make a lease in flight keep an image's blobs and layer snapshots, those found
    already there included, until the image's record names them: before unpacking
    asks which layers' snapshots exist."""
    await hold.name({root.digest, manifest.digest, image.config.digest,
                     *(layer.digest for layer in image.layers)},
                    chain_ids(list(config.diff_ids)))


def parse_pull_options(words: list[str]) -> dict[str, str]:
    """The options after a pull's REF: `platform=OS/ARCH[/VARIANT]` and
    `credentials=FILE`, each at most once, in any order."""
    options: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        if key not in ("platform", "credentials") or not equals or not value:
            raise InvalidArgument(f'expected platform=OS/ARCH[/VARIANT] or credentials=FILE, '
                                  f'got "{word}"')
        if key in options:
            raise InvalidArgument(f"{key}= given twice")
        options[key] = value
    if "platform" in options:
        parse_platform(options["platform"])
    return options
