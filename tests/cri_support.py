"""What the CRI tests share (the fixtures are in tests/cri/conftest.py): a `cdfs cri`
process in front of a test daemon, and a client deadline for every call."""

import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from support import CDFS, Daemon, terminate, wait_until

from content.build import BuildConfig, Entry, Layer, build_image
from content.reference import parse_reference
from content.registry.client import Registries
from content.registry.push import push
from content.store import ContentStore

CALL_TIMEOUT = 60.0  # seconds; a call given no timeout of its own gets this one
NAMESPACE = "k8s.io"


@dataclass
class CriServer:
    """A `cdfs cri` process (by pid, never by name) on a socket of its own."""

    daemon: Daemon
    socket: Path
    root: Path
    log: Path
    extra_args: list[str] = field(default_factory=list)
    host_netns: str | None = None
    """a network namespace (/run/netns/<name>) the server runs in, as the host of the
    pods: CNI's bridge, veths and iptables rules are made there, not on the machine"""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> "CriServer":
        enter = ["nsenter", f"--net=/run/netns/{self.host_netns}"] if self.host_netns else []
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*enter, *CDFS, "cri", "--mount", str(self.daemon.mount), "--listen", self.address,
                 "--root", str(self.root), "--log-level", "debug", *self.extra_args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        proc = self.proc
        if not wait_until(lambda: self.answers() or proc.poll() is not None):
            raise RuntimeError(f"cdfs cri did not listen:\n{self.log.read_text()}")
        if proc.poll() is not None:
            raise RuntimeError(f"cdfs cri exited {proc.returncode}:\n{self.log.read_text()}")
        return self

    def on_host(self, *args: str, timeout: float = 30, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        """Run a command where the server runs: in its host network namespace."""
        enter = ["nsenter", f"--net=/run/netns/{self.host_netns}"] if self.host_netns else []
        return subprocess.run([*enter, *args], capture_output=True, text=True,
                              timeout=timeout, check=check)

    def answers(self) -> bool:
        """Something accepts connections on the socket (a stale file does not)."""
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
            return True

    def stop(self) -> int | None:
        """SIGTERM (a graceful stop) and wait; killed when it does not end."""
        if self.proc is None:
            return None
        return terminate(self.proc)


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class Deadline(grpc.UnaryUnaryClientInterceptor):
    """Gives every call without a timeout CALL_TIMEOUT: no test blocks for ever."""

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any,
                              request: Any) -> Any:
        if details.timeout is None:
            details = _Details(details.method, CALL_TIMEOUT, details.metadata,
                               details.credentials, details.wait_for_ready,
                               details.compression)
        return continuation(details, request)


def publish(store_dir: Path, ref: str, user: str = "", marker: str = "",
            registries: Registries | None = None) -> str:
    """Build a one-file image (config User `user`; `marker` makes it differ from
    others) with the project's builder and push it as `ref`; returns its manifest
    digest."""
    store = ContentStore(store_dir)
    layer = Layer([Entry.file("hello", f"hello {marker}".encode())])
    root = build_image(store, [layer], BuildConfig(cmd=["/hello"], user=user))
    push(store, root, parse_reference(ref), registries=registries)
    return root.digest
