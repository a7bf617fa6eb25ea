"""ImageService through a real gRPC client: pulls from real docker-registries on
loopback (one wanting credentials, one serving mirrors), lists, statuses with the
image's user, removal by every kind of name, ImageFsInfo and the error mapping."""

import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from cri_support import CriServer, publish
from support import Daemon, start_registry

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.api import runtime_v1_pb2_grpc as pb_grpc
from cdfs.cri.pause.image import PAUSE_IMAGE
from content.registry.client import Registries
from content.registry.credentials import Credentials

USER, PASSWORD = "kube", "pa55-w0rd-never-shown"


def spec(image: str) -> pb.ImageSpec:
    return pb.ImageSpec(image=image)


def pull(images: pb_grpc.ImageServiceStub, ref: str, auth: pb.AuthConfig | None = None) -> str:
    return str(images.PullImage(pb.PullImageRequest(image=spec(ref), auth=auth)).image_ref)


def status(images: pb_grpc.ImageServiceStub, name: str) -> pb.Image:
    return images.ImageStatus(pb.ImageStatusRequest(image=spec(name))).image


def ours(images: pb_grpc.ImageServiceStub) -> list[pb.Image]:
    """The images a test pulled: all but the pause image every server imports."""
    return [image for image in images.ListImages(pb.ListImagesRequest()).images
            if PAUSE_IMAGE not in image.repo_tags]


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    return failed.value.code()


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[str]:
    """A docker-registry that wants USER's Basic credentials (htpasswd, bcrypt)."""
    work = tmp_path / "auth-registry"
    work.mkdir()
    htpasswd = work / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), USER, PASSWORD], check=True,
                   capture_output=True, timeout=30)
    address, proc = start_registry(work, htpasswd)
    try:
        yield address
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_pull_list_status_and_remove(
        registry: str, tmp_path: Path, images: pb_grpc.ImageServiceStub) -> None:
    digest = publish(tmp_path / "build", f"{registry}/team/app:1", user="1000:100")
    publish(tmp_path / "build", f"{registry}/team/app:2", user="1000:100")  # the same image
    image_id = pull(images, f"{registry}/team/app:1")
    assert image_id.startswith("sha256:") and pull(images, f"{registry}/team/app:2") == image_id

    [listed] = ours(images)
    assert listed.id == image_id
    assert list(listed.repo_tags) == [f"{registry}/team/app:1", f"{registry}/team/app:2"]
    assert list(listed.repo_digests) == [f"{registry}/team/app@{digest}"]
    assert listed.size > 0 and listed.uid.value == 1000 and listed.HasField("uid")
    assert not listed.username and not listed.pinned

    for name in (f"{registry}/team/app:2", image_id, image_id.removeprefix("sha256:"),
                 f"{registry}/team/app@{digest}"):
        assert status(images, name) == listed, name
    filtered = images.ListImages(pb.ListImagesRequest(
        filter=pb.ImageFilter(image=spec(f"{registry}/team/app:1")))).images
    assert list(filtered) == [listed]

    images.RemoveImage(pb.RemoveImageRequest(image=spec(f"{registry}/team/app:1")))
    assert not status(images, image_id).id  # every name of it went
    assert not ours(images)
    images.RemoveImage(pb.RemoveImageRequest(image=spec(image_id)))  # unknown: no error


def test_removing_by_id_removes_every_tag(
        registry: str, tmp_path: Path, cri: CriServer,
        images: pb_grpc.ImageServiceStub) -> None:
    publish(tmp_path / "build", f"{registry}/a:1")
    publish(tmp_path / "build", f"{registry}/b:1")
    image_id = pull(images, f"{registry}/a:1")
    assert pull(images, f"{registry}/b:1") == image_id
    config = cri.daemon.path("content", "blobs", "sha256", image_id.removeprefix("sha256:"))
    assert config.exists()
    images.RemoveImage(pb.RemoveImageRequest(image=spec(image_id)))
    assert not status(images, f"{registry}/b:1").id
    assert not (cri.daemon.path("namespaces", "k8s.io", "images") / registry).exists()
    assert not config.exists()  # its content went with it


def test_a_user_name_and_no_user(registry: str, tmp_path: Path,
                                 images: pb_grpc.ImageServiceStub) -> None:
    publish(tmp_path / "build", f"{registry}/named:1", user="nobody:nogroup", marker="n")
    publish(tmp_path / "build", f"{registry}/root:1", marker="r")
    pull(images, f"{registry}/named:1")
    pull(images, f"{registry}/root:1")
    named = status(images, f"{registry}/named:1")
    assert named.username == "nobody" and not named.HasField("uid")
    unset = status(images, f"{registry}/root:1")
    assert not unset.username and not unset.HasField("uid")


def test_the_pause_image_is_pinned(images: pb_grpc.ImageServiceStub) -> None:
    pause = status(images, PAUSE_IMAGE)
    assert pause.pinned and list(pause.repo_tags) == [PAUSE_IMAGE]
    assert pause.uid.value == 65535


def test_unknown_and_bad_images(registry: str, images: pb_grpc.ImageServiceStub) -> None:
    answer = images.ImageStatus(pb.ImageStatusRequest(image=spec("busybox:nonesuch")))
    assert not answer.HasField("image")
    assert not status(images, "sha256:" + "0" * 64).id
    assert code_of(lambda: status(images, "Not A Reference")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: status(images, "")) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: pull(images, f"{registry}/missing:1")) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as failed:
        pull(images, f"{registry}/missing:1")
    assert f"{registry}/missing" in str(failed.value.details())  # the tree's err line


def test_pull_with_the_requests_credentials(
        auth_registry: str, tmp_path: Path, cri: CriServer,
        images: pb_grpc.ImageServiceStub) -> None:
    owner = Registries({auth_registry: Credentials(USER, PASSWORD)})
    try:
        publish(tmp_path / "build", f"{auth_registry}/private:1", registries=owner)
        publish(tmp_path / "build", f"{auth_registry}/private:2", marker="2", registries=owner)
    finally:
        owner.close()
    ref = f"{auth_registry}/private:1"
    assert code_of(lambda: pull(images, ref)) == grpc.StatusCode.PERMISSION_DENIED
    wrong = pb.AuthConfig(username=USER, password="wrong")
    assert code_of(lambda: pull(images, ref, wrong)) == grpc.StatusCode.PERMISSION_DENIED
    elsewhere = pb.AuthConfig(username=USER, password=PASSWORD, server_address="other.lan")
    assert code_of(lambda: pull(images, ref, elsewhere)) == grpc.StatusCode.PERMISSION_DENIED
    assert pull(images, ref, pb.AuthConfig(username=USER, password=PASSWORD,
                                            server_address=auth_registry))
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert pull(images, f"{auth_registry}/private:2", pb.AuthConfig(auth=encoded))

    daemon = cri.daemon
    seen = [cri.log.read_text(), daemon.log.read_text(),
            daemon.path("namespaces", "k8s.io", "images", "err").read_text(),
            daemon.path("namespaces", "k8s.io", "images", "ctl").read_text(),
            daemon.path("namespaces", "k8s.io", "images", ref, "progress").read_text()]
    assert all(PASSWORD not in text and encoded not in text for text in seen)
    assert not list((cri.root / "pull-credentials").iterdir())  # each file lived one pull


def test_a_root_with_spaces_imports_pause_and_passes_credentials(
        auth_registry: str, tmp_path: Path, daemon: Daemon,
        make_cri: Callable[..., CriServer]) -> None:
    """The ctl lines naming files under --root (`import PATH REF` of the pause image,
    `credentials=PATH` of a pull) keep a path with spaces one word."""
    owner = Registries({auth_registry: Credentials(USER, PASSWORD)})
    try:
        publish(tmp_path / "build", f"{auth_registry}/private:1", registries=owner)
    finally:
        owner.close()
    cri = make_cri(daemon, "spaced root")
    assert " " in str(cri.root)
    with grpc.insecure_channel(cri.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        images = pb_grpc.ImageServiceStub(channel)
        assert status(images, PAUSE_IMAGE).pinned
        auth = pb.AuthConfig(username=USER, password=PASSWORD)
        assert pull(images, f"{auth_registry}/private:1", auth)
    assert not list((cri.root / "pull-credentials").iterdir())


def test_credentials_a_killed_server_left_are_removed_at_start(
        daemon: Daemon, make_cri: Callable[..., CriServer], tmp_path: Path) -> None:
    leftovers = tmp_path / "left-root" / "pull-credentials"  # make_cri's root for "left"
    leftovers.mkdir(parents=True, mode=0o700)
    (leftovers / "0123.json").write_text(json.dumps({"username": USER, "password": PASSWORD}))
    cri = make_cri(daemon, "left")
    assert cri.root == leftovers.parent
    assert not list(leftovers.iterdir())


def test_image_fs_info(cri: CriServer, images: pb_grpc.ImageServiceStub) -> None:
    before = time.time_ns()
    [usage] = images.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems
    snapshotter = Path(usage.fs_id.mountpoint)  # <root>/snapshots/<overlay or native>
    assert snapshotter.parent == cri.daemon.root / "snapshots" and snapshotter.is_dir()
    assert usage.used_bytes.value > 0 and usage.inodes_used.value > 0
    assert before <= usage.timestamp <= time.time_ns()


def test_pulls_through_mirrors_keep_upstream_names(
        registry: str, tmp_path: Path, make_daemon: Callable[..., Daemon],
        make_cri: Callable[..., CriServer]) -> None:
    """registry.k8s.io and docker.io are not reachable here: their images come from
    the local registry, under a prefix per upstream."""
    pause = publish(tmp_path / "build", f"{registry}/cri-mirror/registry.k8s.io/pause:3.9")
    publish(tmp_path / "build", f"{registry}/dockerhub/library/busybox:latest", marker="b")
    root = tmp_path / "mirrored-root"
    root.mkdir()
    (root / "registries.json").write_text(json.dumps({"mirrors": {
        "registry.k8s.io": {"endpoints": [f"http://{registry}/cri-mirror/registry.k8s.io"],
                            "upstream": False},
        "docker.io": {"endpoints": [f"http://{registry}/dockerhub"], "upstream": False},
    }}))
    cri = make_cri(make_daemon("mirrored", root=root))
    with grpc.insecure_channel(cri.address) as channel:
        images = pb_grpc.ImageServiceStub(channel)
        pull_ = images.PullImage
        pull_(pb.PullImageRequest(image=spec("registry.k8s.io/pause:3.9")), timeout=60)
        pull_(pb.PullImageRequest(image=spec("busybox")), timeout=60)
        listed = images.ListImages(pb.ListImagesRequest(), timeout=60).images
        assert sorted(tag for image in listed for tag in image.repo_tags) == [
            PAUSE_IMAGE, "docker.io/library/busybox:latest", "registry.k8s.io/pause:3.9"]
        assert f"registry.k8s.io/pause@{pause}" in [
            d for image in listed for d in image.repo_digests]
        assert images.ImageStatus(pb.ImageStatusRequest(
            image=spec("docker.io/library/busybox:latest")), timeout=60).image.id
