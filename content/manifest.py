"""Manifests, indexes, image configs and platforms: the pure core of image content.

Parsing takes bytes and returns frozen values made of Descriptors; nothing here
does I/O except through a `read(digest)` callable given to `walk`.

Platforms follow containerd's platforms package: names are normalised before comparing
(`aarch64` is `arm64`, `arm64/v8` is `arm64`, bare `arm` is `arm/v7`), and a
platform also runs the ones it is backwards compatible with, in a fixed order of
preference (`platforms.Only`): arm/v7 runs v6 and v5; arm64 runs arm/v8..v5;
amd64/v3 runs v2 and v1, and every amd64 runs 386.
"""

import json
import platform as _host
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from base.errors import InvalidArgument, NotFound
from content import mediatypes as mt
from content.descriptor import Descriptor, parse_digest

_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+")

# platform.machine() values to (architecture, variant), as containerd's cpuinfo does.
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""),
    "i386": ("386", ""), "i686": ("386", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"), "armv5tejl": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""), "loongarch64": ("loong64", ""),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform. Compare platforms through `normalize`, not with ==."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_json(cls, obj: Any) -> "Platform":
        """The platform of an index entry or an image config."""
        if not isinstance(obj, dict):
            raise InvalidArgument(f"platform is not an object: {obj!r}")
        return cls(str(obj.get("os", "")), str(obj.get("architecture", "")),
                   str(obj.get("variant", "") or ""))

    def to_json(self) -> dict[str, str]:
        obj = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            obj["variant"] = self.variant
        return obj


def parse_platform(text: str) -> Platform:
    """Parse `OS/ARCH[/VARIANT]` (e.g. `linux/arm/v7`) into a normalised Platform."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise InvalidArgument(f'bad platform: "{text}" (want OS/ARCH[/VARIANT])')
    return normalize(Platform(*parts))


def normalize(p: Platform) -> Platform:
    """The canonical spelling of `p`, as containerd's platforms.Normalize."""
    arch, variant = p.architecture.lower(), p.variant.lower()
    if arch in ("i386",):
        arch, variant = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        variant = "" if variant == "v1" else variant
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        variant = "" if variant in ("8", "v8", "v8.0") else variant
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        variant = {"": "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"}.get(variant, variant)
    return Platform(p.os.lower(), arch, variant)


def host_platform() -> Platform:
    """The platform this machine runs natively."""
    machine = _host.machine().lower()
    arch, variant = _MACHINES.get(machine, (machine, ""))
    return Platform("linux", arch, variant)


def compatible(p: Platform) -> list[Platform]:
    """`p` (normalised) followed by the platforms it can also run, best first."""
    p = normalize(p)
    order = [p]
    version = _variant_number(p.variant)
    if p.architecture == "amd64":
        order += [Platform(p.os, "amd64", f"v{v}" if v > 1 else "")
                  for v in range(version - 1, 0, -1)] if version > 1 else []
        order.append(Platform(p.os, "386"))
    elif p.architecture == "arm" and version > 5:
        order += [Platform(p.os, "arm", f"v{v}") for v in range(version - 1, 4, -1)]
    elif p.architecture == "arm64":
        order += compatible(Platform(p.os, "arm", p.variant or "v8"))
    return order


def _variant_number(variant: str) -> int:
    digits = variant.removeprefix("v")
    return int(digits) if digits.isdigit() else 0


def preference(wanted: Platform, candidate: Platform) -> int | None:
    """How well `candidate` suits `wanted`: 0 is an exact match, higher is a worse
    fallback, None means it cannot run there."""
    have = normalize(candidate)
    for rank, accepted in enumerate(compatible(wanted)):
        if accepted == have:
            return rank
    return None


# -- manifests and indexes -----------------------------------------------------

MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 4 << 20


@dataclass(frozen=True)
class ImageManifest:
    """An OCI image manifest or a Docker schema 2 manifest: one config, ordered layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ImageIndex:
    """An OCI image index or a Docker manifest list: manifests for several platforms."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def _load_json(data: bytes, what: str, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise InvalidArgument(f"{what} is larger than {limit} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return obj


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    found = obj.get("annotations") or {}
    if not isinstance(found, dict):
        raise InvalidArgument(f"annotations are not an object: {found!r}")
    return {str(k): str(v) for k, v in found.items()}


def _media_type_of(obj: dict[str, Any], declared: str | None) -> str:
    """The document's own mediaType, which must agree with the descriptor's when both say
    one (OCI 1.1: a mismatch is how confused-deputy attacks on indexes start)."""
    inner = obj.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise InvalidArgument(f"mediaType is not a string: {inner!r}")
    if inner and declared and inner != declared:
        raise InvalidArgument(f'manifest says mediaType "{inner}" but was served as "{declared}"')
    media_type = inner or declared
    if not media_type:
        # Old OCI documents may omit mediaType: tell them apart by shape.
        if "manifests" in obj and "config" not in obj:
            media_type = mt.OCI_INDEX
        elif "config" in obj and "manifests" not in obj:
            media_type = mt.OCI_MANIFEST
        else:
            raise InvalidArgument("manifest has no mediaType and an ambiguous shape")
    return media_type


def parse_manifest(data: bytes, media_type: str | None = None) -> ImageManifest | ImageIndex:
    """Parse a manifest or index; `media_type` is what its descriptor or the registry's
    Content-Type said. Schema 1 and unknown types are refused."""
    obj = _load_json(data, "manifest", MAX_MANIFEST_SIZE)
    kind = _media_type_of(obj, media_type)
    if kind not in mt.MANIFESTS and kind not in mt.INDEXES:
        raise InvalidArgument(f'unsupported manifest media type: "{kind}"')
    if obj.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion: {obj.get('schemaVersion')!r}")
    # A document of both shapes reads differently to different parsers: refused, as
    # containerd's validateManifest does (GHSA-5j5w-g665-5m35).
    if kind in mt.INDEXES and ("config" in obj or "layers" in obj):
        raise InvalidArgument("index carries config or layers as a manifest would")
    if kind in mt.MANIFESTS and "manifests" in obj:
        raise InvalidArgument("manifest carries manifests as an index would")
    if kind in mt.INDEXES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument("index has no manifests list")
        return ImageIndex(kind, tuple(Descriptor.from_json(e) for e in entries),
                          _annotations(obj))
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("manifest has no layers list")
    return ImageManifest(kind, Descriptor.from_json(obj.get("config")),
                         tuple(Descriptor.from_json(e) for e in layers), _annotations(obj))


def parse_image_manifest(data: bytes, media_type: str | None = None) -> ImageManifest:
    """Like parse_manifest, refusing an index."""
    parsed = parse_manifest(data, media_type)
    if not isinstance(parsed, ImageManifest):
        raise InvalidArgument(f'expected an image manifest, got "{parsed.media_type}"')
    return parsed


def select_manifest(index: ImageIndex, wanted: Platform | None = None) -> Descriptor:
    """The index entry to run on `wanted` (default: this host), deterministically: the
    first of `candidates`. NotFound if none fits."""
    return candidates(index, wanted)[0]


def candidates(index: ImageIndex, wanted: Platform | None = None) -> list[Descriptor]:
    """The index entries that may run on `wanted` (default: this host), best first.

    Entries are ranked by `preference` (exact platform first, then compatible ones in
    containerd's order), ties broken by position in the index; entries without a
    platform come last, as in containerd's images.Manifest, and only their config can
    tell whether they fit (`fits`). NotFound if no entry may fit."""
    wanted = wanted or host_platform()
    ranked: list[tuple[int, int, Descriptor]] = []
    for position, entry in enumerate(index.manifests):
        if entry.media_type not in mt.MANIFESTS:
            continue
        if entry.platform is None:
            ranked.append((1 << 30, position, entry))
            continue
        rank = preference(wanted, Platform.from_json(entry.platform))
        if rank is not None:
            ranked.append((rank, position, entry))
    if not ranked:
        raise no_manifest_for(wanted, index)
    return [entry for _, _, entry in sorted(ranked, key=lambda r: (r[0], r[1]))]


def fits(wanted: Platform | None, config: "ImageConfig") -> bool:
    """Whether an image whose config says `config.platform` runs on `wanted` (default:
    this host): the check a platform-less index entry needs."""
    return preference(wanted or host_platform(), config.platform) is not None


def no_manifest_for(wanted: Platform | None, index: ImageIndex) -> NotFound:
    available = ", ".join(str(Platform.from_json(e.platform)) for e in index.manifests
                          if e.platform is not None)
    return NotFound(f'no manifest for platform "{wanted or host_platform()}" '
                    f"(index has: {available})")


# -- image config ----------------------------------------------------------------

@dataclass(frozen=True)
class ImageConfig:
    """What an image config says about running the image and about its layers."""

    os: str
    architecture: str
    variant: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    diff_ids: tuple[str, ...] = ()

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)


def _strings(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"image config {key} is not a list of strings: {value!r}")
    return tuple(value)


def _string(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"image config {key} is not a string: {value!r}")
    return value


def parse_config(data: bytes) -> ImageConfig:
    """Parse an OCI or Docker image config (both share this shape)."""
    obj = _load_json(data, "image config", MAX_CONFIG_SIZE)
    run = obj.get("config") or {}
    rootfs = obj.get("rootfs") or {}
    if not isinstance(run, dict) or not isinstance(rootfs, dict):
        raise InvalidArgument("image config: config and rootfs must be objects")
    labels = run.get("Labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument(f"image config Labels is not an object: {labels!r}")
    return ImageConfig(
        os=_string(obj, "os"),
        architecture=_string(obj, "architecture"),
        variant=_string(obj, "variant"),
        entrypoint=_strings(run, "Entrypoint"),
        cmd=_strings(run, "Cmd"),
        env=_strings(run, "Env"),
        working_dir=_string(run, "WorkingDir"),
        user=_string(run, "User"),
        stop_signal=_string(run, "StopSignal"),
        labels={str(k): str(v) for k, v in labels.items()},
        diff_ids=tuple(parse_digest(d) for d in _strings(rootfs, "diff_ids")),
    )


# -- reachability ----------------------------------------------------------------

def children(desc: Descriptor, data: bytes) -> list[Descriptor]:
    """The descriptors `desc` (whose bytes are `data`) refers to: an index's manifests,
    a manifest's config and layers; nothing for any other blob."""
    if desc.media_type in mt.INDEXES:
        index = parse_manifest(data, desc.media_type)
        assert isinstance(index, ImageIndex)
        return list(index.manifests)
    if desc.media_type in mt.MANIFESTS:
        manifest = parse_image_manifest(data, desc.media_type)
        return [manifest.config, *manifest.layers]
    return []


def walk(root: Descriptor, read: Callable[[str], bytes],
         skip_missing: bool = False) -> list[Descriptor]:
    """Every descriptor reachable from `root` (root excluded), each once, parents before
    their children. `read(digest)` returns a manifest's bytes (e.g. ContentStore.read);
    only manifests and indexes are read. With `skip_missing`, a manifest `read` raises
    NotFound for is kept but not descended into (GC of a single-platform pull);
    otherwise NotFound propagates (export needs everything)."""
    found: list[Descriptor] = []
    seen = {root.digest}

    def visit(desc: Descriptor) -> None:
        if desc.media_type not in mt.INDEXES and desc.media_type not in mt.MANIFESTS:
            return
        try:
            data = read(desc.digest)
        except NotFound:
            if skip_missing and desc is not root:
                return
            raise
        for child in children(desc, data):
            if child.digest not in seen:
                seen.add(child.digest)
                found.append(child)
                visit(child)

    visit(root)
    return found
