"""A PullImage request's AuthConfig, handed to the tree as `pull REF credentials=FILE`.

The secret goes into a file of our own under <root>/pull-credentials/ (mode 600 in a
700 directory, as the daemon demands), lives for that one pull and is removed after
it: it never passes through a ctl line, an err line, a log or `cat ctl`. As in
containerd, credentials naming another registry (server_address) are not sent.
"""

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from cdfs.cri.api import runtime_v1_pb2 as pb
from content.reference import Reference
from content.registry.credentials import registry_host

DIRECTORY = "pull-credentials"


def entry_of(auth: pb.AuthConfig, ref: Reference) -> dict[str, str] | None:
    """The registries.json-style entry for pulling `ref`, or None when the request
    brings no credentials, or brings them for another registry."""
    if auth.server_address and registry_host(auth.server_address) != ref.domain:
        return None
    entry = {"username": auth.username, "password": auth.password, "auth": auth.auth,
             "identitytoken": auth.identity_token, "registrytoken": auth.registry_token}
    entry = {key: value for key, value in entry.items() if value}
    if "username" in entry and "password" not in entry:
        entry["password"] = ""  # a user whose password is empty, not an unusable entry
    return entry or None


def remove_leftovers(root: Path) -> None:
    """Remove the files of pulls this server never finished (it was killed during
    them): a secret must not outlive its pull on the disk either. Run at start, when
    no pull of this server is in flight."""
    directory = root / DIRECTORY
    try:
        leftovers = list(directory.iterdir())
    except FileNotFoundError:
        return
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def credentials_file(root: Path, entry: dict[str, str]) -> Iterator[Path]:
    """A file holding `entry` for as long as the block runs."""
    directory = root / DIRECTORY
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / f"{secrets.token_hex(16)}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(entry, out)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
