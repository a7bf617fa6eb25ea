"""Registry authentication: WWW-Authenticate challenges, Basic, and Bearer tokens.

The flow is docker's: a request without credentials gets 401 and a challenge; for
Basic the client resends with the user's credentials; for Bearer it asks the
challenge's realm for a token for the request's scopes (sending the credentials
there by Basic) and resends with it. Tokens are cached per scope set until they
expire; a 401 with a cached token drops it and fetches a fresh one once. Docker's
two token credentials change this: a registry token is the bearer token, sent from the
first request on; an identity token is a refresh token the token server exchanges
for access tokens (OAuth2's refresh_token grant) instead of a password.
"""

import base64
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

from base.errors import PermissionDenied, Unavailable
from content.registry.credentials import Credentials
from content.registry.failures import describe

_PARAM = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
TOKEN_TIMEOUT = 30.0
DEFAULT_TOKEN_LIFETIME = 60.0
EXPIRY_MARGIN = 5.0
CLIENT_ID = "cdfs"  # who asks, for an OAuth2 token server


@dataclass(frozen=True)
class Challenge:
    """One parsed WWW-Authenticate challenge: a scheme and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def parse_challenge(header: str) -> Challenge | None:
    """Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
    Returns None for an empty or unreadable header."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme.isalpha():
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if not match or match.end() == pos:
            break
        value = match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[match.group(1).lower()] = value
        pos = match.end()
    return Challenge(scheme.lower(), params)


def basic_header(credentials: Credentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


class Authenticator:
    """The auth state of one registry host, shared by the threads using its client."""

    def __init__(self, session: requests.Session, credentials: Credentials | None) -> None:
        self._session = session
        self._credentials = credentials
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    def header(self, scopes: Sequence[str]) -> str | None:
        """The Authorization header to send with a request needing `scopes`, or None
        while the registry has not asked for any."""
        if self._credentials and self._credentials.registry_token:
            return "Bearer " + self._credentials.registry_token
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            usable = self._credentials and self._credentials.username
            return basic_header(self._credentials) if usable and self._credentials else None
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, tuple(sorted(scopes)))
        return None

    def unauthorized(self, www_authenticate: str, scopes: Sequence[str], sent: str | None,
                     url: str) -> str:
        """Learn from a 401 and return the header to retry with; PermissionDenied if a
        retry cannot help (no credentials, or the same ones were refused)."""
        challenge = parse_challenge(www_authenticate)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise PermissionDenied(f'{url}: 401 with unsupported challenge "{www_authenticate}"')
        key = tuple(sorted(scopes))
        with self._lock:
            self._challenge = challenge
            self._tokens.pop(key, None)
        header = self.header(scopes)
        if header is None or (header == sent and challenge.scheme == "basic"):
            who = f'user "{self._credentials.username}"' if self._credentials else "anonymous"
            raise PermissionDenied(f"{url}: access denied for {who}")
        return header

    def _cached(self, scopes: tuple[str, ...]) -> str | None:
        with self._lock:
            cached = self._tokens.get(scopes)
        return cached[0] if cached and cached[1] > time.monotonic() else None

    def _token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        # One fetch at a time, so parallel blob workers share a token, not race for three.
        with self._fetching:
            token = self._cached(scopes)
            if token is None:
                token, lifetime = self._fetch_token(challenge, scopes)
                with self._lock:
                    self._tokens[scopes] = (token, time.monotonic() + lifetime - EXPIRY_MARGIN)
            return token

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise Unavailable(f'bearer challenge has a bad realm: "{realm}"')
        params: list[tuple[str, str]] = []
        if "service" in challenge.params:
            params.append(("service", challenge.params["service"]))
        params += [("scope", scope) for scope in scopes]
        credentials = self._credentials
        try:
            if credentials and credentials.identity_token:
                form = [*params, ("grant_type", "refresh_token"), ("client_id", CLIENT_ID),
                        ("refresh_token", credentials.identity_token)]
                resp = self._session.post(realm, data=form, timeout=TOKEN_TIMEOUT)
            else:
                headers = {"Authorization": basic_header(credentials)} if credentials else {}
                resp = self._session.get(realm, params=params, headers=headers,
                                         timeout=TOKEN_TIMEOUT)
        except requests.RequestException as e:
            raise Unavailable(f'token server "{realm}": {describe(e)}') from None
        if resp.status_code in (401, 403):
            raise PermissionDenied(f'token server "{realm}" refused: {resp.status_code}')
        if resp.status_code != 200:
            raise Unavailable(f'token server "{realm}": status {resp.status_code}')
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            raise Unavailable(f'token server "{realm}": unreadable response') from None
        if not isinstance(token, str) or not token:
            raise Unavailable(f'token server "{realm}": no token in response')
        return token, max(lifetime, EXPIRY_MARGIN + 1)
