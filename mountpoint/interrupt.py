"""Releasing readers blocked in a stream read when they get a signal.

pyfuse3 has no interrupt handler, so a process blocked in read() on a stream would
sit through SIGTERM and Ctrl-C until data came. While a read waits, the stream polls
the opener's /proc status (docs/fuse-notes.md: measured, ~0.2 s): a pending signal or a
gone process ends the read with EINTR, which lets `timeout 2 cat events` return.
"""

POLL_SECONDS = 0.2


def interrupted(pid: int) -> bool:
    """Whether the process `pid` has a signal pending, or is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith((b"SigPnd:", b"ShdPnd:")) and int(line.split()[1], 16):
                    return True
    except (FileNotFoundError, ProcessLookupError):
        return True
    return False
