"""CRI object ids: 64 lowercase hex digits, as containerd's, for pods and containers
alike. kubelet and crictl also name objects by a unique prefix of their id; `find` is
the one way a request's id or prefix becomes an object."""

import errno
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from cdfs.client.tree import TreeError
from cdfs.cri.errors import invalid

_ID = re.compile(r"[0-9a-f]{64}")
T = TypeVar("T")


def new_id() -> str:
    return secrets.token_hex(32)


def is_id(text: str) -> bool:
    """A whole id (not a prefix)."""
    return _ID.fullmatch(text) is not None


def matching(prefix: str, ids: Iterable[str]) -> list[str]:
    """The ids `prefix` names: itself when whole, else every id it begins (crictl
    names pods and containers by the first characters of their id)."""
    known = list(ids)
    if prefix in known:
        return [prefix]
    return [i for i in known if prefix and i.startswith(prefix)]


def resolve(prefix: str, ids: Iterable[str], what: str) -> str:
    """The one id `prefix` names; ENOENT for none, INVALID_ARGUMENT when it names
    several."""
    found = matching(prefix, ids)
    if not found:
        raise TreeError(f'no {what} "{prefix}"', errno.ENOENT)
    if len(found) > 1:
        raise invalid(f'{what} id prefix "{prefix}" is ambiguous')
    return found[0]


def find(prefix: str, what: str, read: Callable[[str], T],
         listing: Callable[[], Iterable[str]]) -> T:
    """The object an id or a unique prefix of one names: `read` of a whole id at once
    (its ENOENT when unknown), else of the one id of `listing` it begins. An empty
    one is a bad request."""
    if not prefix:
        raise invalid(f"no {what} id given")
    if is_id(prefix):
        return read(prefix)
    return read(resolve(prefix, listing(), what))


def or_none(find: Callable[[], T]) -> T | None:
    """What `find` finds, None for an unknown id: Stop and Remove of one succeed, as
    kubelet expects."""
    try:
        return find()
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def each_found(read: Callable[[str], T], names: Iterable[str]) -> Iterator[T]:
    """What `read` finds of each name, passing over those it finds none for (gone
    while being listed, or of another kind: a pod is no CRI container)."""
    for name in names:
        found = or_none(lambda: read(name))  # noqa: B023 (called at once)
        if found is not None:
            yield found
