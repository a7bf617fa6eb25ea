"""The SPDY/3.1 framing against known bytes: frames laid out by hand from the spec, and
header blocks as Go's spdystream (the framer in client-go, kubelet and crictl) writes
them."""

import struct
import zlib

import pytest

from cdfs.cri.streaming import spdy
from cdfs.cri.streaming.dictionary import HEADER_DICTIONARY

# Written by github.com/moby/spdystream/spdy v0.5.1's Framer, one Framer for all three
# (the zlib stream runs on): SYN_STREAM 1 {"streamType": "error"}, SYN_STREAM 3
# {"streamType": "stdout"}, SYN_REPLY 1 {}.
GO_FRAMES = [bytes.fromhex(h) for h in (
    "800300010000002a0000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a5a"
    "54945f04000000ffff",
    "800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff",
    "800300020000000e000000016260606000000000ffff",
)]


def test_the_dictionary_is_the_specs() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2  # the id in every block's header
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_header_blocks_written_by_go_are_read() -> None:
    codec = spdy.Codec()
    assert codec.feed(GO_FRAMES[0]) == [spdy.SynStream(1, {"streamtype": "error"})]
    assert codec.feed(GO_FRAMES[1]) == [spdy.SynStream(3, {"streamtype": "stdout"})]
    assert codec.feed(GO_FRAMES[2]) == [spdy.SynReply(1, {})]


def test_frames_split_anywhere_come_out_whole() -> None:
    codec, wire = spdy.Codec(), b"".join(GO_FRAMES)
    frames = [frame for byte in range(len(wire)) for frame in codec.feed(wire[byte:byte + 1])]
    assert [type(f) for f in frames] == [spdy.SynStream, spdy.SynStream, spdy.SynReply]


def test_our_header_blocks_are_zlib_with_the_dictionary_and_sync_flushed() -> None:
    wire = spdy.Codec().encode(spdy.SynReply(5, {"streamType": "stdin", "port": "80"}))
    version, kind, flags_length, stream_id = struct.unpack_from(">HHII", wire)
    assert (version, kind, flags_length >> 24, stream_id) == (0x8003, 2, 0, 5)
    assert flags_length & 0xFFFFFF == len(wire) - 8
    block = wire[12:]
    assert block.endswith(b"\x00\x00\xff\xff")  # Z_SYNC_FLUSH: inflatable at once
    inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
    assert inflate.decompress(block) == (  # lowercase names, as spdystream demands
        b"\x00\x00\x00\x02" b"\x00\x00\x00\x0astreamtype\x00\x00\x00\x05stdin"
        b"\x00\x00\x00\x04port\x00\x00\x00\x0280")


def test_a_long_conversation_round_trips_through_one_zlib_stream() -> None:
    sender, receiver = spdy.Codec(), spdy.Codec()
    frames: list[spdy.Frame] = [
        spdy.SynStream(i, {"streamtype": kind, "port": str(i)}, fin=i % 3 == 0)
        for i, kind in enumerate(["error", "data"] * 50, start=1)]
    frames += [spdy.HeadersFrame(7, {"x": "a\x00b"}, fin=True), spdy.SynReply(9, {})]
    wire = b"".join(sender.encode(f) for f in frames)
    assert receiver.feed(wire) == frames


@pytest.mark.parametrize(("frame", "wire"), [
    (spdy.Data(1, b"hi"), b"\x00\x00\x00\x01\x00\x00\x00\x02hi"),
    (spdy.Data(3, b"", fin=True), b"\x00\x00\x00\x03\x01\x00\x00\x00"),
    (spdy.RstStream(5, spdy.RstStatus.CANCEL),
     b"\x80\x03\x00\x03\x00\x00\x00\x08\x00\x00\x00\x05\x00\x00\x00\x05"),
    (spdy.Ping(2), b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x02"),
    (spdy.GoAway(7, 0), b"\x80\x03\x00\x07\x00\x00\x00\x08\x00\x00\x00\x07\x00\x00\x00\x00"),
    (spdy.WindowUpdate(1, 65536),
     b"\x80\x03\x00\x09\x00\x00\x00\x08\x00\x00\x00\x01\x00\x01\x00\x00"),
    (spdy.Settings(((1, 7, 65536),)),  # persist INITIAL_WINDOW_SIZE
     b"\x80\x03\x00\x04\x00\x00\x00\x0c\x00\x00\x00\x01\x01\x00\x00\x07\x00\x01\x00\x00"),
])
def test_frames_without_headers_have_the_specs_layout(frame: spdy.Frame, wire: bytes) -> None:
    assert spdy.Codec().encode(frame) == wire
    assert spdy.Codec().feed(wire) == [frame]


def test_unknown_control_frames_are_skipped() -> None:
    noop = b"\x80\x03\x00\x05\x00\x00\x00\x00"  # type 5 (NOOP) was dropped from SPDY/3
    assert spdy.Codec().feed(noop + b"\x00\x00\x00\x01\x00\x00\x00\x01x") == [
        spdy.Data(1, b"x")]


@pytest.mark.parametrize("wire", [
    b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01",  # SPDY/2
    b"\x00\x00\x00\x00\x00\x00\x00\x00",  # data on stream 0
    b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x00",  # a short PING
    b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01garbage!",  # not zlib
])
def test_bytes_that_are_not_spdy3_are_refused(wire: bytes) -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.Codec().feed(wire)


def test_header_names_go_out_once() -> None:
    with pytest.raises(ValueError, match="given twice"):
        spdy.pack_headers({"Port": "1", "port": "2"})


def test_a_header_block_may_not_inflate_past_its_limit() -> None:
    huge = spdy.pack_headers({"x": "a" * (spdy.MAX_HEADER_BLOCK + 1)})
    deflate = zlib.compressobj(zdict=HEADER_DICTIONARY)
    block = deflate.compress(huge) + deflate.flush(zlib.Z_SYNC_FLUSH)
    wire = struct.pack(">HHII", 0x8003, 8, len(block) + 4, 1) + block
    with pytest.raises(spdy.ProtocolError, match="over"):
        spdy.Codec().feed(wire)
