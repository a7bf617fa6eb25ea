"""conmon, the per-process monitor that outlives the daemon (as containerd's shim).

One conmon watches one process (a container's init, or one exec). It runs
`runc create` (or `runc exec -d`), holds the process's stdio, writes its output to a
k8s-file log, reaps it, and writes its exit status to `<dir>/exit` (128+signal when
killed). Everything it creates lives in the directory it is given:

    <dir>/pid         the process's pid          <dir>/log     k8s-file log of stdout+stderr
    <dir>/conmon.pid  conmon's own pid           <dir>/exit    exit status, when it exited
    <dir>/attach      seqpacket socket: bytes sent to it go to the process's stdin (-i)
    <dir>/ctl         fifo of control messages: `1 ROWS COLS\n` resizes the terminal,
                      `2 0 0\n` reopens the log

A container's init may log elsewhere (`Launch.log_path`, the path a CRI client such as
kubelet gives): conmon writes the same k8s-file format there, which is the CRI's log
format, and `<dir>/log` is then a symlink to it.

With `terminal`, conmon (-t) has runc make a pty for the process and receives its
master on a console socket, as podman does: the process's output (stdout and stderr
alike) is what the terminal shows, logged as stdout, and the attach socket takes
keystrokes. conmon keeps the terminal's input open when a client disconnects
(--leave-stdin-open), so a new daemon can type into it after a restart.

conmon reports the created process's pid (or runc's error) as `{"data": N, "message": ...}`
on the pipe named by `_OCI_SYNCPIPE`; that is how podman and CRI-O start it too.
"""

import contextlib
import json
import os
import select
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from base.errors import Unavailable
from runtime.runc import runtime_message

CONMON = "/usr/bin/conmon"
_SYNC_TIMEOUT = 60.0
# conmon reads the attach socket in packets of up to 8 KiB; larger ones would be cut.
ATTACH_PACKET = 4096


@dataclass(frozen=True)
class MonitorFiles:
    """The files one conmon keeps in its directory."""

    dir: Path

    @property
    def pid(self) -> Path:
        return self.dir / "pid"

    @property
    def conmon_pid(self) -> Path:
        return self.dir / "conmon.pid"

    @property
    def exit(self) -> Path:
        return self.dir / "exit"

    @property
    def log(self) -> Path:
        return self.dir / "log"

    @property
    def attach(self) -> Path:
        return self.dir / "attach"

    @property
    def ctl(self) -> Path:
        return self.dir / "ctl"

    @property
    def oom(self) -> Path:
        """Written by conmon (in its working directory) when the kernel OOM-kills."""
        return self.dir / "oom"


@dataclass(frozen=True)
class Launch:
    """What to monitor: `runc create` of the bundle `files.dir` or, with `exec_spec`,
    `runc exec` (then `files.dir` is the exec's own directory)."""

    container_id: str
    monitor_id: str  # unique across the host: names conmon's symlink in socket_dir
    files: MonitorFiles
    runtime_path: str  # absolute (runc.executable)
    runtime_root: Path
    socket_dir: Path
    stdin: bool
    log_size_max: int
    exec_spec: Path | None = None
    terminal: bool = False
    log_path: Path | None = None  # where to log instead of files.log

    @property
    def log(self) -> Path:
        return self.log_path if self.log_path is not None else self.files.log


def command(launch: Launch) -> list[str]:
    """conmon's command line for `launch`."""
    files = launch.files
    argv = [
        CONMON, "--api-version", "1",
        "-c", launch.container_id, "-u", launch.monitor_id, "-n", launch.container_id,
        "-r", launch.runtime_path, "--runtime-arg", f"--root={launch.runtime_root}",
        "-b", str(files.dir),
        "-p", str(files.pid), "-P", str(files.conmon_pid),
        "--exit-dir", str(files.dir), "--persist-dir", str(files.dir),
        "--socket-dir-path", str(launch.socket_dir),
        "-l", f"k8s-file:{launch.log}", "--log-size-max", str(launch.log_size_max),
        # No fsync of the log when the process has exited: readers get it from the page
        # cache either way, and on ext4 that fsync (a journal commit) came between the
        # exit and the exit file on the way of every run-to-exit; containerd's shim
        # does not sync a log either.
        "--no-sync-log",
    ]
    if launch.stdin:
        argv.append("-i")
    if launch.terminal:
        argv += ["-t", "--leave-stdin-open"]
    if launch.exec_spec is not None:
        argv += ["--exec", "--exec-process-spec", str(launch.exec_spec)]
    return argv


def spawn(launch: Launch) -> int:
    """Start conmon for `launch` and return the monitored process's pid once it exists
    (created, not yet started, for an init; running for an exec). conmon daemonizes, so
    it survives the caller. Raises Unavailable with runc's message when creation fails."""
    read_end, write_end = os.pipe()
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(write_end)}
        try:
            # In its working directory conmon writes files of its own (an `oom` file
            # when the kernel kills for memory): give it the task's directory.
            process = subprocess.Popen(
                command(launch), env=env, pass_fds=(write_end,), close_fds=True,
                cwd=launch.files.dir,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            raise Unavailable(f"conmon: {e}") from None
        os.close(write_end)
        write_end = -1
        message = _read_sync(read_end)
        _, stderr = process.communicate(timeout=_SYNC_TIMEOUT)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if message is None:
        detail = stderr.decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise Unavailable(f'conmon for "{launch.container_id}": {detail}')
    pid = message.get("data")
    if not isinstance(pid, int) or pid <= 0:
        detail = runtime_message(str(message.get("message") or f"exit status {pid}"))
        raise Unavailable(f'runtime failed for "{launch.container_id}": {detail}')
    with contextlib.suppress(FileNotFoundError):
        os.chmod(launch.files.attach, 0o600)  # conmon leaves it 0700; only root connects
    return pid


def _read_sync(fd: int) -> dict[str, object] | None:
    """The first JSON message on conmon's sync pipe, None if it closed without one."""
    data = b""
    while b"\n" not in data:
        ready, _, _ = select.select([fd], [], [], _SYNC_TIMEOUT)
        if not ready:
            raise Unavailable("conmon did not report within 60 s")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0]
    if not line:
        return None
    try:
        message = json.loads(line)
    except json.JSONDecodeError:
        raise Unavailable(f"conmon sent {line[:200]!r}") from None
    return message if isinstance(message, dict) else None


def read_int(path: Path) -> int | None:
    """The integer in a pid or exit file; None while it is absent or half-written."""
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(files: MonitorFiles, monitor_id: str) -> bool:
    """Whether the conmon that wrote `files.conmon_pid` still runs (its command line
    names `monitor_id`, so a recycled pid is not mistaken for it)."""
    pid = read_int(files.conmon_pid)
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return monitor_id.encode() in cmdline.split(b"\0")


def wait_gone(files: MonitorFiles, monitor_id: str, timeout: float) -> None:
    """Block until the conmon of `files` has exited, which it does just after writing
    the exit file, or `timeout` seconds passed. Through a pidfd, not inotify: closing
    an inotify instance with a watch waits out a kernel grace period (about 15 ms
    here), which was on the way of every wait."""
    pid = read_int(files.conmon_pid)
    if pid is None:
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # ESRCH: gone already
        return
    try:
        if is_alive(files, monitor_id):  # checked after the open: fd is this conmon's
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(fd)


def connect_attach(files: MonitorFiles) -> socket.socket:
    """A connection to conmon's attach socket, used only to send stdin: its receiving
    side is shut so conmon never blocks writing the process's output back to it.
    Closing the connection closes the process's stdin."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    # The path may exceed sun_path's 108 bytes; reach it through an O_PATH descriptor.
    dir_fd = os.open(files.dir, os.O_PATH | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/{files.attach.name}")
        sock.shutdown(socket.SHUT_RD)
    except OSError as e:
        sock.close()
        raise Unavailable(f"attach {files.attach}: {e.strerror}") from None
    finally:
        os.close(dir_fd)
    return sock


# conmon's control message types (src/ctr_ctl.c), written as `TYPE ROWS COLS\n`.
_WINDOW_RESIZE = 1
_REOPEN_LOGS = 2


def resize(files: MonitorFiles, rows: int, cols: int) -> None:
    """Set the terminal's window size through conmon's ctl fifo; conmon applies it
    to the pty (TIOCSWINSZ), so the program gets SIGWINCH. Unavailable when no
    conmon reads the fifo any more."""
    _control(files, "resize", f"{_WINDOW_RESIZE} {rows} {cols}\n")


def reopen_log(files: MonitorFiles) -> None:
    """Have conmon start its log afresh at its path: it creates `<log>.tmp` and
    renames it over the log. After a client renamed the log away (kubelet rotating
    it) the old file keeps what was written and the new one begins empty, as CRI's
    ReopenContainerLog means; unrenamed, what was there is replaced."""
    _control(files, "reopen-log", f"{_REOPEN_LOGS} 0 0\n")


def _control(files: MonitorFiles, what: str, message: str) -> None:
    """One message on conmon's ctl fifo; Unavailable when no conmon reads it."""
    try:
        fd = os.open(files.ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:  # ENXIO: nobody has it open for reading
        raise Unavailable(f"{what} {files.ctl}: {e.strerror}") from None
    try:
        os.write(fd, message.encode())
    except OSError as e:
        raise Unavailable(f"{what} {files.ctl}: {e.strerror}") from None
    finally:
        os.close(fd)
