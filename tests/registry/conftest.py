"""A real docker-registry per test, a recording proxy that can misbehave in front of it,
a token server, and a small image builder writing straight into a ContentStore."""

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from content import mediatypes as mt
from content.descriptor import Descriptor
from content.store import ContentStore


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


# -- images ---------------------------------------------------------------------

def _layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _add(store: ContentStore, media_type: str, data: bytes,
         platform: dict[str, str] | None = None) -> Descriptor:
    return Descriptor(media_type, store.add(data), len(data), platform=platform)


def make_image(store: ContentStore, layers: list[dict[str, bytes]],
               platform: str = "linux/amd64") -> Descriptor:
    """An OCI image of gzip layers; returns its manifest's descriptor (with platform)."""
    os_, arch, *variant = platform.split("/")
    tars = [_layer(files) for files in layers]
    blobs = [_add(store, mt.OCI_LAYER_GZIP, gzip.compress(t, mtime=0)) for t in tars]
    config = {"os": os_, "architecture": arch, "config": {"Cmd": ["/bin/sh"]},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]}}
    if variant:
        config["variant"] = variant[0]
    config_desc = _add(store, mt.OCI_CONFIG, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                "config": config_desc.to_json(), "layers": [b.to_json() for b in blobs]}
    plat = {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}
    return _add(store, mt.OCI_MANIFEST, json.dumps(manifest).encode(), plat)


def make_index(store: ContentStore, manifests: list[Descriptor]) -> Descriptor:
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
             "manifests": [m.to_json() for m in manifests]}
    return _add(store, mt.OCI_INDEX, json.dumps(index).encode())


@pytest.fixture
def image() -> Callable[..., Descriptor]:
    return make_image


@pytest.fixture
def index() -> Callable[..., Descriptor]:
    return make_index


# -- a recording, misbehaving proxy -------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    range: str | None
    status: int = 0


Hook = Callable[["_Handler", "Proxy"], bool]


@dataclass
class Proxy:
    """Forwards to `upstream`; `check(handler)` may refuse (send 401 itself and return
    False); `hook(handler, proxy)` may answer a request itself (returns True)."""

    upstream: str
    check: Callable[["_Handler"], bool] | None = None
    hook: Hook | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def fetch_upstream(self, method: str, path: str,
                       headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self.upstream, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        proxy = self.server.proxy
        seen = Seen(self.command, self.path, self.headers.get("Authorization"),
                    self.headers.get("Range"))
        proxy.seen.append(seen)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        if proxy.check is not None and not proxy.check(self):
            seen.status = 401
            return
        if proxy.hook is not None and proxy.hook(self, proxy):
            seen.status = -1
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("authorization", "connection", "content-length")}
        conn = http.client.HTTPConnection(proxy.upstream, timeout=10)
        try:
            conn.request(self.command, self.path, body=self.body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        seen.status = resp.status
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "date",
                                   "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", resp.headers.get("Content-Length", str(len(data)))
                         if self.command == "HEAD" else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: Proxy


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., Proxy]]:
    servers: list[_Server] = []

    def start(upstream: str, **kwargs: Any) -> Proxy:
        proxy = Proxy(upstream, **kwargs)
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = proxy
        proxy.port, proxy.server = server.server_address[1], server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return proxy

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def require_basic(user: str, password: str) -> Callable[[_Handler], bool]:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def check(handler: _Handler) -> bool:
        if handler.headers.get("Authorization") == expected:
            return True
        handler.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                      {"WWW-Authenticate": 'Basic realm="test"'})
        return False
    return check


@dataclass
class TokenServer:
    """Issues bearer tokens to `user:password` (and to nobody else), and by OAuth2's
    refresh grant to whoever brings `password` as the refresh token (an identity
    token); `issue` makes one up front (a registry token)."""

    user: str
    password: str
    issued: dict[str, list[str]] = field(default_factory=dict)
    calls: list[dict[str, list[str]]] = field(default_factory=list)
    port: int = 0

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def issue(self) -> str:
        token = base64.b32encode(os.urandom(10)).decode()
        self.issued[token] = []
        return token

    def require_bearer(self) -> Callable[[_Handler], bool]:
        def check(handler: _Handler) -> bool:
            auth = handler.headers.get("Authorization") or ""
            if auth.startswith("Bearer ") and auth[7:] in self.issued:
                return True
            path = urlsplit(handler.path).path
            repo = path.removeprefix("/v2/").split("/blobs/")[0].split("/manifests/")[0]
            handler.reply(401, b"", {"WWW-Authenticate":
                                     f'Bearer realm="{self.realm}",service="test-registry",'
                                     f'scope="repository:{repo}:pull"'})
            return False
        return check


@pytest.fixture
def token_server() -> Iterator[Callable[[str, str], TokenServer]]:
    servers: list[ThreadingHTTPServer] = []

    def start(user: str, password: str) -> TokenServer:
        tokens = TokenServer(user, password)
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                tokens.calls.append(query)
                self._answer(self.headers.get("Authorization") == expected, query, "token")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                tokens.calls.append(form)
                granted = form.get("grant_type") == ["refresh_token"] and \
                    form.get("refresh_token") == [tokens.password]
                self._answer(granted, form, "access_token")

            def _answer(self, granted: bool, query: dict[str, list[str]], key: str) -> None:
                if not granted:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                token = base64.b32encode(os.urandom(10)).decode()
                tokens.issued[token] = query.get("scope", [])
                body = json.dumps({key: token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        tokens.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return tokens

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def basic() -> Callable[[str, str], Callable[[_Handler], bool]]:
    return require_basic
