"""Small value types shared by content/ and runtime/, which never import each other."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mount:
    """A mount to perform, as containerd's mount.Mount: the lingua franca between
    snapshotters, which emit them, and the runtime, which performs them (rootfs)."""

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)
    target: str = ""

    def to_oci(self, destination: str) -> dict[str, object]:
        """This mount as an entry of an OCI spec's `mounts` list."""
        return {
            "destination": destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }
