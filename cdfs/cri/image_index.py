"""The CRI namespace's images as CRI sees them, read from the tree.

The tree has one directory per image name (images/<ref>/, with `ref`, `digest`,
`size`, `manifest.json` and `config.json`); CRI has one image per image id, the
config digest, as containerd's CRI plugin: every name of the same config is one of
its repo_tags (name:tag) or repo_digests (repository@digest). Kubelet names images
every way: `busybox`, `docker.io/library/busybox:latest`, `name@sha256:…`, the id
with or without `sha256:`; `find` takes all of them.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from base.errors import InvalidArgument
from cdfs.client.tree import Tree
from cdfs.cri.errors import invalid
from content.reference import Reference, parse_reference

_IMAGE_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


@dataclass(frozen=True)
class TreeImage:
    """One name of an image in the tree."""

    name: str      # its canonical reference, also its path below images/
    digest: str    # what the name points at: an index or a manifest
    image_id: str  # sha256:<config digest>
    size: int      # bytes of its blobs
    user: str      # the config's User, "" when unset

    @property
    def reference(self) -> Reference:
        return parse_reference(self.name)


@dataclass(frozen=True)
class CriImage:
    """All the names of one image id."""

    image_id: str
    names: tuple[TreeImage, ...]

    @property
    def repo_tags(self) -> list[str]:
        return sorted({n.name for n in self.names if n.reference.digest is None})

    @property
    def repo_digests(self) -> list[str]:
        return sorted({f"{n.reference.repository}@{n.digest}" for n in self.names})

    @property
    def size(self) -> int:
        return max(n.size for n in self.names)

    @property
    def user(self) -> str:
        return self.names[0].user


def _read_image(directory: Path) -> TreeImage:
    manifest = json.loads((directory / "manifest.json").read_bytes())
    config = json.loads((directory / "config.json").read_bytes())
    return TreeImage(
        name=(directory / "ref").read_text().strip(),
        digest=(directory / "digest").read_text().strip(),
        image_id=str(manifest["config"]["digest"]),
        size=int((directory / "size").read_text()),
        user=str((config.get("config") or {}).get("User") or ""))


def tree_images(tree: Tree) -> list[TreeImage]:
    """Every ready image name of the namespace. A name being pulled, or removed while
    this reads, is left out: it is not an image yet, or not any more."""
    found = []
    for directory in tree.image_dirs():
        try:
            found.append(_read_image(directory))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def group(names: list[TreeImage]) -> list[CriImage]:
    by_id: dict[str, list[TreeImage]] = {}
    for name in names:
        by_id.setdefault(name.image_id, []).append(name)
    return [CriImage(image_id, tuple(sorted(found, key=lambda n: n.name)))
            for image_id, found in sorted(by_id.items())]


def list_images(tree: Tree) -> list[CriImage]:
    return group(tree_images(tree))


def find(tree: Tree, text: str) -> CriImage | None:
    """The image `text` names (a reference in any of kubelet's forms, or an image id),
    or None. InvalidArgument (a CriError) for what is neither."""
    images = list_images(tree)
    match = _IMAGE_ID.fullmatch(text)
    if match:
        image_id = f"sha256:{match.group(1)}"
        return next((image for image in images if image.image_id == image_id), None)
    try:
        ref = parse_reference(text)
    except InvalidArgument as exc:
        raise invalid(f'"{text}" is neither an image reference nor an image id: {exc}') from None
    for image in images:
        for name in image.names:
            if name.name == str(ref) or (
                    ref.digest and name.digest == ref.digest
                    and name.reference.repository == ref.repository):
                return image
    return None
