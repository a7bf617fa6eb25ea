"""Pulls beyond the first: a second namespace pulling the same image (does it unpack
again?), verbs in the same namespace while a big pull runs (do they queue behind it?),
and the daemon's peak memory while it unpacks a decompression bomb (a layer of one
file of zeros, ~1000:1).

One registry holds the bench's big image (pull.py's), a small one and the bomb; each
measure gets a fresh daemon. The big pull beside the verbs goes through a loopback
throttle (harness.Throttle) so it is still running when they are measured.
"""

import contextlib
import json
import subprocess
import threading
from functools import partial
from pathlib import Path

from harness import (
    Cdfs,
    Row,
    Stack,
    Target,
    open_cdfs,
    open_registry,
    open_throttle,
    run,
    say,
    temp_dir,
    timed,
    write,
)
from pull import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, _add_blob, _file_digest, publish

BOMB_BYTES = 512 << 20  # quick runs too: it costs ~3 s to make
QUEUE_LIMIT = 1.5  # seconds
PULL_SECONDS = 10.0  # how long the big image's download lasts through the throttle


def disk_bytes(path: Path) -> int:
    """Bytes `path` takes on disk (du), hard links counted once."""
    return int(run(["du", "-sxb", str(path)]).split()[0])


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of a process's resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def publish_bomb(registry: str, workdir: Path) -> str:
    """An image of one layer: a tar of one file of BOMB_BYTES zeros, gzipped."""
    layout = workdir / "bomb"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (workdir / "zeros").mkdir()
    with open(workdir / "zeros" / "zero", "wb") as f:
        f.truncate(BOMB_BYTES)
    partial_blob = blobs / "partial"
    diff_id = subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f'tar -C "{workdir / "zeros"}" -cf - zero | tee >(gzip -1 > "{partial_blob}") '
         "| sha256sum"], capture_output=True, text=True, timeout=600,
        check=True).stdout.split()[0]
    digest = _file_digest(partial_blob)
    layer = {"mediaType": OCI_LAYER, "digest": digest, "size": partial_blob.stat().st_size}
    partial_blob.rename(blobs / digest.split(":")[1])
    config = _add_blob(blobs, json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]}}).encode(), OCI_CONFIG)
    manifest = _add_blob(blobs, json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                            "config": config, "layers": [layer]}).encode(),
                         OCI_MANIFEST)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**manifest, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    ref = f"{registry}/bench/bomb:1"
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1",
         f"docker://{ref}"])
    return ref


def second_namespace(daemon: Cdfs, ref: str) -> tuple[float, float, float]:
    """Seconds of the first pull, of the same pull in a new namespace, and the MB the
    root grew by with the second."""
    first = timed(partial(daemon.images_ctl, f"pull {ref}"))
    root = daemon.home / "root"
    before = disk_bytes(root)
    daemon.path("namespaces", "second").mkdir()
    second = timed(partial(write, daemon.path("namespaces", "second", "images", "ctl"),
                           f"pull {ref}\n"))
    return first, second, (disk_bytes(root) - before) / 1e6


def verbs_during_pull(daemon: Cdfs, big: str, small: str) -> dict[str, tuple[float, bool]]:
    """While `big` is being pulled (through a throttle, so that it lasts), the seconds a
    pull of `small`, a tag and an `ls images/` in the same namespace take (each waits at
    most 60 s), each with whether the big pull was still running as it started: one
    queued behind the big pull outlasts it, and the verbs after it then run alone."""
    done = threading.Event()
    failure: list[BaseException] = []

    def pull_big() -> None:
        try:
            daemon.images_ctl(f"pull {big}")
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=pull_big)
    thread.start()
    try:
        done.wait(1.0)  # well into the download and unpack
        times: dict[str, tuple[float, bool]] = {}
        verbs = {
            "pull a small image": lambda: daemon.images_ctl(f"pull {small}"),
            "tag": lambda: daemon.images_ctl(f"tag cdfs.local/busybox:latest {small}-copy"),
            "`ls images/`": lambda: subprocess.run(["ls", str(daemon.ns("images"))],
                                                   stdout=subprocess.DEVNULL, check=True,
                                                   timeout=60),
        }
        for name, verb in verbs.items():
            running = not done.is_set()
            times[name] = timed(verb), running
    finally:
        thread.join(timeout=600)
    if failure:
        raise failure[0]
    return times


def bench_tenants(sources: tuple[str, ...], small_sources: tuple[str, ...],
                  pull_seconds: float = PULL_SECONDS) -> list[Row]:
    with Stack() as stack:
        workdir = temp_dir(stack, "tenants")
        registry = open_registry(stack, workdir)
        say("tenants: publishing the big and the small image and a bomb")
        (workdir / "big").mkdir()
        (workdir / "small").mkdir()
        big, size = publish(registry, workdir / "big", sources)
        small, _ = publish(registry, workdir / "small", small_sources, "small")
        bomb = publish_bomb(registry, workdir)
        say("tenants: a second namespace pulling the same image")
        with Stack() as fresh:
            first, second, growth = second_namespace(open_cdfs(fresh), big)
        say("tenants: verbs while a big pull runs")
        with Stack() as fresh:
            slowed = open_throttle(fresh, registry, size / pull_seconds)
            times = verbs_during_pull(open_cdfs(fresh), big.replace(registry, slowed, 1), small)
        say("tenants: a decompression bomb")
        with Stack() as fresh:
            daemon = open_cdfs(fresh)
            rss_before = peak_rss_mb(daemon.pid)
            with contextlib.suppress(OSError):  # refused is fine: the figure is memory
                daemon.images_ctl(f"pull {bomb}")
            peak = peak_rss_mb(daemon.pid)
    return [
        Row("second namespace pulling the same image: root growth", "MB", growth,
            target=Target(5, absolute=True, strict=True)),
        Row("second namespace pulling the same image", "s", second, "the first pull", first,
            Target(0.3, strict=True)),
        *(Row(f"during a big pull in the same namespace: {name}"
              + ("" if running else " (the big pull had ended: not a measure of queueing)"),
              "s", seconds, target=Target(QUEUE_LIMIT, absolute=True) if running else None)
          for name, (seconds, running) in times.items()),
        Row(f"daemon peak Rss pulling a {BOMB_BYTES >> 20} MB bomb layer "
            f"(started at {rss_before:.0f} MB)", "MB", peak,
            target=Target(150, absolute=True, strict=True)),
    ]

