"""CreateContainer: a CRI ContainerConfig made into a tree container of its pod.

The steps are the tree's own, in its order: `mkdir containers/<id>`, `image` (a name
of the image the request names in any of kubelet's forms, its id included, found by
image_index.py), `logpath` (the config's log_path below the sandbox's log_directory,
refused when it leaves it), the record in `labels`, and config.json with the spec
spec.py builds from the config, the pod's record, the image's config and its passwd
and group (read through the tree from the image's rootfs). A failure at any step
removes the slot again.
"""

import contextlib
import errno
import functools
import json
import os
from pathlib import Path

import grpc

from cdfs.client.tree import Tree, TreeError
from cdfs.cri import host_facts, ids, image_index, signals
from cdfs.cri import labels as keys
from cdfs.cri import spec as cri_spec
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.container_record import (
    RUNNING,
    ContainerRecord,
    MountRecord,
    find_container,
    read_containers,
)
from cdfs.cri.errors import CriError, invalid, not_found
from cdfs.cri.sandbox_record import SandboxRecord, find_sandbox


@functools.cache
def host() -> cri_spec.Host:
    """The host's facts, read once per server (they do not change while it runs)."""
    return host_facts.host()


def create_container(tree: Tree, request: pb.CreateContainerRequest) -> str:
    """The new container's id."""
    config = request.config
    if not config.metadata.name:
        raise invalid("CreateContainer: the config has no metadata name")
    if not config.image.image:
        raise invalid("CreateContainer: the config names no image")
    signals.name_of(config.stop_signal)  # an unknown one is refused before anything is made
    sandbox = find_sandbox(tree, request.pod_sandbox_id)
    if not sandbox.pause_pid:
        raise CriError(grpc.StatusCode.FAILED_PRECONDITION,
                       f'pod sandbox "{sandbox.id}" is not running')
    _refuse_taken_name(tree, sandbox.id, config.metadata)
    log_path = _log_path(sandbox.log_directory, config.log_path)
    container_id = ids.new_id()
    tree.mkdir(tree.container(container_id))
    try:
        _fill(tree, container_id, config, sandbox, log_path)
    except BaseException:
        with contextlib.suppress(TreeError):
            tree.rmdir(tree.container(container_id))
        raise
    return container_id


def _log_path(directory: str, log_path: str) -> str:
    """The container's log file, below its pod's log directory: conmon (root) opens it
    for writing and rotates it, so a path outside would let a request pick any host
    file to write. "" when the pod or the container names none."""
    if not directory or not log_path:
        return ""
    if os.path.isabs(log_path):
        raise invalid(f'CreateContainer: log_path "{log_path}" is absolute (it is '
                      "relative to the pod's log_directory)")
    below = os.path.normpath(directory)
    path = os.path.normpath(os.path.join(below, log_path))
    if os.path.commonpath([below, path]) != below or path == below:
        raise invalid(f'CreateContainer: log_path "{log_path}" leaves the pod\'s '
                      f"log_directory {directory}")
    return path


def _refuse_taken_name(tree: Tree, sandbox_id: str, meta: pb.ContainerMetadata) -> None:
    """kubelet names a container attempt once per pod, as containerd's name index."""
    for other in read_containers(tree):
        if (other.sandbox_id, other.name, other.attempt) == (sandbox_id, meta.name,
                                                             meta.attempt):
            raise TreeError(f'container "{meta.name}" (attempt {meta.attempt}) exists '
                            f"in pod {sandbox_id} already: {other.id}", errno.EEXIST)


def _fill(tree: Tree, container_id: str, config: pb.ContainerConfig,
          sandbox: SandboxRecord, log_path: str) -> None:
    box = tree.container(container_id)
    found_image = image_index.find(tree, config.image.image)
    if found_image is None:
        raise not_found(f'image "{config.image.image}" is not present')
    name = found_image.names[0].name  # every name of an image id has the same rootfs
    tree.write(box / "image", name)
    image_dir = tree.images / name
    image = cri_spec.ImageConfig.from_json(json.loads(tree.read(image_dir / "config.json")))
    if log_path:
        tree.write(box / "logpath", log_path)
    record = ContainerRecord(
        id=container_id, sandbox_id=sandbox.id, name=config.metadata.name,
        attempt=config.metadata.attempt, labels=dict(config.labels),
        annotations=dict(config.annotations), image=config.image.image,
        image_ref=_image_ref(found_image), log_path=log_path,
        stop_signal=signals.name_of(config.stop_signal) or image.stop_signal,
        mounts=tuple(MountRecord(m.container_path, m.host_path, m.readonly,
                                 m.selinux_relabel, m.propagation) for m in config.mounts))
    keys.write_labels(tree, container_id, record.to_labels())
    context = config.linux.security_context
    found = cri_spec.Found(
        passwd=_image_file(image_dir, "etc/passwd"),
        group=_image_file(image_dir, "etc/group"),
        sources=host_facts.bind_sources(list(config.mounts)),
        devices=host_facts.device_nodes(list(config.devices)),
        seccomp_profile=host_facts.seccomp_file(cri_spec.localhost_ref(context)),
        target_pid=_target_pid(tree, context.namespace_options))
    spec = cri_spec.container_spec(tree.namespace, container_id, config, sandbox, image,
                                   host(), found)
    tree.write(box / "config.json", json.dumps(spec))


def _image_ref(image: image_index.CriImage) -> str:
    """What ContainerStatus gives as image_ref, as containerd: the image's first repo
    digest (`repository@sha256:…`), else its id."""
    return image.repo_digests[0] if image.repo_digests else image.image_id


def _image_file(image_dir: Path, path: str) -> str | None:
    """A file of the image (its passwd, its group), None when it has none."""
    try:
        return (image_dir / "rootfs" / path).read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TreeError(f"{image_dir}/rootfs/{path}: {exc.strerror}", exc.errno) from None


def _target_pid(tree: Tree, options: pb.NamespaceOption) -> int:
    """The pid of the container whose PID namespace a TARGET container joins."""
    if options.pid != pb.TARGET:
        return 0
    target = find_container(tree, options.target_id)
    return target.pid if target.status == RUNNING else 0
