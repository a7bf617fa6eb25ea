"""A SPDY/3.1 connection over a socket: streams as blocking byte pipes, with threads.

The streaming server has no event loop (the `cdfs cri` process is grpc's thread pool
and plain blocking file I/O on the tree), so a connection is one reader thread that
decodes frames and hands data to its streams, and any number of threads that read
from and write to those streams. Writes of all streams share one lock, because the
header compressor's state runs through every frame of the connection in order.

A stream's unread data is held up to `_HIGH_WATER` bytes; past that the reader thread
stops reading the socket until the stream's consumer catches up, so a fast client
meets TCP's back-pressure instead of our memory (spdystream does the same with its
unbuffered channels). While held back it still looks at the socket every second, so a
peer that hung up is noticed even then (as long as its FIN got here: behind more
unsent input than the socket buffers hold, it waits in the peer's kernel, and only
the program reading on, or its end, frees the session). When the connection ends,
however it ends, every stream is
finished: reads return b"" and writes raise StreamClosed, which is how the threads
using it learn that the peer went away.
"""

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable, Mapping

from cdfs.cri.streaming import spdy

log = logging.getLogger(__name__)

_HIGH_WATER = 1 << 20
_READ_SIZE = 1 << 16
_PEER_CHECK = 1.0  # seconds between looks at the socket while a stream holds us back
MAX_DATA = 1 << 16  # the largest DATA frame we send


class StreamClosed(Exception):
    """A write on a stream we closed, the peer reset, or whose connection ended."""


class Stream:
    """One SPDY stream: headers, bytes from the peer until it closed its side, and a
    side of our own to write on and close."""

    def __init__(self, session: "Session", stream_id: int, headers: Mapping[str, str]) -> None:
        self.id = stream_id
        self.headers = dict(headers)
        self._session = session
        self._cond = threading.Condition()
        self._unread = bytearray()
        self._remote_done = False  # FIN, RST or the connection's end
        self._local_done = False
        self._reset = False
        self._replied = threading.Event()

    # reading
    def read(self, size: int = _READ_SIZE, timeout: float | None = None) -> bytes:
        """Up to `size` bytes the peer sent, waiting for some; b"" once the peer closed
        its side (or reset, or the connection ended). TimeoutError after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._unread or self._remote_done, timeout):
                raise TimeoutError(f"no data on stream {self.id}")
            data = bytes(self._unread[:size])
            del self._unread[:size]
            self._cond.notify_all()
            return data

    def read_all(self, timeout: float | None = None) -> bytes:
        """Everything until the peer closes its side."""
        chunks = []
        while chunk := self.read(timeout=timeout):
            chunks.append(chunk)
        return b"".join(chunks)

    # writing
    def write(self, data: bytes) -> None:
        for start in range(0, len(data), MAX_DATA):
            self._send(spdy.Data(self.id, data[start:start + MAX_DATA]))

    def close(self) -> None:
        """Close our side (DATA with FIN): the peer reads end of file. Idempotent;
        nothing to do once the stream was reset or the connection ended."""
        with contextlib.suppress(StreamClosed):
            self._send(spdy.Data(self.id, b"", fin=True), last=True)

    def reset(self, status: int = spdy.RstStatus.CANCEL) -> None:
        """Abandon the stream both ways (RST_STREAM)."""
        with self._cond:
            already = self._reset or (self._local_done and self._remote_done)
            self._reset = self._local_done = self._remote_done = True
            self._cond.notify_all()
        if not already:
            self._session.send_quietly(spdy.RstStream(self.id, status))
        self._session.forget(self)

    @property
    def was_reset(self) -> bool:
        """Whether it ended by a reset (either side's) or by the connection's end,
        rather than by both sides closing."""
        return self._reset

    def _send(self, frame: spdy.Frame, last: bool = False) -> None:
        with self._cond:
            if self._local_done:
                raise StreamClosed(f"stream {self.id} is closed")
            if last:
                self._local_done = True
        self._session.send(frame)
        if last:
            self._forget_if_done()

    # fed by the session's reader thread
    def _received(self, data: bytes, fin: bool) -> None:
        with self._cond:
            if self._remote_done:
                return
            self._unread += data
            if fin:
                self._remote_done = True
            self._cond.notify_all()
            while not self._cond.wait_for(
                    lambda: len(self._unread) < _HIGH_WATER or self._remote_done
                    or self._session.closing, _PEER_CHECK):
                if self._session.peer_hung_up():
                    self._session._shutdown()
        if fin:
            self._forget_if_done()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _ended(self, reset: bool) -> None:
        with self._cond:
            self._remote_done = self._local_done = True
            self._reset = self._reset or reset
            self._cond.notify_all()

    def _forget_if_done(self) -> None:
        if self._local_done and self._remote_done:
            self._session.forget(self)


NewStream = Callable[[Stream], bool]


class Session:
    """One upgraded connection. A server's `on_stream` is called (in the reader thread)
    with every stream the peer opens and accepts it by returning True: it is then
    replied to; False refuses it. A client opens streams with `open_stream`."""

    def __init__(self, sock: socket.socket, *, server: bool,
                 on_stream: NewStream | None = None, preread: bytes = b"") -> None:
        self._sock = sock
        self._codec = spdy.Codec()
        self._on_stream = on_stream
        self._preread = preread
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._next_id = 2 if server else 1
        self._next_ping = 2 if server else 1
        self._pings: dict[int, threading.Event] = {}
        self._going_away = False
        self._closing = False
        self._ended = threading.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def peer_hung_up(self) -> bool:
        """Whether the peer closed or reset the connection (without reading it)."""
        poller = select.poll()
        poller.register(self._sock, select.POLLRDHUP)
        return any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                   for _, events in poller.poll(0))

    @property
    def closing(self) -> bool:
        """Whether we closed the connection (the reader may not have noticed yet)."""
        return self._closing

    def wait_ended(self, timeout: float | None = None) -> bool:
        return self._ended.wait(timeout)

    # -- the reader ----------------------------------------------------------------------
    def run(self) -> None:
        """Read and dispatch frames until the peer closes, goes away, or breaks the
        protocol; then end every stream. Run it in its own thread."""
        try:
            data = self._preread
            while True:
                for frame in self._codec.feed(data):
                    if self._dispatch(frame) is False:
                        return
                data = self._sock.recv(_READ_SIZE)
                if not data:
                    return
        except (OSError, spdy.ProtocolError) as exc:
            log.debug("spdy connection ended: %s", exc)
        finally:
            self._end()

    def _dispatch(self, frame: spdy.Frame) -> bool:
        match frame:
            case spdy.Data(stream_id, data, fin):
                stream = self._stream(stream_id)
                if stream is not None:
                    stream._received(data, fin)
            case spdy.SynStream():
                self._accept(frame)
            case spdy.SynReply(stream_id, _, fin):
                stream = self._stream(stream_id)
                if stream is not None:
                    stream._replied.set()
                    if fin:
                        stream._received(b"", True)
            case spdy.HeadersFrame(stream_id, _, fin) if fin:
                stream = self._stream(stream_id)
                if stream is not None:
                    stream._received(b"", True)
            case spdy.RstStream(stream_id, _):
                stream = self._stream(stream_id)
                if stream is not None:
                    stream._ended(reset=True)
                    stream._replied.set()
                    self.forget(stream)
            case spdy.Ping(ping_id):
                if (ping_id & 1) != (self._next_ping & 1):  # the peer's: echo it
                    self.send_quietly(frame)
                else:
                    answered = self._pings.pop(ping_id, None)
                    if answered is not None:
                        answered.set()
            case spdy.GoAway():
                # No new streams from the peer; the ones open go on until they end.
                with self._lock:
                    self._going_away = True
            # SETTINGS and WINDOW_UPDATE: nothing to do (no flow control: see spdy.py)
        return True

    def _accept(self, frame: spdy.SynStream) -> None:
        stream = Stream(self, frame.stream_id, frame.headers)
        with self._lock:
            refuse = (self._going_away or frame.stream_id in self._streams
                      or frame.stream_id % 2 == self._next_id % 2)
            if not refuse:
                self._streams[frame.stream_id] = stream
        if refuse or self._on_stream is None or not self._on_stream(stream):
            self.forget(stream)
            self.send_quietly(spdy.RstStream(frame.stream_id, spdy.RstStatus.REFUSED_STREAM))
            return
        stream._replied.set()
        self.send_quietly(spdy.SynReply(frame.stream_id, {}))
        if frame.fin:
            stream._received(b"", True)

    def _stream(self, stream_id: int) -> Stream | None:
        with self._lock:
            return self._streams.get(stream_id)

    def forget(self, stream: Stream) -> None:
        with self._lock:
            if self._streams.get(stream.id) is stream:
                del self._streams[stream.id]

    def _end(self) -> None:
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
            self._going_away = True
        self._ended.set()
        for stream in streams:  # cut off, not closed: as good as reset
            stream._ended(reset=True)
            stream._replied.set()
        for answered in list(self._pings.values()):
            answered.set()
        self._shutdown()

    # -- writing -------------------------------------------------------------------------
    def send(self, frame: spdy.Frame) -> None:
        """Send one frame; StreamClosed once the connection is gone."""
        if self._ended.is_set():
            raise StreamClosed("the connection has ended")
        with self._write_lock:
            try:
                self._sock.sendall(self._codec.encode(frame))
            except OSError as exc:
                self._shutdown()
                raise StreamClosed(f"the connection broke: {exc}") from None

    def send_quietly(self, frame: spdy.Frame) -> None:
        with contextlib.suppress(StreamClosed):
            self.send(frame)

    def open_stream(self, headers: Mapping[str, str], timeout: float = 30) -> Stream:
        """(client) Open a stream and wait for the peer's reply."""
        with self._lock:
            stream_id, self._next_id = self._next_id, self._next_id + 2
            stream = self._streams[stream_id] = Stream(self, stream_id, headers)
        self.send(spdy.SynStream(stream_id, headers))
        if not stream._replied.wait(timeout):
            raise TimeoutError(f"no reply to stream {stream_id}")
        if stream.was_reset or self.ended:
            raise StreamClosed(f"stream {stream_id} was refused")
        return stream

    def ping(self, timeout: float = 10) -> bool:
        """Whether the peer answers a PING within `timeout`."""
        with self._lock:
            ping_id, self._next_ping = self._next_ping, self._next_ping + 2
            answered = self._pings[ping_id] = threading.Event()
        self.send(spdy.Ping(ping_id))
        return answered.wait(timeout) and not self.ended

    def close(self) -> None:
        """Say GOAWAY and close the connection; the reader thread then ends every
        stream still open. The GOAWAY goes only if it can go at once: a peer that
        reads nothing has a writer of ours blocked in sendall, holding the write lock,
        and waiting for that would never end (the server's stop hung so). Cutting the
        connection is what frees that writer."""
        if self._write_lock.acquire(timeout=_PEER_CHECK):
            try:
                if not self._ended.is_set():
                    with contextlib.suppress(OSError):
                        self._sock.send(self._codec.encode(spdy.GoAway(0)), socket.MSG_DONTWAIT)
            finally:
                self._write_lock.release()
        self._shutdown()

    def _shutdown(self) -> None:
        """Stop the socket both ways (its owner closes it) and wake a reader held back
        by a full stream, so that it sees the end."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream._wake()
