"""What spec.py needs to know of the host and of one request's host paths: the only
part of building a container's spec that reads (or makes) anything on the host.

These are the CRI server's own reads of host paths kubelet names (bind sources,
devices, seccomp profile files), as containerd's CRI plugin makes them; the image's
files are read through the tree.
"""

import json
import os
import socket
import stat
from pathlib import Path

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.errors import invalid, unsupported
from cdfs.cri.spec import CAPABILITIES, DeviceNode, Host


def host() -> Host:
    """The host as it is now (read once at server start)."""
    return Host(
        hostname=socket.gethostname(),
        machine=os.uname().machine,
        oom_score_adj=int(Path("/proc/self/oom_score_adj").read_text()),
        swap_accounting=_swap_accounting(),
        cgroup_v2=Path("/sys/fs/cgroup/cgroup.controllers").exists(),
        capabilities=own_capabilities(),
    )


def own_capabilities() -> tuple[str, ...]:
    """The capabilities this process holds (CapEff), which is what "ALL" and a
    privileged container can have, as containerd's cap.Current(): asking runc for
    one the runtime lacks (this sandbox has no CAP_SYS_RESOURCE) fails the start."""
    status = Path("/proc/self/status").read_text().splitlines()
    mask = int(next(line.split()[1] for line in status if line.startswith("CapEff:")), 16)
    return tuple(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


def _swap_accounting() -> bool:
    if Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
        return True  # cgroup v1 with swap accounting
    own = Path("/proc/self/cgroup").read_text().splitlines()
    unified = next((line.split(":", 2)[2] for line in own if line.startswith("0::")), None)
    return unified is not None and (Path("/sys/fs/cgroup") / unified.lstrip("/")
                                    / "memory.swap.max").exists()


def bind_sources(mounts: list[pb.Mount]) -> dict[str, str]:
    """Each mount's host path, made as a directory when missing and with its
    symlinks resolved, as containerd's WithMounts does before it binds them."""
    sources = {}
    for mount in mounts:
        if mount.image.image:
            raise unsupported(f"mount {mount.container_path}: image volumes "
                              f"({mount.image.image}) are not supported")
        path = mount.host_path
        if not os.path.isabs(path):
            raise invalid(f'mount {mount.container_path}: host_path "{path}" is not absolute')
        if not os.path.lexists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        sources[path] = os.path.realpath(path)
    return sources


def device_nodes(devices: list[pb.Device]) -> dict[str, tuple[DeviceNode, ...]]:
    """The nodes each CRI device names: the device itself, or every device under a
    host directory (mapped under the container path), as containerd's WithDevices."""
    found: dict[str, tuple[DeviceNode, ...]] = {}
    for device in devices:
        host_path = os.path.realpath(device.host_path)
        target = device.container_path or device.host_path
        try:
            info = os.stat(host_path)
        except OSError as exc:
            raise invalid(f'device "{device.host_path}": {exc.strerror}') from None
        if stat.S_ISDIR(info.st_mode):
            nodes = []
            for root, _, names in os.walk(host_path):
                for name in sorted(names):
                    path = os.path.join(root, name)
                    node = _node(os.path.join(target, os.path.relpath(path, host_path)),
                                 os.stat(path))
                    if node is not None:
                        nodes.append(node)
            found[device.host_path] = tuple(nodes)
        else:
            node = _node(target, info)
            if node is None:
                raise invalid(f'device "{device.host_path}" is not a device node')
            found[device.host_path] = (node,)
    return found


def _node(path: str, info: os.stat_result) -> DeviceNode | None:
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        return None
    return DeviceNode(path, kind, os.major(info.st_rdev), os.minor(info.st_rdev),
                      stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


SECCOMP_PROFILE_MAX = 1 << 20
"""The largest Localhost seccomp profile read (Docker's default profile is ~20 KiB)."""


def seccomp_file(ref: str) -> dict[str, object] | None:
    """The Localhost profile at `ref` (an absolute path), None when unset; a missing
    or unreadable file is refused, and so is anything that is no regular file or is
    over SECCOMP_PROFILE_MAX: the server runs as root, and /dev/zero would grow its
    memory without end and a FIFO block the call's thread for ever."""
    if not ref:
        return None
    if not os.path.isabs(ref):
        raise invalid(f'seccomp: localhost profile "{ref}" is not an absolute path')
    try:
        profile = json.loads(_bounded_read(ref, SECCOMP_PROFILE_MAX))
    except (OSError, ValueError) as exc:
        raise invalid(f'seccomp: cannot load profile "{ref}": {exc}') from None
    if not isinstance(profile, dict):
        raise invalid(f'seccomp: profile "{ref}" is not a JSON object')
    return profile


def _bounded_read(path: str, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them (opened without blocking, so a
    FIFO is refused at fstat instead of waiting for a writer)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, limit + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"over {limit} bytes")
    finally:
        os.close(fd)
    return b"".join(chunks)
