"""The pod sandbox image: the pause binary alone, built here and imported into the tree.

kubelet names `registry.k8s.io/pause:3.9` as the sandbox image, but pulling it needs
a registry this host may not reach; cdfs runs its own instead, built at start with
the project's image builder (content/build.py) into a scratch store, written as an
OCI layout tar and imported through the namespace's `images/ctl` (`import PATH REF`),
as any client would. The build is deterministic, so a restart finds the image there
already and imports nothing.
"""

import tempfile
from pathlib import Path

from cdfs.client.tree import Tree, ctl_line
from cdfs.cri.pause import find_or_build
from content.build import BuildConfig, Entry, Layer, build_image
from content.descriptor import Descriptor
from content.oci_layout import export_layout
from content.store import ContentStore

PAUSE_IMAGE = "cdfs.local/pause:3.9"
"""The image every sandbox runs, whatever kubelet names as its sandbox image."""
PAUSE_USER = "65535:65535"
"""The user registry.k8s.io/pause:3.9 runs as: nobody the host knows."""


def pause_layer(binary: Path) -> Layer:
    return Layer([Entry.file("pause", mode=0o755, source=binary)])


def build_pause_image(store: ContentStore, binary: Path) -> Descriptor:
    """The pause image's manifest, written into `store`."""
    config = BuildConfig(entrypoint=["/pause"], user=PAUSE_USER)
    return build_image(store, [pause_layer(binary)], config)


def ensure_pause_image(tree: Tree, scratch: Path, name: str = PAUSE_IMAGE) -> str:
    """Import the pause image as `name` into the tree's namespace unless it holds that
    very image already; returns the image's digest. `scratch` is a directory of the
    caller's where the build happens (the image's files are removed afterwards)."""
    scratch.mkdir(parents=True, exist_ok=True)
    binary = find_or_build(scratch)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="pause-") as work:
        store = ContentStore(Path(work) / "store")
        manifest = build_pause_image(store, binary)
        digest_file = tree.images / name / "digest"
        if digest_file.is_file() and tree.read(digest_file).strip() == manifest.digest:
            return manifest.digest
        layout = Path(work) / "pause.tar"
        export_layout(store, manifest, name, layout)
        tree.write(tree.images / "ctl", ctl_line("import", str(layout), name))
    return manifest.digest
