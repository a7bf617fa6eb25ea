"""Pull and push against a real docker-registry, checked with skopeo."""

import json
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from base.errors import NotFound, PermissionDenied
from content import mediatypes as mt
from content.descriptor import Descriptor
from content.manifest import parse_platform
from content.reference import parse_reference
from content.registry.client import Registries
from content.registry.credentials import Credentials
from content.registry.fetch import pull
from content.registry.push import push
from content.store import ContentStore

Image = Callable[..., Descriptor]


def _skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def test_push_then_pull_by_tag_and_digest(registry: str, store: ContentStore, tmp_path: Path,
                                          image: Image) -> None:
    root = image(store, [{"etc/hello": b"hello"}, {"bin/x": b"x" * 5000}])
    push(store, root, parse_reference(f"{registry}/test/app:v1"))

    inspected = json.loads(_skopeo("inspect", "--tls-verify=false",
                                   f"docker://{registry}/test/app:v1"))
    assert inspected["Digest"] == root.digest
    client = Registries().client(registry)
    assert client.resolve("test/app", "v1") == Descriptor(mt.OCI_MANIFEST, root.digest, root.size)
    client.close()
    assert len(inspected["Layers"]) == 2

    fresh = ContentStore(tmp_path / "fresh")
    progress: list[tuple[str, int, int]] = []
    result = pull(parse_reference(f"{registry}/test/app:v1"), fresh,
                  progress=lambda *p: progress.append(p))
    assert result.root == result.manifest == Descriptor(mt.OCI_MANIFEST, root.digest, root.size)
    assert fresh.read(root.digest) == store.read(root.digest)
    assert all(fresh.has(layer.digest) for layer in result.layers)
    assert result.config.cmd == ("/bin/sh",)
    assert {digest for digest, done, total in progress if done == total} >= \
        {layer.digest for layer in result.layers}

    by_digest = pull(parse_reference(f"{registry}/test/app@{root.digest}"),
                     ContentStore(tmp_path / "third"))
    assert by_digest.manifest.digest == root.digest

    _skopeo("copy", "--src-tls-verify=false", f"docker://{registry}/test/app:v1",
            f"oci:{tmp_path / 'layout'}:v1")
    layout = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert layout["manifests"][0]["digest"] == root.digest


def test_pull_missing_is_not_found(registry: str, store: ContentStore) -> None:
    with pytest.raises(NotFound):
        pull(parse_reference(f"{registry}/test/none:v1"), store)
    assert list(store.list()) == []


def test_index_selects_platform(registry: str, store: ContentStore, tmp_path: Path,
                                image: Image, index: Callable[..., Descriptor]) -> None:
    platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6"]
    manifests = [image(store, [{"p": p.encode()}], p) for p in platforms]
    root = index(store, manifests)
    push(store, root, parse_reference(f"{registry}/multi:latest"))
    inspected = json.loads(_skopeo("inspect", "--raw", "--tls-verify=false",
                                   f"docker://{registry}/multi:latest"))
    assert len(inspected["manifests"]) == 4

    for wanted, expected in [("linux/arm/v7", 2), ("linux/arm64", 1), ("linux/arm/v8", 2),
                             ("linux/amd64", 0)]:
        fresh = ContentStore(tmp_path / wanted.replace("/", "-"))
        result = pull(parse_reference(f"{registry}/multi"), fresh, parse_platform(wanted))
        assert result.root.digest == root.digest
        assert result.manifest.digest == manifests[expected].digest
        others = [m.digest for i, m in enumerate(manifests) if i != expected]
        assert not any(fresh.has(d) for d in others)
    with pytest.raises(NotFound, match="s390x"):
        pull(parse_reference(f"{registry}/multi"), ContentStore(tmp_path / "s390x"),
             parse_platform("linux/s390x"))


def test_chunked_upload_and_cross_repo_mount(registry: str, store: ContentStore, image: Image,
                                             make_proxy: Callable[..., Any]) -> None:
    proxy = make_proxy(registry)
    registries = Registries(monolithic_max=1000, upload_chunk=700)
    big = os.urandom(5000)
    root = image(store, [{"big": big}, {"small": b"s"}])
    push(store, root, parse_reference(f"{proxy.address}/src/app:1"), registries=registries)
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    assert len(patches) >= 2 and all(s.status == 202 for s in patches)

    proxy.seen.clear()
    push(store, root, parse_reference(f"{proxy.address}/dst/app:1"), registries=registries,
         mount_from=parse_reference(f"{proxy.address}/src/app:1"))
    mounts = [s for s in proxy.seen if s.method == "POST"]
    assert mounts and all("mount=" in s.path and "from=src%2Fapp" in s.path for s in mounts)
    assert all(s.status == 201 for s in mounts)
    assert not [s for s in proxy.seen if s.method == "PATCH"]
    assert not [s for s in proxy.seen if s.method == "PUT" and "/blobs/" in s.path]
    _skopeo("inspect", "--tls-verify=false", f"docker://{registry}/dst/app:1")

    proxy.seen.clear()   # everything is there: only HEADs and the manifest
    push(store, root, parse_reference(f"{proxy.address}/dst/app:2"), registries=registries)
    assert {s.method for s in proxy.seen} == {"HEAD", "PUT"}
    registries.close()


def test_push_refuses_incomplete_image(registry: str, store: ContentStore, image: Image,
                                       index: Callable[..., Descriptor],
                                       make_proxy: Callable[..., Any]) -> None:
    manifest = image(store, [{"a": b"a"}])
    root = index(store, [manifest, Descriptor(mt.OCI_MANIFEST, "sha256:" + "0" * 64, 10,
                                              platform={"os": "linux", "architecture": "arm"})])
    proxy = make_proxy(registry)
    with pytest.raises(NotFound):
        push(store, root, parse_reference(f"{proxy.address}/x:1"))
    assert proxy.seen == []


def test_basic_auth(registry: str, store: ContentStore, tmp_path: Path, image: Image,
                    make_proxy: Callable[..., Any],
                    basic: Callable[[str, str], Any]) -> None:
    proxy = make_proxy(registry, check=basic("alice", "s3cret"))
    ref = parse_reference(f"{proxy.address}/private:1")
    root = image(store, [{"f": b"private"}])
    with pytest.raises(PermissionDenied):
        push(store, root, ref)
    wrong = Registries({proxy.address: Credentials("alice", "nope")})
    with pytest.raises(PermissionDenied):
        push(store, root, ref, registries=wrong)
    good = Registries({proxy.address: Credentials("alice", "s3cret")})
    proxy.seen.clear()
    push(store, root, ref, registries=good)
    result = pull(ref, ContentStore(tmp_path / "fresh"), registries=good)
    assert result.manifest.digest == root.digest
    unauthenticated = [s for s in proxy.seen if s.status == 401]
    assert len(unauthenticated) <= 3   # learnt once (per parallel blob worker at most)
    good.close()
    wrong.close()


def test_bearer_auth(registry: str, store: ContentStore, tmp_path: Path, image: Image,
                     make_proxy: Callable[..., Any], token_server: Callable[..., Any]) -> None:
    tokens = token_server("bob", "pw")
    proxy = make_proxy(registry, check=tokens.require_bearer())
    ref = parse_reference(f"{proxy.address}/team/app:1")
    root = image(store, [{"a": b"1"}, {"b": b"2"}, {"c": b"3"}])
    registries = Registries({proxy.address: Credentials("bob", "pw")})
    push(store, root, ref, registries=registries)
    assert any("repository:team/app:pull,push" in c.get("scope", []) for c in tokens.calls)
    assert all(c["service"] == ["test-registry"] for c in tokens.calls)
    assert len(tokens.calls) <= 3    # cached per scope, not one per request
    result = pull(ref, ContentStore(tmp_path / "fresh"), registries=registries)
    assert result.manifest.digest == root.digest
    bad = Registries({proxy.address: Credentials("bob", "wrong")})
    with pytest.raises(PermissionDenied):
        pull(ref, ContentStore(tmp_path / "denied"), registries=bad)
    with pytest.raises(PermissionDenied):
        pull(ref, ContentStore(tmp_path / "anon"))
    registries.close()
    bad.close()


def test_a_blob_another_pull_is_fetching_is_waited_for(registry: str, store: ContentStore,
                                                       tmp_path: Path, image: Image) -> None:
    """Two pulls sharing a layer: the second waits for the first's ingest of it and
    finds it stored, rather than failing as busy."""
    root = image(store, [{"shared": os.urandom(50_000)}])
    push(store, root, parse_reference(f"{registry}/test/shared:1"))
    layer = pull(parse_reference(f"{registry}/test/shared:1"),
                 ContentStore(tmp_path / "probe")).layers[0]
    fresh = ContentStore(tmp_path / "fresh")
    first = fresh.writer(f"fetch-{layer.digest.split(':')[1]}", expected=layer.digest,
                         total=layer.size)  # the first pull, half way through this blob
    client = Registries().client(registry)
    failures: list[BaseException] = []

    def second() -> None:
        try:
            client.fetch_blob("test/shared", layer, fresh)
        except BaseException as exc:
            failures.append(exc)

    waiter = threading.Thread(target=second)
    waiter.start()
    try:
        waiter.join(0.5)
        assert waiter.is_alive() and not failures, failures
        first.write(store.read(layer.digest))
        first.commit()
    finally:
        first.close()
        waiter.join(30)
        client.close()
    assert not waiter.is_alive() and not failures, failures
    assert fresh.has(layer.digest) and fresh.ingests() == []


def test_identity_and_registry_tokens(registry: str, store: ContentStore, tmp_path: Path,
                                      image: Image, make_proxy: Callable[..., Any],
                                      token_server: Callable[..., Any]) -> None:
    tokens = token_server("erin", "refresh-me")
    proxy = make_proxy(registry, check=tokens.require_bearer())
    ref = parse_reference(f"{proxy.address}/team/tokens:1")
    root = image(store, [{"t": b"tokens"}])
    identity = Registries({proxy.address: Credentials("", "", identity_token="refresh-me")})
    push(store, root, ref, registries=identity)
    grants = [call for call in tokens.calls if "grant_type" in call]
    assert grants and all(call["refresh_token"] == ["refresh-me"] for call in grants)
    fixed = tokens.issue()
    calls = len(tokens.calls)
    registry_token = Registries({proxy.address: Credentials("", "", registry_token=fixed)})
    assert pull(ref, ContentStore(tmp_path / "fresh"),
                registries=registry_token).manifest.digest == root.digest
    assert len(tokens.calls) == calls  # the registry token itself was sent, none fetched
    stale = Registries({proxy.address: Credentials("", "", registry_token="not-issued")})
    with pytest.raises(PermissionDenied):
        pull(ref, ContentStore(tmp_path / "denied"), registries=stale)
    for registries in (identity, registry_token, stale):
        registries.close()
