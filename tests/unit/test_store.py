"""The content store: hashing ingests, verification, atomic commit, resume."""

import hashlib
import os
from pathlib import Path

import pytest

from base.errors import Busy, InvalidArgument, NotFound
from content.store import ContentStore


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_sequential_ingest_commits_under_its_digest(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.writer("a") as writer:
        writer.write(b"hello ")
        writer.write(b"world")
        digest = writer.commit()
    assert digest == sha(b"hello world")
    assert store.read(digest) == b"hello world"
    assert oct(store.blob_path(digest).stat().st_mode & 0o777) == "0o444"
    assert store.ingests() == []


def test_out_of_order_writes_are_rehashed(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.writer("b") as writer:
        writer.write_at(5, b"world")
        writer.write_at(0, b"hello")
        assert writer.commit() == sha(b"helloworld")


def test_mismatch_commits_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.writer("c", expected=sha(b"other")) as writer:
        writer.write(b"this")
        with pytest.raises(InvalidArgument, match="expected"):
            writer.commit()
    assert list(store.list()) == []
    with store.writer("d", total=10) as writer:
        writer.write(b"short")
        with pytest.raises(InvalidArgument, match="size"):
            writer.commit()
    assert list(store.list()) == []


def test_resume_continues_an_interrupted_ingest(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = os.urandom(300_000)
    with store.writer("e") as writer:
        writer.write(data[:100_000])
    assert [s.offset for s in store.ingests()] == [100_000]
    with store.writer("e", expected=sha(data), resume=True) as writer:
        assert writer.offset == 100_000
        writer.write(data[100_000:])
        assert writer.commit() == sha(data)


def test_one_writer_per_ingest_and_abort(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    with store.writer("f") as writer:
        writer.write(b"x")
        with pytest.raises(Busy):
            store.writer("f")
        with pytest.raises(Busy):
            store.abort("f")
    store.abort("f")
    with pytest.raises(NotFound):
        store.abort("f")


@pytest.mark.parametrize("ref", ["", "a/b", "..", "."])
def test_bad_ingest_names(tmp_path: Path, ref: str) -> None:
    with pytest.raises(InvalidArgument):
        ContentStore(tmp_path).writer(ref)


def test_add_and_usage(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    digest = store.add(b"abc")
    assert store.add(b"abc") == digest
    assert store.usage() == (1, 3)
    store.delete(digest)
    assert store.usage() == (0, 0)
