"""The ctl parser and verb table, as pure functions."""

import pytest

from base.errors import InvalidArgument
from mountpoint.ctl import QUOTING, Verb, VerbTable, split_words


async def _nothing(app: object, scope: object, args: list[str]) -> None:
    return None


TABLE = VerbTable(
    Verb("start", "", "start it", _nothing),
    Verb("kill", "[SIGNAL]", "signal it", _nothing),
    Verb("tag", "REF NEW_REF", "name it again", _nothing),
    Verb("update", "JSON", "apply resources", _nothing, rest=True),
)


def test_parse_counts_arguments() -> None:
    assert TABLE.parse("start")[1] == []
    assert TABLE.parse("kill")[1] == []
    assert TABLE.parse("kill  9 ")[1] == ["9"]
    assert TABLE.parse("tag a b")[1] == ["a", "b"]


@pytest.mark.parametrize("line", ["start now", "kill 9 15", "tag a", "tag a b c", "update"])
def test_wrong_argument_counts_give_the_usage(line: str) -> None:
    verb = line.split()[0]
    with pytest.raises(InvalidArgument, match=f"usage: {verb}"):
        TABLE.parse(line)


def test_unknown_verb_names_the_known_ones() -> None:
    with pytest.raises(InvalidArgument, match="unknown control message") as refused:
        TABLE.parse("frobnicate x")
    assert "start, kill, tag, update" in str(refused.value)


def test_rest_keeps_the_line_whole() -> None:
    verb, args = TABLE.parse('update {"memory": {"limit": 1}}')
    assert verb.name == "update"
    assert args == ['{"memory": {"limit": 1}}']


def test_help_lists_every_verb_with_usage() -> None:
    *lines, quoting = TABLE.help().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "kill", "tag", "update"]
    assert quoting == f"# {QUOTING}"
    assert "tag REF NEW_REF" in TABLE.help()
    assert all(line.endswith(("it", "again", "resources")) for line in lines)


@pytest.mark.parametrize(("line", "words"), [
    ('"/tmp/a b/x.tar" ref', ["/tmp/a b/x.tar", "ref"]),
    ("'a b'c  d", ["a bc", "d"]),
    (r"a\ b", ["a b"]),
    (r'"q\"u\ote"', [r'q"u\ote']),  # within "…" a backslash escapes only \ and "
    ("'it'\"'\"'s'", ["it's"]),  # what shlex.quote makes of a quote
    ('x ""', ["x", ""]),
])
def test_words_are_split_as_sh_splits_them(line: str, words: list[str]) -> None:
    assert split_words(line) == words


def test_a_quoted_word_is_one_argument() -> None:
    assert TABLE.parse('tag "/tmp/a b" \'c d\'')[1] == ["/tmp/a b", "c d"]


@pytest.mark.parametrize("line", ['tag "a b', "tag a'b c", "tag a b\\"])
def test_an_unfinished_quote_is_refused(line: str) -> None:
    with pytest.raises(InvalidArgument, match="unfinished quote"):
        TABLE.parse(line)


def test_rest_is_not_unquoted() -> None:
    assert split_words('"a b" {"c": "d e"}', 2) == ["a b", '{"c": "d e"}']
