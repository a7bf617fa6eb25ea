"""The files a pod's containers bind-mount: /etc/hostname, /etc/hosts and
/etc/resolv.conf, written on the host under the CRI server's own directory
(`<root>/sandboxes/<id>/`) and removed with the pod, as containerd does; and the
pod's /dev/shm there, a tmpfs of 64 MiB (containerd's size and flags) that all its
containers share, unless the pod uses the host's IPC (and so the host's /dev/shm). It
is unmounted when the pod stops, giving its memory back.

The resolv.conf is made from the pod's DNS config (kubelet's cluster DNS) and is the
host's own when the pod names none; hosts is the host's (kubelet mounts its own
over it when it manages the pod's hosts file). A DNS value with a line break would
add lines of its own to resolv.conf, so it is refused.
"""

import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

import grpc

from base.errors import Unavailable
from base.mount import Mount
from cdfs.cri.errors import CriError, invalid
from cdfs.cri.sandbox_record import SandboxFiles
from runtime.mounts import mount_all, unmount_all

HOST_HOSTS = Path("/etc/hosts")
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SHM = Mount("tmpfs", "shm", ("nosuid", "nodev", "noexec", "mode=1777", f"size={64 << 20}"))


def sandbox_dir(root: Path, sandbox_id: str) -> Path:
    return root / "sandboxes" / sandbox_id


def resolv_conf(servers: Sequence[str], searches: Sequence[str],
                options: Sequence[str]) -> str:
    """resolv.conf from CRI's DNSConfig, as containerd's parseDNSOptions; empty when
    the config is."""
    for value in (*servers, *searches, *options):
        if "\n" in value or "\r" in value:
            raise invalid(f"dns_config: a line break is not allowed in {value[:80]!r}")
    text = ""
    if searches:
        text += f"search {' '.join(searches)}\n"
    text += "".join(f"nameserver {server}\n" for server in servers)
    if options:
        text += f"options {' '.join(options)}\n"
    return text


def write_sandbox_files(root: Path, sandbox_id: str, hostname: str, resolv: str,
                        shm: bool) -> SandboxFiles:
    """Write the pod's files (and mount its /dev/shm with `shm`) and return their
    paths. `hostname` empty means the host's name, `resolv` empty the host's
    resolv.conf."""
    directory = sandbox_dir(root, sandbox_id)
    directory.mkdir(parents=True, exist_ok=True)
    files = SandboxFiles(str(directory / "hostname"), str(directory / "hosts"),
                         str(directory / "resolv.conf"), str(directory / "shm") if shm else "")
    if shm:
        _mount_shm(Path(files.shm))
    _write(Path(files.hostname), (hostname or socket.gethostname()) + "\n")
    _copy_or_empty(HOST_HOSTS, Path(files.hosts))
    if resolv:
        _write(Path(files.resolv_conf), resolv)
    else:
        _copy_or_empty(HOST_RESOLV_CONF, Path(files.resolv_conf))
    return files


def remove_sandbox_files(root: Path, sandbox_id: str) -> None:
    release_shm(root, sandbox_id)
    shutil.rmtree(sandbox_dir(root, sandbox_id), ignore_errors=True)


def release_shm(root: Path, sandbox_id: str) -> None:
    """Unmount the pod's /dev/shm (nothing when it has none or it is unmounted)."""
    shm = sandbox_dir(root, sandbox_id) / "shm"
    if shm.is_dir():
        try:
            unmount_all(shm)
        except Unavailable as exc:
            raise CriError(grpc.StatusCode.INTERNAL, str(exc)) from None


def _mount_shm(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    try:
        mount_all([SHM], path)
    except Unavailable as exc:
        raise CriError(grpc.StatusCode.INTERNAL, str(exc)) from None


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.chmod(temp, 0o644)
    temp.replace(path)


def _copy_or_empty(source: Path, target: Path) -> None:
    try:
        text = source.read_text()
    except FileNotFoundError:
        text = ""
    _write(target, text)
