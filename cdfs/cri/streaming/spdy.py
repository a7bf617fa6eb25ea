"""SPDY/3.1 frames, encoded and decoded without I/O (the h11 way).

kubelet, crictl and critest reach a runtime's streaming server through client-go, whose
SPDY is moby/spdystream: the frame layout of SPDY/3 (draft-mbelshe-httpbis-spdy-00,
version field 3), header blocks compressed with one zlib stream per direction primed
with the SPDY dictionary, and no flow control at all: spdystream never sends
WINDOW_UPDATE and ignores the ones it gets, so a sender that waited for its window to
reopen would stall after 64 KiB. This module therefore parses WINDOW_UPDATE and
SETTINGS (a peer may send them) and leaves them unacted on; TCP is the back-pressure.

Header names go out lowercase and once each (spdystream refuses a block that repeats
a name, and the refusal ends its connection); several values of one name travel
joined by NUL, as the spec says.
"""

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from cdfs.cri.streaming.dictionary import HEADER_DICTIONARY

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_LENGTH = (1 << 24) - 1  # a frame's 24-bit length field
MAX_HEADER_BLOCK = 1 << 20  # decompressed: as spdystream's default field limit
_CONTROL = 0x80000000


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9


class ProtocolError(Exception):
    """Bytes that are not SPDY/3: the connection cannot go on."""


Headers = Mapping[str, str]


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    associated_to: int = 0
    priority: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int = RstStatus.CANCEL


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...] = ()  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = (SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway
         | WindowUpdate | Data)


# -- header blocks -----------------------------------------------------------------------
def pack_headers(headers: Headers) -> bytes:
    """The uncompressed name/value block: a count, then length-prefixed pairs."""
    names: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in names:
            raise ValueError(f'header "{lower}" given twice (join values with NUL)')
        names[lower] = value
    out = [struct.pack(">I", len(names))]
    for name, value in names.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += [struct.pack(">I", len(raw_name)), raw_name,
                struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(out)


def unpack_headers(block: bytes) -> dict[str, str]:
    """The name/value block back as a dict of lowercased names."""
    try:
        (count,) = struct.unpack_from(">I", block)
        offset, headers = 4, {}
        for _ in range(count):
            name, offset = _string(block, offset)
            value, offset = _string(block, offset)
            headers[name.lower()] = value
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad header block: {exc}") from None
    if offset != len(block):
        raise ProtocolError("header block has bytes after its last pair")
    return headers


def _string(block: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from(">I", block, offset)
    end = offset + 4 + length
    if end > len(block):
        raise ProtocolError("header block ends inside a string")
    return block[offset + 4:end].decode(), end


class _Compressor:
    """This direction's zlib stream: one for the whole connection, each block ending
    in a sync flush so the peer can inflate it at once."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                   HEADER_DICTIONARY)

    def compress(self, block: bytes) -> bytes:
        return self._z.compress(block) + self._z.flush(zlib.Z_SYNC_FLUSH)


class _Decompressor:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def decompress(self, data: bytes) -> bytes:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"bad compressed header block: {exc}") from None
        if self._z.unconsumed_tail:
            raise ProtocolError(f"header block over {MAX_HEADER_BLOCK} bytes")
        return block


# -- frames ------------------------------------------------------------------------------
class Codec:
    """One end of one connection: frames to bytes and bytes to frames. The header
    compression state spans the connection, so every frame of a direction must go
    through the same Codec, in order."""

    def __init__(self) -> None:
        self._compressor = _Compressor()
        self._decompressor = _Decompressor()
        self._buffer = bytearray()

    # writing
    def encode(self, frame: Frame) -> bytes:
        match frame:
            case Data(stream_id, data, fin):
                if len(data) > MAX_LENGTH:
                    raise ValueError("data frame over 16 MiB")
                return struct.pack(">II", stream_id & 0x7FFFFFFF,
                                   (FLAG_FIN if fin else 0) << 24 | len(data)) + data
            case SynStream():
                flags = (FLAG_FIN if frame.fin else 0) | (
                    FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
                body = struct.pack(">IIBB", frame.stream_id, frame.associated_to,
                                   (frame.priority & 7) << 5, 0)
                return self._control(FrameType.SYN_STREAM, flags, body + self._block(frame))
            case SynReply(stream_id, _, fin):
                return self._control(FrameType.SYN_REPLY, FLAG_FIN if fin else 0,
                                     struct.pack(">I", stream_id) + self._block(frame))
            case HeadersFrame(stream_id, _, fin):
                return self._control(FrameType.HEADERS, FLAG_FIN if fin else 0,
                                     struct.pack(">I", stream_id) + self._block(frame))
            case RstStream(stream_id, status):
                return self._control(FrameType.RST_STREAM, 0,
                                     struct.pack(">II", stream_id, status))
            case Settings(entries, clear):
                body = struct.pack(">I", len(entries)) + b"".join(
                    struct.pack(">II", flags << 24 | ident, value)
                    for flags, ident, value in entries)
                return self._control(FrameType.SETTINGS, 1 if clear else 0, body)
            case Ping(ping_id):
                return self._control(FrameType.PING, 0, struct.pack(">I", ping_id))
            case GoAway(last, status):
                return self._control(FrameType.GOAWAY, 0, struct.pack(">II", last, status))
            case WindowUpdate(stream_id, delta):
                return self._control(FrameType.WINDOW_UPDATE, 0,
                                     struct.pack(">II", stream_id, delta))
        raise TypeError(f"not a frame: {frame!r}")

    def _block(self, frame: SynStream | SynReply | HeadersFrame) -> bytes:
        return self._compressor.compress(pack_headers(frame.headers))

    @staticmethod
    def _control(kind: FrameType, flags: int, body: bytes) -> bytes:
        if len(body) > MAX_LENGTH:
            raise ValueError("control frame over 16 MiB")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(body)) + body

    # reading
    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data` (the rest waits in the buffer for more).
        Unknown control frame types are skipped, as the spec asks."""
        self._buffer += data
        return list(self._frames())

    def _frames(self) -> Iterator[Frame]:
        while len(self._buffer) >= 8:
            first, flags_length = struct.unpack_from(">II", self._buffer)
            length = flags_length & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                return
            flags = flags_length >> 24
            body = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            if not first & _CONTROL:
                if first == 0:
                    raise ProtocolError("data frame on stream 0")
                yield Data(first, body, bool(flags & FLAG_FIN))
                continue
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != VERSION:
                raise ProtocolError(f"SPDY version {version}, not {VERSION}")
            frame = self._control_frame(kind, flags, body)
            if frame is not None:
                yield frame

    def _control_frame(self, kind: int, flags: int, body: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == FrameType.SYN_STREAM:
                stream_id, associated, priority, _slot = struct.unpack_from(">IIBB", body)
                return SynStream(_stream(stream_id), self._headers(body[10:]), fin,
                                 bool(flags & FLAG_UNIDIRECTIONAL), associated & 0x7FFFFFFF,
                                 priority >> 5)
            if kind == FrameType.SYN_REPLY:
                return SynReply(_stream(_word(body)), self._headers(body[4:]), fin)
            if kind == FrameType.HEADERS:
                return HeadersFrame(_stream(_word(body)), self._headers(body[4:]), fin)
            if kind == FrameType.RST_STREAM:
                stream_id, status = struct.unpack(">II", body)
                return RstStream(_stream(stream_id), status)
            if kind == FrameType.SETTINGS:
                (count,) = struct.unpack_from(">I", body)
                if len(body) != 4 + 8 * count:
                    raise ProtocolError("SETTINGS length does not match its count")
                pairs = struct.iter_unpack(">II", body[4:])
                return Settings(tuple((word >> 24, word & 0xFFFFFF, value)
                                      for word, value in pairs), fin)
            if kind == FrameType.PING:
                return Ping(*struct.unpack(">I", body))
            if kind == FrameType.GOAWAY:
                last, status = struct.unpack(">II", body)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == FrameType.WINDOW_UPDATE:
                stream_id, delta = struct.unpack(">II", body)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise ProtocolError(f"short {FrameType(kind).name} frame: {exc}") from None
        return None

    def _headers(self, compressed: bytes) -> dict[str, str]:
        return unpack_headers(self._decompressor.decompress(compressed))


def _word(body: bytes) -> int:
    (value,) = struct.unpack_from(">I", body)
    return int(value)


def _stream(stream_id: int) -> int:
    stream_id &= 0x7FFFFFFF
    if stream_id == 0:
        raise ProtocolError("stream id 0")
    return stream_id
