"""Registry mirrors: where pulls of a registry host's repositories go, in the spirit of
containerd's hosts.toml.

`<root>/registries.json` may map a host to mirror endpoints, tried in order before the
host itself (or instead of it, with "upstream": false):

    "mirrors": {
      "registry.k8s.io": {"endpoints": ["http://127.0.0.1:5000/cri-mirror/registry.k8s.io"]},
      "docker.io": {"endpoints": ["https://harbor.lan/dockerhub"], "upstream": false}
    }

An endpoint is scheme://host[:port][/prefix]. The prefix is put before the repository
path, as registries that hold mirrored repositories under a project or path (Harbor's
proxy projects, a plain registry filled by `skopeo copy`) name them:
registry.k8s.io/pause:3.9 is fetched from the first endpoint as repository
cri-mirror/registry.k8s.io/pause. Images keep their upstream names; only pulls use
mirrors (a push goes to the host it names).
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from base.errors import InvalidArgument
from content.reference import is_repository_path


@dataclass(frozen=True)
class Endpoint:
    """One place to pull from: `base` is scheme://host[:port]; `host` the host[:port]
    its credentials are filed under; `prefix` goes before every repository path."""

    base: str
    host: str
    prefix: str = ""

    def path(self, repository: str) -> str:
        return f"{self.prefix}/{repository}" if self.prefix else repository


@dataclass(frozen=True)
class Mirrors:
    """A host's mirror endpoints in the order tried, and whether the host itself is
    tried after them."""

    endpoints: tuple[Endpoint, ...]
    upstream: bool = True


def parse_endpoint(text: str) -> Endpoint:
    url = urlsplit(text)
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment \
            or "@" in url.netloc:
        raise InvalidArgument(f'mirror endpoint "{text}" is not scheme://host[:port][/prefix]')
    prefix = url.path.strip("/")
    if prefix and not is_repository_path(prefix):
        raise InvalidArgument(f'mirror endpoint "{text}": "{prefix}" is not a repository path')
    return Endpoint(f"{url.scheme}://{url.netloc}", url.netloc, prefix)


def parse_mirrors(obj: object) -> dict[str, Mirrors]:
    """The "mirrors" object of registries.json, checked whole."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InvalidArgument('registries.json: "mirrors" is not an object')
    found: dict[str, Mirrors] = {}
    for host, entry in obj.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("endpoints"), list):
            raise InvalidArgument(f'registries.json: mirrors of "{host}" need an "endpoints" list')
        upstream = entry.get("upstream", True)
        if not isinstance(upstream, bool):
            raise InvalidArgument(f'registries.json: "upstream" of "{host}" is not true or false')
        endpoints = tuple(parse_endpoint(str(e)) for e in entry["endpoints"])
        if not endpoints and not upstream:
            raise InvalidArgument(f'registries.json: "{host}" has no endpoint to pull from')
        found[host] = Mirrors(endpoints, upstream)
    return found
