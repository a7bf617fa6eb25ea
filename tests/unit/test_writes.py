"""mountpoint/writes.py without a mount: what write() calls add up to, and the limits."""

import json
import time

import pytest

from base.errors import InvalidArgument, TooLarge
from mountpoint.writes import JsonObject, Lines, Whole, quote


def test_lines_come_whole_however_the_writes_are_cut() -> None:
    lines = Lines()
    assert lines.feed(b"sta") == []
    assert lines.feed(b"rt\n\nkill 9\nta") == ["start", "kill 9"]
    assert lines.finish() == "ta"
    assert lines.finish() == ""


def test_an_over_long_line_is_refused_at_once_and_to_its_end() -> None:
    lines = Lines(limit=10)
    with pytest.raises(TooLarge):
        lines.feed(b"x" * 11)
    with pytest.raises(TooLarge):
        lines.feed(b"still the same line")
    assert lines.feed(b"end\nstart\n") == ["start"]  # the next line counts again
    with pytest.raises(TooLarge):
        lines.feed(b"a" * 11 + b"\n")


def test_lines_must_be_utf8() -> None:
    with pytest.raises(InvalidArgument):
        Lines().feed(b"\xff\n")


def test_a_huge_ctl_write_is_refused_in_linear_time() -> None:
    lines = Lines()
    chunk = b"y" * 128 * 1024
    started = time.monotonic()
    for _ in range(800):  # 100 MiB as the kernel would cut it
        with pytest.raises(TooLarge):
            lines.feed(chunk)
    assert time.monotonic() - started < 20  # generous: quadratic would take minutes


def test_a_value_is_the_whole_buffer_complete_at_each_line_end() -> None:
    value = Whole("labels")
    assert value.feed(b"a=1\n")
    assert value.feed(b"b=2\n")
    assert bytes(value.data) == b"a=1\nb=2\n"
    assert not value.feed(b"c=")
    assert value.pending


def test_a_value_over_its_limit_is_refused_and_freed() -> None:
    value = Whole("labels", limit=8)
    value.feed(b"a=1\n")
    with pytest.raises(TooLarge, match="labels"):
        value.feed(b"b=22222\n")
    assert value.data == bytearray()


def test_json_completes_when_its_object_closes() -> None:
    doc = json.dumps({"process": {"args": ["sh", "-c", 'echo "}{"'], "env": ["A=\\"]}},
                     indent=2)
    buffer = JsonObject("config.json")
    lines = [line + "\n" for line in doc.splitlines()]
    assert [buffer.feed(line.encode()) for line in lines] == [False] * (len(lines) - 1) + [True]
    assert json.loads(bytes(buffer.data)) == json.loads(doc)
    assert not buffer.feed(b"\n  \n")  # space after the object is fine


@pytest.mark.parametrize("first", [b"not json", b"  [1]", b"\n\n42\n"])
def test_json_refuses_at_once_what_cannot_become_an_object(first: bytes) -> None:
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        JsonObject("config.json").feed(first)


def test_json_refuses_bytes_after_the_object() -> None:
    buffer = JsonObject("config.json")
    with pytest.raises(InvalidArgument, match="after the end"):
        buffer.feed(b'{"a": 1} x')
    buffer = JsonObject("config.json")
    assert buffer.feed(b'{"a": 1}\n')
    with pytest.raises(InvalidArgument, match="after the end"):
        buffer.feed(b"{}\n")


def test_json_refuses_a_line_that_broke_it_but_waits_for_a_good_one() -> None:
    with pytest.raises(InvalidArgument, match="line 1"):
        JsonObject("config.json").feed(b"{bad\n")
    buffer = JsonObject("config.json")
    assert not buffer.feed(b'{"a": 1,\n')
    assert buffer.feed(b'"b": 2}\n')


def test_json_scan_is_linear_for_a_big_document_written_line_by_line() -> None:
    doc = json.dumps({"annotations": {f"k{i}": "v{}\\\"" * 3 for i in range(60000)}},
                     indent=1)
    buffer = JsonObject("config.json")
    started = time.monotonic()
    results = [buffer.feed(line.encode() + b"\n") for line in doc.splitlines()]
    assert results[-1] and not any(results[:-1])
    assert time.monotonic() - started < 20  # generous: quadratic would take minutes


def test_quote_cuts_long_input_and_says_so() -> None:
    assert quote("stop  8\n") == "stop 8"
    quoted = quote("x" * 10_000)
    assert len(quoted) < 250 and "10000 characters" in quoted
