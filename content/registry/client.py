"""One registry host: its HTTP session, transport choice, auth and the v2 endpoints.

Every method blocks on the network: call them from worker threads. A client is
safe to share between threads (requests' Session is, for this use; auth state is
locked). Nothing here decides what to pull or push; fetch.py and push.py do.
"""

import contextlib
import hashlib
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3

from base.errors import Busy, InvalidArgument, NotFound, PermissionDenied, Unavailable
from content import mediatypes as mt
from content.descriptor import Descriptor, digest_hex
from content.manifest import MAX_MANIFEST_SIZE, parse_manifest
from content.registry.auth import Authenticator
from content.registry.credentials import Credentials
from content.registry.failures import describe
from content.registry.hosts import Endpoint, Mirrors
from content.store import ContentStore, Writer

Progress = Callable[[str, int, int], None]
"""progress(digest, bytes done, bytes total), called from worker threads."""

DOCKER_HUB_API = "registry-1.docker.io"
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
ATTEMPTS = 4
BACKOFF = 0.2
_BUSY_RECHECK = 1.0  # seconds between looks at a blob another pull is fetching
READ_CHUNK = 64 << 10
# A blob is read with one receive per call (read1), up to this much: as much as the
# socket holds, so a download waiting for the GIL behind busy unpacking threads takes
# what piled up in one go, where fixed 64 KiB reads crawled (a thread's wait for the
# GIL is up to 5 ms each time); what arrived before a dropped connection is kept.
BLOB_READ = 1 << 20
MONOLITHIC_MAX = 8 << 20
UPLOAD_CHUNK = 8 << 20

_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError)


def is_loopback(domain: str) -> bool:
    """Whether a Reference domain (host[:port]) names this machine."""
    host = urlsplit("//" + domain).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pull_scope(path: str) -> str:
    return f"repository:{path}:pull"


def push_scope(path: str) -> str:
    return f"repository:{path}:pull,push"


def _media_type(resp: requests.Response) -> str | None:
    value = resp.headers.get("Content-Type", "").split(";", 1)[0].strip()
    return value if value in mt.MANIFESTS or value in mt.INDEXES else None


@dataclass(frozen=True)
class Source:
    """Where one pull's blobs come from: the client of an endpoint, and the repository
    path there (the upstream path, behind a mirror's prefix if any)."""

    client: "RegistryClient"
    path: str


@dataclass
class Registries:
    """The clients of every registry host in use: one Session (and auth cache) per host,
    and per mirror endpoint. `pull_credentials` are a pull's own (`for_pull`): they are
    used for the image's registry instead of the ones filed under its host, and for a
    mirror that has none filed under its own host."""

    credentials: dict[str, Credentials] = field(default_factory=dict)
    insecure: frozenset[str] = frozenset()
    monolithic_max: int = MONOLITHIC_MAX
    upload_chunk: int = UPLOAD_CHUNK
    mirrors: dict[str, Mirrors] = field(default_factory=dict)
    pull_credentials: Credentials | None = None
    _clients: dict[str, "RegistryClient"] = field(default_factory=dict, repr=False)

    def client(self, domain: str) -> "RegistryClient":
        """The client of the registry a Reference domain names (pushes, and pulls
        from the host itself)."""
        if domain not in self._clients:
            self._clients[domain] = RegistryClient(
                domain, self.pull_credentials or self.credentials.get(domain),
                insecure=domain in self.insecure,
                monolithic_max=self.monolithic_max, upload_chunk=self.upload_chunk)
        return self._clients[domain]

    def sources(self, domain: str, path: str) -> list[Source]:
        """Where to pull repository `path` of `domain` from, in the order to try: its
        mirror endpoints, then the host itself unless its mirrors say otherwise."""
        mirrors = self.mirrors.get(domain, Mirrors(()))
        found = [Source(self._endpoint_client(e), e.path(path)) for e in mirrors.endpoints]
        if mirrors.upstream:
            found.append(Source(self.client(domain), path))
        return found

    def for_pull(self, credentials: Credentials) -> "Registries":
        """Registries for one pull with its own credentials: fresh clients (no token
        of another pull is reused), the same hosts and mirrors. Close it after."""
        return Registries(self.credentials, self.insecure, self.monolithic_max,
                          self.upload_chunk, self.mirrors, credentials)

    def _endpoint_client(self, endpoint: Endpoint) -> "RegistryClient":
        key = endpoint.base + "/"  # never equal to a bare domain key
        if key not in self._clients:
            self._clients[key] = RegistryClient(
                endpoint.host, self.credentials.get(endpoint.host) or self.pull_credentials,
                base=endpoint.base,
                monolithic_max=self.monolithic_max, upload_chunk=self.upload_chunk)
        return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class RegistryClient:
    """The v2 API of the registry serving Reference domain `domain`.

    Loopback registries are spoken to over plain HTTP, others over HTTPS with the
    system CAs unless `insecure`. Credentials go only to this host (and to the token
    realm it names): requests drops Authorization on a redirect to another host, and
    the session ignores ~/.netrc and proxy variables (trust_env off)."""

    def __init__(self, domain: str, credentials: Credentials | None = None, *,
                 insecure: bool = False, monolithic_max: int = MONOLITHIC_MAX,
                 upload_chunk: int = UPLOAD_CHUNK, base: str | None = None) -> None:
        host = DOCKER_HUB_API if domain == "docker.io" else domain
        scheme = "http" if insecure or is_loopback(domain) else "https"
        self.domain = domain
        self.base = base or f"{scheme}://{host}"  # a mirror endpoint names its own
        self.monolithic_max = monolithic_max
        self.upload_chunk = upload_chunk
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["User-Agent"] = "cdfs/0.1"
        self.auth = Authenticator(self.session, credentials)

    def close(self) -> None:
        self.session.close()

    # -- transport -------------------------------------------------------------
    def request(self, method: str, url: str, scopes: Sequence[str], *,
                headers: dict[str, str] | None = None, body: Callable[[], Any] | None = None,
                stream: bool = False, params: dict[str, str] | None = None,
                allow_redirects: bool = True) -> requests.Response:
        """Send with auth, retrying connection failures with backoff (bounded).
        `body()` makes a fresh request body per attempt. Statuses are the caller's."""
        url = urljoin(self.base + "/", url)
        for attempt in range(ATTEMPTS):
            try:
                return self._authorized(method, url, scopes, headers or {}, body, stream,
                                        params, allow_redirects)
            except _TRANSIENT as e:
                if attempt == ATTEMPTS - 1:
                    raise Unavailable(f"{method} {url}: {describe(e)}") from None
                time.sleep(BACKOFF * 2 ** attempt)
            except requests.RequestException as e:  # bad redirect, too many redirects…
                raise Unavailable(f"{method} {url}: {describe(e)}") from None
        raise AssertionError("unreachable")

    def _authorized(self, method: str, url: str, scopes: Sequence[str],
                    headers: dict[str, str], body: Callable[[], Any] | None, stream: bool,
                    params: dict[str, str] | None, allow_redirects: bool) -> requests.Response:
        sent = self.auth.header(scopes)
        resp = self._send(method, url, headers, sent, body, stream, params, allow_redirects)
        if resp.status_code != 401:
            return resp
        resp.close()
        retry = self.auth.unauthorized(resp.headers.get("WWW-Authenticate", ""), scopes, sent,
                                       url)
        resp = self._send(method, url, headers, retry, body, stream, params, allow_redirects)
        if resp.status_code == 401:
            resp.close()
            raise PermissionDenied(f"{method} {url}: 401 unauthorized")
        return resp

    def _send(self, method: str, url: str, headers: dict[str, str], authorization: str | None,
              body: Callable[[], Any] | None, stream: bool, params: dict[str, str] | None,
              allow_redirects: bool) -> requests.Response:
        sent = dict(headers)
        if authorization:
            sent["Authorization"] = authorization
        return self.session.request(method, url, headers=sent, data=body() if body else None,
                                    stream=stream, params=params,
                                    allow_redirects=allow_redirects,
                                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))

    def _fail(self, resp: requests.Response, what: str) -> NoReturn:
        """Turn a failed response into the error vocabulary."""
        resp.close()
        where = f"{resp.request.method} {resp.url}"
        if resp.status_code == 404:
            raise NotFound(f"{what} not found: {where}")
        if resp.status_code in (401, 403):
            raise PermissionDenied(f"{where}: {resp.status_code} for {what}")
        raise Unavailable(f"{where}: status {resp.status_code} for {what}")

    # -- manifests ---------------------------------------------------------------
    def resolve(self, path: str, reference: str) -> Descriptor:
        """What `reference` (a tag or digest) names in repository `path`, by HEAD."""
        resp = self.request("HEAD", f"/v2/{path}/manifests/{reference}", [pull_scope(path)],
                            headers={"Accept": ", ".join(mt.MANIFEST_ACCEPT)})
        if resp.status_code != 200:
            self._fail(resp, f'manifest "{path}:{reference}"')
        digest = resp.headers.get("Docker-Content-Digest", "")
        media_type = _media_type(resp)
        size = resp.headers.get("Content-Length", "")
        if reference.startswith("sha256:"):
            digest = reference
        if not (digest.startswith("sha256:") and media_type and size.isdigit()):
            # The registry did not say enough in HEAD; GET tells everything.
            return self.fetch_manifest(path, reference, None)[0]
        return Descriptor(media_type, digest, int(size))

    def fetch_manifest(self, path: str, reference: str, store: ContentStore | None,
                       expected: Descriptor | None = None) -> tuple[Descriptor, bytes]:
        """GET a manifest or index, size-limited and digest-verified (against the digest
        asked for, else Docker-Content-Digest when given); its exact bytes go into
        `store` if one is given. Returns its descriptor and bytes."""
        url = f"/v2/{path}/manifests/{reference}"
        resp = self.request("GET", url, [pull_scope(path)], stream=True,
                            headers={"Accept": ", ".join(mt.MANIFEST_ACCEPT)})
        if resp.status_code != 200:
            self._fail(resp, f'manifest "{path}:{reference}"')
        with resp:
            try:
                data = _read_limited(resp, MAX_MANIFEST_SIZE, url)
            except (*_TRANSIENT, requests.RequestException) as e:
                raise Unavailable(f"GET {resp.url}: {describe(e)}") from None
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        claimed = reference if reference.startswith("sha256:") else \
            resp.headers.get("Docker-Content-Digest", "")
        if claimed.startswith("sha256:") and claimed != digest:
            raise Unavailable(f'manifest "{path}:{reference}" from {resp.url} is {digest}, '
                              f"expected {claimed}")
        if expected is not None and (expected.digest != digest or expected.size != len(data)):
            raise Unavailable(f'manifest "{path}:{reference}" does not match {expected.digest}')
        declared = expected.media_type if expected else _media_type(resp)
        try:
            media_type = parse_manifest(data, declared).media_type
        except InvalidArgument as e:
            raise Unavailable(f'manifest "{path}:{reference}" from {resp.url}: {e}') from None
        if store is not None:
            store.add(data, expected=digest)
        return Descriptor(media_type, digest, len(data)), data

    def put_manifest(self, path: str, reference: str, media_type: str, data: bytes) -> None:
        resp = self.request("PUT", f"/v2/{path}/manifests/{reference}", [push_scope(path)],
                            headers={"Content-Type": media_type}, body=lambda: data)
        if resp.status_code not in (200, 201):
            self._fail(resp, f'manifest "{path}:{reference}"')
        resp.close()

    # -- blobs -------------------------------------------------------------------
    def has_blob(self, path: str, desc: Descriptor) -> bool:
        resp = self.request("HEAD", f"/v2/{path}/blobs/{desc.digest}", [push_scope(path)])
        resp.close()
        if resp.status_code == 404:
            return False
        if resp.status_code != 200:
            self._fail(resp, f'blob "{desc.digest}"')
        return True

    def fetch_blob(self, path: str, desc: Descriptor, store: ContentStore,
                   progress: Progress | None = None) -> None:
        """Download a blob into `store`, resuming an interrupted ingest with Range and
        restarting when the server ignores it. Only bytes matching the descriptor's
        digest and size are committed; anything else is discarded and refused. A blob
        another pull is fetching is waited for (taken over if that one fails)."""
        ref = f"fetch-{digest_hex(desc.digest)}"
        while True:
            if store.reuse(desc.digest):
                if progress:
                    progress(desc.digest, desc.size, desc.size)
                return
            try:
                writer = store.writer(ref, expected=desc.digest, total=desc.size, resume=True)
                break
            except Busy:  # another pull is fetching this blob: it is stored once it ends
                store.wait_released(ref, _BUSY_RECHECK)
        refused: InvalidArgument | None = None
        try:
            for attempt in range(ATTEMPTS):
                try:
                    self._download(path, desc, writer, progress)
                    break
                except _TRANSIENT as e:
                    if attempt == ATTEMPTS - 1:
                        raise Unavailable(f'blob "{desc.digest}" from {self.base}: '
                                          f"{describe(e)}") from None
                    time.sleep(BACKOFF * 2 ** attempt)
                except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
                    raise Unavailable(f'blob "{desc.digest}" from {self.base}: '
                                      f"{describe(e)}") from None
            try:
                writer.commit()
            except InvalidArgument as e:
                refused = e
        except BaseException:
            writer.close()
            with contextlib.suppress(NotFound):
                store.abort(ref)  # a failed fetch leaves nothing: it resumes only in retries
            raise
        writer.close()
        if refused is not None:
            store.abort(ref)  # wrong bytes must not be resumed from either
            raise Unavailable(f'blob "{desc.digest}" from {self.base}/v2/{path}: {refused}')

    def _download(self, path: str, desc: Descriptor, writer: Writer,
                  progress: Progress | None) -> None:
        offset = writer.offset
        if offset >= desc.size:
            if offset > desc.size:
                writer.truncate(0)
            else:
                return
        url = f"/v2/{path}/blobs/{desc.digest}"
        headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
        resp = self.request("GET", url, [pull_scope(path)], headers=headers, stream=True)
        with resp:
            if resp.status_code == 416:
                writer.truncate(0)
                raise requests.ConnectionError("range not satisfiable, restarting")
            if resp.status_code not in (200, 206):
                self._fail(resp, f'blob "{desc.digest}"')
            if resp.status_code == 200 or not _range_starts_at(resp, writer.offset):
                writer.truncate(0)  # the server ignored Range: start over
            # raw, not iter_content: a Content-Encoding must not be undone before hashing
            while chunk := resp.raw.read1(BLOB_READ, decode_content=False):
                if writer.offset + len(chunk) > desc.size:
                    writer.truncate(0)
                    raise Unavailable(f'blob "{desc.digest}" from {resp.url} is larger than '
                                      f"{desc.size} bytes")
                writer.write(chunk)
                if progress:
                    progress(desc.digest, writer.offset, desc.size)

    def mount_blob(self, path: str, desc: Descriptor, source_path: str) -> str | None:
        """Ask the registry to link a blob of `source_path` into `path`. Returns None when
        it did; otherwise the upload URL of the session the registry opened instead."""
        resp = self.request("POST", f"/v2/{path}/blobs/uploads/",
                            [push_scope(path), pull_scope(source_path)],
                            params={"mount": desc.digest, "from": source_path})
        resp.close()
        if resp.status_code == 201:
            return None
        if resp.status_code != 202:
            self._fail(resp, f'blob "{desc.digest}" mount from "{source_path}"')
        return self._location(resp)

    def upload_blob(self, path: str, desc: Descriptor, blob: Path,
                    progress: Progress | None = None, location: str | None = None) -> None:
        """Upload a blob file: one PUT when small, else PATCH chunks then a closing PUT."""
        scopes = [push_scope(path)]
        if location is None:
            resp = self.request("POST", f"/v2/{path}/blobs/uploads/", scopes)
            resp.close()
            if resp.status_code != 202:
                self._fail(resp, f'upload of blob "{desc.digest}"')
            location = self._location(resp)
        with blob.open("rb") as f:
            body: Callable[[], Any] | None = None
            if desc.size <= self.monolithic_max:
                def body() -> IO[bytes]:
                    f.seek(0)
                    return f
            else:
                location = self._upload_chunks(location, scopes, desc, f, progress)
            sep = "&" if "?" in location else "?"
            resp = self.request("PUT", f"{location}{sep}{urlencode({'digest': desc.digest})}",
                                scopes, body=body,
                                headers={"Content-Type": "application/octet-stream"})
            resp.close()
        if resp.status_code != 201:
            self._fail(resp, f'upload of blob "{desc.digest}"')
        if progress:
            progress(desc.digest, desc.size, desc.size)

    def _upload_chunks(self, location: str, scopes: Sequence[str], desc: Descriptor,
                       f: IO[bytes], progress: Progress | None) -> str:
        """PATCH the blob in order, one chunk in memory at a time; return the URL to close
        the upload at."""
        start = 0
        while chunk := f.read(self.upload_chunk):
            end = start + len(chunk) - 1
            def body(c: bytes = chunk) -> bytes:
                return c

            resp = self.request("PATCH", location, scopes, body=body, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{end}", "Content-Length": str(len(chunk))})
            resp.close()
            if resp.status_code != 202:
                self._fail(resp, f'chunk {start}-{end} of blob "{desc.digest}"')
            location = self._location(resp)
            start = end + 1
            if progress:
                progress(desc.digest, start, desc.size)
        return location

    def _location(self, resp: requests.Response) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise Unavailable(f"{resp.request.method} {resp.url}: no Location in response")
        return urljoin(resp.url, location)


def _range_starts_at(resp: requests.Response, offset: int) -> bool:
    content_range = resp.headers.get("Content-Range", "")
    return content_range.replace("bytes ", "").startswith(f"{offset}-")


def _read_limited(resp: requests.Response, limit: int, url: str) -> bytes:
    data = bytearray()
    for chunk in resp.iter_content(READ_CHUNK):
        data += chunk
        if len(data) > limit:
            raise Unavailable(f"{url}: larger than {limit} bytes")
    return bytes(data)

