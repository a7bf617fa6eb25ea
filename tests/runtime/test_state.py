"""The task state machine table."""

import pytest

from base.errors import Busy, InvalidArgument
from runtime.state import ALLOWED, Status, Verb, check, parse_signal


@pytest.mark.parametrize(("verb", "allowed"), [
    (Verb.START, {Status.CREATED}),
    (Verb.PAUSE, {Status.RUNNING}),
    (Verb.RESUME, {Status.PAUSED}),
    (Verb.DELETE, {Status.CREATED, Status.STOPPED}),
    (Verb.CLOSE_STDIN, set(Status)),  # a process that exited has no stdin left to close
    (Verb.RESIZE, {Status.CREATED, Status.RUNNING, Status.PAUSED}),
])
def test_verbs_allowed_only_in_their_statuses(verb: Verb, allowed: set[Status]) -> None:
    for status in Status:
        if status in allowed:
            check(verb, status, "container")
        else:
            with pytest.raises(Busy if verb == Verb.DELETE else InvalidArgument,
                               match=f"cannot {verb} container: it is {status}"):
                check(verb, status, "container")


def test_kill_running_or_paused_not_stopped() -> None:
    assert {Status.RUNNING, Status.PAUSED} <= ALLOWED[Verb.KILL]
    assert Status.STOPPED not in ALLOWED[Verb.KILL]


def test_every_verb_has_a_row() -> None:
    assert set(ALLOWED) == set(Verb)


@pytest.mark.parametrize(("text", "number"), [("9", 9), ("KILL", 9), ("SIGTERM", 15),
                                              ("term\n", 15), ("hup", 1)])
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOPE", "0", "999", "", "-1"])
def test_parse_signal_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument, match="unknown signal"):
        parse_signal(text)
