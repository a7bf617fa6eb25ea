"""The task state machine: which verb is allowed in which status, and signal names.

Pure and table-driven (like h11's _state.py): the runtime asks `check(verb, status)`
before it touches runc, so a refused verb changes nothing.
"""

import enum
import signal

from base.errors import Busy, InvalidArgument


class Status(enum.StrEnum):
    """A task's life: created -> running <-> paused -> stopped (the names runc uses)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


LIVE = frozenset((Status.CREATED, Status.RUNNING, Status.PAUSED))  # a process exists


class Verb(enum.StrEnum):
    START = "start"
    KILL = "kill"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    UPDATE = "update"
    EXEC = "exec"
    CLOSE_STDIN = "closeio"
    WRITE_STDIN = "stdin"
    RESIZE = "resize"
    REOPEN_LOG = "reopen-log"
    DELETE = "delete"


ALLOWED: dict[Verb, frozenset[Status]] = {
    Verb.START: frozenset({Status.CREATED}),
    Verb.KILL: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Verb.STOP: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Verb.PAUSE: frozenset({Status.RUNNING}),
    Verb.RESUME: frozenset({Status.PAUSED}),
    Verb.UPDATE: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Verb.EXEC: frozenset({Status.RUNNING}),
    # Closing the stdin of a process that has exited is harmless: its stdin is gone.
    Verb.CLOSE_STDIN: frozenset(Status),
    Verb.WRITE_STDIN: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Verb.RESIZE: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Verb.REOPEN_LOG: frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    Verb.DELETE: frozenset({Status.CREATED, Status.STOPPED}),
}

# Refusing these means "not now, something is live": EBUSY, as configfs's rmdir.
_BUSY_WHEN_REFUSED = frozenset({Verb.DELETE})


def check(verb: Verb, status: Status, what: str) -> None:
    """Refuse `verb` on `what` (e.g. 'container "web"') in `status`: Busy for deleting
    a live task, InvalidArgument for any other verb out of its time."""
    if status in ALLOWED[verb]:
        return
    error = Busy if verb in _BUSY_WHEN_REFUSED else InvalidArgument
    raise error(f'cannot {verb} {what}: it is {status}')


def parse_signal(text: str) -> int:
    """A signal number from `9`, `KILL` or `SIGKILL`; refused when not a real signal."""
    name = text.strip().upper()
    try:
        number = int(name) if name.isdigit() else int(
            signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError:
        raise InvalidArgument(f'unknown signal: "{text}"') from None
    if number not in signal.valid_signals():
        raise InvalidArgument(f'unknown signal: "{text}"')
    return number
