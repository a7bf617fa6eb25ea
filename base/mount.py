"""The Mount value type: what a snapshotter says to mount, what the runtime performs.

As containerd's core/mount, this is the lingua franca between content/ (snapshotters
emit mounts) and runtime/ (a container's rootfs is mounted before runc create), which
never import each other. Performing a mount is the runtime's (runtime/mounts.py).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mount:
    """A mount to perform, as containerd's mount.Mount."""

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)
    target: str = ""
