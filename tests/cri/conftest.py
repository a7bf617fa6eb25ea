"""Fixtures of the CRI tests: a cdfs daemon on a temp mount, a `cdfs cri` process on a
temp socket in front of it, and a real gRPC channel with both CRI stubs."""

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cri_support import CriServer, Deadline
from support import Daemon

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
def make_cri(tmp_path: Path, short_dir: Path) -> Iterator[Callable[..., CriServer]]:
    """A factory of `cdfs cri` servers in front of a daemon, all stopped at teardown."""
    made: list[CriServer] = []

    def make(daemon: Daemon, name: str = "cri", extra_args: list[str] | None = None
             ) -> CriServer:
        server = CriServer(daemon, short_dir / f"{name}.sock", tmp_path / f"{name}-root",
                           tmp_path / f"{name}.log", extra_args or [])
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
