"""What the write() calls on one open file add up to: pure buffers with limits.

The kernel hands writes to the daemon in pieces: bash writes a multi-line string one
line per write(), a big write arrives in chunks of 128 KiB. So every open value or
ctl file has a buffer, and these classes decide, looking only at the new bytes (linear
time, however the writes are cut), when there is something to act on, and refuse at
once what can no longer become good: a line or value over its limit (TooLarge, EFBIG),
bytes that cannot become a JSON object (InvalidArgument). A refused buffer is freed.
"""

import json
import re

from base.errors import InvalidArgument, TooLarge

KiB, MiB = 1024, 1024 * 1024
CTL_LINE_LIMIT = 64 * KiB  # one ctl message (an `update` JSON included)
VALUE_LIMIT = 64 * KiB  # a line value (image, netns, runtime) or labels
JSON_LIMIT = 4 * MiB  # config.json, process.json
QUOTE_LIMIT = 200  # characters of refused input an err line quotes

_JSON_SPACE = b" \t\r\n"
_SPECIAL = re.compile(rb'[{}"]')


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` for an err line: at most `limit` characters, saying how much was cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _too_large(what: str, limit: int) -> TooLarge:
    return TooLarge(f"{what}: over its limit of {limit} bytes")


class Lines:
    """ctl messages: complete lines as they arrive. A line over `limit` is refused
    at the write that crosses it, and the rest of that line with it, up to its
    newline; the lines after it count again."""

    def __init__(self, limit: int = CTL_LINE_LIMIT) -> None:
        self.limit = limit
        self._rest = bytearray()
        self._skipping = False  # inside a refused over-long line

    def feed(self, data: bytes) -> list[str]:
        """The lines `data` completes, stripped, blank ones dropped."""
        newline = data.find(b"\n")
        if self._skipping:
            if newline < 0:
                raise _too_large("ctl message", self.limit)
            self._skipping = False
            data = data[newline + 1:]
            newline = data.find(b"\n")
        if newline < 0:
            self._keep(data)
            return []
        *complete, rest = data.split(b"\n")
        complete[0] = bytes(self._rest) + complete[0]
        self._rest = bytearray()
        if any(len(line) > self.limit for line in complete):
            raise _too_large("ctl message", self.limit)
        self._keep(rest)
        return [line for line in map(_text, complete) if line]

    def finish(self) -> str:
        """The unfinished last line (at close), stripped."""
        rest, self._rest = bytes(self._rest), bytearray()
        return _text(rest)

    def _keep(self, data: bytes) -> None:
        if len(self._rest) + len(data) > self.limit:
            self._rest = bytearray()
            self._skipping = True
            raise _too_large("ctl message", self.limit)
        self._rest += data


def _text(line: bytes) -> str:
    try:
        return line.decode().strip()
    except UnicodeDecodeError:
        raise InvalidArgument("ctl messages must be UTF-8 text") from None


class Whole:
    """A value: everything written through the open file so far. It is complete
    (to be stored) whenever it ends a line, so `printf 'a=1\\nb=2\\n' > labels`,
    which bash writes in two write() calls, stores `a=1`, then `a=1` and `b=2`."""

    def __init__(self, what: str, limit: int = VALUE_LIMIT) -> None:
        self.what = what
        self.limit = limit
        self.data = bytearray()
        self.pending = False  # bytes the store has not seen (the caller clears it)

    def feed(self, data: bytes) -> bool:
        """Add `data`; whether the value is complete now."""
        if len(self.data) + len(data) > self.limit:
            self.data = bytearray()
            raise _too_large(self.what, self.limit)
        self.data += data
        self.pending = self.pending or bool(data)
        return self.data.endswith(b"\n")


class JsonObject(Whole):
    """A JSON object arriving in pieces (config.json). Complete when its outermost
    brace closes, found by a scan of the new bytes for braces and quotes only; the
    parse itself is the store's. Refused at once: a first non-space byte other than
    `{`, anything but space after the object, and a line that broke the document
    (`{bad` then a newline: no later bytes can mend it)."""

    def __init__(self, what: str, limit: int = JSON_LIMIT) -> None:
        super().__init__(what, limit)
        self._scanned = 0  # bytes of data looked at
        self._depth = 0
        self._in_string = False
        self._started = False
        self.end: int | None = None  # just past the closing brace
        self._checked_at = 0  # buffer size at the last trial parse

    def feed(self, data: bytes) -> bool:
        if self.end is not None:
            if data.strip(_JSON_SPACE):
                self.data = bytearray()
                raise InvalidArgument(
                    f"{self.what}: {quote(data.decode(errors='replace'))!r} after the "
                    "end of the JSON object")
            return False
        super().feed(data)
        self._scan()
        if self.end is not None:
            if self.data[self.end:].strip(_JSON_SPACE):
                tail = bytes(self.data[self.end:]).strip(_JSON_SPACE)
                self.data = bytearray()
                raise InvalidArgument(
                    f"{self.what}: {quote(tail.decode(errors='replace'))!r} after the "
                    "end of the JSON object")
            return True
        if data.endswith(b"\n") and len(self.data) >= 2 * self._checked_at:
            self._checked_at = len(self.data)  # doubling keeps the trials linear
            self._check_mendable()
        return False

    def _scan(self) -> None:
        data, index = self.data, self._scanned
        if not self._started:
            stripped = bytes(data[index:]).lstrip(_JSON_SPACE)
            if not stripped:
                self._scanned = len(data)
                return
            if not stripped.startswith(b"{"):
                self.data = bytearray()
                raise InvalidArgument(
                    f"{self.what}: must be a JSON object, not "
                    f"{quote(stripped.decode(errors='replace'))!r}")
            self._started = True
            index = len(data) - len(stripped)
        size = len(data)
        while index < size:
            if self._in_string:
                quote_at = data.find(b'"', index)
                if quote_at < 0:
                    index = size
                    break
                backslashes = 0
                while data[quote_at - 1 - backslashes] == 0x5C:  # an escaped quote?
                    backslashes += 1
                index = quote_at + 1
                if backslashes % 2 == 0:
                    self._in_string = False
                continue
            found = _SPECIAL.search(data, index)
            if found is None:
                index = size
                break
            char, index = found.group(), found.end()
            if char == b'"':
                self._in_string = True
            elif char == b"{":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self.end = index
                    break
        self._scanned = index

    def _check_mendable(self) -> None:
        """Refuse a document that a line end left broken before its end."""
        try:
            text = self.data.decode()
            json.loads(text)
        except UnicodeDecodeError:
            self.data = bytearray()
            raise InvalidArgument(f"{self.what}: not UTF-8 text") from None
        except RecursionError:  # the parser's own stack: far deeper than any spec
            self.data = bytearray()
            raise InvalidArgument(f"{self.what}: JSON nested too deeply") from None
        except json.JSONDecodeError as e:
            if e.pos < len(text.rstrip()):
                self.data = bytearray()
                raise InvalidArgument(f"{self.what}: invalid JSON at line {e.lineno} "
                                      f"column {e.colno}: {e.msg}") from None
