"""Registry credentials from a docker-style config.json.

    {"auths": {"127.0.0.1:5001": {"auth": "<base64 user:password>"},
               "registry.example.com": {"username": "u", "password": "p"}}}

Keys may be written as URLs (`https://index.docker.io/v1/`, as `docker login`
writes for Docker Hub); they are reduced to the host[:port] a Reference names.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from base.errors import InvalidArgument

_DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a password into a log or the err file
        return f"Credentials(username={self.username!r}, password=***)"


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
        found[registry_host(key)] = _entry(key, entry)
    return found


def _entry(key: str, entry: dict[str, object]) -> Credentials:
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(username, password)
    encoded = entry.get("auth")
    if not isinstance(encoded, str):
        raise InvalidArgument(f'credentials for "{key}" have neither auth nor username/password')
    try:
        user, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f'credentials for "{key}": auth is not base64') from None
    if not sep or not user:
        raise InvalidArgument(f'credentials for "{key}": auth is not "user:password"')
    return Credentials(user, secret)


def load_credentials(path: Path) -> dict[str, Credentials]:
    """Credentials per registry host from a config.json file; a missing file means none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    return parse_credentials(data)
