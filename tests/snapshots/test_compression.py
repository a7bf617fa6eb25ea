"""LayerStream: decompression by media type, diff_id, bounds and truncation."""

import hashlib
import io
import resource
import zlib

import pytest
import zstandard

from base.errors import InvalidArgument
from content.compression import LayerStream, Limits, compression_for

PAYLOAD = bytes(range(256)) * 4000 + b"tail"
DIGEST = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()


def gzip_members(*parts: bytes) -> bytes:
    out = b""
    for part in parts:
        packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        out += packer.compress(part) + packer.flush()
    return out


def zstd_frames(*parts: bytes) -> bytes:
    return b"".join(zstandard.ZstdCompressor().compress(part) for part in parts)


def drain(blob: bytes, media_type: str, limits: Limits | None = None) -> tuple[bytes, str]:
    with LayerStream(io.BytesIO(blob), media_type, limits) as stream:
        data = stream.read()
        return data, stream.finish()


def test_media_types() -> None:
    oci = "application/vnd.oci.image.layer"
    docker = "application/vnd.docker.image.rootfs"
    assert compression_for(f"{oci}.v1.tar") == "none"
    assert compression_for(f"{oci}.v1.tar+gzip") == "gzip"
    assert compression_for(f"{oci}.v1.tar+zstd") == "zstd"
    assert compression_for(f"{oci}.nondistributable.v1.tar+gzip") == "gzip"
    assert compression_for(f"{oci}.nondistributable.v1.tar+zstd") == "zstd"
    assert compression_for(f"{docker}.diff.tar.gzip") == "gzip"
    assert compression_for(f"{docker}.foreign.diff.tar.gzip") == "gzip"
    with pytest.raises(InvalidArgument, match='"text/plain"'):
        compression_for("text/plain")


@pytest.mark.parametrize(("media_type", "blob"), [
    ("application/vnd.oci.image.layer.v1.tar", PAYLOAD),
    ("application/vnd.oci.image.layer.v1.tar+gzip", gzip_members(PAYLOAD)),
    ("application/vnd.oci.image.layer.v1.tar+gzip",
     gzip_members(PAYLOAD[:1000], PAYLOAD[1000:500_000], PAYLOAD[500_000:])),
    ("application/vnd.oci.image.layer.v1.tar+zstd", zstd_frames(PAYLOAD)),
    ("application/vnd.oci.image.layer.v1.tar+zstd",
     zstd_frames(PAYLOAD[:1000], PAYLOAD[1000:500_000], PAYLOAD[500_000:])),
], ids=["plain", "gzip", "gzip-members", "zstd", "zstd-frames"])
def test_every_byte_and_its_digest(media_type: str, blob: bytes) -> None:
    assert drain(blob, media_type) == (PAYLOAD, DIGEST)


def test_reads_are_exact_and_seeks_go_forward_only() -> None:
    blob = gzip_members(PAYLOAD)
    with LayerStream(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip") as stream:
        assert stream.read(512) == PAYLOAD[:512]
        assert stream.seek(700_000) == 700_000 and stream.tell() == 700_000
        assert stream.read(3) == PAYLOAD[700_000:700_003]
        with pytest.raises(InvalidArgument, match="seek back"):
            stream.seek(10)
        assert stream.finish() == DIGEST
        assert stream.read(10) == b""


@pytest.mark.parametrize(("media_type", "blob"), [
    ("application/vnd.oci.image.layer.v1.tar+gzip", gzip_members(PAYLOAD)),
    ("application/vnd.oci.image.layer.v1.tar+zstd", zstd_frames(PAYLOAD)),
], ids=["gzip", "zstd"])
def test_truncated_streams_are_refused(media_type: str, blob: bytes) -> None:
    for cut in (len(blob) // 2, len(blob) - 3):
        with pytest.raises(InvalidArgument, match="truncated"):
            drain(blob[:cut], media_type)


def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="does not decompress"):
        drain(b"\x1f\x8b" + b"garbage" * 100, "application/vnd.oci.image.layer.v1.tar+gzip")
    with pytest.raises(InvalidArgument, match="does not decompress"):
        drain(b"garbage" * 100, "application/vnd.oci.image.layer.v1.tar+zstd")


def test_a_zstd_bomb_is_refused_without_filling_memory() -> None:
    """4 GiB of zeros in a few hundred KiB: refused at the byte cap while the
    process grows by far less than the bomb."""
    packer = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = bytes(64 << 20)
    blob = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    assert len(blob) < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidArgument, match="expands past"):
        drain(blob, "application/vnd.oci.image.layer.v1.tar+zstd", Limits(max_bytes=256 << 20))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 400 << 10


def test_ratio_bound() -> None:
    blob = gzip_members(bytes(8 << 20))
    with pytest.raises(InvalidArgument, match="100 times"):
        drain(blob, "application/vnd.oci.image.layer.v1.tar+gzip",
              Limits(max_ratio=100, ratio_floor=1 << 20))
    data, _ = drain(blob, "application/vnd.oci.image.layer.v1.tar+gzip",
                    Limits(max_ratio=100, ratio_floor=16 << 20))
    assert len(data) == 8 << 20


def test_closing_early_stops_the_producer() -> None:
    blob = gzip_members(bytes(64 << 20))
    stream = LayerStream(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip")
    assert stream.read(10) == bytes(10)
    stream.close()
    assert stream._producer is not None and not stream._producer.is_alive()
