"""Single-use, expiring tokens for the URLs that Exec, Attach and PortForward return.

The URL is the only credential the streaming server sees (it is plain HTTP on
loopback, as kubelet's own streaming server is by default), so a token must be
unguessable, work once, and not outlive the request that made it: kubelet's request
cache keeps a token one minute and at most 1000 in flight, and so does this one.
"""

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from base.errors import Unavailable

T = TypeVar("T")

TOKEN_TTL = 60.0
MAX_IN_FLIGHT = 1000


class Tokens(Generic[T]):
    """Pending requests by token."""

    def __init__(self, ttl: float = TOKEN_TTL, limit: int = MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def issue(self, request: T) -> str:
        """A new token for `request`; Unavailable while too many are in flight."""
        with self._lock:
            self._expire()
            if len(self._pending) >= self._limit:
                raise Unavailable(f"{self._limit} streaming requests already in flight")
            token = secrets.token_urlsafe(16)
            self._pending[token] = (self._clock() + self._ttl, request)
            return token

    def redeem(self, token: str) -> T | None:
        """The request of `token`, once: None when it is unknown, used or expired."""
        with self._lock:
            self._expire()
            entry = self._pending.pop(token, None)
            return entry[1] if entry is not None else None

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._pending)

    def _expire(self) -> None:
        now = self._clock()
        while self._pending:
            token, (deadline, _) = next(iter(self._pending.items()))
            if deadline > now:
                return
            del self._pending[token]
