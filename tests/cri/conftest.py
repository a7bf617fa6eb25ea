"""Fixtures of the CRI tests: a cdfs daemon on a temp mount, a `cdfs cri` process on a
temp socket in front of it, and a real gRPC channel with both CRI stubs."""

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cri_containers import Containers, import_busybox
from cri_pods import Pods
from cri_support import CriServer, Deadline
from support import Daemon, Names

from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket's path is at most 107 bytes, and
    pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_cri(tmp_path: Path, short_dir: Path, names: Names
             ) -> Iterator[Callable[..., CriServer]]:
    """A factory of `cdfs cri` servers in front of a daemon, all stopped at teardown.
    Each runs in a network namespace of its own standing in for the host (removed
    with everything CNI made in it), with an empty CNI config dir: pods get cdfs's
    own bridge network there and never touch the machine's."""
    made: list[CriServer] = []

    def make(daemon: Daemon, name: str = "cri", extra_args: list[str] | None = None
             ) -> CriServer:
        host = names.namespace()
        subprocess.run(["ip", "netns", "add", host], check=True, timeout=10)
        subprocess.run(["ip", "-n", host, "link", "set", "lo", "up"], check=True, timeout=10)
        conf_dir = tmp_path / f"{name}-cni"
        conf_dir.mkdir(exist_ok=True)
        server = CriServer(daemon, short_dir / f"{name}.sock", tmp_path / f"{name}-root",
                           tmp_path / f"{name}.log",
                           ["--cni-conf-dir", str(conf_dir), *(extra_args or [])],
                           host_netns=host)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def cri(daemon: Daemon, make_cri: Callable[..., CriServer]) -> CriServer:
    return make_cri(daemon)


@pytest.fixture
def channel(cri: CriServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(cri.address) as plain:
        grpc.channel_ready_future(plain).result(timeout=30)
        yield grpc.intercept_channel(plain, Deadline())


@pytest.fixture
def runtime(channel: grpc.Channel) -> pb_grpc.RuntimeServiceStub:
    return pb_grpc.RuntimeServiceStub(channel)


@pytest.fixture
def images(channel: grpc.Channel) -> pb_grpc.ImageServiceStub:
    return pb_grpc.ImageServiceStub(channel)


@pytest.fixture
def pods(runtime: pb_grpc.RuntimeServiceStub) -> Iterator[Pods]:
    """Runs pods; every pod made is removed at teardown, even when the test failed."""
    made = Pods(runtime)
    try:
        yield made
    finally:
        made.remove_all()


@pytest.fixture
def ctrs(cri: CriServer, tmp_path: Path, runtime: pb_grpc.RuntimeServiceStub,
         pods: Pods) -> Iterator[Containers]:
    """Containers of this test (removed at teardown, before its pods)."""
    import_busybox(cri.daemon, tmp_path)
    made = Containers(runtime)
    try:
        yield made
    finally:
        made.remove_all()
