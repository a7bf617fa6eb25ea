"""Blocked requests' signal watch: a signal cancels the wait, others sleep on, and one
worker-thread check a tick covers every waiter."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import trio

from mountpoint.interrupt import POLL_SECONDS, SignalWatch

HOLDS_USR1 = ("import signal, time; signal.pthread_sigmask(signal.SIG_BLOCK, "
              "{signal.SIGUSR1}); print(flush=True); time.sleep(30)")


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


async def test_a_signal_or_an_exit_cancels_the_wait_and_one_check_covers_all() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pending = subprocess.Popen([sys.executable, "-c", HOLDS_USR1], stdout=subprocess.PIPE)
    try:
        assert pending.stdout is not None and pending.stdout.readline() == b"\n"
        watch = SignalWatch()
        released: dict[int, int] = {os.getpid(): 0, gone.pid: 0, pending.pid: 0}
        released_by: set[int] = set()  # the checks that released the gone pid's waiters

        async def wait(pid: int) -> None:
            with watch.cancel_on_signal(pid) as scope:
                await trio.sleep_forever()
            assert scope.cancelled_caught
            released[pid] += 1
            if pid == gone.pid:
                released_by.add(watch.checks)

        async with trio.open_nursery() as nursery:
            for _ in range(100):
                for pid in released:
                    nursery.start_soon(wait, pid)
            await until(lambda: released[gone.pid] == 100)
            assert released_by == {1}  # one thread read the status of 300 waiters
            assert released == {os.getpid(): 0, gone.pid: 100, pending.pid: 0}
            os.kill(pending.pid, signal.SIGUSR1)  # blocked there: it stays pending
            await until(lambda: released[pending.pid] == 100)
            await trio.sleep(POLL_SECONDS * 2)
            assert released[os.getpid()] == 0
            nursery.cancel_scope.cancel()
    finally:
        pending.kill()
        pending.wait(timeout=10)
