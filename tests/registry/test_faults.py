"""Misbehaving servers: dropped connections, ignored Range, wrong bytes, cross-host redirects."""

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from base.errors import Unavailable
from content.descriptor import Descriptor
from content.manifest import parse_image_manifest
from content.reference import parse_reference
from content.registry.client import Registries
from content.registry.credentials import Credentials
from content.registry.fetch import pull
from content.registry.push import push
from content.store import ContentStore

LAYER_SIZE = 300_000


def _pushed(registry: str, store: ContentStore, image: Callable[..., Descriptor]
            ) -> tuple[Descriptor, Descriptor]:
    """Push an image with one large incompressible layer; return (manifest, layer)."""
    root = image(store, [{"noise": os.urandom(LAYER_SIZE)}])
    push(store, root, parse_reference(f"{registry}/faulty:1"))
    layer = parse_image_manifest(store.read(root.digest)).layers[0]
    return root, layer


def _drop_half(handler: Any, proxy: Any) -> None:
    """Promise the whole blob, send half of it, and hang up."""
    _, _, body = proxy.fetch_upstream("GET", handler.path)
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def test_resumes_with_range_after_a_dropped_connection(
        registry: str, store: ContentStore, tmp_path: Path, image: Callable[..., Descriptor],
        make_proxy: Callable[..., Any]) -> None:
    _, layer = _pushed(registry, store, image)
    calls = []

    def hook(handler: Any, proxy: Any) -> bool:
        if layer.digest not in handler.path or handler.command != "GET":
            return False
        calls.append(handler.headers.get("Range"))
        if len(calls) == 1:
            _drop_half(handler, proxy)
            return True
        return False            # forwarded: docker-registry honours Range with 206

    proxy = make_proxy(registry, hook=hook)
    fresh = ContentStore(tmp_path / "fresh")
    pull(parse_reference(f"{proxy.address}/faulty:1"), fresh)
    assert fresh.has(layer.digest)
    assert calls[0] is None and calls[1] is not None and calls[1].startswith("bytes=")
    assert int(calls[1][len("bytes="):-1]) > 0
    resumed = [s for s in proxy.seen if s.range]
    assert resumed[0].status == 206
    assert fresh.ingests() == []


def test_restarts_when_the_server_ignores_range(
        registry: str, store: ContentStore, tmp_path: Path, image: Callable[..., Descriptor],
        make_proxy: Callable[..., Any]) -> None:
    _, layer = _pushed(registry, store, image)
    ranges: list[str | None] = []

    def hook(handler: Any, proxy: Any) -> bool:
        if layer.digest not in handler.path or handler.command != "GET":
            return False
        ranges.append(handler.headers.get("Range"))
        if len(ranges) == 1:
            _drop_half(handler, proxy)
        else:
            _, _, body = proxy.fetch_upstream("GET", handler.path)
            handler.reply(200, body)
        return True

    proxy = make_proxy(registry, hook=hook)
    fresh = ContentStore(tmp_path / "fresh")
    pull(parse_reference(f"{proxy.address}/faulty:1"), fresh)
    assert fresh.has(layer.digest) and fresh.info(layer.digest).size == layer.size
    assert ranges[1] is not None


def test_refuses_wrong_bytes_and_commits_nothing(
        registry: str, store: ContentStore, tmp_path: Path, image: Callable[..., Descriptor],
        make_proxy: Callable[..., Any]) -> None:
    root, layer = _pushed(registry, store, image)

    def hook(handler: Any, proxy: Any) -> bool:
        if layer.digest not in handler.path or handler.command != "GET":
            return False
        handler.reply(200, os.urandom(layer.size))
        return True

    proxy = make_proxy(registry, hook=hook)
    fresh = ContentStore(tmp_path / "fresh")
    with pytest.raises(Unavailable, match=layer.digest):
        pull(parse_reference(f"{proxy.address}/faulty:1"), fresh)
    assert not fresh.has(layer.digest)
    assert fresh.ingests() == []
    assert fresh.has(root.digest)     # what was verified stays


def test_a_refused_range_leaves_no_ingest(
        registry: str, store: ContentStore, tmp_path: Path, image: Callable[..., Descriptor],
        make_proxy: Callable[..., Any]) -> None:
    _, layer = _pushed(registry, store, image)

    def hook(handler: Any, proxy: Any) -> bool:
        if layer.digest not in handler.path or handler.command != "GET":
            return False
        body = os.urandom(layer.size + 10)
        handler.reply(206, body, {"Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}"})
        return True

    proxy = make_proxy(registry, hook=hook)
    fresh = ContentStore(tmp_path / "fresh")
    with pytest.raises(Unavailable, match="larger than"):
        pull(parse_reference(f"{proxy.address}/faulty:1"), fresh)
    assert fresh.ingests() == [] and not fresh.has(layer.digest)


def test_refuses_a_tag_whose_manifest_does_not_match_its_digest_header(
        registry: str, store: ContentStore, tmp_path: Path, image: Callable[..., Descriptor],
        make_proxy: Callable[..., Any]) -> None:
    root, _ = _pushed(registry, store, image)

    def hook(handler: Any, proxy: Any) -> bool:
        if "/manifests/" not in handler.path:
            return False
        _, headers, body = proxy.fetch_upstream(handler.command, handler.path,
                                                {"Accept": handler.headers["Accept"]})
        handler.reply(200, body + b" ",
                      {k: v for k, v in headers if k in ("Docker-Content-Digest",
                                                         "Content-Type")})
        return True

    proxy = make_proxy(registry, hook=hook)
    fresh = ContentStore(tmp_path / "fresh")
    with pytest.raises(Unavailable, match="expected " + root.digest):
        pull(parse_reference(f"{proxy.address}/faulty:1"), fresh)
    assert list(fresh.list()) == []


def test_credentials_are_not_sent_across_a_redirect_to_another_host(
        registry: str, store: ContentStore, tmp_path: Path, image: Callable[..., Descriptor],
        make_proxy: Callable[..., Any], basic: Callable[[str, str], Any]) -> None:
    _, layer = _pushed(registry, store, image)
    storage = make_proxy(registry)            # the "blob storage" host

    def redirect(handler: Any, proxy: Any) -> bool:
        if "/blobs/" not in handler.path or handler.command != "GET":
            return False
        handler.reply(307, headers={"Location": f"http://localhost:{storage.port}{handler.path}"})
        return True

    front = make_proxy(registry, check=basic("carol", "pw"), hook=redirect)
    registries = Registries({front.address: Credentials("carol", "pw")})
    fresh = ContentStore(tmp_path / "fresh")
    pull(parse_reference(f"{front.address}/faulty:1"), fresh, registries=registries)
    registries.close()
    assert fresh.has(layer.digest)
    assert [s for s in front.seen if "/blobs/" in s.path and s.authorization]
    assert len(storage.seen) >= 2 and all(s.authorization is None for s in storage.seen)


def test_connection_failures_are_retried_then_reported(store: ContentStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(Unavailable, match=dead):
        pull(parse_reference(f"{dead}/x:1"), store)
    assert 0.5 < time.monotonic() - started < 10
