"""Names of namespaces, containers and execs, by containerd's identifiers rules:
alphanumerics joined by single '.', '_' or '-', at most 76 characters."""

import re

from base.errors import InvalidArgument

MAX_LENGTH = 76
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate(name: str, what: str = "name") -> str:
    """Return `name` if it is a valid identifier, else refuse it quoting it."""
    if len(name) > MAX_LENGTH:
        raise InvalidArgument(f'{what} "{name}" is longer than {MAX_LENGTH} characters')
    if not _IDENTIFIER.fullmatch(name):
        raise InvalidArgument(
            f'{what} "{name}" is not valid: use letters and digits joined by ".", "_" or "-"')
    return name
