"""The CRI namespace's images as CRI sees them, read from the tree.

The tree has one directory per image name (images/<ref>/) and lists them all in one
file, `images/list` (name, digest, config digest, size), made from the daemon's
memory; CRI has one image per image id, the config digest, as containerd's CRI
plugin: every name of the same config is one of its repo_tags (name:tag) or
repo_digests (repository@digest). So a lookup is one read of the list and one of the
found image's config.json (for its User), however many images there are (reading
five files of every image took ~10 ms each, 0.5 s an ImageStatus with 50). Kubelet
names images every way: `busybox`, `docker.io/library/busybox:latest`,
`name@sha256:…`, the id with or without `sha256:`; `find` takes all of them.
"""

import json
import re
from dataclasses import dataclass

from base.errors import InvalidArgument
from cdfs.client.tree import Tree, TreeError
from cdfs.cri.errors import invalid
from content.reference import Reference, parse_reference

_IMAGE_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


@dataclass(frozen=True)
class TreeImage:
    """One name of an image in the tree: a row of images/list."""

    name: str      # its canonical reference, also its path below images/
    digest: str    # what the name points at: an index or a manifest
    image_id: str  # sha256:<config digest>
    size: int      # bytes of its blobs

    @property
    def reference(self) -> Reference:
        return parse_reference(self.name)


@dataclass(frozen=True)
class CriImage:
    """All the names of one image id, and its config's User ("" when unset)."""

    image_id: str
    names: tuple[TreeImage, ...]
    user: str

    @property
    def repo_tags(self) -> list[str]:
        return sorted({n.name for n in self.names if n.reference.digest is None})

    @property
    def repo_digests(self) -> list[str]:
        return sorted({f"{n.reference.repository}@{n.digest}" for n in self.names})

    @property
    def size(self) -> int:
        return max(n.size for n in self.names)


def tree_images(tree: Tree) -> list[TreeImage]:
    """Every ready image name of the namespace (the list leaves out a name being
    pulled: it is not an image yet)."""
    return [TreeImage(row["REF"], row["DIGEST"], row["CONFIG"], int(row["SIZE"]))
            for row in tree.images_listed()]


def _user(tree: Tree, names: list[TreeImage]) -> str | None:
    """The User of the config the names share, read through the first name still
    there; None when all were removed since the list was read."""
    for name in names:
        try:
            config = json.loads(tree.read(tree.images / name.name / "config.json"))
            return str((config.get("config") or {}).get("User") or "")
        except (TreeError, ValueError, AttributeError):
            continue
    return None


def _image(tree: Tree, image_id: str, names: list[TreeImage]) -> CriImage | None:
    user = _user(tree, names)
    if user is None:
        return None
    return CriImage(image_id, tuple(sorted(names, key=lambda n: n.name)), user)


def list_images(tree: Tree) -> list[CriImage]:
    by_id: dict[str, list[TreeImage]] = {}
    for name in tree_images(tree):
        by_id.setdefault(name.image_id, []).append(name)
    found = (_image(tree, image_id, names) for image_id, names in sorted(by_id.items()))
    return [image for image in found if image is not None]


def find(tree: Tree, text: str) -> CriImage | None:
    """The image `text` names (a reference in any of kubelet's forms, or an image id),
    or None. InvalidArgument (a CriError) for what is neither."""
    names = tree_images(tree)
    match = _IMAGE_ID.fullmatch(text)
    if match:
        image_id = f"sha256:{match.group(1)}"
    else:
        try:
            ref = parse_reference(text)
        except InvalidArgument as exc:
            raise invalid(f'"{text}" is neither an image reference nor an image '
                          f"id: {exc}") from None
        named = next((name for name in names if name.name == str(ref) or (
            ref.digest and name.digest == ref.digest
            and name.reference.repository == ref.repository)), None)
        if named is None:
            return None
        image_id = named.image_id
    same = [name for name in names if name.image_id == image_id]
    return _image(tree, image_id, same) if same else None
