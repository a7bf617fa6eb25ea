"""Credentials from <root>/registries.json, used by pulls and pushes through the tree."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Daemon

BUSYBOX = "cdfs.local/busybox:latest"


def ctl(daemon: Daemon, line: str) -> subprocess.CompletedProcess[str]:
    return daemon.sh(f'echo "{line}" > "$M/images/ctl"', check=False, timeout=120)


def test_push_and_pull_with_bearer_credentials_from_the_root(
        registry: str, tmp_path: Path, make_daemon: Callable[..., Daemon],
        make_proxy: Callable[..., Any], token_server: Callable[..., Any]) -> None:
    tokens = token_server("carol", "pw")
    proxy = make_proxy(registry, check=tokens.require_bearer())
    root = tmp_path / "root"
    root.mkdir()
    auth = base64.b64encode(b"carol:pw").decode()
    (root / "registries.json").write_text(json.dumps({"auths": {proxy.address: {"auth": auth}}}))
    daemon = make_daemon(root=root)
    target = f"{proxy.address}/team/busybox:1"
    assert ctl(daemon, f"push {BUSYBOX} {target}").returncode == 0
    assert ctl(daemon, f"rm {BUSYBOX}").returncode == 0
    assert ctl(daemon, f"pull {target}").returncode == 0
    assert daemon.path("images", target, "ref").read_text() == target + "\n"
    assert tokens.calls and all("Basic" not in str(call) for call in tokens.calls)


def test_without_credentials_the_registry_refuses(
        registry: str, daemon: Daemon, make_proxy: Callable[..., Any],
        token_server: Callable[..., Any]) -> None:
    tokens = token_server("carol", "pw")
    proxy = make_proxy(registry, check=tokens.require_bearer())
    result = ctl(daemon, f"push {BUSYBOX} {proxy.address}/team/busybox:1")
    assert result.returncode == 1 and "Permission denied" in result.stderr
    assert "team/busybox" in daemon.path("images", "err").read_text()


def test_a_pull_with_its_own_credentials_file(
        registry: str, tmp_path: Path, daemon: Daemon, make_proxy: Callable[..., Any],
        token_server: Callable[..., Any]) -> None:
    tokens = token_server("dave", "s3cr3t-pw")
    proxy = make_proxy(registry, check=tokens.require_bearer())
    target = f"{proxy.address}/team/busybox:1"
    secret = tmp_path / "pull.json"
    secret.write_text(json.dumps({"username": "dave", "password": "s3cr3t-pw"}))
    secret.chmod(0o600)
    assert ctl(daemon, f"push {BUSYBOX} {target}").returncode == 1  # no credentials
    open_file = tmp_path / "open.json"
    open_file.write_text(secret.read_text())
    open_file.chmod(0o644)
    refused = ctl(daemon, f"pull {target} credentials={open_file}")
    assert refused.returncode == 1 and "Permission denied" in refused.stderr
    err = daemon.path("images", "err").read_text()
    assert "nobody else may read" in err and "s3cr3t-pw" not in err
    registries = daemon.root / "registries.json"
    registries.write_text(json.dumps({"auths": {proxy.address: {"username": "dave",
                                                                "password": "s3cr3t-pw"}}}))
    daemon.stop()  # registries.json is read at start: push with it, then forget it
    daemon.start()
    assert ctl(daemon, f"push {BUSYBOX} {target}").returncode == 0
    registries.unlink()
    daemon.stop()
    daemon.start()
    assert ctl(daemon, f"pull {target}").returncode == 1
    assert ctl(daemon, f"pull {target} credentials={secret}").returncode == 0
    assert daemon.path("images", target, "ref").read_text() == target + "\n"
    assert "s3cr3t-pw" not in daemon.log.read_text()


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory others can reach (pytest's temp dirs are root's alone), for a mount
    another user writes to; unmounted and removed after the daemon's teardown."""
    path = Path(tempfile.mkdtemp(prefix="cdfs-creds-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for mount in path.iterdir():
            subprocess.run(["fusermount3", "-uz", str(mount)], capture_output=True, timeout=30)
        shutil.rmtree(path, ignore_errors=True)


def test_a_pull_takes_only_a_credentials_file_its_writer_owns(
        public_dir: Path, registry: str, make_daemon: Callable[..., Daemon]) -> None:
    """The daemon runs as root: a member of --allow-group naming root's secret gets
    EACCES (the secret never goes to the member's registry), its own file is taken."""
    (public_dir / "mnt").mkdir()
    daemon = make_daemon("shared", ["--allow-group", "nogroup"], mount=public_dir / "mnt")
    target = f"{registry}/fixes/busybox:1"
    assert ctl(daemon, f"push {BUSYBOX} {target}").returncode == 0
    roots = public_dir / "root.json"
    roots.write_text(json.dumps({"username": "root", "password": "r00t-pw"}))
    roots.chmod(0o600)
    own = public_dir / "own.json"
    own.write_text(json.dumps({"username": "nobody", "password": "pw"}))
    own.chmod(0o600)
    os.chown(own, 65534, 65534)

    def pull_as_nobody(credentials: Path) -> subprocess.CompletedProcess[str]:
        line = f"pull {target} credentials={credentials}"
        return subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--init-groups", "bash", "-c",
             f'echo "{line}" > "{daemon.path("images", "ctl")}"'],
            capture_output=True, text=True, timeout=120)

    refused = pull_as_nobody(roots)
    assert refused.returncode == 1 and "Permission denied" in refused.stderr
    err = daemon.path("images", "err").read_text()
    assert "uid 65534" in err and "r00t-pw" not in err
    assert not daemon.path("images", target).exists()
    taken = pull_as_nobody(own)
    assert taken.returncode == 0, taken.stderr
    assert daemon.path("images", target, "ref").read_text() == target + "\n"
    assert ctl(daemon, f"pull {target} credentials={own}").returncode == 0  # root may
