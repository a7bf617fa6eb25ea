"""CRI object ids: 64 lowercase hex digits, as containerd's, for pods and containers
alike. kubelet and crictl also name objects by a unique prefix of their id."""

import errno
import re
import secrets
from collections.abc import Iterable

from cdfs.client.tree import TreeError

_ID = re.compile(r"[0-9a-f]{64}")


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
    """The one id `prefix` names; ENOENT for none, EINVAL when it names several."""
    found = matching(prefix, ids)
    if not found:
        raise TreeError(f'no {what} "{prefix}"', errno.ENOENT)
    if len(found) > 1:
        raise TreeError(f'{what} id prefix "{prefix}" is ambiguous', errno.EINVAL)
    return found[0]
