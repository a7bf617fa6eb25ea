"""A reader that stops reading `events` never blocks the daemon: its queue overflows,
what it missed is counted, and it reads a /events/lost line once it catches up."""

import json
import os
import queue
import subprocess
import threading
import time

from support import Daemon, wait_opened

QUEUE_LENGTH = 4096  # cdfs.events: what a reader's queue keeps
PAIRS = 3000  # mkdir + rmdir: 6000 events, more than the queue and the pipe hold


def test_stalled_reader_loses_events_and_is_told(daemon: Daemon) -> None:
    # `cat` writes into a pipe nobody reads: once it is full, cat stops reading events.
    stalled = subprocess.Popen(["timeout", "120", "cat", str(daemon.path("events"))],
                               stdout=subprocess.PIPE)
    try:
        wait_opened(stalled, daemon.path("events"))
        namespaces = daemon.path("namespaces")
        slowest = 0.0
        for n in range(PAIRS):
            started = time.monotonic()
            os.mkdir(namespaces / f"flood-{n}")
            os.rmdir(namespaces / f"flood-{n}")
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 2.0, f"the daemon was held up: {slowest:.2f} s"

        lines: queue.Queue[bytes] = queue.Queue()
        assert stalled.stdout is not None
        pipe = stalled.stdout
        threading.Thread(target=lambda: [lines.put(line) for line in pipe], daemon=True).start()
        received, lost = 0, []
        while not lost:  # what was kept, then the count of what was not
            event = json.loads(lines.get(timeout=30))
            if event["topic"] == "/events/lost":
                lost.append(event["lost"])
            elif event["id"].startswith("flood-"):
                received += 1
        os.mkdir(namespaces / "after-the-flood")  # the reader is caught up: this one arrives
        assert json.loads(lines.get(timeout=30))["id"] == "after-the-flood"
    finally:
        stalled.kill()
        stalled.wait(timeout=10)
    assert len(lost) == 1 and lost[0] > 0
    assert received + lost[0] == 2 * PAIRS
    assert received >= QUEUE_LENGTH
