"""How a request of the tree is refused, and how a write's work runs.

A refused write, mkdir, rmdir, create or unlink fails with the errno of its domain
error (mountpoint/errors.py) and leaves one line in its directory's `err`; read-side
requests only fail (`quietly`). A write's work runs in the daemon's nursery (`act`):
a signal to the writer fails the write with EINTR while the work goes on to its end,
its failure landing in err.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import pyfuse3
import trio

from mountpoint.errors import err_line, errno_of
from mountpoint.interrupt import cancel_on_signal
from mountpoint.nodes import Node

log = logging.getLogger(__name__)
T = TypeVar("T")


async def quietly(work: Awaitable[T]) -> T:
    """Run a read-side request, mapping errors to errno without an `err` line."""
    try:
        return await work
    except pyfuse3.FUSEError:
        raise
    except Exception as exc:
        raise pyfuse3.FUSEError(errno_of(exc)) from None


class Refusals:
    """The err line of every directory, and the nursery writes' work runs in."""

    def __init__(self) -> None:
        self.errors: dict[tuple[str, ...], str] = {}
        self.nursery: trio.Nursery | None = None

    def refuse(self, exc: BaseException, node: Node, what: str) -> NoReturn:
        """Answer a refused request: the errno, and the `err` line of its directory."""
        raise pyfuse3.FUSEError(self.note(exc, node, what)) from None

    def note(self, exc: BaseException, node: Node, what: str) -> int:
        """Write the `err` line for a refusal nobody may be waiting for; its errno."""
        code = errno_of(exc)
        err_dir = node.err_dir
        if err_dir is not None:
            self.errors[err_dir.path] = err_line(what, exc)
        log.debug("refused %s in /%s: %s", what, "/".join(node.path), exc)
        return code

    def forget_below(self, path: tuple[str, ...]) -> None:
        """An object was deleted (or made): one of the same name has no err lines."""
        for key in [key for key in self.errors if key[:len(path)] == path]:
            del self.errors[key]

    async def act(self, pid: int, work: Callable[[], Awaitable[None]], node: Node,
                  what: str) -> bool:
        """Run a write's `work` to its end in the daemon's nursery and wait for it
        while the writer `pid` has no signal pending. Raises the work's refusal.
        Returns False when a signal released the writer first: the work goes on,
        and a refusal then lands in err alone (the caller answers EINTR, or, for a
        sink whose bytes stay queued, the count)."""
        if self.nursery is None:
            await work()
            return True
        done = trio.Event()
        failure: list[Exception] = []
        waiting = True

        async def run() -> None:
            try:
                await work()
            except Exception as exc:
                failure.append(exc)
                if not waiting:
                    self.note(exc, node, what)
            finally:
                done.set()

        self.nursery.start_soon(run)
        with cancel_on_signal(pid) as signalled:
            await done.wait()
        if signalled.cancelled_caught:
            waiting = False
            log.debug("writer %d interrupted: %s goes on", pid, what)
            return False
        if failure:
            raise failure[0]
        return True
