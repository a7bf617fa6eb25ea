"""Version, Status and RuntimeConfig through a real gRPC client, and the server's
socket handling."""

import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from cri_support import NAMESPACE, CriServer
from support import CDFS, Daemon

from cdfs import __version__
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc


def test_version(runtime: pb_grpc.RuntimeServiceStub) -> None:
    answer = runtime.Version(pb.VersionRequest(version="v1"))
    assert (answer.version, answer.runtime_name, answer.runtime_version,
            answer.runtime_api_version) == ("0.1.0", "cdfs", __version__, "v1")


def test_status_is_ready_and_verbose_names_the_tree(
        cri: CriServer, runtime: pb_grpc.RuntimeServiceStub) -> None:
    answer = runtime.Status(pb.StatusRequest(verbose=True))
    conditions = {c.type: c.status for c in answer.status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert answer.info["mount"] == str(cri.daemon.mount)
    assert answer.info["namespace"] == NAMESPACE
    assert not runtime.Status(pb.StatusRequest()).info


def test_runtime_config_says_cgroupfs(runtime: pb_grpc.RuntimeServiceStub) -> None:
    answer = runtime.RuntimeConfig(pb.RuntimeConfigRequest())
    assert answer.linux.cgroup_driver == pb.CGROUPFS


def test_the_cri_namespace_is_made_at_start(cri: CriServer) -> None:
    assert cri.daemon.path("namespaces", NAMESPACE, "images").is_dir()


def test_the_socket_is_for_root_and_its_group(cri: CriServer) -> None:
    mode = cri.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_sigterm_removes_the_socket(cri: CriServer) -> None:
    assert cri.stop() == 0
    assert not cri.socket.exists()


def test_a_stale_socket_is_replaced_and_a_served_one_refused(
        daemon: Daemon, make_cri: Callable[..., CriServer]) -> None:
    first = make_cri(daemon, "one")
    assert first.proc is not None
    first.proc.kill()  # no graceful stop: the socket file stays
    first.proc.wait(timeout=10)
    assert first.socket.is_socket() and not first.answers()
    again = make_cri(daemon, "one")  # the same socket path
    assert again.answers()
    third = subprocess.run(
        [*CDFS, "cri", "--mount", str(daemon.mount), "--listen", again.address,
         "--root", str(again.root)], capture_output=True, text=True, timeout=60)
    assert third.returncode == 1
    assert f"{again.socket} is served by another process" in third.stderr
    assert again.answers()


def test_no_tree_at_the_mount_is_a_startup_error(short_dir: Path) -> None:
    result = subprocess.run(
        [*CDFS, "cri", "--mount", str(short_dir), "--listen", f"unix://{short_dir}/s.sock",
         "--root", str(short_dir / "root")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"no cdfs tree at {short_dir}" in result.stderr
