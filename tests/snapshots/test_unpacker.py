"""unpack(): image layers into chain-ID snapshots, checked by mounting the result."""

import hashlib
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from base.errors import Busy, InvalidArgument, NotFound
from cdfs.services.snapshots import NamespaceSnapshots
from content.descriptor import Descriptor
from content.snapshots import Snapshotter
from content.store import ContentStore
from content.unpacker import EXTRACT_MARK, PARALLEL_LAYERS, chain_ids, unpack


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def add_layer(store: ContentStore, layers, entries, compression: str = "gzip"):
    blob, media_type, diff_id = layers.build(entries, compression)
    digest = store.add(blob)
    return Descriptor(media_type, digest, len(blob)), diff_id


def test_chain_ids() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == []
    with pytest.raises(InvalidArgument):
        chain_ids(["md5:1"])


def test_merged_layers_across_whiteouts_links_and_devices(
        store: ContentStore, snapshotter: Snapshotter, layers, mounted) -> None:
    l0 = add_layer(store, layers, [
        layers.file("etc/passwd", b"root:x:0:0\n"), layers.file("etc/gone", b"g"),
        layers.file("opt/app/old", b"o"), layers.file("opt/app/keep-not", b"o"),
        layers.dir("var", mode=0o755), layers.file("var/log/x", b"x"),
        layers.symlink("lib", "usr/lib"), layers.file("usr/lib/libc.so", b"libc"),
        layers.file("bin/sh", b"sh", mode=0o755), layers.hardlink("bin/ash", "bin/sh"),
    ], "zstd")
    l1 = add_layer(store, layers, [
        layers.file("etc/.wh.gone"),
        layers.file("opt/app/.wh..wh..opq"), layers.file("opt/app/new", b"n"),
        layers.file(".wh.var"),
        layers.file("bin/sh", b"new sh", mode=0o4755, uid=7),
        layers.hardlink("bin/bash", "bin/sh"),
        layers.symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        layers.device("dev/null", tarfile.CHRTYPE, 1, 3),
    ], "none")
    top = unpack(store, NamespaceSnapshots(snapshotter, "ns"), [l0[0], l1[0]], [l0[1], l1[1]])
    assert top == chain_ids([l0[1], l1[1]])[-1]
    assert snapshotter.stat(top).kind == "committed"
    assert snapshotter.stat(top).parent == l0[1]
    assert snapshotter.owners(top) == snapshotter.owners(l0[1]) == {"ns"}
    assert [i.kind for i in snapshotter.list()] == ["committed", "committed"]

    with mounted(snapshotter.view("ctr", top)) as root:
        assert sorted(os.listdir(root)) == ["bin", "dev", "etc", "lib", "opt", "usr"]
        assert sorted(os.listdir(root / "etc")) == ["localtime", "passwd"]
        assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/UTC"
        assert sorted(os.listdir(root / "opt/app")) == ["new"]
        assert os.readlink(root / "lib") == "usr/lib"
        assert (root / "lib/libc.so").read_bytes() == b"libc"
        sh, bash, ash = ((root / "bin" / n).stat() for n in ("sh", "bash", "ash"))
        assert sh.st_ino == bash.st_ino and (root / "bin/bash").read_bytes() == b"new sh"
        assert stat.S_IMODE(sh.st_mode) == 0o4755 and sh.st_uid == 7
        assert (root / "bin/ash").read_bytes() == b"sh" and ash.st_ino != sh.st_ino
        assert (root / "dev/null").lstat().st_rdev == os.makedev(1, 3)


def test_diff_id_mismatch_commits_nothing(store: ContentStore, snapshotter: Snapshotter,
                                          layers) -> None:
    good = add_layer(store, layers, [layers.file("a", b"a")])
    bad = add_layer(store, layers, [layers.file("b", b"b")])
    wrong = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match="config says"):
        unpack(store, snapshotter, [good[0], bad[0]], [good[1], wrong])
    assert [i.name for i in snapshotter.list()] == [good[1]]  # the good layer stays
    assert len(os.listdir(snapshotter.snapshots_dir)) == 1
    with pytest.raises(InvalidArgument, match="2 layers but 1"):
        unpack(store, snapshotter, [good[0], bad[0]], [good[1]])


def test_shared_layers_unpack_once(store: ContentStore, snapshotter: Snapshotter,
                                   layers) -> None:
    base = add_layer(store, layers, [layers.file("base", b"b" * 10000)])
    one = add_layer(store, layers, [layers.file("one", b"1")])
    two = add_layer(store, layers, [layers.file("two", b"2")])
    unpack(store, snapshotter, [base[0], one[0]], [base[1], one[1]])
    created = snapshotter.stat(base[1]).created
    store.delete(base[0].digest)  # the shared layer is not needed again
    top = unpack(store, snapshotter, [base[0], two[0]], [base[1], two[1]])
    assert snapshotter.stat(base[1]).created == created
    assert snapshotter.stat(top).parent == base[1]
    assert len(snapshotter.list()) == 3


def test_namespaces_share_committed_layers(store: ContentStore, snapshotter: Snapshotter,
                                           layers) -> None:
    """A second namespace takes the layers the first unpacked (no blob needed), lists
    only its own snapshots, and a layer goes with the last namespace using it."""
    base = add_layer(store, layers, [layers.file("base", b"b" * 10000)])
    one = add_layer(store, layers, [layers.file("one", b"1")])
    a, b = NamespaceSnapshots(snapshotter, "a"), NamespaceSnapshots(snapshotter, "b")
    top = unpack(store, a, [base[0], one[0]], [base[1], one[1]])
    a.prepare("ctr-a", top)
    for layer in (base, one):
        store.delete(layer[0].digest)
    assert unpack(store, b, [base[0], one[0]], [base[1], one[1]]) == top
    assert len(os.listdir(snapshotter.snapshots_dir)) == 3
    assert snapshotter.owners(top) == snapshotter.owners(base[1]) == {"a", "b"}
    assert sorted(i.key for i in a.list()) == sorted([base[1], top, "ctr-a"])
    assert sorted(i.key for i in b.list()) == sorted([base[1], top])
    b.prepare("ctr-b", top)
    with pytest.raises(Busy):
        b.remove(top)  # b's container is built on it
    b.remove("ctr-b")
    b.remove(top)
    b.remove(base[1])
    assert b.list() == [] and snapshotter.owners(top) == {"a"}
    assert a.stat(top).kind == "committed"
    with pytest.raises(NotFound):
        b.stat(top)
    with pytest.raises(Busy):
        a.remove(top)
    a.remove("ctr-a")
    a.remove(top)
    a.remove(base[1])
    assert snapshotter.list() == [] and os.listdir(snapshotter.snapshots_dir) == []


def test_layers_unpacked_before_sharing_stay_the_namespace_own(
        store: ContentStore, snapshotter: Snapshotter, layers) -> None:
    """A root from before layers were shared keys them `<namespace>/<chain ID>` with no
    owner: they are still found, built on and removed as that namespace's."""
    base = add_layer(store, layers, [layers.file("base", b"b")])
    legacy = "old/" + base[1]
    snapshotter.prepare("old/x", None)
    snapshotter.commit(legacy, "old/x")
    old = NamespaceSnapshots(snapshotter, "old")
    assert unpack(store, old, [base[0]], [base[1]]) == base[1]
    assert [i.key for i in old.list()] == [base[1]]
    old.prepare("ctr", base[1])
    assert snapshotter.stat("old/ctr").parent == legacy
    old.remove("ctr")
    old.remove(base[1])
    assert snapshotter.list() == []


def test_concurrent_unpacks_of_one_chain(store: ContentStore, snapshotter: Snapshotter,
                                         layers) -> None:
    image = [add_layer(store, layers, [layers.file(f"f{i}/{j}", os.urandom(20000))
                                       for j in range(30)]) for i in range(3)]
    results: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(unpack(store, snapshotter, [d for d, _ in image],
                                  [i for _, i in image]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and len(set(results)) == 1 and len(results) == 4
    assert [i.kind for i in snapshotter.list()] == ["committed"] * 3
    assert len(os.listdir(snapshotter.snapshots_dir)) == 3


def test_implied_directories_keep_the_lower_metadata(
        store: ContentStore, snapshotter: Snapshotter, layers, mounted) -> None:
    l0 = add_layer(store, layers, [layers.dir("tmp", mode=0o1777, uid=5, gid=6),
                                   layers.file("tmp/x"), layers.file("tmp/y")])
    l1 = add_layer(store, layers, [layers.file("tmp/.wh.x"), layers.file("var/new")])
    top = unpack(store, snapshotter, [l0[0], l1[0]], [l0[1], l1[1]])
    with mounted(snapshotter.view("v", top)) as root:
        tmp = (root / "tmp").stat()
        assert (stat.S_IMODE(tmp.st_mode), tmp.st_uid, tmp.st_gid) == (0o1777, 5, 6)
        assert tmp.st_mtime == 1_600_000_000
        assert os.listdir(root / "tmp") == ["y"]
        assert stat.S_IMODE((root / "var").stat().st_mode) == 0o755


def test_unpack_waits_for_each_layer_it_applies(store: ContentStore, snapshotter: Snapshotter,
                                                layers) -> None:
    """`ready` is asked for exactly the layers still to apply, before each is read (a
    pull's download can still be bringing the later ones in), in order where layers
    are applied one at a time."""
    base = add_layer(store, layers, [layers.file("base", b"b")])
    one = add_layer(store, layers, [layers.file("one", b"1")])
    two = add_layer(store, layers, [layers.file("two", b"2")])
    unpack(store, snapshotter, [base[0]], [base[1]])
    asked: list[str] = []
    chain = dict(zip((base[0].digest, one[0].digest, two[0].digest),
                     chain_ids([base[1], one[1], two[1]]), strict=True))

    def ready(layer: Descriptor) -> None:
        assert not any(i.name.startswith(chain[layer.digest] + EXTRACT_MARK)
                       for i in snapshotter.list())
        asked.append(layer.digest)

    unpack(store, snapshotter, [base[0], one[0], two[0]], [base[1], one[1], two[1]],
           ready=ready)
    expected = [one[0].digest, two[0].digest]
    assert (sorted(asked) == sorted(expected) if snapshotter.detached_layers
            else asked == expected)


def test_overlay_layers_apply_side_by_side(store: ContentStore, snapshotter: Snapshotter,
                                           layers, mounted) -> None:
    """Overlay layers are applied at the same time (each waits in `ready` until the
    other has started), committed in order onto their parents, and a directory a top
    layer implies takes its metadata from a layer two below."""
    if not snapshotter.detached_layers:
        pytest.skip("native snapshots start as copies of their parent")
    image = [
        add_layer(store, layers, [layers.dir("srv", mode=0o750, uid=3, gid=4, mtime=1_500_000_000),
                                  layers.file("srv/a", b"a")]),
        add_layer(store, layers, [layers.file("etc/b", b"b")]),
        add_layer(store, layers, [layers.file("srv/c", b"c"), layers.file("srv/.wh.a")]),
    ]
    both = threading.Barrier(PARALLEL_LAYERS, timeout=30)
    top = unpack(store, snapshotter, [d for d, _ in image], [i for _, i in image],
                 ready=lambda layer: both.wait() if layer != image[-1][0] else None)
    chain = chain_ids([i for _, i in image])
    assert [snapshotter.stat(name).parent for name in chain] == [None, *chain[:-1]]
    assert [i.kind for i in snapshotter.list()] == ["committed"] * 3
    with mounted(snapshotter.view("v", top)) as root:
        srv = (root / "srv").stat()
        assert (stat.S_IMODE(srv.st_mode), srv.st_uid, srv.st_gid) == (0o750, 3, 4)
        assert srv.st_mtime == 1_500_000_000
        assert os.listdir(root / "srv") == ["c"]
        assert (root / "etc/b").read_bytes() == b"b"


@pytest.mark.parametrize("bad", [0, 1, 2])
def test_one_bad_layer_drops_every_uncommitted_one(store: ContentStore, snapshotter: Snapshotter,
                                                  layers, bad: int) -> None:
    """A hostile layer among layers applied side by side: the pull fails with its
    error, the layers below it stay committed, and nothing else is left on disk, even
    a big layer still being applied beside it."""
    image = [add_layer(store, layers, [layers.file(f"l{i}/{j}", os.urandom(50_000))
                                       for j in range(200)]) for i in range(3)]
    image[bad] = add_layer(store, layers, [layers.file("ok", b"x"),
                                          layers.file("../escape", b"x")])
    with pytest.raises(InvalidArgument, match="escapes"):
        unpack(store, snapshotter, [d for d, _ in image], [i for _, i in image])
    chain = chain_ids([i for _, i in image])
    # Layers applied side by side are listed in the order they began, not the chain's.
    parents = dict(zip(chain, [None, *chain], strict=False))
    assert {i.name: i.parent for i in snapshotter.list()} == {c: parents[c] for c in chain[:bad]}
    assert len(os.listdir(snapshotter.snapshots_dir)) == bad
    assert not (snapshotter.root.parent / "escape").exists()
