"""Snapshotters: layered filesystems for image layers and container rootfs.

`open_snapshotter(root)` picks overlay where it works and the native copy otherwise.
"""

from pathlib import Path

from content.snapshots.metadata import Info, Kind
from content.snapshots.native import NativeSnapshotter
from content.snapshots.overlay import OverlaySnapshotter, overlay_supported
from content.snapshots.snapshotter import Snapshotter, Usage

__all__ = ["Info", "Kind", "NativeSnapshotter", "OverlaySnapshotter", "Snapshotter", "Usage",
           "open_snapshotter", "overlay_supported"]


def open_snapshotter(root: Path) -> Snapshotter:
    """The overlay snapshotter under `root`/overlay if overlayfs works there, else
    the native one under `root`/native."""
    if overlay_supported(root) and not any(c in str(root) for c in ",:"):
        return OverlaySnapshotter(root / "overlay")
    return NativeSnapshotter(root / "native")
