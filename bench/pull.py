"""Cold pull + unpack of multi-layer images of real files from a loopback registry:
cdfs (`pull REF` in images/ctl) against `ctr images pull --plain-http` (which unpacks
into containerd's overlayfs snapshotter) and against GNU tar unpacking the same layer
blobs one after the other on the same filesystem. Every repetition starts a fresh
daemon, so the content store is empty each time.

The images are made here from host files, written as an OCI layout and copied into
the registry by skopeo, byte for byte: bench's image (Python's stdlib, gcc's
libraries, the locales: about 110 MB gzipped in three layers) and a Debian-like one
built from this Debian host's own base system the way a minbase image is layered
(binaries and /etc, the shared libraries, data from /usr/share), trimmed to the
issue's Debian bookworm image: about 95 MB gzipped, 206 MB and 6,800 entries.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from harness import (
    Cdfs,
    Row,
    Stack,
    Target,
    median,
    open_cdfs,
    open_containerd,
    open_registry,
    run,
    say,
    temp_dir,
    timed,
)

LAYER_SOURCES = ("usr/lib/python3.11", "usr/lib/gcc", "usr/share/locale")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MB = 1_000_000


@dataclass(frozen=True)
class Trimmed:
    """A layer of host directories cut to a size: every directory and symlink, and the
    regular files of at most `largest` bytes, in name order, while they fit in
    `budget` bytes."""

    paths: tuple[str, ...]
    budget: int
    largest: int

    def entries(self) -> list[str]:
        chosen, used = [], 0
        for path in self.paths:
            for dirpath, dirnames, filenames in os.walk("/" + path):
                dirnames.sort()
                chosen.append(dirpath[1:])
                for name in sorted(filenames):
                    info = os.lstat(os.path.join(dirpath, name))
                    if stat.S_ISREG(info.st_mode):
                        if info.st_size > self.largest or used + info.st_size > self.budget:
                            continue
                        used += info.st_size
                    chosen.append(os.path.join(dirpath, name)[1:])
        return chosen


LayerSource = str | Trimmed

# The Debian bookworm minbase image: 3 layers, 95 MB gzip, 206 MB and 6,768 files.
DEBIAN_LAYERS: tuple[LayerSource, ...] = (
    Trimmed(("usr/bin", "usr/sbin", "etc"), 50 * MB, 1_500_000),
    Trimmed(("usr/lib/x86_64-linux-gnu",), 106 * MB, 2_500_000),
    Trimmed(("usr/share/zoneinfo", "usr/share/perl", "usr/share/mime", "usr/share/java",
             "usr/share/python-wheels", "usr/share/fonts"), 50 * MB, 3 * MB),
)


def _file_digest(path: Path) -> str:
    with open(path, "rb") as blob:
        return "sha256:" + hashlib.file_digest(blob, "sha256").hexdigest()


def _layer(number: int, source: LayerSource, blobs: Path) -> tuple[dict[str, Any], str]:
    """gzip -6 a tar of `source` (a host directory, or a Trimmed selection) into
    blobs/; its descriptor and diff_id. The tar streams through sha256sum and gzip,
    never whole in memory."""
    partial = blobs / f"partial-{number}"
    if isinstance(source, Trimmed):
        listing = blobs / f"list-{number}"
        listing.write_text("".join(f"{entry}\n" for entry in source.entries()))
        files = f'--no-recursion -T "{listing}"'
    else:
        files = f'"{source}"'
    diff_id = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f'tar -C / -cf - {files} | tee >(gzip -6 > "{partial}") | sha256sum'],
        capture_output=True, text=True, timeout=600, check=True).stdout.split()[0]
    if isinstance(source, Trimmed):
        listing.unlink()
    digest = _file_digest(partial)
    size = partial.stat().st_size
    partial.rename(blobs / digest.split(":")[1])
    return {"mediaType": OCI_LAYER, "digest": digest, "size": size}, "sha256:" + diff_id


def _add_blob(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def build_layout(layout: Path, sources: tuple[LayerSource, ...]) -> int:
    """An OCI layout at `layout` with one image of a layer per source, tagged `1`;
    returns the bytes of its layers. Layers are compressed side by side."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    results: dict[int, tuple[dict[str, Any], str]] = {}
    threads = [threading.Thread(target=lambda n=n, s=s: results.__setitem__(n, _layer(n, s, blobs)))
               for n, s in enumerate(sources)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    layers = [results[n][0] for n in range(len(sources))]
    config = _add_blob(blobs, json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [results[n][1] for n in range(len(sources))]},
    }).encode(), OCI_CONFIG)
    manifest = _add_blob(blobs, json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
    }).encode(), OCI_MANIFEST)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**manifest, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    return sum(layer["size"] for layer in layers)


def publish(registry: str, workdir: Path, sources: tuple[LayerSource, ...],
            name: str = "pull") -> tuple[str, int]:
    """Build the image and copy it into `registry` as bench/NAME:1; its reference and
    layer bytes."""
    layout = workdir / "layout"
    size = build_layout(layout, sources)
    ref = f"{registry}/bench/{name}:1"
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1",
         f"docker://{ref}"])
    return ref, size


def _layer_blobs(layout: Path) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    return [blobs / layer["digest"].split(":")[1] for layer in manifest["layers"]]


def gnu_tar_unpack(layout: Path, into: Path) -> float:
    """Seconds GNU tar takes to unpack the image's layers one after the other: the
    floor a pull's unpacking is measured against."""
    into.mkdir()
    return timed(lambda: [run(["tar", "-xzf", str(blob), "-C", str(into)])
                          for blob in _layer_blobs(layout)])


def gzip_inflate(layout: Path) -> float:
    """Seconds `gzip -dc` takes to inflate the layers one after the other, writing
    nothing: what of tar's time is decompression."""
    return timed(lambda: [run(["sh", "-c", f'gzip -dc < "{blob}" > /dev/null'])
                          for blob in _layer_blobs(layout)])


def unpacked(layout: Path) -> tuple[int, int]:
    """Bytes and entries of the image's layers, uncompressed."""
    size = entries = 0
    for blob in _layer_blobs(layout):
        with tarfile.open(blob, "r:gz") as archive:
            for member in archive:
                size += member.size
                entries += 1
    return size, entries


def _event_time(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def cdfs_pull(daemon: Cdfs, ref: str) -> tuple[float, float]:
    """Pull through images/ctl; the seconds it took and the seconds of it spent
    downloading (until the daemon's last /images/pull event that completes a blob)."""
    events = subprocess.Popen(["cat", str(daemon.path("events"))], stdout=subprocess.PIPE,
                              text=True)
    try:
        time.sleep(0.2)  # the reader is open before the pull starts
        started = time.time()
        total = timed(lambda: daemon.images_ctl(f"pull {ref}"))
    finally:
        events.kill()
        output = events.communicate(timeout=30)[0]
    done = [_event_time(e) for e in map(json.loads, output.splitlines())
            if e["topic"] == "/images/pull" and e.get("done") == e.get("total")]
    return total, (max(done) - started) if done else float("nan")


def bench_pull(repetitions: int = 3, sources: tuple[LayerSource, ...] = LAYER_SOURCES,
               label: str = "") -> list[Row]:
    """Cold pulls by cdfs and containerd, and serial `tar -xzf` of the same blobs, in
    turn at every repetition (so each unpacks after the same deletions: on an ext4
    without a journal a new inode skips those freed in the last minutes, which makes
    creating files slower for a while after others were deleted)."""
    with Stack() as stack:
        workdir = temp_dir(stack, "pull")
        say(f"pull: building {label or 'an'} image of {len(sources)} layers")
        ref, size = publish(open_registry(stack, workdir), workdir, sources)
        size_out, entries = unpacked(workdir / "layout")
        say(f"pull: {ref}, {size / MB:.0f} MB compressed, {size_out / MB:.0f} MB and "
            f"{entries} entries unpacked")
        inflate = gzip_inflate(workdir / "layout")
        ours, downloads, theirs, tars, placed_tars = [], [], [], [], []
        placed = workdir / "placed"  # where each tar's directory is placed as a snapshot is
        placed.mkdir()
        run(["chattr", "+T", str(placed)])
        for attempt in range(repetitions):
            say(f"pull: cold pull {attempt + 1}/{repetitions}, cdfs, containerd, tar, tar placed")
            with Stack() as fresh:
                total, download = cdfs_pull(open_cdfs(fresh), ref)
                ours.append(total)
                downloads.append(download)
            with Stack() as fresh:
                containerd = open_containerd(fresh)
                theirs.append(timed(partial(
                    run, containerd.ctr("images", "pull", "--plain-http", ref))))
            into = workdir / f"tar-{attempt}"
            tars.append(gnu_tar_unpack(workdir / "layout", into))
            shutil.rmtree(into)
            into = placed / f"tar-{attempt}"
            placed_tars.append(gnu_tar_unpack(workdir / "layout", into))
            shutil.rmtree(into)
    download = median(downloads)
    name = f"{label} " if label else ""
    pull = (f"cold pull + unpack, {name}{size / MB:.0f} MB in {len(sources)} layers "
            f"({size_out / MB:.0f} MB, {entries} entries unpacked), median")
    return [
        Row(pull, "s", median(ours), "`ctr images pull`", median(theirs), Target(0.6)),
        Row(pull, "s", median(ours), "serial `tar -xzf`", median(tars), Target(0.5)),
        Row(pull, "s", median(ours), "serial `tar -xzf` into a T directory", median(placed_tars)),
        Row("... of which cdfs downloading (to the last blob's /images/pull)", "s", download),
        Row("... of which cdfs unpacking (the rest)", "s", median(ours) - download,
            "serial `gzip -dc`", inflate),
    ]
