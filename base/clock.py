"""The one clock: every time cdfs shows (events, records, stats, files) is RFC 3339
UTC with nanoseconds, as containerd stamps its events."""

import functools
import time
from datetime import UTC, datetime


def now_ns() -> int:
    """Nanoseconds since the epoch."""
    return time.time_ns()


def rfc3339(ns: int | None = None) -> str:
    """`ns` (now by default) as `2026-12-01T09:30:00.123456789Z`."""
    if ns is None:
        ns = time.time_ns()
    seconds, fraction = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def seconds_to_ns(seconds: float) -> int:
    """A float of seconds (a file's mtime, say) as integer nanoseconds."""
    return int(seconds * 1e9)


@functools.lru_cache(maxsize=4096)
def parse_rfc3339(text: str) -> int:
    """An RFC 3339 UTC time as `rfc3339` writes it (fraction optional), in nanoseconds
    since the epoch: how a record's stamp becomes a file's mtime (the same few times,
    a container's, are parsed at each stat of its files: they are remembered)."""
    seconds, _, fraction = text.rstrip("Z").partition(".")
    # fromisoformat, not strptime: a stat of a value file parses one of these, and
    # strptime costs ten times as much.
    whole = int(datetime.fromisoformat(seconds).replace(tzinfo=UTC).timestamp())
    return whole * 10**9 + int((fraction + "000000000")[:9])
