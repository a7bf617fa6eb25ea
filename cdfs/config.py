"""Daemon configuration: command-line flags over CDFS_* environment variables over
defaults."""

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MOUNT = "/mnt/cdfs"
DEFAULT_ROOT = "/var/lib/cdfs"
DEFAULT_STATE = "/run/cdfs"


@dataclass(frozen=True)
class Config:
    """Where cdfs mounts its tree (`mount`), keeps what must survive a reboot
    (`root`: metadata, content, snapshots) and what lives as long as the host runs
    (`state`: bundles, monitors, sockets, logs)."""

    mount: Path
    root: Path
    state: Path
    log_level: str = "info"
    allow_group: str | None = None

    @classmethod
    def from_env(cls, mount: str | None = None, root: str | None = None,
                 state: str | None = None, **rest: object) -> "Config":
        return cls(
            mount=Path(mount or os.environ.get("CDFS_MOUNT", DEFAULT_MOUNT)).absolute(),
            root=Path(root or os.environ.get("CDFS_ROOT", DEFAULT_ROOT)).absolute(),
            state=Path(state or os.environ.get("CDFS_STATE", DEFAULT_STATE)).absolute(),
            **rest,  # type: ignore[arg-type]
        )
