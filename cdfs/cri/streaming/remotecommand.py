"""Kubernetes' remotecommand protocol (exec and attach) over a SPDY session.

The client opens one stream per channel, each named by its `streamType` header:
`error` always, then `stdin`, `stdout`, `stderr` as asked (no stderr with a terminal,
which merges it into stdout) and, from v3 on with a terminal, `resize`, which carries
JSON window sizes `{"Width": W, "Height": H}` one after another. The server copies the
channels until the program's output ends, then reports on `error`: from v4 a JSON
metav1.Status (Success, or Failure with reason NonZeroExitCode and the exit code as
an ExitCode cause, which is how `kubectl exec` learns it), before v4 nothing on
success and a line of text on failure. Which streams to expect comes from the CRI
request the URL was made for, as in kubelet's server.

The program is behind `Attached`, so this module knows nothing of the tree.
"""

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cdfs.cri.streaming.session import Session, Stream, StreamClosed

log = logging.getLogger(__name__)

V4, V3, V2, V1 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"
PROTOCOLS = (V4, V3, V2, V1)
STREAM_CREATION_TIMEOUT = 30.0  # kubelet's default
FIRST_SIZE_WAIT = 0.2
INPUT_JOIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Options:
    """The channels a CRI ExecRequest or AttachRequest asked for."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class Attached(Protocol):
    """A program being exec'd or attached to. Reads block until there is output and
    return b"" at its end; `abandon` releases every blocked call (the client left)."""

    def start(self, rows_cols: tuple[int, int] | None) -> None: ...
    def read_output(self, name: str) -> bytes: ...
    def write_input(self, data: bytes) -> None: ...
    def close_input(self) -> None: ...
    def resize(self, rows: int, cols: int) -> None: ...
    def wait(self) -> int | None: ...
    def abandon(self) -> None: ...
    def release(self) -> None: ...


def expected_streams(options: Options, protocol: str) -> set[str]:
    names = {"error"}
    if options.stdin:
        names.add("stdin")
    if options.stdout:
        names.add("stdout")
    if options.stderr and not options.tty:
        names.add("stderr")
    if options.tty and protocol not in (V1, V2):
        names.add("resize")
    return names


class Channels:
    """The streams of one remotecommand session, gathered as the client opens them
    (its `accept` is the session's on_stream)."""

    def __init__(self, expected: set[str]) -> None:
        self._expected = expected
        self._cond = threading.Condition()
        self._closed = False
        self.streams: dict[str, Stream] = {}

    def accept(self, stream: Stream) -> bool:
        kind = stream.headers.get("streamtype", "")
        with self._cond:
            if kind not in self._expected or kind in self.streams:
                log.info("refused a %r stream", kind)
                return False
            self.streams[kind] = stream
            self._cond.notify_all()
            return True

    def wait(self, timeout: float = STREAM_CREATION_TIMEOUT) -> bool:
        """Whether every expected stream came within `timeout` (False as soon as the
        connection has ended)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or len(self.streams) == len(self._expected),
                                timeout)
            return not self._closed and len(self.streams) == len(self._expected)

    def close(self) -> None:
        """The connection ended: stop waiting."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# -- what goes on the error stream -------------------------------------------------------
def status(exit_code: int | None, error: str | None = None) -> dict[str, Any]:
    """The metav1.Status kubelet writes: Success, a non-zero exit, or an error."""
    if error is not None:
        return {"metadata": {}, "status": "Failure", "message": error,
                "reason": "InternalError", "code": 500,
                "details": {"causes": [{"message": error}]}}
    if not exit_code:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


def error_message(protocol: str, outcome: dict[str, Any]) -> bytes:
    """The error stream's bytes for `outcome` in `protocol`."""
    if protocol == V4:
        return json.dumps(outcome, separators=(",", ":")).encode()
    if outcome["status"] == "Success":
        return b""
    return str(outcome["message"]).encode()


class ResizeDecoder:
    """Window sizes from the resize stream: JSON objects back to back, split anywhere."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """(rows, cols) of every size completed by `data`."""
        self._buffer += data.decode(errors="replace")
        sizes: list[tuple[int, int]] = []
        while True:
            self._buffer = self._buffer.lstrip()
            if not self._buffer:
                return sizes
            try:
                message, end = self._decoder.raw_decode(self._buffer)
            except json.JSONDecodeError:
                return sizes  # incomplete (or garbage, which then only grows to the cap)
            self._buffer = self._buffer[end:]
            if isinstance(message, dict):
                with contextlib.suppress(TypeError, ValueError):
                    sizes.append((int(message["Height"]), int(message["Width"])))


# -- the session -------------------------------------------------------------------------
def serve(session: Session, channels: Channels, protocol: str,
          attach: Callable[[], Attached]) -> None:
    """Run one exec or attach: wait for the channels, start the program, copy until its
    output ends, report, close. The client leaving at any point abandons the program."""
    if not channels.wait():
        log.info("remotecommand: the client did not open its streams in time")
        return
    streams = channels.streams
    error = streams["error"]
    try:
        program = attach()
    except Exception as exc:  # report the refusal to the client, in its words
        _report(error, protocol, status(None, f"error starting the program: {exc}"))
        return
    finished = threading.Event()
    watcher = threading.Thread(target=_abandon_when_gone,
                               args=(session, finished, program), daemon=True)
    watcher.start()
    workers: list[threading.Thread] = []
    sizes = ResizeDecoder()
    try:
        program.start(_first_size(streams.get("resize"), sizes))
        if "resize" in streams:
            workers.append(_thread(_resizes, streams["resize"], sizes, program))
        if "stdin" in streams:
            workers.append(_thread(_copy_in, streams["stdin"], program))
        outputs = [_thread(_copy_out, program, name, streams[name])
                   for name in ("stdout", "stderr") if name in streams]
        for thread in outputs:
            thread.join()
        exit_code = program.wait()
        if not session.ended:
            _report(error, protocol, status(exit_code))
    except Exception as exc:
        log.exception("remotecommand failed")
        _report(error, protocol, status(None, str(exc)))
    finally:
        finished.set()
        program.abandon()
        session.close()
        for thread in workers:
            thread.join(INPUT_JOIN_TIMEOUT)
            if thread.is_alive():  # a write to a program that reads no input
                log.warning("remotecommand: input still blocked; it ends when the "
                            "program reads or exits")
        watcher.join()
        program.release()


def _first_size(resize: Stream | None, decoder: ResizeDecoder) -> tuple[int, int] | None:
    """The window size a terminal client sends at once, so that the program starts
    with it (else `stty size` right at the start could see the default)."""
    if resize is None:
        return None
    with contextlib.suppress(TimeoutError):
        sizes = decoder.feed(resize.read(timeout=FIRST_SIZE_WAIT))
        if sizes:
            return sizes[-1]
    return None


def _copy_out(program: Attached, name: str, stream: Stream) -> None:
    try:
        while chunk := program.read_output(name):
            stream.write(chunk)
    except StreamClosed:
        pass
    finally:
        stream.close()


def _copy_in(stream: Stream, program: Attached) -> None:
    with contextlib.suppress(OSError):
        while chunk := stream.read():
            program.write_input(chunk)
        program.close_input()


def _resizes(stream: Stream, decoder: ResizeDecoder, program: Attached) -> None:
    with contextlib.suppress(OSError):
        while chunk := stream.read():
            for rows, cols in decoder.feed(chunk):
                program.resize(rows, cols)


def _report(error: Stream, protocol: str, outcome: dict[str, Any]) -> None:
    with contextlib.suppress(StreamClosed):
        message = error_message(protocol, outcome)
        if message:
            error.write(message)
    error.close()


def _abandon_when_gone(session: Session, finished: threading.Event, program: Attached) -> None:
    session.wait_ended()
    if not finished.is_set():
        log.info("remotecommand: the client went away; abandoning the program")
        program.abandon()


def _thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread
