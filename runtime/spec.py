"""OCI runtime specs: the default, the image's contribution, the user's overrides, validation.

Everything here but `host_rlimits` (which asks the kernel) is pure: the caller reads
files (the rootfs's /etc/passwd) and passes their contents in, so each step is a plain
function that the tests drive with literal values. The order of use mirrors
containerd's `oci.GenerateSpec`:

    spec = default_spec(namespace, id, host_rlimits())
    spec = with_image_config(spec, image_config, passwd=..., group=...)
    spec = merge(spec, parse(user_json))
    validate(spec)
"""

import copy
import json
import resource
from collections.abc import Callable, Mapping
from typing import Any

from base.errors import InvalidArgument

Spec = dict[str, Any]

OCI_VERSION = "1.0.2"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# containerd's defaultUnixCaps (pkg/oci/spec.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/sys/devices/virtual/powercap", "/proc/scsi",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
NAMESPACES = ("pid", "ipc", "uts", "mount", "network")
KNOWN_NAMESPACES = frozenset(NAMESPACES) | {"user", "cgroup", "time"}
DEFAULT_RLIMITS = {"RLIMIT_NOFILE": 1024}
HOST_NAME_MAX = 64  # bytes sethostname(2) takes; an id may have 76 characters
DEFAULT_CGROUP_PARENT = "cdfs"  # the cgroup of the default root's daemon (cdfs.config)


def host_rlimits() -> dict[str, int]:
    """The host's hard limits for the rlimits a default spec sets; a spec asking more
    than these fails in runc with EPERM (the hard NOFILE limit here is 20000)."""
    result = {}
    for name in DEFAULT_RLIMITS:
        hard = resource.getrlimit(getattr(resource, name))[1]
        result[name] = hard if hard != resource.RLIM_INFINITY else 2**63 - 1
    return result


def default_cgroups_path(namespace: str, container_id: str,
                         parent: str = DEFAULT_CGROUP_PARENT) -> str:
    """The cgroup cdfs gives a container whose spec names none (cgroupfs style; runc
    creates it): one subtree per daemon (`parent`) and in it one per namespace, so a
    namespace's containers sit together."""
    return f"/{parent}/{namespace}/{container_id}"


def default_spec(namespace: str, container_id: str, hard_limits: Mapping[str, int],
                 cgroup_parent: str = DEFAULT_CGROUP_PARENT) -> Spec:
    """A sane spec for a container, as containerd's populateDefaultUnixSpec: the rootfs
    at `<bundle>/rootfs`, `sh` as a placeholder command, proc/dev/devpts/shm/mqueue/sysfs
    mounts, default capabilities, masked and read-only /proc paths, new pid ipc uts mount
    and network namespaces, the id as hostname (its first 64 characters), the
    `default_cgroups_path`, pipes (no terminal)."""
    caps = list(DEFAULT_CAPABILITIES)
    rlimits = [
        {"type": name, "hard": min(value, hard_limits.get(name, value)),
         "soft": min(value, hard_limits.get(name, value))}
        for name, value in DEFAULT_RLIMITS.items()
    ]
    return {
        "ociVersion": OCI_VERSION,
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [DEFAULT_PATH_ENV],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
            "rlimits": rlimits,
            "noNewPrivileges": True,
        },
        "hostname": container_id[:HOST_NAME_MAX],
        "mounts": _default_mounts(),
        "linux": {
            "cgroupsPath": default_cgroups_path(namespace, container_id, cgroup_parent),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": kind} for kind in NAMESPACES],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def _default_mounts() -> list[dict[str, Any]]:
    def mount(dest: str, kind: str, source: str, *options: str) -> dict[str, Any]:
        return {"destination": dest, "type": kind, "source": source, "options": list(options)}

    return [
        mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        mount("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance",
              "ptmxmode=0666", "mode=0620", "gid=5"),
        mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777",
              "size=65536k"),
        mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        mount("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
    ]


# --- the image's contribution (containerd's oci.WithImageConfig) -----------------------


def with_image_config(
    spec: Spec, image_config: Mapping[str, Any], passwd: str | None = None,
    group: str | None = None,
) -> Spec:
    """A copy of `spec` running what the image says: Entrypoint+Cmd as args, the image's
    Env under the spec's own env, WorkingDir as cwd (default "/"), and User resolved to
    uid/gid/additionalGids against the rootfs's /etc/passwd and /etc/group texts (None
    when the file is absent). `image_config` is the OCI image config or its "config"."""
    config = image_config.get("config", image_config)
    if not isinstance(config, Mapping):
        raise InvalidArgument(f"image config: not an object: {config!r}")
    result = copy.deepcopy(spec)
    process = result.setdefault("process", {})
    image_env = list(config.get("Env") or []) or [DEFAULT_PATH_ENV]
    process["env"] = replace_or_append_env(image_env, process.get("env") or [])
    process["args"] = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    process["cwd"] = config.get("WorkingDir") or "/"
    user = config.get("User") or ""
    uid, gid, username = resolve_user(user, passwd, group) if user else (0, 0, "root")
    process["user"] = {"uid": uid, "gid": gid}
    extra = supplementary_gids(username, group)
    if extra:
        process["user"]["additionalGids"] = extra
    return result


def replace_or_append_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """containerd's replaceOrAppendEnvValues: an override `K=V` replaces `K` in defaults
    or is appended; a bare `K` removes `K` from defaults."""
    result = list(defaults)
    for override in overrides:
        key, has_value, _ = override.partition("=")
        index = next((i for i, e in enumerate(result) if e.partition("=")[0] == key), None)
        if index is None:
            if has_value:
                result.append(override)
        elif has_value:
            result[index] = override
        else:
            del result[index]
    return result


def replace_or_append_mounts(defaults: list[Any], overrides: list[Any]) -> list[Any]:
    """containerd's WithMounts: the defaults stay but those at a destination an
    override names, and the overrides come after them (a bind mount added to a partial
    config.json keeps /proc, /dev and the rest)."""
    taken = {m.get("destination") for m in overrides if isinstance(m, Mapping)}
    kept = [m for m in defaults if not isinstance(m, Mapping) or m.get("destination") not in taken]
    return [*copy.deepcopy(kept), *copy.deepcopy(overrides)]


def _entries(text: str | None) -> list[list[str]]:
    """The colon-separated fields of each non-comment line of a passwd or group file."""
    if not text:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _passwd_entry(passwd: str | None, match: str, by_uid: bool) -> tuple[str, int, int] | None:
    for fields in _entries(passwd):
        if len(fields) < 4 or not (fields[2].isdigit() and fields[3].isdigit()):
            continue
        if (fields[2] if by_uid else fields[0]) == match:
            return fields[0], int(fields[2]), int(fields[3])
    return None


def _group_gid(group: str | None, name: str) -> int | None:
    for fields in _entries(group):
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def resolve_user(user: str, passwd: str | None, group: str | None) -> tuple[int, int, str]:
    """(uid, gid, username) for an image's User field, as containerd's WithUser: `uid`,
    `name`, `uid:gid`, `name:group` (any mix). A numeric uid absent from passwd runs with
    gid 0; a name that is not in passwd or group is refused."""
    name, sep, group_part = user.partition(":")
    if not name or (sep and not group_part):
        raise InvalidArgument(f'bad user: "{user}"')
    if name.isdigit():
        entry = _passwd_entry(passwd, name, by_uid=True)
        uid, gid, username = int(name), entry[2] if entry else 0, entry[0] if entry else name
    else:
        entry = _passwd_entry(passwd, name, by_uid=False)
        if entry is None:
            raise InvalidArgument(f'unknown user: "{name}" is not in the image\'s /etc/passwd')
        username, uid, gid = entry
    if group_part.isdigit():
        gid = int(group_part)
    elif group_part:
        found = _group_gid(group, group_part)
        if found is None:
            raise InvalidArgument(
                f'unknown group: "{group_part}" is not in the image\'s /etc/group')
        gid = found
    return uid, gid, username


def with_username(spec: Spec, passwd: str | None, group: str | None) -> Spec:
    """A copy of `spec` whose process.user.username, when it names one, is resolved in
    the root's /etc/passwd to uid and gid and in /etc/group to additionalGids, as
    containerd's WithUsername and WithAdditionalGIDs. runc ignores the name on Linux,
    so an unresolved one would run the process as root: a name that is not in passwd
    (or a root without one) is refused instead."""
    process = spec.get("process")
    user = process.get("user") if isinstance(process, Mapping) else None
    if not isinstance(user, Mapping) or "username" not in user:
        return spec
    name = user["username"]
    _expect(isinstance(name, str) and name != "" and ":" not in name,
            "process.user.username", "must be a user name")
    if passwd is None:
        raise InvalidArgument(f'process.user.username: "{name}" cannot be resolved: the '
                              "root has no /etc/passwd")
    entry = _passwd_entry(passwd, name, by_uid=False)
    if entry is None:
        raise InvalidArgument(f'process.user.username: "{name}" is not in the root\'s '
                              "/etc/passwd")
    result = copy.deepcopy(spec)
    resolved = result["process"]["user"]
    resolved["uid"], resolved["gid"] = entry[1], entry[2]
    given = resolved.get("additionalGids")
    gids = list(given) if isinstance(given, list) else []
    gids += [gid for gid in supplementary_gids(name, group) if gid not in gids]
    if gids:
        resolved["additionalGids"] = gids
    return result


def supplementary_gids(username: str, group: str | None) -> list[int]:
    """The gids of the groups that list `username` as a member, as containerd's
    WithAdditionalGIDs (the user's own same-named group excluded)."""
    gids = []
    for fields in _entries(group):
        member = len(fields) >= 4 and username in fields[3].split(",")
        if member and fields[0] != username and fields[2].isdigit():
            gids.append(int(fields[2]))
    return gids


# --- the user's overrides ---------------------------------------------------------------


MAX_DEPTH = 64  # deeper than any spec; merge and deepcopy recurse once per level


def parse(text: str | bytes, what: str = "config.json") -> Spec:
    """A JSON object from the user's bytes; a refusal says where the JSON broke, or
    that it nests deeper than MAX_DEPTH (the parser itself overflows Python's stack
    near 1000 levels)."""
    try:
        value = json.loads(text)
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"{what}: not UTF-8 at byte {e.start}") from None
    except json.JSONDecodeError as e:
        raise InvalidArgument(
            f"{what}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        value = None
    if value is None or _depth(value) > MAX_DEPTH:
        raise InvalidArgument(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}: must be a JSON object, not {type(value).__name__}")
    return value


def _depth(value: object) -> int:
    """How deep arrays and objects nest in a parsed JSON value (without recursing)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, level + 1) for child in children)
    return deepest


def merge(base: Mapping[str, Any], partial: Mapping[str, Any]) -> Spec:
    """`partial` over `base`: objects merge key by key, lists and scalars replace, and a
    null deletes the key (as JSON merge patch, RFC 7396). Neither input is changed."""
    result = copy.deepcopy(dict(base))
    for key, value in partial.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            target = result.get(key)
            result[key] = merge(target if isinstance(target, Mapping) else {}, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# --- validation -------------------------------------------------------------------------


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


MAX_ID = 2**31 - 1  # uids and gids past it are refused by the kernel's user namespaces


def _in_range(low: int, high: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    return check


_is_id = _in_range(0, MAX_ID)


def _expect(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise InvalidArgument(f"{where}: {message}")


def _optional(obj: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    return key in obj, obj.get(key)


def validate(spec: Mapping[str, Any]) -> None:
    """Refuse a spec runc would refuse (or run badly), naming the first bad field as a
    JSON path: `process.args: must be a non-empty list of strings`."""
    _expect(isinstance(spec.get("ociVersion"), str), "ociVersion", "must be a string")
    _validate_root(spec.get("root"))
    _validate_process(spec.get("process"), "process")
    present, hostname = _optional(spec, "hostname")
    _expect(not present or isinstance(hostname, str), "hostname", "must be a string")
    _expect(not present or len(hostname.encode()) <= HOST_NAME_MAX, "hostname",
            f"must be at most {HOST_NAME_MAX} bytes")
    present, mounts = _optional(spec, "mounts")
    if present:
        validate_mounts(mounts)
    present, linux = _optional(spec, "linux")
    if present:
        _validate_linux(linux)


def _validate_root(root: object) -> None:
    _expect(isinstance(root, dict), "root", "must be an object")
    assert isinstance(root, dict)
    path = root.get("path")
    _expect(isinstance(path, str) and path != "", "root.path", "must be a non-empty string")
    present, readonly = _optional(root, "readonly")
    _expect(not present or isinstance(readonly, bool), "root.readonly", "must be a boolean")


def validate_mounts(mounts: object) -> None:
    """Refuse a bad `mounts` list, naming the entry by its index in that list (a
    partial config.json's own mounts are checked before they join the defaults)."""
    _expect(isinstance(mounts, list), "mounts", "must be a list")
    assert isinstance(mounts, list)
    for i, mount in enumerate(mounts):
        _validate_mount(mount, f"mounts[{i}]")


def validate_process(process: object) -> None:
    """Refuse an exec's process.json as `validate` refuses a spec's `process`."""
    _validate_process(process, "process")


def _validate_process(process: object, where: str) -> None:
    _expect(isinstance(process, dict), where, "must be an object")
    assert isinstance(process, dict)
    args = process.get("args")
    _expect(_is_str_list(args) and bool(args), f"{where}.args",
            "must be a non-empty list of strings")
    _expect(isinstance(process.get("terminal", False), bool), f"{where}.terminal",
            "must be a boolean")
    present, size = _optional(process, "consoleSize")
    if present:
        _expect(isinstance(size, dict) and all(_is_uint(size.get(k)) for k in ("height", "width")),
                f"{where}.consoleSize", 'must be {"height": ROWS, "width": COLUMNS}')
    cwd = process.get("cwd")
    _expect(isinstance(cwd, str) and cwd.startswith("/"), f"{where}.cwd",
            "must be an absolute path")
    present, env = _optional(process, "env")
    if present:
        _expect(_is_str_list(env), f"{where}.env", "must be a list of strings")
        for i, entry in enumerate(env):
            _expect("=" in entry and not entry.startswith("="), f"{where}.env[{i}]",
                    f'must be KEY=VALUE, not "{entry}"')
    user = process.get("user")
    _expect(isinstance(user, dict), f"{where}.user", "must be an object")
    assert isinstance(user, dict)
    for key in ("uid", "gid"):
        _expect(_is_id(user.get(key)), f"{where}.user.{key}",
                f"must be an integer from 0 to {MAX_ID}")
    present, gids = _optional(user, "additionalGids")
    _expect(not present or (isinstance(gids, list) and all(map(_is_id, gids))),
            f"{where}.user.additionalGids", f"must be a list of integers from 0 to {MAX_ID}")
    present, rlimits = _optional(process, "rlimits")
    if present:
        _expect(isinstance(rlimits, list), f"{where}.rlimits", "must be a list")
        for i, rlimit in enumerate(rlimits):
            _validate_rlimit(rlimit, f"{where}.rlimits[{i}]")
    present, caps = _optional(process, "capabilities")
    if present:
        _expect(isinstance(caps, dict), f"{where}.capabilities", "must be an object")
        for key, value in caps.items():
            _expect(_is_str_list(value), f"{where}.capabilities.{key}",
                    "must be a list of strings")


def _validate_rlimit(rlimit: object, where: str) -> None:
    _expect(isinstance(rlimit, dict), where, "must be an object")
    assert isinstance(rlimit, dict)
    kind = rlimit.get("type")
    _expect(isinstance(kind, str) and kind.startswith("RLIMIT_"), f"{where}.type",
            "must be a string like RLIMIT_NOFILE")
    for key in ("soft", "hard"):
        _expect(_is_uint(rlimit.get(key)), f"{where}.{key}", "must be an integer >= 0")
    _expect(rlimit["soft"] <= rlimit["hard"], f"{where}.soft", "must not exceed hard")


def _validate_mount(mount: object, where: str) -> None:
    _expect(isinstance(mount, dict), where, "must be an object")
    assert isinstance(mount, dict)
    destination = mount.get("destination")
    _expect(isinstance(destination, str), f"{where}.destination", "must be a string")
    assert isinstance(destination, str)
    _expect(destination.startswith("/"), f"{where}.destination", "must be absolute")
    for key in ("type", "source"):
        present, value = _optional(mount, key)
        _expect(not present or isinstance(value, str), f"{where}.{key}", "must be a string")
    present, options = _optional(mount, "options")
    _expect(not present or _is_str_list(options), f"{where}.options",
            "must be a list of strings")


def _validate_linux(linux: object) -> None:
    _expect(isinstance(linux, dict), "linux", "must be an object")
    assert isinstance(linux, dict)
    present, path = _optional(linux, "cgroupsPath")
    _expect(not present or (isinstance(path, str) and path.startswith("/")),
            "linux.cgroupsPath", "must be an absolute path")
    present, namespaces = _optional(linux, "namespaces")
    if present:
        _expect(isinstance(namespaces, list), "linux.namespaces", "must be a list")
        seen = set()
        for i, ns in enumerate(namespaces):
            where = f"linux.namespaces[{i}]"
            _expect(isinstance(ns, dict), where, "must be an object")
            kind = ns.get("type")
            _expect(kind in KNOWN_NAMESPACES, f"{where}.type",
                    f"must be one of {', '.join(sorted(KNOWN_NAMESPACES))}")
            _expect(kind not in seen, f"{where}.type", f'"{kind}" appears twice')
            seen.add(kind)
            present, ns_path = _optional(ns, "path")
            _expect(not present or (isinstance(ns_path, str) and ns_path.startswith("/")),
                    f"{where}.path", "must be an absolute path")
    for key in ("maskedPaths", "readonlyPaths"):
        present, paths = _optional(linux, key)
        _expect(not present or _is_str_list(paths), f"linux.{key}",
                "must be a list of strings")
    present, resources = _optional(linux, "resources")
    if present:
        validate_resources(resources, "linux.resources", strict=False)


# The fields of linux.resources (runtime-spec config-linux.md) and what each must be:
# runc's Go decoder refuses a wrong type with an error about Go types.
_INT64 = _in_range(-(2**63), 2**63 - 1)
_UINT64 = _in_range(0, 2**64 - 1)
_UINT32 = _in_range(0, 2**32 - 1)
_UINT16 = _in_range(0, 2**16 - 1)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_str(value: object) -> bool:
    return isinstance(value, str)


_KINDS: dict[Callable[[object], bool], str] = {
    _INT64: "an integer", _UINT64: "an integer >= 0", _UINT32: "an integer from 0 to 2^32-1",
    _UINT16: "an integer from 0 to 65535", _is_bool: "a boolean", _is_str: "a string",
}
Fields = dict[str, Callable[[object], bool]]
_DEVICE: Fields = {"allow": _is_bool, "type": _is_str, "major": _INT64, "minor": _INT64,
                   "access": _is_str}
_WEIGHT_DEVICE: Fields = {"major": _INT64, "minor": _INT64, "weight": _UINT16,
                          "leafWeight": _UINT16}
_THROTTLE_DEVICE: Fields = {"major": _INT64, "minor": _INT64, "rate": _UINT64}
_OBJECTS: dict[str, Fields] = {
    "memory": {"limit": _INT64, "reservation": _INT64, "swap": _INT64, "kernel": _INT64,
               "kernelTCP": _INT64, "swappiness": _UINT64, "disableOOMKiller": _is_bool,
               "useHierarchy": _is_bool, "checkBeforeUpdate": _is_bool},
    "cpu": {"shares": _UINT64, "quota": _INT64, "burst": _UINT64, "period": _UINT64,
            "realtimeRuntime": _INT64, "realtimePeriod": _UINT64, "cpus": _is_str,
            "mems": _is_str, "idle": _INT64},
    "pids": {"limit": _INT64},
    "blockIO": {"weight": _UINT16, "leafWeight": _UINT16},
    "network": {"classID": _UINT32},
}
_LISTS: dict[str, Fields] = {
    "devices": _DEVICE,
    "hugepageLimits": {"pageSize": _is_str, "limit": _UINT64},
    "blockIO.weightDevice": _WEIGHT_DEVICE,
    "blockIO.throttleReadBpsDevice": _THROTTLE_DEVICE,
    "blockIO.throttleWriteBpsDevice": _THROTTLE_DEVICE,
    "blockIO.throttleReadIOPSDevice": _THROTTLE_DEVICE,
    "blockIO.throttleWriteIOPSDevice": _THROTTLE_DEVICE,
    "network.priorities": {"name": _is_str, "priority": _UINT32},
}
_MAPS = ("unified", "rdma")


def validate_resources(resources: object, where: str, strict: bool) -> None:
    """Refuse linux.resources whose fields have the wrong type, naming the field; with
    `strict` (an `update`, where a misspelt field would silently change nothing) also
    a field the spec does not define."""
    _expect(isinstance(resources, dict), where, "must be an object")
    assert isinstance(resources, dict)
    for key, value in resources.items():
        if key in _OBJECTS:
            _validate_fields(value, f"{where}.{key}", key, _OBJECTS[key], strict)
        elif key in _LISTS:
            _validate_list(value, f"{where}.{key}", _LISTS[key], strict)
        elif key in _MAPS:
            _expect(isinstance(value, dict), f"{where}.{key}", "must be an object")
            if key == "unified":
                for name, text in value.items():
                    _expect(isinstance(text, str), f"{where}.unified.{name}", "must be a string")
        else:
            _expect(not strict, f"{where}", f'unknown field "{key}"')


def _validate_fields(obj: object, where: str, prefix: str, fields: Fields,
                     strict: bool) -> None:
    _expect(isinstance(obj, dict), where, "must be an object")
    assert isinstance(obj, dict)
    for key, value in obj.items():
        check = fields.get(key)
        nested = _LISTS.get(f"{prefix}.{key}")
        if check is not None:
            _expect(check(value), f"{where}.{key}", f"must be {_KINDS[check]}")
        elif nested is not None:
            _validate_list(value, f"{where}.{key}", nested, strict)
        else:
            _expect(not strict, where, f'unknown field "{key}"')


def _validate_list(items: object, where: str, fields: Fields, strict: bool) -> None:
    _expect(isinstance(items, list), where, "must be a list")
    assert isinstance(items, list)
    for i, item in enumerate(items):
        _validate_fields(item, f"{where}[{i}]", "", fields, strict)
