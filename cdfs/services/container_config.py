"""What a container's files say, turned into what runc gets: pure functions.

config.json is either a full OCI runtime spec (it names `ociVersion`) used as written,
or a partial one merged over the default spec and the image's config, as containerd's
`WithImageConfig` does. The image's process (Entrypoint+Cmd, Env, WorkingDir, User)
is the middle layer, so anything the user writes wins. The caller reads the files
(passwd, group) and resolves names; nothing here touches the host.
"""

import json
from collections.abc import Mapping
from typing import Any

from base.errors import InvalidArgument
from runtime import spec as oci

Spec = dict[str, Any]


def image_config_mapping(entrypoint: tuple[str, ...], cmd: tuple[str, ...],
                         env: tuple[str, ...], working_dir: str, user: str
                         ) -> dict[str, Any]:
    """An image config's process fields in the OCI JSON names `with_image_config` reads."""
    return {"Entrypoint": list(entrypoint), "Cmd": list(cmd), "Env": list(env),
            "WorkingDir": working_dir, "User": user}


def is_full_spec(user: Mapping[str, Any]) -> bool:
    """A document that names its `ociVersion` is a whole spec, taken as written."""
    return "ociVersion" in user


def build_spec(namespace: str, container_id: str, user: Spec,
               hard_limits: Mapping[str, int],
               image_config: Mapping[str, Any] | None = None,
               passwd: str | None = None, group: str | None = None,
               netns_path: str | None = None,
               cgroup_parent: str = oci.DEFAULT_CGROUP_PARENT) -> Spec:
    """The spec to create the container with, validated. `netns_path` joins the
    container to that network namespace; without it the container gets a new one. A
    partial spec's default cgroup is under the daemon's `cgroup_parent`."""
    if is_full_spec(user):
        result = dict(user)
    else:
        base = oci.default_spec(namespace, container_id, hard_limits, cgroup_parent)
        if image_config is not None:
            # The image's Env (PATH included) comes first: the default spec's PATH is
            # only for images without one (with_image_config adds it then).
            base["process"]["env"] = []
            base = oci.with_image_config(base, image_config, passwd=passwd, group=group)
        result = oci.merge(base, user)
        user_env = (user.get("process") or {}).get("env")
        if isinstance(user_env, list) and all(isinstance(e, str) for e in user_env):
            # as containerd's WithEnv: the user's variables replace or add to the image's
            result["process"]["env"] = oci.replace_or_append_env(
                base["process"]["env"], user_env)
        user_mounts = user.get("mounts")
        if user_mounts is not None:
            oci.validate_mounts(user_mounts)
            result["mounts"] = oci.replace_or_append_mounts(base["mounts"], user_mounts)
    result = oci.with_username(result, passwd, group)
    oci.validate(result)
    if netns_path is not None:
        result = with_network_namespace(result, netns_path)
    return result


def host_paths(user: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, path) for each host path the user's config names: an absolute root.path,
    each mount's absolute source and overlay directories. The caller refuses those
    under cdfs's own mount, which runc would otherwise walk through the daemon."""
    found = []
    root = user.get("root")
    if isinstance(root, Mapping) and isinstance(root.get("path"), str) \
            and root["path"].startswith("/"):
        found.append(("root.path", root["path"]))
    mounts = user.get("mounts")
    for i, mount in enumerate(mounts if isinstance(mounts, list) else []):
        if not isinstance(mount, Mapping):
            continue
        source = mount.get("source")
        if isinstance(source, str) and source.startswith("/"):
            found.append((f"mounts[{i}].source", source))
        options = mount.get("options")
        for option in options if isinstance(options, list) else []:
            key, _, value = str(option).partition("=")
            if key in ("lowerdir", "upperdir", "workdir"):
                found += [(f"mounts[{i}].options", p) for p in value.split(":") if p]
    return found


def with_network_namespace(spec: Spec, path: str) -> Spec:
    """A copy of `spec` whose network namespace is the one bound at `path`."""
    linux = dict(spec.get("linux") or {})
    namespaces = [dict(ns) for ns in linux.get("namespaces") or []
                  if ns.get("type") != "network"]
    namespaces.append({"type": "network", "path": path})
    linux["namespaces"] = namespaces
    return {**spec, "linux": linux}


def cgroups_path(spec: Mapping[str, Any], namespace: str, container_id: str,
                 cgroup_parent: str = oci.DEFAULT_CGROUP_PARENT) -> str:
    """The container's cgroup: the spec's linux.cgroupsPath, else the daemon's
    default (under `cgroup_parent`)."""
    path = (spec.get("linux") or {}).get("cgroupsPath")
    if isinstance(path, str) and path:
        return path
    return oci.default_cgroups_path(namespace, container_id, cgroup_parent)


def with_resources(spec: Spec, resources: Mapping[str, Any]) -> Spec:
    """A copy of `spec` with `resources` merged into linux.resources (after an update)."""
    return oci.merge(spec, {"linux": {"resources": dict(resources)}})


def parse_resources(text: str) -> dict[str, Any]:
    """The JSON object of an `update` verb: linux.resources fields."""
    resources = oci.parse(text, "update")
    oci.validate_resources(resources, "update", strict=True)
    return resources


def spec_or_none(text: str) -> Spec | None:
    """A stored spec column: the spec, or None for a slot without config.json."""
    return json_object(text) if text else None


def json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {text[:80]!r}")
    return value


def parse_labels(text: str) -> dict[str, str]:
    """`key=value` lines (blank lines ignored) as a dict; the whole text is refused,
    quoting the line, when one is not `key=value` with a key."""
    labels = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
            raise InvalidArgument(f'labels: "{line}" is not key=value')
        labels[key.strip()] = value
    return labels


def format_labels(labels: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in sorted(labels.items()))


def parse_grace(args: list[str]) -> float:
    """The grace period of `stop [SECONDS]` (default 10)."""
    if not args:
        return 10.0
    try:
        seconds = float(args[0])
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise InvalidArgument(f'stop: bad grace period "{args[0]}" (seconds, 0 to 3600)')
    return seconds


def parse_window(args: list[str]) -> tuple[int, int]:
    """The rows and columns of `resize ROWS COLS` (the runtime checks their range)."""
    try:
        return int(args[0]), int(args[1])
    except ValueError:
        raise InvalidArgument(f'resize: "{" ".join(args)}" is not ROWS COLS '
                              "(two integers)") from None
