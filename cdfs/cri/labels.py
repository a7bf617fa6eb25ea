"""CRI facts in a tree container's `labels` file.

The CRI server keeps no state of its own: what kubelet said about a pod or a
container, and what the server decided for it (its IP, its files on the host), lives
in the labels of the tree container it made, under keys prefixed `io.cdfs.cri.`. A
restarted server finds it all again, and people find it with `cat labels`.

A label is one `key=value` line, so a value must be one line: strings are stored as
they are (and refused if they hold a line break), everything else as compact JSON,
which escapes line breaks. The reader knows which field is which type.
"""

import errno
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdfs.client.tree import Tree, TreeError
from cdfs.cri.errors import invalid

PREFIX = "io.cdfs.cri."
KIND = PREFIX + "kind"
"""`sandbox` for a pod's pause container, `container` for a CRI container."""
SANDBOX_ID = PREFIX + "sandbox-id"
"""On a CRI container: the id of the pod sandbox it belongs to."""

SANDBOX_KIND = "sandbox"
CONTAINER_KIND = "container"


def text(value: str, what: str) -> str:
    """`value` as a label value, refused (a bad request) when it is not one line."""
    if "\n" in value or "\r" in value:
        raise invalid(f"{what}: a line break is not allowed in {value[:80]!r}")
    return value


def compact(value: Any) -> str:
    """A structured value as one line of JSON."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def parsed(labels: Mapping[str, str], key: str, default: Any) -> Any:
    """The JSON value of `key`, or `default` when it is absent or unreadable (a label
    someone edited by hand must not make the whole object unreadable)."""
    raw = labels.get(key)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def string_map(labels: Mapping[str, str], key: str) -> dict[str, str]:
    """The string-to-string map stored as JSON under `key` (labels, annotations), {}
    when it is absent or damaged."""
    value = parsed(labels, key, {})
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def format_lines(labels: Mapping[str, str]) -> str:
    """The text of a labels file: `key=value` lines."""
    return "".join(f"{key}={value}\n" for key, value in sorted(labels.items()))


def read_info(tree: Tree, container_id: str) -> dict[str, Any]:
    """A tree container's `info`: status, pid, times, labels..., in one read (ENOENT
    for an unknown id)."""
    path: Path = tree.container(container_id) / "info"
    try:
        info = json.loads(tree.read(path))
    except ValueError:
        raise TreeError(f"{path}: not a JSON object", errno.EIO) from None
    if not isinstance(info, dict):
        raise TreeError(f"{path}: not a JSON object", errno.EIO)
    return info


def write_labels(tree: Tree, container_id: str, labels: Mapping[str, str]) -> None:
    """Replace all the labels of a tree container with `labels`, in one write."""
    tree.write(tree.container(container_id) / "labels", format_lines(labels))
