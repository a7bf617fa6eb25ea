"""Digests and the OCI content descriptor, the value type that crosses content/."""

import re
from dataclasses import dataclass, field
from typing import Any

from base.errors import InvalidArgument

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def parse_digest(text: str) -> str:
    """Return `text` if it is a sha256 digest in canonical form, else refuse it."""
    if not _DIGEST.fullmatch(text):
        raise InvalidArgument(f'not a sha256 digest: "{text}"')
    return text


def digest_hex(digest: str) -> str:
    """The hex part of a digest, which names its blob file."""
    return parse_digest(digest).split(":", 1)[1]


@dataclass(frozen=True)
class Descriptor:
    """What an OCI descriptor says of a blob: its type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @classmethod
    def from_json(cls, obj: Any) -> "Descriptor":
        """Read a descriptor from parsed JSON, refusing malformed ones."""
        if not isinstance(obj, dict):
            raise InvalidArgument(f"descriptor is not an object: {obj!r}")
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"descriptor has a bad size: {size!r}")
        annotations = obj.get("annotations") or {}
        platform = obj.get("platform")
        return cls(
            media_type=str(obj.get("mediaType", "")),
            digest=parse_digest(str(obj.get("digest", ""))),
            size=size,
            annotations=dict(annotations) if isinstance(annotations, dict) else {},
            platform=platform if isinstance(platform, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """This descriptor as OCI JSON."""
        obj: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        if self.platform:
            obj["platform"] = dict(self.platform)
        return obj
