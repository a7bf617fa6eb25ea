"""config.json merges over the defaults as containerd's spec options do."""

import json
import os
import subprocess
from pathlib import Path

from support import Daemon

from cdfs.services import container_config as cc


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def test_a_users_mount_joins_the_defaults_and_replaces_one_at_its_destination() -> None:
    spec = cc.build_spec("ns", "c", {"mounts": [
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=1m"]},
    ]}, {"RLIMIT_NOFILE": 20000})
    destinations = [m["destination"] for m in spec["mounts"]]
    assert "/proc" in destinations and "/dev" in destinations
    assert destinations.count("/dev/shm") == 1 and destinations[-2:] == ["/data", "/dev/shm"]
    assert next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")["options"] == \
        ["size=1m"]


def test_a_partial_config_with_a_bind_mount_runs(daemon: Daemon, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    container = daemon.path("namespaces", "default", "containers", "bound")
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", json.dumps({
        "process": {"args": ["sh", "-c", "cat /data/hello; test -e /proc/self/stat && echo proc"]},
        "mounts": [{"destination": "/data", "type": "bind", "source": str(shared),
                    "options": ["rbind", "ro"]}]}))
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0", (container / "stderr").read_text()
    assert (container / "stdout").read_text() == "from the host\nproc\n"
