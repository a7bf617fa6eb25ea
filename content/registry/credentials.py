"""Registry credentials from a docker-style config.json.

    {"auths": {"127.0.0.1:5001": {"auth": "<base64 user:password>"},
               "registry.example.com": {"username": "u", "password": "p"},
               "sso.example.com": {"identitytoken": "<an OAuth2 refresh token>"},
               "ci.example.com": {"registrytoken": "<a bearer token, sent as is>"}}}

Keys may be written as URLs (`https://index.docker.io/v1/`, as `docker login`
writes for Docker Hub); they are reduced to the host[:port] a Reference names.
"""

import base64
import binascii
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from base.errors import InvalidArgument, NotFound, PermissionDenied

_DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


@dataclass(frozen=True)
class Credentials:
    """A user and password (Basic, and for a token server), or docker's tokens: an
    identity token is exchanged at the token server for access tokens (OAuth2 refresh
    grant), a registry token is sent to the registry as the bearer token itself."""

    username: str
    password: str
    identity_token: str = ""
    registry_token: str = ""

    def __repr__(self) -> str:  # never print a secret into a log or the err file
        return f"Credentials(username={self.username!r}, ***)"

    __str__ = __repr__


def registry_host(key: str) -> str:
    """The Reference domain a config.json key stands for."""
    host = urlsplit(key).netloc if "://" in key else key.split("/", 1)[0]
    return "docker.io" if host in _DOCKER_HUB_ALIASES else host


def parse_credentials(data: bytes) -> dict[str, Credentials]:
    """Parse config.json bytes into credentials per registry host."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"credentials file is not JSON: {e}") from None
    auths = obj.get("auths", {}) if isinstance(obj, dict) else None
    if not isinstance(auths, dict):
        raise InvalidArgument('credentials file: "auths" is not an object')
    found: dict[str, Credentials] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            raise InvalidArgument(f'credentials for "{key}" are not an object')
        found[registry_host(key)] = parse_entry(key, entry)
    return found


def parse_entry(key: str, entry: dict[str, object]) -> Credentials:
    """One host's entry, as docker writes it: username and password, `auth` (base64 of
    user:password), `identitytoken` or `registrytoken`. A message never quotes a secret."""
    tokens = {name: entry.get(name) for name in ("identitytoken", "registrytoken")}
    if any(not isinstance(v, str | None) for v in tokens.values()):
        raise InvalidArgument(f'credentials for "{key}": a token is not a string')
    identity, registry = str(tokens["identitytoken"] or ""), str(tokens["registrytoken"] or "")
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password, identity, registry)
    encoded = entry.get("auth")
    if not encoded and (identity or registry):
        return Credentials(username if isinstance(username, str) else "", "", identity, registry)
    if not isinstance(encoded, str):
        raise InvalidArgument(f'credentials for "{key}" have neither auth nor username/password')
    try:
        user, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f'credentials for "{key}": auth is not base64') from None
    if not sep or not user:
        raise InvalidArgument(f'credentials for "{key}": auth is not "user:password"')
    return Credentials(user, secret, identity, registry)


def load_credentials(path: Path) -> dict[str, Credentials]:
    """Credentials per registry host from a config.json file; a missing file means none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    return parse_credentials(data)


PULL_CREDENTIALS_MAX = 64 << 10


def load_pull_credentials(path: Path, host: str, reader_uid: int) -> Credentials:
    """A pull's own credentials: one entry as in config.json's "auths" (JSON), from a
    file nobody but its owner may read or write, owned by `reader_uid` (the uid that
    asked for the pull) unless that is root: the secret never passes through a ctl
    line, an err file or a log, and the daemon (root) reads for a writer only a file
    the writer could read itself, so nobody's secret goes to another's registry."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFound(f'no credentials file "{path}"') from None
    except OSError as exc:
        raise InvalidArgument(f'credentials file "{path}": {exc.strerror}') from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or \
                reader_uid not in (0, st.st_uid):
            raise PermissionDenied(f'credentials file "{path}" must be a regular file of '
                                   f"uid {reader_uid} that nobody else may read or write")
        data = os.read(fd, PULL_CREDENTIALS_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > PULL_CREDENTIALS_MAX:
        raise InvalidArgument(f'credentials file "{path}" is over {PULL_CREDENTIALS_MAX} bytes')
    try:
        entry = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(f'credentials file "{path}" is not JSON') from None
    if not isinstance(entry, dict):
        raise InvalidArgument(f'credentials file "{path}" is not a JSON object')
    return parse_entry(host, entry)
