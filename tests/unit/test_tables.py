"""The tree's tables: well formed, and the reference covers every row and verb."""

import re
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


def test_a_verb_is_shown_alike_in_ctl_the_reference_and_refusals() -> None:
    text = reference(ROOT)
    for entry in walk(ROOT):
        if not isinstance(entry, Ctl):
            continue
        listing = entry.verbs.help()
        for verb in entry.verbs.verbs.values():
            assert f"» {verb.synopsis} " in text and f"{verb.synopsis}  " in listing
            if verb.max_args is None or verb.rest:
                continue  # any number of words fits
            with pytest.raises(InvalidArgument, match=f"usage: {re.escape(verb.synopsis)}$"):
                entry.verbs.parse(f"{verb.name} {' '.join(['x'] * (verb.max_args + 1))}")


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


# -- the row factories -----------------------------------------------------------------

async def test_show_renders_plain_and_awaited_values_as_lines() -> None:
    from typing import Any, cast

    from mountpoint.table import Scope, line, show

    async def later() -> int:
        return 0

    app = cast(Any, None)
    assert await show(lambda a, s: "x")(app, Scope()) == "x\n"
    assert await show(lambda a, s: later())(app, Scope()) == "0\n"  # 0 is a value, not empty
    assert await show(lambda a, s: None)(app, Scope()) == ""
    assert await show(lambda a, s: 3, lambda n: f"{n * 2} lines\n")(app, Scope()) == "6 lines\n"
    assert line("a 1\nb 2\n") == "a 1\nb 2\n"


async def test_take_hands_over_stripped_text_and_refuses_other_bytes() -> None:
    from typing import Any, cast

    from mountpoint.table import Scope, take

    got: list[str] = []
    app = cast(Any, None)
    await take(lambda a, s, text: got.append(text))(app, Scope(), b" web \n")
    await take(lambda a, s, text: got.append(text), strip=False)(app, Scope(), b"a=1\n")
    assert got == ["web", "a=1\n"]
    with pytest.raises(InvalidArgument):
        await take(lambda a, s, text: None)(app, Scope(), b"\xff\n")


async def test_collection_serves_sync_and_async_services_alike() -> None:
    from typing import Any, cast

    from mountpoint.table import Scope, collection

    made: list[str] = []

    async def make(name: str) -> None:
        made.append(name)

    children = collection("x", "things", Table("a thing"),
                          names=lambda a, s: ["b", "a"], exists=lambda a, s, n: n == "a",
                          make=lambda a, s, n: make(n))
    app = cast(Any, None)
    assert children.exists is not None and children.mkdir is not None
    assert list(await children.list(app, Scope())) == ["b", "a"]
    assert await children.exists(app, Scope(), "a") and not await children.exists(app, Scope(), "b")
    await children.mkdir(app, Scope(), "c")
    assert made == ["c"] and children.rmdir is None
