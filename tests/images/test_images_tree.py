"""images/ and snapshots/ through the mounted tree, with a real registry and skopeo."""

import errno
import hashlib
import http.client
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import Daemon, wait_opened, wait_until

from cdfs.services.leases import COVER_MARGIN
from content.archive import export_archive
from content.build import BuildConfig, Entry, Layer, build_image, build_index
from content.reference import parse_reference
from content.registry.push import push
from content.store import ContentStore

BUSYBOX = "cdfs.local/busybox:latest"


def ctl(daemon: Daemon, line: str, ns: str = "default") -> subprocess.CompletedProcess[str]:
    return daemon.sh(f'echo "{line}" > "$M/namespaces/{ns}/images/ctl"', check=False,
                     timeout=120)


def image_dir(daemon: Daemon, ref: str, ns: str = "default") -> Path:
    return daemon.path("namespaces", ns, "images", ref)


def publish(tmp_path: Path, registry: str, name: str, layers: list[Layer],
            platforms: tuple[str, ...] = ()) -> str:
    """Build an image (or an index over `platforms`) with the project's builder and
    push it with the project's client; returns its digest."""
    store = ContentStore(tmp_path / f"build-{name.replace('/', '_').replace(':', '_')}")
    if platforms:
        manifests = []
        for platform in platforms:
            os_, arch, *variant = platform.split("/")
            marker = Layer([Entry.file("platform", platform.encode())])
            manifests.append(build_image(store, [*layers, marker], BuildConfig(
                os=os_, architecture=arch, variant=variant[0] if variant else "")))
        root = build_index(store, manifests)
    else:
        root = build_image(store, layers, BuildConfig(cmd=("sh",)))
    push(store, root, parse_reference(f"{registry}/{name}"))
    return root.digest


class HeldRegistry:
    """A loopback proxy in front of a docker-registry that holds back the blobs of one
    repository (or what else `what` starts its path with) until `release()`: a pull of
    it is provably in flight meanwhile (`reached` is set once it waits)."""

    def __init__(self, upstream: str, repository: str, what: str = "blobs/") -> None:
        self.reached, self.released = threading.Event(), threading.Event()
        held = f"/v2/{repository}/{what}"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.command == "GET" and self.path.startswith(held):
                    proxy.reached.set()
                    proxy.released.wait(60)
                conn = http.client.HTTPConnection(upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, headers=dict(self.headers.items()))
                    reply = conn.getresponse()
                    body = reply.read()
                finally:
                    conn.close()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "date", "server"):
                        self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def test_busybox_image_is_there_from_the_start(daemon: Daemon) -> None:
    path = image_dir(daemon, BUSYBOX)
    assert (path / "ref").read_text() == BUSYBOX + "\n"
    digest = (path / "digest").read_text().strip()
    manifest = (path / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    config = json.loads((path / "config.json").read_text())
    assert config["config"]["Cmd"] == ["sh"]
    layers = (path / "layers").read_text().splitlines()
    assert len(layers) == 1 and layers[0].split()[2].endswith("tar+gzip")
    for link in (path / "blobs").iterdir():
        assert hashlib.sha256(link.read_bytes()).hexdigest() == link.name
    assert daemon.sh('ls -R "$M/images/"').stdout.splitlines().count("busybox:latest") == 1
    snapshots = os.listdir(daemon.path("namespaces", "default", "snapshots"))
    assert len(snapshots) == 1
    snapshot = daemon.path("namespaces", "default", "snapshots", snapshots[0])
    assert (snapshot / "kind").read_text() == "committed\n"


def test_push_then_pull_by_tag_and_digest(daemon: Daemon, registry: str, tmp_path: Path) -> None:
    target = f"{registry}/mirror/busybox:v1"
    assert ctl(daemon, f"push {BUSYBOX} {target}").returncode == 0
    digest = (image_dir(daemon, BUSYBOX) / "digest").read_text().strip()
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                             capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(inspect.stdout)["Digest"] == digest
    copied = tmp_path / "copied"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{target}",
                    f"oci:{copied}:v1"], capture_output=True, timeout=60, check=True)
    assert (copied / "index.json").exists()

    events = subprocess.Popen(["timeout", "60", "cat", str(daemon.path("events"))],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    topics: list[str] = []
    try:
        wait_opened(events, daemon.path("events"))
        result = ctl(daemon, f"pull {target}", ns="default")
        assert result.returncode == 0, result.stderr
        pulled = image_dir(daemon, target)
        assert (pulled / "digest").read_text().strip() == digest
        assert (pulled / "progress").read_text().splitlines()[-1] == "done"
        by_digest = f"{registry}/mirror/busybox@{digest}"
        assert ctl(daemon, f"pull {by_digest}").returncode == 0
        assert (image_dir(daemon, by_digest) / "ref").read_text().strip() == by_digest
        assert events.stdout is not None
        for line in events.stdout:  # until both came (cat may not have read them yet)
            topics.append(json.loads(line)["topic"])
            if {"/images/pull", "/images/create"} <= set(topics):
                break
    finally:
        os.killpg(events.pid, 9)
        events.wait(timeout=10)
    assert "/images/pull" in topics and "/images/create" in topics


def test_pull_selects_the_platform_from_an_index(daemon: Daemon, registry: str,
                                                 tmp_path: Path) -> None:
    base = Layer([Entry.dir("etc"), Entry.file("etc/hostname", b"multi\n")])
    publish(tmp_path, registry, "multi:1", [base],
            platforms=("linux/amd64", "linux/arm64/v8", "linux/arm/v7"))
    ref = f"{registry}/multi:1"
    assert ctl(daemon, f"pull {ref} platform=linux/arm/v7").returncode == 0
    path = image_dir(daemon, ref)
    assert (path / "platform").read_text() == "linux/arm/v7\n"
    index = json.loads((path / "index.json").read_text())
    assert len(index["manifests"]) == 3
    assert "index.json" in os.listdir(path)
    assert "index.json" not in os.listdir(image_dir(daemon, BUSYBOX))


def test_gzip_and_zstd_layers_share_the_store(daemon: Daemon, registry: str,
                                              tmp_path: Path) -> None:
    base = Layer([Entry.dir("data"), Entry.file("data/base", b"shared\n")], compression="zstd")
    publish(tmp_path, registry, "one:1", [base, Layer([Entry.file("data/one", b"1\n")])])
    publish(tmp_path, registry, "two:1",
            [base, Layer([Entry.file("data/two", b"2\n")], compression="none")])
    before = set(os.listdir(daemon.path("namespaces", "default", "snapshots")))
    for name in ("one:1", "two:1"):
        assert ctl(daemon, f"pull {registry}/{name}").returncode == 0
    after = set(os.listdir(daemon.path("namespaces", "default", "snapshots")))
    assert len(after - before) == 3  # the shared bottom layer is unpacked once
    one = set(os.listdir(image_dir(daemon, f"{registry}/one:1") / "blobs"))
    two = set(os.listdir(image_dir(daemon, f"{registry}/two:1") / "blobs"))
    assert len(one & two) == 1  # the zstd base layer blob


def test_refused_pulls_say_why(daemon: Daemon, registry: str) -> None:
    result = ctl(daemon, f"pull {registry}/absent:1")
    assert result.returncode == 1 and "No such file" in result.stderr
    assert "absent" in daemon.path("images", "err").read_text()
    result = ctl(daemon, "pull 127.0.0.1:1/nothing:here")
    assert result.returncode == 1 and "Input/output error" in result.stderr
    result = ctl(daemon, "pull Not_A_Valid//ref")
    assert result.returncode == 1 and "Invalid argument" in result.stderr
    assert sorted(os.listdir(daemon.path("images"))) == ["cdfs.local", "ctl", "err", "list"]


def test_tag_rm_and_gc(daemon: Daemon) -> None:
    assert ctl(daemon, f"tag {BUSYBOX} example.com/again:2").returncode == 0
    assert (image_dir(daemon, "example.com/again:2") / "digest").read_text() == \
        (image_dir(daemon, BUSYBOX) / "digest").read_text()
    assert ctl(daemon, "rm example.com/again:2").returncode == 0
    assert not image_dir(daemon, "example.com/again:2").exists()
    daemon.sh('echo gc > "$M/ctl"')
    assert (image_dir(daemon, BUSYBOX) / "blobs").is_dir()  # still referenced, kept


def test_the_list_shows_every_ready_name_as_its_files_do(daemon: Daemon) -> None:
    listed = daemon.path("namespaces", "default", "images", "list")

    def rows() -> dict[str, list[str]]:
        header, *lines = listed.read_text().splitlines()
        assert header.split() == ["REF", "DIGEST", "CONFIG", "SIZE", "PLATFORM"]
        return {line.split()[0]: line.split()[1:] for line in lines}

    assert ctl(daemon, f"tag {BUSYBOX} example.com/listed:1").returncode == 0
    found = rows()
    assert sorted(found) == sorted([BUSYBOX, "example.com/listed:1"])
    for ref, (digest, config, size, platform) in found.items():
        files = image_dir(daemon, ref)
        assert [digest, size, platform] == [
            (files / name).read_text().strip() for name in ("digest", "size", "platform")]
        assert config == json.loads((files / "manifest.json").read_bytes())["config"]["digest"]
    assert ctl(daemon, "rm example.com/listed:1").returncode == 0
    assert sorted(rows()) == [BUSYBOX]


def test_simultaneous_rms_of_one_name_remove_it_once(daemon: Daemon) -> None:
    """Each ctl writer has its own inode, so two `rm`s of one name run side by side: one
    removes it, the other finds it gone (ENOENT, as kubelet's concurrent RemoveImage expects),
    never an internal error."""
    for round_ in range(8):
        assert ctl(daemon, f"tag {BUSYBOX} example.com/twice:{round_}").returncode == 0
        both = daemon.sh(
            f'images="$M/namespaces/default/images"\n'
            f'for _ in 1 2 3; do echo "rm example.com/twice:{round_}" > "$images/ctl" & done\n'
            'wait', check=False, timeout=60)
        assert "internal error" not in daemon.path("images", "err").read_text()
        assert both.stderr.count("No such file or directory") == 2, both.stderr
        assert not image_dir(daemon, f"example.com/twice:{round_}").exists()


def test_export_import_round_trip(daemon: Daemon, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    assert ctl(daemon, f"export {BUSYBOX} {archive}").returncode == 0
    inspect = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"],
                             capture_output=True, text=True, timeout=60, check=True)
    digest = (image_dir(daemon, BUSYBOX) / "digest").read_text().strip()
    assert json.loads(inspect.stdout)["Digest"] == digest
    refused = ctl(daemon, f"export {BUSYBOX} {archive}")
    assert refused.returncode == 1 and "File exists" in refused.stderr

    docker = tmp_path / "docker.tar"
    subprocess.run(["skopeo", "copy", f"oci-archive:{archive}",
                    f"docker-archive:{docker}:example.org/from-docker:3"],
                   capture_output=True, timeout=60, check=True)
    daemon.path("namespaces", "other").mkdir()
    assert ctl(daemon, f"import {docker}", ns="other").returncode == 0
    imported = image_dir(daemon, "example.org/from-docker:3", ns="other")
    assert (imported / "platform").read_text() == "linux/amd64\n"
    assert not image_dir(daemon, "example.org/from-docker:3").exists()  # other namespace
    with pytest.raises(OSError) as busy:
        daemon.path("namespaces", "other").rmdir()
    assert busy.value.errno == errno.EBUSY
    assert ctl(daemon, f"import {archive} example.org/renamed:1").returncode == 0
    assert image_dir(daemon, "example.org/renamed:1").is_dir()


def test_a_quoted_host_path_may_hold_spaces(daemon: Daemon, tmp_path: Path) -> None:
    """ctl words split as in sh: a path with a space is one argument when quoted."""
    spaced = tmp_path / "a b"
    spaced.mkdir()
    daemon.sh(f"echo 'export {BUSYBOX} \"{spaced}/x.tar\"' > \"$M/images/ctl\"")
    assert (spaced / "x.tar").is_file()
    daemon.sh(f"echo 'import \"{spaced}/x.tar\" example.org/spaced:1' > \"$M/images/ctl\"")
    assert image_dir(daemon, "example.org/spaced:1").is_dir()
    refused = daemon.sh(f"echo 'import \"{spaced}/x.tar' > \"$M/images/ctl\"", check=False)
    assert refused.returncode == 1 and "Invalid argument" in refused.stderr
    assert "unfinished quote" in daemon.path("namespaces", "default", "images", "err").read_text()
    assert "# words split as in sh" in daemon.path("namespaces", "default", "images",
                                                   "ctl").read_text()


def test_images_survive_a_daemon_kill(make_daemon: Callable[..., Daemon]) -> None:
    first = make_daemon()
    assert ctl(first, f"tag {BUSYBOX} example.com/kept:1").returncode == 0
    digest = (image_dir(first, "example.com/kept:1") / "digest").read_text()
    first.kill9()
    second = first.start()
    assert (image_dir(second, "example.com/kept:1") / "digest").read_text() == digest
    assert len(os.listdir(second.path("namespaces", "default", "snapshots"))) == 1


def test_verbs_do_not_wait_for_a_pull_in_flight(daemon: Daemon, registry: str,
                                                tmp_path: Path) -> None:
    """A pull blocks its writer until done, but not the next writers of images/ctl:
    each open for writing holds an inode of its own (the kernel would run writes to
    one inode one at a time)."""
    publish(tmp_path, registry, "big:1", [Layer([Entry.file("big", os.urandom(100_000))])])
    publish(tmp_path, registry, "small:1", [Layer([Entry.file("small", b"small\n")])])
    held = HeldRegistry(registry, "big")
    big = subprocess.Popen(
        ["bash", "-c", f'echo "pull {held.address}/big:1" > "$M/namespaces/default/images/ctl"'],
        env={**os.environ, "M": str(daemon.mount)}, stderr=subprocess.PIPE, text=True)
    try:
        assert held.reached.wait(30), "the big pull never asked for its layer"
        assert ctl(daemon, f"pull {registry}/small:1").returncode == 0
        assert ctl(daemon, f"tag {BUSYBOX} example.com/during:1").returncode == 0
        assert registry in os.listdir(daemon.path("namespaces", "default", "images"))
        assert "big:1" not in daemon.path("namespaces", "default", "images", "list").read_text()
        assert big.poll() is None, "the big pull should still be waiting on its layer"
        held.release()
        assert big.wait(timeout=60) == 0, big.stderr.read() if big.stderr else ""
    finally:
        held.close()
        if big.poll() is None:
            big.kill()
        big.communicate(timeout=30)
    for ref in (f"{held.address}/big:1", f"{registry}/small:1", "example.com/during:1"):
        assert (image_dir(daemon, ref) / "digest").is_file()


def test_export_never_replaces_a_file_that_appears_at_its_destination(
        daemon: Daemon, tmp_path: Path) -> None:
    """The existence check comes long before the tar is whole: a file made at PATH
    meanwhile (here as soon as the temporary tar appears beside it) is kept, and the
    export fails with EEXIST, leaving no temporary file."""
    store = ContentStore(tmp_path / "build-large")
    root = build_image(store, [Layer([Entry.file("big", os.urandom(48 << 20))], "none")],
                       BuildConfig(cmd=("sh",)))
    source = tmp_path / "large.tar"
    export_archive(store, root, "example.com/large:1", source)
    assert ctl(daemon, f"import {source}").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    target = out / "large.tar"
    export = subprocess.Popen(
        ["bash", "-c", f'echo "export example.com/large:1 {target}" > '
                       f'"$M/namespaces/default/images/ctl"'],
        env={**os.environ, "M": str(daemon.mount)}, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: any(out.iterdir()), timeout=60, interval=0.001)
        assert not target.exists()  # what appeared is the temporary tar
        target.write_text("mine\n")
        _, stderr = export.communicate(timeout=120)
    finally:
        if export.poll() is None:
            export.kill()
            export.wait(timeout=10)
    assert export.returncode == 1 and "File exists" in stderr
    assert target.read_text() == "mine\n"
    assert os.listdir(out) == ["large.tar"]
    err = daemon.path("namespaces", "default", "images", "err").read_text()
    assert f'"{target}" exists; export does not overwrite' in err


def test_gc_during_a_pull_keeps_what_the_pull_found_already_there(
        daemon: Daemon, registry: str, tmp_path: Path) -> None:
    """An image removed but not yet collected is pulled again: the pull finds its index
    in the store and, before naming it, waits for the platform's manifest; gc runs
    then. What the pull found is kept (finding it counts as making it, for the pull's
    lease), and the image pulled is whole."""
    digest = publish(tmp_path, registry, "again:1", [Layer([Entry.file("data", b"x" * 5000)])],
                     platforms=("linux/amd64",))
    assert ctl(daemon, f"pull {registry}/again:1").returncode == 0
    assert ctl(daemon, f"rm {registry}/again:1").returncode == 0
    time.sleep(COVER_MARGIN + 0.1)  # the blobs are older than any lease's margin
    held = HeldRegistry(registry, "again", "manifests/sha256:")
    ref = f"{held.address}/again:1"
    pull = subprocess.Popen(
        ["bash", "-c", f'echo "pull {ref}" > "$M/namespaces/default/images/ctl"'],
        env={**os.environ, "M": str(daemon.mount)}, stderr=subprocess.PIPE, text=True)
    try:
        assert held.reached.wait(30)  # the index is in the store, the pull waits
        daemon.sh('echo gc > "$M/ctl"')
        held.release()
        _, stderr = pull.communicate(timeout=60)
    finally:
        held.close()
        if pull.poll() is None:
            pull.kill()
            pull.wait(timeout=10)
    assert pull.returncode == 0, stderr
    assert (image_dir(daemon, ref) / "digest").read_text().strip() == digest
    assert digest[7:] in os.listdir(daemon.path("content", "blobs", "sha256"))
    for link in (image_dir(daemon, ref) / "blobs").iterdir():
        assert hashlib.sha256(link.read_bytes()).hexdigest() == link.name
