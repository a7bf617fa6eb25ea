"""The files a pod's containers bind-mount: /etc/hostname, /etc/hosts and
/etc/resolv.conf, written on the host under the CRI server's own directory
(`<root>/sandboxes/<id>/`) and removed with the pod, as containerd does.

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

from cdfs.cri.errors import invalid
from cdfs.cri.sandbox_record import SandboxFiles

HOST_HOSTS = Path("/etc/hosts")
HOST_RESOLV_CONF = Path("/etc/resolv.conf")


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


def write_sandbox_files(root: Path, sandbox_id: str, hostname: str, resolv: str
                        ) -> SandboxFiles:
    """Write the pod's files and return their paths. `hostname` empty means the
    host's name, `resolv` empty the host's resolv.conf."""
    directory = sandbox_dir(root, sandbox_id)
    directory.mkdir(parents=True, exist_ok=True)
    files = SandboxFiles(str(directory / "hostname"), str(directory / "hosts"),
                         str(directory / "resolv.conf"))
    _write(Path(files.hostname), (hostname or socket.gethostname()) + "\n")
    _copy_or_empty(HOST_HOSTS, Path(files.hosts))
    if resolv:
        _write(Path(files.resolv_conf), resolv)
    else:
        _copy_or_empty(HOST_RESOLV_CONF, Path(files.resolv_conf))
    return files


def remove_sandbox_files(root: Path, sandbox_id: str) -> None:
    shutil.rmtree(sandbox_dir(root, sandbox_id), ignore_errors=True)


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
