"""Credentials from <root>/registries.json, used by pulls and pushes through the tree."""

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
