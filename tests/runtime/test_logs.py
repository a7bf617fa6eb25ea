"""Reading k8s-file logs, and following them with inotify."""

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.inotify import Inotify
from runtime.logs import LogIndex, dropped_marker, parse_record

TS = "2026-01-01T00:00:00.000000000+00:00"


def test_parse_record() -> None:
    record = parse_record(f"{TS} stdout F hello world".encode())
    assert record is not None and (record.stream, record.data) == ("stdout", b"hello world\n")
    partial = parse_record(f"{TS} stderr P part".encode())
    assert partial is not None and partial.data == b"part"
    assert parse_record(f"{TS} stdout F".encode()).data == b"\n"  # type: ignore[union-attr]
    assert parse_record(b"garbage") is None


chunks = st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.booleans(),
                            st.binary(max_size=20).filter(lambda b: b"\n" not in b)),
                  max_size=30)


@settings(max_examples=50)
@given(chunks, st.integers(1, 50))
def test_streams_read_in_any_pieces(tmp_path_factory: object, records: list, piece: int) -> None:
    path = tmp_path_factory.mktemp("log") / "log"  # type: ignore[attr-defined]
    lines = b"".join(f"{TS} {s} {'P' if p else 'F'} ".encode() + text + b"\n"
                     for s, p, text in records)
    path.write_bytes(lines)
    index = LogIndex(path, cap=1 << 30)
    for stream in ("stdout", "stderr"):
        expected = b"".join(text + (b"" if p else b"\n") for s, p, text in records if s == stream)
        got = b""
        while chunk := index.read(stream, len(got), piece)[1]:
            got += chunk
        assert got == expected
        assert index.size(stream) == len(expected)
        assert index.read(stream, 1, 5)[1] == expected[1:6], "a read from behind"
    index.close()


def test_half_written_line_waits(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(f"{TS} stdout F one\n{TS} stderr F err\n{TS} stdout F tw".encode())
    index = LogIndex(path, cap=1 << 30)
    assert (index.size("stdout"), index.size("stderr")) == (4, 4)
    assert index.read("stdout", 0, 100)[1] == b"one\n"
    with open(path, "ab") as f:
        f.write(b"o\n")
    assert index.read("stdout", 4, 100)[1] == b"two\n"
    assert index.read("log", 0, 10)[1] == TS[:10].encode()
    assert LogIndex(tmp_path / "none", cap=100).size("stdout") == 0
    index.close()


def test_inotify_sees_growth_and_creation(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"")
    with Inotify() as watch:
        file_wd = watch.add_watch(log)
        dir_wd = watch.add_watch(tmp_path)
        assert watch.drain() == []
        assert watch.wait(0.05) == []
        with open(log, "ab") as f:
            f.write(b"x")
        (tmp_path / "exit").write_text("0")
        events = watch.wait(2.0)
        assert any(e.wd == file_wd for e in events)
        assert any(e.wd == dir_wd and e.name == "exit" for e in events)
        assert watch.fileno() >= 0


def _records(*chunks: tuple[str, str]) -> bytes:
    return b"".join(f"{TS} {stream} F {text}\n".encode() for stream, text in chunks)


def test_index_sizes_and_reads_at_any_offset(tmp_path: Path) -> None:
    log = tmp_path / "log"
    lines = [("stdout" if i % 3 else "stderr", f"line {i} " + "x" * (i % 50))
             for i in range(5000)]
    log.write_bytes(_records(*lines) + f"{TS} stdout P unfinished".encode())
    index = LogIndex(log, cap=1 << 30)
    out = "".join(text + "\n" for stream, text in lines if stream == "stdout").encode()
    err = "".join(text + "\n" for stream, text in lines if stream == "stderr").encode()
    assert index.size("stdout") == len(out) and index.size("stderr") == len(err)
    assert index.size("log") == len(_records(*lines))  # the partial line is not there yet
    for offset in (0, 1, 4096, len(out) // 2, len(out) - 7, len(out), len(out) + 5):
        assert index.read("stdout", offset, 1000) == (0, out[offset:offset + 1000])
    assert index.read("stderr", len(err) - 3, 100) == (0, err[-3:])
    assert index.read("log", 0, 40)[1] == _records(*lines)[:40]


def test_a_rotated_log_says_how_much_was_dropped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(_records(("stdout", "old one"), ("stderr", "old err")))
    index = LogIndex(log, cap=100)
    assert index.size("stdout") == len(b"old one\n")
    with open(log, "ab") as f:  # written after the last look, before the cut
        f.write(_records(("stdout", "old two")))
    fresh = tmp_path / "log.tmp"  # as conmon does at its cap: a new file renamed over
    fresh.write_bytes(_records(("stdout", "new")))
    fresh.rename(log)
    marker = dropped_marker("stdout", len(b"old one\nold two\n"), 100)
    assert marker.startswith(b"[cdfs: 16 earlier bytes of stdout were dropped here")
    generation, data = index.read("stdout", 0, 1000)
    assert (generation, data) == (1, marker + b"new\n")
    assert index.size("stdout") == len(marker) + 4
    assert index.read("stderr", 0, 1000)[1] == dropped_marker("stderr", 8, 100)


def test_known_size_is_withheld_from_a_noted_change_until_indexed(tmp_path: Path) -> None:
    """The size the tree answers without a thread: never one that misses a write the
    watcher has seen (an index read before the change, or none yet)."""
    path = tmp_path / "log"
    path.write_bytes(f"{TS} stdout F hello\n".encode())
    index = LogIndex(path, cap=1 << 30)
    assert index.known_size("stdout") is None  # nothing indexed yet: the log may hold some
    index.update()
    assert index.known_size("stdout") == len(b"hello\n")
    with path.open("ab") as log:
        log.write(f"{TS} stdout F again\n".encode())
    index.note_change()
    assert index.known_size("stdout") is None  # the old size would miss "again"
    assert index.size("stdout") == len(b"hello\nagain\n")
    assert index.known_size("stdout") == len(b"hello\nagain\n")
    assert index.known_size("log") == path.stat().st_size
