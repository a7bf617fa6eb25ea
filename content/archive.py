"""Image archives in and out of the store: the one entry point the daemon calls.

Import reads an OCI image layout (a directory or a tar, as `skopeo copy ... oci:` /
`oci-archive:` and `ctr images export` write) or a `docker save` archive. Export
always writes an OCI layout tar. Both block on disk I/O: call them from a worker thread.
"""

from pathlib import Path

from base.errors import InvalidArgument
from content.archive_source import ImportedImage, open_archive
from content.descriptor import Descriptor
from content.docker_archive import import_docker_archive, is_docker_archive
from content.oci_layout import export_layout, import_layout, is_layout
from content.store import ContentStore

__all__ = ["ImportedImage", "export_archive", "import_archive"]


def import_archive(store: ContentStore, path: Path) -> list[ImportedImage]:
    """Copy the images of the archive at `path` into the store, every blob verified,
    and return them with the names the archive gives them (None: unnamed). An archive
    that is both (docker 25+ writes OCI layouts with a manifest.json) is read as OCI.
    InvalidArgument for a malformed, incomplete or corrupt archive (then no image is
    returned; blobs already copied are unreferenced and left to GC), NotFound if
    `path` does not exist."""
    with open_archive(path) as source:
        if is_layout(source):
            return import_layout(store, source)
        if is_docker_archive(source):
            return import_docker_archive(store, source)
    raise InvalidArgument(f'not an OCI layout or docker archive: "{path}"')


def export_archive(store: ContentStore, descriptor: Descriptor, name: str, path: Path) -> None:
    """Write the image `descriptor` (manifest or index, with all it refers to) as an
    OCI layout tar at `path`, naming it `name` (a reference; its tag becomes
    org.opencontainers.image.ref.name). NotFound if the store lacks part of the image,
    InvalidArgument for a bad name."""
    export_layout(store, descriptor, name, path)
