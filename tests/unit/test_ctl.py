"""The ctl parser and verb table, as pure functions."""

import pytest

from base.errors import InvalidArgument
from mountpoint.ctl import Verb, VerbTable


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
    lines = TABLE.help().splitlines()
    assert [line.split()[0] for line in lines] == ["start", "kill", "tag", "update"]
    assert "tag REF NEW_REF" in TABLE.help()
    assert all(line.endswith(("it", "again", "resources")) for line in lines)
