"""TaskStates: what the containers service remembers of each task between events."""

import time

from cdfs.services.task_states import TaskStates
from runtime.state import Status
from runtime.tasks import TaskInfo

KEY = ("default", "c1", None)


def _info(status: Status, exit_status: int | None = None) -> TaskInfo:
    return TaskInfo("default", "c1", None, status, 42, exit_status, None)


def test_a_remembered_state_answers_until_forgotten() -> None:
    states = TaskStates()
    states.remember(KEY, _info(Status.RUNNING), states.generation)
    assert states.get(KEY) == _info(Status.RUNNING)
    states.forget("default", "c1")
    assert states.get(KEY) is None


def test_an_answer_computed_across_a_change_is_not_remembered() -> None:
    states = TaskStates()
    generation = states.generation  # a read starts asking the runtime...
    states.forget("default", "c1")  # ...the task changes meanwhile
    states.remember(KEY, _info(Status.RUNNING), generation)
    assert states.get(KEY) is None


def test_a_live_state_is_asked_again_after_a_while_an_exit_is_kept() -> None:
    states = TaskStates(live_seconds=0.01)
    states.remember(KEY, _info(Status.RUNNING), states.generation)
    exited = ("default", "c1", "e1")
    states.remember(exited, _info(Status.STOPPED, 0), states.generation)
    time.sleep(0.02)
    assert states.get(KEY) is None
    assert states.get(exited) == _info(Status.STOPPED, 0)


def test_forgetting_a_container_forgets_its_execs() -> None:
    states = TaskStates()
    for key in (KEY, ("default", "c1", "e1"), ("default", "c2", None)):
        states.remember(key, _info(Status.RUNNING), states.generation)
    states.forget("default", "c1", every_exec=True)
    assert states.get(KEY) is None and states.get(("default", "c1", "e1")) is None
    assert states.get(("default", "c2", None)) is not None


def test_every_change_is_told_even_one_no_event_reports() -> None:
    """The tree withdraws the kernel's attributes of status, pid and exit at each:
    a forget, and a fresh answer unlike the one it replaces (a monitor killed -9)."""
    states = TaskStates(live_seconds=0.01)
    told: list[tuple[str, str, str | None, bool]] = []
    states.on_change = lambda *change: told.append(change)
    states.remember(KEY, _info(Status.RUNNING), states.generation)
    assert told == []  # the first answer after a forget: the forget told it
    time.sleep(0.02)
    states.remember(KEY, _info(Status.RUNNING), states.generation)
    assert told == []  # asked again, the same
    time.sleep(0.02)
    states.remember(KEY, _info(Status.STOPPED), states.generation)
    assert told == [("default", "c1", None, False)]
    states.forget("default", "c1", every_exec=True)
    assert told[-1] == ("default", "c1", None, True)


def test_a_verbs_own_answer_is_remembered_unless_the_task_changed_meanwhile() -> None:
    states = TaskStates()
    told: list[tuple[str, str, str | None, bool]] = []
    states.on_change = lambda *change: told.append(change)
    states.remember(KEY, _info(Status.CREATED), states.generation)
    generation = states.generation  # a start begins...
    states.changed(KEY, _info(Status.RUNNING), generation)  # ...and returns
    assert states.get(KEY) == _info(Status.RUNNING)
    assert told == [("default", "c1", None, False)]  # the kernel's copies go all the same
    generation = states.generation  # another start...
    states.forget("default", "c1")  # ...across which an exit was seen
    states.changed(KEY, _info(Status.RUNNING), generation)
    assert states.get(KEY) is None


def test_an_exit_read_once_recorded_is_final_whatever_was_asked_meanwhile() -> None:
    states = TaskStates()
    states.remember(KEY, _info(Status.RUNNING), states.generation)
    assert states.final(KEY) is None
    generation = states.generation  # a read of the state in a thread...
    states.exited(KEY, _info(Status.STOPPED, 0))
    states.remember(KEY, _info(Status.RUNNING), generation)  # ...that saw it running
    assert states.get(KEY) == states.final(KEY) == _info(Status.STOPPED, 0)
    states.remember(KEY, _info(Status.STOPPED), states.generation)
    assert states.final(KEY) is None  # stopped, but its exit status not yet recorded
