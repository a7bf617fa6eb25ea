"""The tree's tables: well formed, and the reference covers every row and verb."""

from collections.abc import Iterator

import pytest

from base.errors import (
    AlreadyExists,
    Busy,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from mountpoint.errors import err_line, errno_of
from mountpoint.readme import reference
from mountpoint.rootdir import ROOT
from mountpoint.table import Ctl, Dir, Entry, Table


def walk(table: Table) -> Iterator[Entry]:
    for entry in table.entries:
        yield entry
        if isinstance(entry, Dir):
            yield from walk(entry.table)
    if table.children is not None and table.children.table is not None:
        yield from walk(table.children.table)


def test_every_row_and_verb_is_documented() -> None:
    text = reference(ROOT)
    for entry in walk(ROOT):
        assert entry.doc.strip(), entry.name
        assert entry.name in text
        if isinstance(entry, Ctl):
            for verb in entry.verbs.verbs.values():
                assert verb.help and f"» {verb.name}" in text


def test_duplicate_names_are_refused() -> None:
    from mountpoint.table import Err
    with pytest.raises(ValueError):
        Table("twice", entries=(Err(), Err()))


@pytest.mark.parametrize(("error", "code"), [
    (NotFound, "ENOENT"), (AlreadyExists, "EEXIST"), (InvalidArgument, "EINVAL"),
    (Busy, "EBUSY"), (PermissionDenied, "EACCES"), (Unavailable, "EIO"), (KeyError, "EIO"),
])
def test_errno_mapping(error: type[Exception], code: str) -> None:
    import errno
    assert errno_of(error("x")) == getattr(errno, code)


def test_err_line_is_one_line_quoting_the_file() -> None:
    line = err_line("ctl", InvalidArgument('unknown control message "a\nb"'))
    assert line == 'ctl: unknown control message "a b"\n'


def test_every_published_topic_is_documented() -> None:
    import re
    from pathlib import Path

    from cdfs.topics import TOPICS
    sources = Path(__file__).resolve().parents[2].joinpath("cdfs")
    published = set()
    for source in sources.glob("*.py"):
        published.update(re.findall(r'publish\([^,]+,\s*"(/[a-z/_-]+)"', source.read_text()))
    documented = {topic.name for topic in TOPICS}
    assert published and published <= documented, published - documented
    assert "/tasks/oom" in reference(ROOT)
