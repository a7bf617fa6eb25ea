"""Daemon configuration: command-line flags over CDFS_* environment variables over
defaults."""

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MOUNT = "/mnt/cdfs"
DEFAULT_ROOT = "/var/lib/cdfs"
DEFAULT_STATE = "/run/cdfs"
DEFAULT_LOG_SIZE_MAX = 64 << 20  # bytes of a task's log before conmon starts it afresh


@dataclass(frozen=True)
class Config:
    """Where cdfs mounts its tree (`mount`), keeps what must survive a reboot
    (`root`: metadata, content, snapshots) and what lives as long as the host runs
    (`state`: bundles, monitors, sockets, logs). `log_size_max` caps each task's
    log (conmon's --log-size-max); what a cut drops is marked in the output files."""

    mount: Path
    root: Path
    state: Path
    log_level: str = "info"
    allow_group: str | None = None
    log_size_max: int = DEFAULT_LOG_SIZE_MAX

    @classmethod
    def from_env(cls, mount: str | None = None, root: str | None = None,
                 state: str | None = None, log_size_max: int | None = None,
                 **rest: object) -> "Config":
        if log_size_max is None:
            log_size_max = int(os.environ.get("CDFS_LOG_SIZE_MAX", DEFAULT_LOG_SIZE_MAX))
        if log_size_max < 4096:
            raise ValueError(f"a log size cap of {log_size_max} bytes is below 4096")
        return cls(
            log_size_max=log_size_max,
            mount=Path(mount or os.environ.get("CDFS_MOUNT", DEFAULT_MOUNT)).absolute(),
            root=Path(root or os.environ.get("CDFS_ROOT", DEFAULT_ROOT)).absolute(),
            state=Path(state or os.environ.get("CDFS_STATE", DEFAULT_STATE)).absolute(),
            **rest,  # type: ignore[arg-type]
        )
