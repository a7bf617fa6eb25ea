"""The reference parser against distribution/reference's normalisation cases."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.errors import InvalidArgument
from content.reference import Reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "canonical"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("user/app", "docker.io/user/app:latest"),
    ("127.0.0.1:5001/busybox:latest", "127.0.0.1:5001/busybox:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b/c:v1.2_3", "localhost:5000/a/b/c:v1.2_3"),
    ("Registry.Example.com/x", "Registry.Example.com/x:latest"),
    ("[::1]:5000/foo", "[::1]:5000/foo:latest"),
    ("quay.io/a-b/c__d.e", "quay.io/a-b/c__d.e:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"ghcr.io/o/r:t@{DIGEST}", f"ghcr.io/o/r:t@{DIGEST}"),
    ("localhost:5000", "docker.io/library/localhost:5000"),
])
def test_normalises_like_docker(text: str, canonical: str) -> None:
    assert str(parse_reference(text)) == canonical


def test_fields() -> None:
    ref = parse_reference(f"127.0.0.1:5001/a/b:v1@{DIGEST}")
    assert ref == Reference("127.0.0.1:5001", "a/b", "v1", DIGEST)
    assert ref.repository == "127.0.0.1:5001/a/b"
    assert ref.object == DIGEST
    assert parse_reference("busybox").object == "latest"
    assert parse_reference("busybox", default_tag=False).tag is None


@pytest.mark.parametrize("text", [
    "", " busybox", "Busybox", "upper/Case", "a//b", "a/../b", "../etc", "./x", "a/./b",
    "busybox:", "busybox:-x", "busybox@sha256:xyz", "busybox@md5:" + "a" * 32,
    "busybox@sha512:" + "a" * 128, "-a/b", "a_/b", "ab" * 32, "a:b:c", "host:port/x:",
    "x" * 256, "a\0b", "a/b\n", "/abs", "a/", "exa mple/x",
])
def test_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_reference(text)


_component = st.from_regex(r"[a-z0-9]{1,5}([._-][a-z0-9]{1,4})?", fullmatch=True)
_domain = st.sampled_from(["docker.io", "127.0.0.1:5001", "localhost", "r.example.com:443"])
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(_domain, st.lists(_component, min_size=1, max_size=4), st.none() | _tag,
       st.booleans())
def test_round_trip(domain: str, parts: list[str], tag: str | None, with_digest: bool) -> None:
    if domain == "docker.io" and len(parts) == 1:
        parts = ["library", *parts]
    digest = DIGEST if with_digest else None
    if tag is None and digest is None:
        tag = "latest"
    ref = Reference(domain, "/".join(parts), tag, digest)
    assert parse_reference(str(ref)) == ref
    # str(ref) is the image's path under images/: no component may be '.', '..' or ''
    assert not any(c in (".", "..", "") for c in str(ref).split("/"))


@given(st.text(max_size=40))
def test_parse_is_total(text: str) -> None:
    """Any input parses to a canonical, path-safe reference or is refused cleanly."""
    try:
        ref = parse_reference(text)
    except InvalidArgument:
        return
    assert parse_reference(str(ref)) == ref
    assert not any(c in (".", "..", "") for c in str(ref).split("/"))
