"""Image references, parsed and normalised exactly as docker's distribution/reference.

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [ domain "/" ] path-component [ "/" path-component ]*
    domain    := host [ ":" port ]            host: DNS name, IPv4 or [IPv6]

A name without a domain belongs to docker.io, and a one-component docker.io name to
`library/` (`busybox` -> `docker.io/library/busybox:latest`). The canonical string of
a reference is also its path under `images/` in the tree: ':' and '@' are valid in
file names and the grammar admits no '.', '..' or empty component.
"""

import re
from dataclasses import dataclass

from base.errors import InvalidArgument
from content.descriptor import parse_digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX_LENGTH = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A fully qualified reference: a domain, a repository path, and a tag, a digest or both."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """domain/path, the name a registry stores blobs under."""
        return f"{self.domain}/{self.path}"

    @property
    def name(self) -> str:
        """Alias of `repository`, as distribution/reference calls it."""
        return self.repository

    @property
    def object(self) -> str:
        """What to ask the registry's manifests/ endpoint for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        """The canonical form, which is also the image's path under images/."""
        text = self.repository
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def is_repository_path(text: str) -> bool:
    """Whether `text` is a valid repository path (lowercase components joined by /)."""
    return bool(_PATH_RE.fullmatch(text))


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's splitDockerDomain: the first component is a domain only if it looks like
    one (has '.' or ':', or is `localhost`) and is not lower-case-only by accident."""
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference (docker's ParseNormalizedNamed + TagNameOnly).

    With `default_tag`, a reference with neither tag nor digest gets `:latest`.
    Only sha256 digests are accepted, since the store holds nothing else."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise InvalidArgument(f"bad reference: {text!r}")
    rest, at, digest = text.partition("@")
    if at and not _DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(f'bad digest in reference: "{text}"')
    if at:
        try:
            parse_digest(digest)
        except InvalidArgument:
            raise InvalidArgument(f'unsupported digest in reference: "{text}"') from None
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidArgument(f'bad tag in reference: "{text}"')
    if _IDENTIFIER_RE.fullmatch(name):
        raise InvalidArgument(f'reference is an image ID, not a name: "{text}"')
    domain, path = _split_domain(name)
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidArgument(f'bad registry domain in reference: "{text}"')
    if not _PATH_RE.fullmatch(path):
        if path.lower() != path and _PATH_RE.fullmatch(path.lower()):
            raise InvalidArgument(f'repository name must be lowercase: "{text}"')
        raise InvalidArgument(f'bad repository name in reference: "{text}"')
    if len(domain) + 1 + len(path) > NAME_MAX_LENGTH:
        raise InvalidArgument(f'repository name longer than {NAME_MAX_LENGTH}: "{text}"')
    if default_tag and tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest if at else None)
