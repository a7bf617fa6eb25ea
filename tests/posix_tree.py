"""What the tools matrix shares: a live daemon: a stopped container with known output, a
running one that keeps writing, and the built-in busybox image; real programs are run
against them, each under a timeout (the `tree` fixture in conftest.py)."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support import Daemon
from support import write as _write

BUSYBOX = "cdfs.local/busybox:latest"
STOPPED_OUT = "".join(f"line {i}\n" for i in range(1, 101))
STOPPED_ERR = "oops\n"
# Prints two lines, one to stderr, then a tick every 0.3 s while it runs.
RUNNING = "echo first; echo second; echo warn >&2; i=0; " \
          "while :; do i=$((i+1)); echo tick $i; sleep 0.3; done"


@dataclass(frozen=True)
class Tree:
    daemon: Daemon
    stopped: Path
    running: Path
    image: Path

    @property
    def mount(self) -> Path:
        return self.daemon.mount

    def run(self, *argv: str | Path, timeout: float = 20, check: bool = True,
            stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        """A program on the tree, bounded by `timeout` seconds."""
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=timeout, check=check, stdin=stdin)

    def sh(self, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return self.daemon.sh(script, timeout=timeout)



def make_container(daemon: Daemon, name: str, script: str) -> Path:
    path = daemon.path("containers", name)
    path.mkdir()
    _write(path / "image", BUSYBOX + "\n")
    _write(path / "config.json", json.dumps({"process": {"args": ["sh", "-c", script]}}))
    _write(path / "ctl", "start\n")
    return path


