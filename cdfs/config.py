"""Daemon configuration: command-line flags over CDFS_* environment variables over
defaults."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from base.errors import InvalidArgument
from runtime.cgroups import check_cgroups_path
from runtime.spec import DEFAULT_CGROUP_PARENT

DEFAULT_MOUNT = "/mnt/cdfs"
DEFAULT_ROOT = "/var/lib/cdfs"
DEFAULT_STATE = "/run/cdfs"
DEFAULT_LOG_SIZE_MAX = 64 << 20  # bytes of a task's log before conmon starts it afresh


def default_cgroup_parent(root: Path) -> str:
    """The cgroup under which a daemon puts its containers: `cdfs` for the default
    root, `cdfs-<12 hex digits of the root's path hash>` for any other, so that two
    daemons on one host (each with its own root) never share a container's cgroup."""
    if root == Path(DEFAULT_ROOT):
        return DEFAULT_CGROUP_PARENT
    return f"{DEFAULT_CGROUP_PARENT}-{hashlib.sha256(os.fsencode(root)).hexdigest()[:12]}"


def cgroup_parent_of(text: str) -> str:
    """A configured cgroup parent (`a` or `a/b`, with or without a leading slash),
    refused (ValueError) if it could leave the hierarchy."""
    parent = text.strip().strip("/")
    try:
        check_cgroups_path("/" + parent)
    except InvalidArgument:
        raise ValueError(f'bad cgroup parent: "{text}"') from None
    return parent


@dataclass(frozen=True)
class Config:
    """Where cdfs mounts its tree (`mount`), keeps what must survive a reboot
    (`root`: metadata, content, snapshots) and what lives as long as the host runs
    (`state`: bundles, monitors, sockets, logs). `log_size_max` caps each task's
    log (conmon's --log-size-max); what a cut drops is marked in the output files.
    `cgroup_parent` is the cgroup containers whose spec names none go under, as
    /PARENT/NAMESPACE/ID."""

    mount: Path
    root: Path
    state: Path
    log_level: str = "info"
    allow_group: str | None = None
    log_size_max: int = DEFAULT_LOG_SIZE_MAX
    cgroup_parent: str = DEFAULT_CGROUP_PARENT

    @classmethod
    def from_env(cls, mount: str | None = None, root: str | None = None,
                 state: str | None = None, log_size_max: int | None = None,
                 cgroup_parent: str | None = None, **rest: object) -> "Config":
        if log_size_max is None:
            log_size_max = int(os.environ.get("CDFS_LOG_SIZE_MAX", DEFAULT_LOG_SIZE_MAX))
        if log_size_max < 4096:
            raise ValueError(f"a log size cap of {log_size_max} bytes is below 4096")
        root_path = Path(root or os.environ.get("CDFS_ROOT", DEFAULT_ROOT)).absolute()
        parent = cgroup_parent or os.environ.get("CDFS_CGROUP_PARENT")
        return cls(
            log_size_max=log_size_max,
            cgroup_parent=cgroup_parent_of(parent) if parent
            else default_cgroup_parent(root_path),
            mount=Path(mount or os.environ.get("CDFS_MOUNT", DEFAULT_MOUNT)).absolute(),
            root=root_path,
            state=Path(state or os.environ.get("CDFS_STATE", DEFAULT_STATE)).absolute(),
            **rest,  # type: ignore[arg-type]
        )
