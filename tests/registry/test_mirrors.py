"""Registry mirrors (content/registry/hosts.py): a host's pulls go to its endpoints
first, behind a path prefix, against real docker-registries on loopback."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import start_registry

from base.errors import InvalidArgument, NotFound
from content.descriptor import Descriptor
from content.reference import parse_reference
from content.registry.client import Registries
from content.registry.fetch import pull
from content.registry.hosts import Endpoint, Mirrors, parse_endpoint, parse_mirrors
from content.registry.push import push
from content.store import ContentStore

Image = Callable[..., Descriptor]


@pytest.fixture
def second_registry(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "second").mkdir()
    address, proc = start_registry(tmp_path / "second")
    try:
        yield address
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_endpoints_parse_with_and_without_a_prefix() -> None:
    assert parse_endpoint("http://127.0.0.1:5000/cri-mirror/registry.k8s.io") == \
        Endpoint("http://127.0.0.1:5000", "127.0.0.1:5000", "cri-mirror/registry.k8s.io")
    assert parse_endpoint("https://mirror.lan/") == Endpoint("https://mirror.lan", "mirror.lan")
    for bad in ("ftp://x", "mirror.lan", "http://u:p@x", "http://x/Upper", "http://x/a?b=1"):
        with pytest.raises(InvalidArgument):
            parse_endpoint(bad)
    mirrors = parse_mirrors({"docker.io": {"endpoints": ["http://m:1"], "upstream": False}})
    assert mirrors == {"docker.io": Mirrors((Endpoint("http://m:1", "m:1"),), upstream=False)}
    with pytest.raises(InvalidArgument):
        parse_mirrors({"docker.io": {"endpoints": [], "upstream": False}})


def test_an_upstream_name_is_pulled_from_a_mirror_behind_a_prefix(
        registry: str, store: ContentStore, tmp_path: Path, image: Image) -> None:
    root = image(store, [{"pause": b"paused"}])
    push(store, root, parse_reference(f"{registry}/cri-mirror/registry.k8s.io/pause:3.9"))
    endpoint = parse_endpoint(f"http://{registry}/cri-mirror/registry.k8s.io")
    registries = Registries(mirrors={"registry.k8s.io": Mirrors((endpoint,), upstream=False)})
    try:
        fresh = ContentStore(tmp_path / "fresh")
        result = pull(parse_reference("registry.k8s.io/pause:3.9"), fresh, registries=registries)
        assert result.manifest.digest == root.digest
        assert all(fresh.has(layer.digest) for layer in result.layers)
        assert str(result.reference) == "registry.k8s.io/pause:3.9"
        with pytest.raises(NotFound) as missing:  # not on the mirror, and no upstream
            pull(parse_reference("registry.k8s.io/other:1"), fresh, registries=registries)
        assert "cri-mirror/registry.k8s.io/other" in str(missing.value)
    finally:
        registries.close()


def test_a_mirror_lacking_the_image_falls_back_to_the_host(
        registry: str, second_registry: str, store: ContentStore, tmp_path: Path,
        image: Image) -> None:
    root = image(store, [{"f": b"upstream"}])
    push(store, root, parse_reference(f"{registry}/team/app:1"))
    mirror = parse_endpoint(f"http://{second_registry}")
    registries = Registries(mirrors={registry: Mirrors((mirror,))})
    try:
        result = pull(parse_reference(f"{registry}/team/app:1"), ContentStore(tmp_path / "f"),
                      registries=registries)
        assert result.manifest.digest == root.digest
        assert result.source.client.base == f"http://{registry}"
    finally:
        registries.close()
