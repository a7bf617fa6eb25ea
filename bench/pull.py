"""Cold pull + unpack of a multi-layer image of real files from a loopback registry:
cdfs (`pull REF` in images/ctl) against `ctr images pull --plain-http` (which unpacks
into containerd's overlayfs snapshotter). Every repetition starts a fresh daemon, so the
content store is empty each time.

The image is made here from host directories (Python's stdlib, gcc's libraries, the
locales: real, compressible content, about 110 MB gzipped in three layers), written as an
OCI layout and copied into the registry by skopeo, byte for byte.
"""

import hashlib
import json
import subprocess
import threading
import time
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


def _file_digest(path: Path) -> str:
    with open(path, "rb") as blob:
        return "sha256:" + hashlib.file_digest(blob, "sha256").hexdigest()


def _layer(source: str, blobs: Path) -> tuple[dict[str, Any], str]:
    """gzip -6 a tar of `/source` into blobs/; its descriptor and diff_id. The tar
    streams through sha256sum and gzip, never whole in memory."""
    partial = blobs / f"partial-{source.replace('/', '_')}"
    diff_id = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f'tar -C / -cf - "{source}" | tee >(gzip -6 > "{partial}") | sha256sum'],
        capture_output=True, text=True, timeout=600, check=True).stdout.split()[0]
    digest = _file_digest(partial)
    size = partial.stat().st_size
    partial.rename(blobs / digest.split(":")[1])
    return {"mediaType": OCI_LAYER, "digest": digest, "size": size}, "sha256:" + diff_id


def _add_blob(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def build_layout(layout: Path, sources: tuple[str, ...]) -> int:
    """An OCI layout at `layout` with one image of a layer per source directory, tagged
    `1`; returns the bytes of its layers. Layers are compressed two at a time."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    results: dict[str, tuple[dict[str, Any], str]] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, _layer(s, blobs)))
               for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    layers = [results[s][0] for s in sources]
    config = _add_blob(blobs, json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [results[s][1] for s in sources]},
    }).encode(), OCI_CONFIG)
    manifest = _add_blob(blobs, json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
    }).encode(), OCI_MANIFEST)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**manifest, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    return sum(layer["size"] for layer in layers)


def publish(registry: str, workdir: Path, sources: tuple[str, ...],
            name: str = "pull") -> tuple[str, int]:
    """Build the image and copy it into `registry` as bench/NAME:1; its reference and
    layer bytes."""
    layout = workdir / "layout"
    size = build_layout(layout, sources)
    ref = f"{registry}/bench/{name}:1"
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1",
         f"docker://{ref}"])
    return ref, size


def gnu_tar_unpack(layout: Path, into: Path) -> float:
    """Seconds GNU tar takes to unpack the image's layers one after the other: the
    floor a pull's unpacking is measured against."""
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    into.mkdir()
    return timed(lambda: [run(["tar", "-xzf", str(blobs / layer["digest"].split(":")[1]),
                               "-C", str(into)]) for layer in manifest["layers"]])


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


def bench_pull(repetitions: int = 3, sources: tuple[str, ...] = LAYER_SOURCES) -> list[Row]:
    with Stack() as stack:
        workdir = temp_dir(stack, "pull")
        say(f"pull: building an image of {', '.join('/' + s for s in sources)}")
        ref, size = publish(open_registry(stack, workdir), workdir, sources)
        say(f"pull: {ref}, {len(sources)} layers, {size / 1e6:.0f} MB compressed")
        tar = gnu_tar_unpack(workdir / "layout", workdir / "tar")
        ours, downloads, theirs = [], [], []
        for attempt in range(repetitions):
            say(f"pull: cold pull {attempt + 1}/{repetitions}, cdfs then containerd")
            with Stack() as fresh:
                total, download = cdfs_pull(open_cdfs(fresh), ref)
                ours.append(total)
                downloads.append(download)
            with Stack() as fresh:
                containerd = open_containerd(fresh)
                theirs.append(timed(partial(
                    run, containerd.ctr("images", "pull", "--plain-http", ref))))
    download = median(downloads)
    pull = f"cold pull + unpack, {size / 1e6:.0f} MB in {len(sources)} layers, median"
    return [
        Row(pull, "s", median(ours), "`ctr images pull`", median(theirs), Target(0.6)),
        Row(pull, "s", median(ours), "serial `tar -xzf`", tar, Target(0.5)),
        Row("... of which cdfs downloading (to the last blob's /images/pull)", "s", download),
        Row("... of which cdfs unpacking (the rest)", "s", median(ours) - download),
    ]
