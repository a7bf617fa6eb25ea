"""The gRPC server of `cdfs cri`: both CRI services on one listening socket.

A thread pool serves the calls; each is plain blocking file I/O on the mount, so
threads are the right tool (there is no event loop in this process). A unix socket
left behind by a dead server is removed at start; one a live server answers on is
not. SIGTERM and SIGINT stop taking calls, let running ones finish for a grace
period, and remove the socket.
"""

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from cdfs.client.tree import Tree, TreeError
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc
from cdfs.cri.config import CriConfig
from cdfs.cri.containers import ContainerCalls
from cdfs.cri.errors import ErrorMapping
from cdfs.cri.images import ImageCalls
from cdfs.cri.pause.image import ensure_pause_image
from cdfs.cri.pull_credentials import remove_leftovers
from cdfs.cri.runtime import RuntimeCalls
from cdfs.cri.sandboxes import SandboxCalls
from cdfs.cri.streaming.calls import StreamingCalls
from cdfs.cri.streaming.server import StreamingServer

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
WORKERS = 16  # kubelet polls status and lists concurrently; calls block on the mount


class StartupError(Exception):
    """`cdfs cri` cannot start; the message says why, for the command line."""


class RuntimeService(RuntimeCalls, SandboxCalls, ContainerCalls, StreamingCalls,
                     pb_grpc.RuntimeServiceServicer):
    """runtime.v1.RuntimeService: one mixin per concern; what none defines answers
    UNIMPLEMENTED (the generated base class)."""


class ImageService(ImageCalls, pb_grpc.ImageServiceServicer):
    """runtime.v1.ImageService."""


def unix_path(listen: str) -> Path | None:
    """The socket path of a unix:// (or unix:) address; None for host:port."""
    for prefix in ("unix://", "unix:"):
        if listen.startswith(prefix):
            return Path(listen.removeprefix(prefix))
    return None


def _clear_stale_socket(path: Path) -> None:
    """Unlink a socket nobody answers on; refuse one that is served, and anything
    that is not a socket."""
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not path.is_socket():
        raise StartupError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise StartupError(f"{path} is served by another process")


def _open_tree(config: CriConfig) -> Tree:
    """The tree of the CRI namespace, made when missing (mkdir namespaces/<name>)."""
    tree = Tree(config.mount, config.namespace)
    if not (tree.mount / "version").is_file():
        raise StartupError(f"no cdfs tree at {tree.mount} (is `cdfs serve` running?)")
    try:
        tree.mkdir(tree.home)
    except TreeError as exc:
        if not tree.home.is_dir():
            raise StartupError(f"cannot make namespace {config.namespace}: {exc}") from None
    return tree


def build(config: CriConfig) -> tuple[grpc.Server, StreamingServer]:
    """A server with both services bound to the listen address, and the streaming
    server bound to its own, neither started yet."""
    tree = _open_tree(config)
    config.root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(config.root)
    try:
        ensure_pause_image(tree, config.root / "pause")
    except (TreeError, OSError, subprocess.SubprocessError) as exc:
        raise StartupError(f"cannot import the pause image: {exc}") from None
    server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cri"),
                         interceptors=[ErrorMapping()])
    try:
        runtime = RuntimeService(tree, config)  # binds the streaming server's port
    except (ValueError, OSError) as exc:
        raise StartupError(f"cannot serve streams on {config.stream_address}: {exc}") from None
    pb_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    pb_grpc.add_ImageServiceServicer_to_server(ImageService(tree, config), server)
    path = unix_path(config.listen)
    if path is not None:
        _clear_stale_socket(path)
    # The socket file is made here, under a umask that lets nobody else in: whoever
    # connects drives containers as root, so no one may before the chmod to root's group.
    umask = os.umask(0o177)
    try:
        server.add_insecure_port(config.listen if path is None else f"unix://{path}")
    except RuntimeError as exc:
        raise StartupError(f"cannot listen on {config.listen}: {exc}") from None
    finally:
        os.umask(umask)
    if path is not None:
        os.chmod(path, 0o660)  # root and its group, as containerd's socket
    return server, runtime.streaming


def serve(config: CriConfig) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully and remove the socket."""
    server, streaming = build(config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    path = unix_path(config.listen)
    streaming.start()
    server.start()
    log.info("serving CRI on %s for namespace %s of %s; streams on %s", config.listen,
             config.namespace, config.mount, streaming.base_url)
    stop.wait()
    log.info("stopping: %.0f s for running calls", GRACE_SECONDS)
    server.stop(GRACE_SECONDS).wait()
    streaming.stop()  # ends the exec, attach and port-forward sessions still open
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
