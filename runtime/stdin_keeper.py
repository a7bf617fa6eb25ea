"""A process's stdin kept open across daemon restarts.

conmon closes a process's stdin when the attach connection that wrote to it closes
(without --leave-stdin-open, which would leave no way to send end of file). A daemon
that exits, even cleanly, closes its connections; so each connection is also held by
a keeper: `tail --pid=CONMON -f /dev/null` with the connected socket as its stdin,
which ends by itself once conmon does. A new daemon takes its own copy of the
connection from the keeper with pidfd_getfd(2) and writes on; closing stdin kills the
keeper and closes the daemon's copy, and only then does the process read end of file.

    <dir>/stdin-keeper   the keeper's pid
"""

import contextlib
import ctypes
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

from runtime import conmon
from runtime.conmon import MonitorFiles

_SYS_PIDFD_GETFD = 438  # the same number on x86_64 and arm64
_libc = ctypes.CDLL(None, use_errno=True)


def _pid_file(files: MonitorFiles) -> Path:
    return files.dir / "stdin-keeper"


def _argv(conmon_pid: int) -> list[str]:
    return ["tail", f"--pid={conmon_pid}", "-f", "/dev/null"]


def keep(files: MonitorFiles, sock: socket.socket) -> subprocess.Popen[bytes] | None:
    """Start a keeper holding `sock` for as long as the process's conmon runs; None
    when conmon's pid is unknown (then the connection lasts as long as the daemon)."""
    conmon_pid = conmon.read_int(files.conmon_pid)
    if conmon_pid is None:
        return None
    keeper = subprocess.Popen(_argv(conmon_pid), stdin=sock.fileno(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              close_fds=True, start_new_session=True)
    temporary = files.dir / ".stdin-keeper.tmp"
    temporary.write_text(str(keeper.pid))
    os.replace(temporary, _pid_file(files))
    return keeper


def _open_keeper(files: MonitorFiles) -> int | None:
    """A pidfd of the directory's keeper, if it still runs (checked after opening the
    pidfd, so a reused pid is never taken for it)."""
    pid = conmon.read_int(_pid_file(files))
    conmon_pid = conmon.read_int(files.conmon_pid)
    if pid is None or conmon_pid is None:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        cmdline = []
    if [part.decode(errors="replace") for part in cmdline] != _argv(conmon_pid):
        os.close(pidfd)
        return None
    return pidfd


def reclaim(files: MonitorFiles) -> socket.socket | None:
    """A copy of the connection a keeper holds (one an earlier daemon made), or None."""
    pidfd = _open_keeper(files)
    if pidfd is None:
        return None
    try:
        fd = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, 0, 0)
    finally:
        os.close(pidfd)
    if fd < 0:
        return None
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    os.set_inheritable(fd, False)
    return socket.socket(fileno=fd)


def release(files: MonitorFiles) -> None:
    """End the directory's keeper, if any: its copy of the connection closes."""
    pidfd = _open_keeper(files)
    if pidfd is not None:
        try:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)
    with contextlib.suppress(FileNotFoundError):
        _pid_file(files).unlink()
