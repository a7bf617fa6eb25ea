"""Pure parts of auth: challenges and the credentials file."""

import base64
import json
from pathlib import Path

import pytest

from base.errors import InvalidArgument
from content.registry.auth import Challenge, parse_challenge
from content.registry.client import is_loopback
from content.registry.credentials import Credentials, load_credentials, parse_credentials


def test_parse_bearer_challenge() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push", error="insufficient_scope"')
    assert challenge == Challenge("bearer")
    assert challenge is not None and challenge.params == {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull,push", "error": "insufficient_scope"}


def test_parse_other_challenges() -> None:
    basic = parse_challenge('Basic realm="a \\"quoted\\" realm"')
    assert basic is not None and basic.scheme == "basic"
    assert basic.params == {"realm": 'a "quoted" realm'}
    token = parse_challenge("Bearer realm=http://x/token,service=s")
    assert token is not None and token.params == {"realm": "http://x/token", "service": "s"}
    assert parse_challenge("") is None
    assert parse_challenge("=junk") is None


def test_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {
        "127.0.0.1:5001": {"auth": base64.b64encode(b"alice:pa:ss").decode()},
        "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
        "registry.example.com": {"auth": base64.b64encode(b"carol:").decode()},
    }}))
    found = load_credentials(path)
    assert found == {"127.0.0.1:5001": Credentials("alice", "pa:ss"),
                     "docker.io": Credentials("bob", "pw"),
                     "registry.example.com": Credentials("carol", "")}
    assert "pa:ss" not in repr(found)
    assert load_credentials(tmp_path / "missing.json") == {}


@pytest.mark.parametrize("data", [
    b"nope", b'{"auths": []}', b'{"auths": {"h": 1}}', b'{"auths": {"h": {}}}',
    b'{"auths": {"h": {"auth": "!!!"}}}',
    b'{"auths": {"h": {"auth": "' + base64.b64encode(b"nocolon") + b'"}}}',
])
def test_credentials_file_refuses(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        parse_credentials(data)


@pytest.mark.parametrize(("domain", "loopback"), [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:80", True), ("[::1]:5000", True),
    ("localhost.example.com", False), ("10.0.0.1:5000", False), ("docker.io", False),
    ("[::2]", False),
])
def test_loopback_means_plain_http(domain: str, loopback: bool) -> None:
    assert is_loopback(domain) is loopback
