"""gc with leases: what nothing references is freed at once, a lease keeps what it
names until released or expired, a removed namespace gives its disk back, and a pull
killed at any point leaves nothing that survives a restart."""

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from support import Daemon, wait_until

from content.build import BuildConfig, Entry, Layer, build_image
from content.busybox import BUSYBOX, PATH_ENV, busybox_entries
from content.reference import parse_reference
from content.registry.push import push
from content.store import ContentStore


def _publish(tmp_path: Path, registry: str, name: str, layers: list[Layer]) -> str:
    store = ContentStore(tmp_path / f"build-{name.replace(':', '_')}")
    root = build_image(store, layers, BuildConfig(cmd=("sh",)))
    push(store, root, parse_reference(f"{registry}/{name}"))
    return root.digest


def _ctl(daemon: Daemon, path: str, line: str) -> None:
    daemon.sh(f'echo "{line}" > "$M/{path}"', timeout=120)


def _blobs(daemon: Daemon) -> set[str]:
    return set(os.listdir(daemon.path("content", "blobs", "sha256")))


def _snapshots(daemon: Daemon, ns: str = "default") -> set[str]:
    return set(os.listdir(daemon.path("namespaces", ns, "snapshots")))


def _du(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_blocks for d, _, fs in os.walk(path)
               for f in fs)


def _layer(tag: str) -> Layer:
    return Layer([Entry.dir("data"), Entry.file(f"data/{tag}", os.urandom(200_000))])


def test_rm_then_gc_frees_at_once(daemon: Daemon, registry: str, tmp_path: Path) -> None:
    blobs, snapshots = _blobs(daemon), _snapshots(daemon)
    _publish(tmp_path, registry, "gone:1", [_layer("a"), _layer("b")])
    _ctl(daemon, "images/ctl", f"pull {registry}/gone:1")
    assert len(_blobs(daemon) - blobs) == 4 and len(_snapshots(daemon) - snapshots) == 2
    _ctl(daemon, "images/ctl", f"rm {registry}/gone:1")
    _ctl(daemon, "ctl", "gc")
    assert _blobs(daemon) == blobs and _snapshots(daemon) == snapshots


def test_a_lease_keeps_a_blob_until_released(daemon: Daemon) -> None:
    data = os.urandom(1000)
    (daemon.path("content", "ingest", "kept")).write_bytes(data)
    digest = next(iter(_blobs(daemon) - _busybox_blobs(daemon)))
    leases = daemon.path("namespaces", "default", "leases")
    (leases / "hold").mkdir()
    assert sorted(os.listdir(leases / "hold")) == ["created", "expires", "labels"]
    (leases / "hold" / "labels").write_text(f"containerd.io/gc.ref.content.0=sha256:{digest}\n")
    _ctl(daemon, "ctl", "gc")
    assert digest in _blobs(daemon)
    (leases / "hold").rmdir()
    _ctl(daemon, "ctl", "gc")
    assert digest not in _blobs(daemon)


def test_an_expired_lease_is_released_by_the_daemon(daemon: Daemon) -> None:
    leases = daemon.path("namespaces", "default", "leases")
    (leases / "brief").mkdir()
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    (leases / "brief" / "expires").write_text(soon + "\n")
    assert (leases / "brief" / "expires").read_text().startswith(soon[:19])
    assert wait_until(lambda: "brief" not in os.listdir(leases), timeout=10)


def _busybox_blobs(daemon: Daemon) -> set[str]:
    image = daemon.path("images", "cdfs.local", "busybox:latest", "blobs")
    return set(os.listdir(image))


def _busy(path: Path) -> bool:
    try:
        path.rmdir()
    except OSError as exc:
        return exc.errno == errno.EBUSY
    return False


def test_removing_a_namespace_returns_the_root_to_its_size(
        daemon: Daemon, registry: str, tmp_path: Path) -> None:
    _publish(tmp_path, registry, "tenant:1", [_layer("t")])
    layers = daemon.root / "snapshots" / "overlay" / "snapshots"  # files, not the db
    before = _du(layers)
    tenant = daemon.path("namespaces", "team-a")
    tenant.mkdir()
    _ctl(daemon, "namespaces/team-a/images/ctl", f"pull {registry}/tenant:1")
    assert _du(layers) > before
    assert _busy(tenant)
    _ctl(daemon, "namespaces/team-a/images/ctl", f"rm {registry}/tenant:1")
    (tenant / "leases" / "l").mkdir()
    assert _busy(tenant)
    (tenant / "leases" / "l").rmdir()
    tenant.rmdir()
    assert _du(layers) == before
    _ctl(daemon, "ctl", "gc")
    assert _blobs(daemon) == _busybox_blobs(daemon)


def _publish_busybox(tmp_path: Path, registry: str, name: str) -> None:
    """A runnable image of two layers: busybox, then /shared."""
    store = ContentStore(tmp_path / "build-busybox")
    layers = [Layer(busybox_entries(BUSYBOX)), Layer([Entry.file("shared", b"shared layer\n")])]
    root = build_image(store, layers, BuildConfig(cmd=["sh"], env=[PATH_ENV]))
    push(store, root, parse_reference(f"{registry}/{name}"))


def _write(path: Path, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def test_namespaces_share_layers_and_gc_keeps_what_another_uses(
        daemon: Daemon, registry: str, tmp_path: Path) -> None:
    """Team b pulls the image team a unpacked: no layer is unpacked again; each lists
    only its own snapshots; team a's rm, gc and removal leave team b's running
    container and its image usable; team b's rm and gc give the disk back."""
    ref = f"{registry}/shared:1"
    _publish_busybox(tmp_path, registry, "shared:1")
    layers = daemon.root / "snapshots" / "overlay" / "snapshots"
    before = _du(layers)
    teams = [daemon.path("namespaces", name) for name in ("team-a", "team-b")]
    for team in teams:
        team.mkdir()
        _ctl(daemon, f"namespaces/{team.name}/images/ctl", f"pull {ref}")
        if team.name == "team-a":
            unpacked = _du(layers)
    assert _du(layers) == unpacked > before  # team b stored no layer of its own
    assert _snapshots(daemon, "team-a") == _snapshots(daemon, "team-b") != set()

    container = teams[1] / "containers" / "runs"
    container.mkdir()
    _write(container / "image", ref + "\n")
    _write(container / "config.json", json.dumps({"process": {"args": ["sleep", "300"]}}))
    _write(container / "ctl", "start\n")
    assert (container / "status").read_text().strip() == "running"
    assert len(_snapshots(daemon, "team-b")) == len(_snapshots(daemon, "team-a")) + 1

    _ctl(daemon, "namespaces/team-a/images/ctl", f"rm {ref}")
    _ctl(daemon, "ctl", "gc")
    assert _snapshots(daemon, "team-a") == set()
    teams[0].rmdir()
    assert _du(layers) >= unpacked  # team b's layers are all still there
    second = teams[1] / "containers" / "again"
    second.mkdir()
    _write(second / "image", ref + "\n")
    _write(second / "config.json", json.dumps({"process": {"args": ["cat", "/shared"]}}))
    _write(second / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(second / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0" and (second / "stdout").read_text() == "shared layer\n"
    assert (container / "status").read_text().strip() == "running"

    _write(container / "ctl", "kill 9\n")
    subprocess.run(["timeout", "30", "cat", str(container / "wait")], capture_output=True,
                   timeout=40)
    for done in (container, second):
        done.rmdir()
    _ctl(daemon, "namespaces/team-b/images/ctl", f"rm {ref}")
    _ctl(daemon, "ctl", "gc")
    assert _snapshots(daemon, "team-b") == set() and _du(layers) == before


def _extracting(daemon: Daemon) -> bool:
    return any(".extract-" in key for key in _snapshots(daemon))


def _ingesting(daemon: Daemon) -> bool:
    return any(daemon.root.joinpath("content", "ingest").glob("*.data"))


def test_a_pull_killed_at_any_point_leaves_nothing_after_restart(
        make_daemon: Callable[..., Daemon], registry: str, tmp_path: Path) -> None:
    many = Layer([Entry.dir("many"), *(Entry.file(f"many/{i}", os.urandom(64))
                                       for i in range(4000))])
    big = Layer([Entry.file("big", os.urandom(24 << 20))], compression="none")
    _publish(tmp_path, registry, "slow:1", [many, big])
    daemon = make_daemon()
    blobs = _blobs(daemon)
    for stage in (_ingesting, _extracting):
        pull = subprocess.Popen(
            ["bash", "-c", f'echo "pull {registry}/slow:1" > "$M/images/ctl"'],
            env={**os.environ, "M": str(daemon.mount)}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_until(lambda stage=stage: stage(daemon), timeout=60, interval=0.01)
            daemon.kill9()
        finally:
            os.killpg(pull.pid, signal.SIGKILL)
            pull.wait(timeout=10)
        daemon.force_unmount()
        daemon.start()
        assert not _extracting(daemon) and not _ingesting(daemon)
        _ctl(daemon, "ctl", "gc")
        assert _blobs(daemon) == blobs
    _ctl(daemon, "images/ctl", f"pull {registry}/slow:1")
    assert not _extracting(daemon) and not _ingesting(daemon)


def _ingest(daemon: Daemon, name: str) -> str:
    before = _blobs(daemon)
    (daemon.path("content", "ingest", name)).write_bytes(os.urandom(5000))
    (digest,) = _blobs(daemon) - before
    return digest


def test_content_labels_root_a_blob_and_reference_another(
        make_daemon: Callable[..., Daemon]) -> None:
    daemon = make_daemon()
    root, child, loose = (_ingest(daemon, n) for n in ("root", "child", "loose"))
    labels = daemon.path("content", "labels", "sha256")
    assert (labels / root).read_text() == ""
    (labels / root).write_text(
        f"containerd.io/gc.root=2026-12-01\ncontainerd.io/gc.ref.content.0=sha256:{child}\n")
    assert (labels / root).read_text() == (
        f"containerd.io/gc.ref.content.0=sha256:{child}\ncontainerd.io/gc.root=2026-12-01\n")
    daemon.stop()
    daemon = daemon.start()  # labels live in the database
    _ctl(daemon, "ctl", "gc")
    assert {root, child} <= _blobs(daemon) and loose not in _blobs(daemon)
    labels = daemon.path("content", "labels", "sha256")
    (labels / root).write_text("containerd.io/gc.root=2026-12-01\n")
    _ctl(daemon, "ctl", "gc")
    assert root in _blobs(daemon) and child not in _blobs(daemon)
    (labels / root).write_text("\n")  # no labels
    _ctl(daemon, "ctl", "gc")
    assert root not in _blobs(daemon)
    assert not (labels / root).exists()


def test_content_labels_refuse_bad_lines_and_absent_blobs(daemon: Daemon) -> None:
    digest = _ingest(daemon, "some")
    labels = daemon.path("content", "labels", "sha256")
    result = daemon.sh(f'echo "no equals sign" > "{labels / digest}"', check=False)
    assert result.returncode == 1 and "Invalid argument" in result.stderr
    assert '"no equals sign" is not key=value' in (labels / "err").read_text()
    assert (labels / digest).read_text() == ""
    result = daemon.sh(f'echo "a=b" > "{labels / ("0" * 64)}"', check=False)
    assert result.returncode == 1
