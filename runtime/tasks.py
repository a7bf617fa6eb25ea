"""The task service: containers and their execs, run by runc and watched by conmon.

Every fact lives in files under the state dir, so a new daemon on the same dir sees what
the last one left (`recover`): runc's state, conmon's pid/exit/log files, and our own
small records written atomically (write + rename). They are not fsynced: the state dir
is runtime state (/run/cdfs, tmpfs by default) that lives no longer than the processes
it describes, and a rename already survives a kill -9 of the daemon; an fsync cost a
journal commit, over a millisecond, on the path of every container's create and start.

    <state>/runc/<namespace>/               runc --root: ids are unique per namespace
    <state>/sockets/                        conmon's links to attach-socket directories
    <state>/tasks/<namespace>/<id>/         the bundle (0700): config.json, rootfs/,
                                            task.json, conmon's pid, exit, log, attach, ctl
    <state>/tasks/<namespace>/<id>/execs/<exec_id>/
                                            process.json, exec.json and its conmon files

Verbs take `exec_id=None` for the container's init or an exec id for one of its execs.
A process whose spec says `terminal` runs on a pty that conmon holds (see conmon.py):
its stdin takes keystrokes, its log is what the terminal showed, `resize` sets its size.
All methods are synchronous and safe to call from several threads at once.
"""

import builtins
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base import identifiers
from base.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from base.mount import Mount
from runtime import conmon, runc, spec, stdin_keeper
from runtime.conmon import MonitorFiles
from runtime.mounts import mount_all, unmount_all
from runtime.runc import Runc
from runtime.state import Status, Verb, check

DEFAULT_LOG_SIZE_MAX = 64 << 20  # the daemon passes cdfs.config's (cdfs serve --log-size-max)
# The exit status of a process whose monitor died before recording it.
EXIT_UNKNOWN = 255
_EXIT_WAIT_AFTER_KILL = 10.0
_EXIT_FILE_WAIT = 2.0  # seconds for conmon to record an exit once the process is gone
_NO_MONITOR_NAP = 0.02  # between looks at a task no running conmon will tell about
_REOPEN_WAIT = 5.0  # seconds for conmon to start a new log at reopen-log
_WINDOW_MAX = 65535  # a terminal's rows and columns are unsigned shorts (struct winsize)

_EXIT_ANNOUNCED = ".exit-announced"  # the daemon published /tasks/exit
_STDIN_CLOSED = ".stdin-closed"
_RECORDS = ("task.json", "exec.json", "config.json", "process.json")
# What the service itself writes in a task's directory (its records, their temporaries,
# its markers): a watcher of the directory learns nothing from these of the process,
# whose changes conmon's files show, and every verb that writes one says so itself.
OWN_FILES = frozenset({*_RECORDS, *(f".{name}.tmp" for name in _RECORDS),
                       _EXIT_ANNOUNCED, _STDIN_CLOSED})


@dataclass(frozen=True)
class TaskInfo:
    """A container's init or one exec, as of now."""

    namespace: str
    id: str
    exec_id: str | None
    status: Status
    pid: int | None
    exit_status: int | None
    exited_at: float | None  # seconds since the epoch, as the other two
    created_at: float | None = None
    started_at: float | None = None


def _inode(path: Path) -> int | None:
    """The inode of the file `path` leads to (through a symlink); None while absent."""
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _write_json(path: Path, value: object) -> None:
    """Write `value` so that readers see the old file or the new, never a part (not
    fsynced: see the module doc). Compact, which json encodes in C: indented, its
    pure-Python encoder took most of a millisecond for a spec, on every create."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as f:
        f.write(json.dumps(value))
    os.replace(temporary, path)


def _read_json(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return dict(json.load(f))


@functools.lru_cache(maxsize=4096)
def _bundle(state_dir: Path, namespace: str, container_id: str) -> Path:
    """A container's directory, made once: a stat of its output or rootfs names it
    several times, and joining a Path costs microseconds each."""
    return state_dir / "tasks" / namespace / container_id


class TaskService:
    """Create, run, signal, pause, exec into and delete containers; see the module doc."""

    def __init__(self, state_dir: Path, runtime_binary: str = "runc",
                 log_size_max: int = DEFAULT_LOG_SIZE_MAX) -> None:
        self.state_dir = Path(state_dir)
        self.runtime_binary = runtime_binary
        self.log_size_max = log_size_max
        self._sockets = self.state_dir / "sockets"
        self._stdin: dict[Path, socket.socket] = {}
        self._keepers: dict[Path, subprocess.Popen[bytes]] = {}  # started by this daemon
        self._lock = threading.Lock()
        for path in (self.state_dir, self._sockets, self.state_dir / "tasks",
                     self.state_dir / "runc"):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- paths --------------------------------------------------------------------------

    def bundle(self, namespace: str, container_id: str) -> Path:
        return _bundle(self.state_dir, namespace, container_id)

    def _runc(self, namespace: str, runtime: str | None = None) -> Runc:
        return Runc(runtime or self.runtime_binary, self.state_dir / "runc" / namespace)

    def _path(self, namespace: str, container_id: str, exec_id: str | None) -> Path:
        """Where the task's files are, checking the names but not the disk."""
        identifiers.validate(namespace, "namespace")
        identifiers.validate(container_id, "container id")
        bundle = self.bundle(namespace, container_id)
        if exec_id is None:
            return bundle
        identifiers.validate(exec_id, "exec id")
        return bundle / "execs" / exec_id

    def _dir(self, namespace: str, container_id: str, exec_id: str | None) -> Path:
        """The task's directory; NotFound unless its record is there."""
        path = self._path(namespace, container_id, exec_id)
        if not (self.bundle(namespace, container_id) / "task.json").exists():
            raise NotFound(f'no container "{container_id}" in namespace "{namespace}"')
        if exec_id is not None and not (path / "exec.json").exists():
            raise NotFound(f'no exec "{exec_id}" in container "{container_id}"')
        return path

    def files(self, namespace: str, container_id: str, exec_id: str | None = None
              ) -> MonitorFiles:
        """The monitor's files (log, exit...) for the daemon to watch with inotify.
        Only names are computed, nothing is read, so the daemon calls this on its
        loop for a task it knows to exist."""
        return MonitorFiles(self._path(namespace, container_id, exec_id))

    # --- containers ---------------------------------------------------------------------

    def create(self, namespace: str, container_id: str, oci_spec: dict[str, Any],
               rootfs: Sequence[Mount] = (), stdin: bool = False,
               runtime: str | None = None, log_path: Path | None = None) -> TaskInfo:
        """Create the container (its init exists, stopped before the user's program) under
        conmon. `rootfs` is mounted at `<bundle>/rootfs` unless root.path is absolute
        (bring-your-own rootfs). `runtime` is the OCI runtime binary for this container
        (default: the service's). `log_path` (absolute) is where conmon logs the init's
        output instead of `<bundle>/log`, which becomes a symlink to it; its directory
        is made if missing, and the log is the caller's: deleting the task leaves it.
        InvalidArgument for a bad spec or id, AlreadyExists, Unavailable when mounting
        or the runtime fails; a failure leaves nothing behind."""
        identifiers.validate(namespace, "namespace")
        identifiers.validate(container_id, "container id")
        spec.validate(oci_spec)
        own_root = os.path.isabs(oci_spec["root"]["path"])
        if not own_root and not rootfs:
            raise InvalidArgument(
                f'container "{container_id}": no rootfs (give mounts or an absolute root.path)')
        runtime = runtime or self.runtime_binary
        runc.executable(runtime)
        bundle = self.bundle(namespace, container_id)
        bundle.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            bundle.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f'container "{container_id}" exists in "{namespace}"') from None
        mounted = False
        terminal = oci_spec["process"].get("terminal", False) is True
        try:
            if not own_root:
                # The caller's spec is left as it is (the root replaced, not deep-copied).
                oci_spec = {**oci_spec, "root": {**oci_spec["root"],
                                                 "path": str(bundle / "rootfs")}}
                (bundle / "rootfs").mkdir()
                mount_all(rootfs, bundle / "rootfs")
                mounted = True
            _write_json(bundle / "config.json", oci_spec)
            if log_path is not None:
                log_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                (bundle / "log").symlink_to(log_path)
            monitor_id, created_at = uuid.uuid4().hex, time.time()
            record = {"namespace": namespace, "id": container_id, "runtime": runtime,
                      "stdin": stdin, "terminal": terminal, "monitor_id": monitor_id,
                      "rootfs_mounted": mounted, "created_at": created_at,
                      "log_path": str(log_path) if log_path is not None else None}
            _write_json(bundle / "task.json", record)
            (self.state_dir / "runc" / namespace).mkdir(mode=0o700, exist_ok=True)
            pid = conmon.spawn(self._launch(namespace, container_id, monitor_id, runtime,
                                            MonitorFiles(bundle), stdin, terminal,
                                            log_path=log_path))
        except BaseException:
            self._runc(namespace, runtime).delete(container_id, force=True)
            if mounted:
                unmount_all(bundle / "rootfs")
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        return TaskInfo(namespace, container_id, None, Status.CREATED, pid, None, None,
                        created_at)

    def _launch(self, namespace: str, container_id: str, monitor_id: str, runtime: str,
                files: MonitorFiles, stdin: bool, terminal: bool,
                exec_spec: Path | None = None, log_path: Path | None = None
                ) -> conmon.Launch:
        return conmon.Launch(
            container_id=container_id, monitor_id=monitor_id, files=files,
            runtime_path=runc.executable(runtime), runtime_root=self.state_dir / "runc" / namespace,
            socket_dir=self._sockets, stdin=stdin, log_size_max=self.log_size_max,
            exec_spec=exec_spec, terminal=terminal, log_path=log_path,
        )

    def list(self, namespace: str | None = None) -> list[tuple[str, str]]:
        """(namespace, id) of every container, sorted."""
        root = self.state_dir / "tasks"
        spaces = [namespace] if namespace is not None else sorted(os.listdir(root))
        return [(ns, cid) for ns in spaces if (root / ns).is_dir()
                for cid in sorted(os.listdir(root / ns))
                if (root / ns / cid / "task.json").exists()]

    def bundles(self) -> builtins.list[tuple[str, str]]:
        """(namespace, id) of every container directory, with or without its record (a
        create killed before writing task.json leaves one without)."""
        root = self.state_dir / "tasks"
        return [(ns, cid) for ns in sorted(os.listdir(root)) if (root / ns).is_dir()
                for cid in sorted(os.listdir(root / ns))]

    def discard(self, namespace: str, container_id: str) -> None:
        """Remove whatever a container left, its process killed if it runs: for what a
        daemon killed while creating or removing a container leaves behind."""
        bundle = self._path(namespace, container_id, None)
        if (bundle / "task.json").exists():
            with contextlib.suppress(NotFound, ValueError):  # a record cut short
                self.delete(namespace, container_id, force=True)
                return
        self._runc(namespace).delete(container_id, force=True)
        unmount_all(bundle / "rootfs")
        self._drop_stdin(bundle)
        shutil.rmtree(bundle, ignore_errors=True)

    def list_execs(self, namespace: str, container_id: str) -> builtins.list[str]:
        execs = self._dir(namespace, container_id, None) / "execs"
        if not execs.is_dir():
            return []
        return sorted(e for e in os.listdir(execs) if (execs / e / "exec.json").exists())

    def config(self, namespace: str, container_id: str) -> dict[str, Any]:
        """The container's spec as created (root.path made absolute)."""
        return _read_json(self._dir(namespace, container_id, None) / "config.json")

    # --- state --------------------------------------------------------------------------

    def state(self, namespace: str, container_id: str, exec_id: str | None = None
              ) -> TaskInfo:
        """Status, pid and exit of the init or an exec, from conmon's exit file and runc.
        A process just gone whose exit conmon has yet to record is waited for (conmon
        exits just after it writes the exit file) rather than told without it."""
        path = self._dir(namespace, container_id, exec_id)
        deadline = time.monotonic() + _EXIT_FILE_WAIT
        while (info := self._probe(namespace, container_id, exec_id, path)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._info(namespace, container_id, exec_id, path, Status.STOPPED)
            self._await_monitor(path, left)
        return info

    def _probe(self, namespace: str, container_id: str, exec_id: str | None, path: Path
               ) -> TaskInfo | None:
        """The state now; None while the process is gone and its conmon, still
        running, is about to write the exit file (some milliseconds after: it reaps,
        drains the output, then writes)."""
        files = MonitorFiles(path)
        exit_status = conmon.read_int(files.exit)
        if exit_status is not None:
            return self._info(namespace, container_id, exec_id, path, Status.STOPPED,
                              exit_status)
        if exec_id is not None:
            record = _read_json(path / "exec.json")
            if record.get("monitor_id") is None:
                return self._info(namespace, container_id, exec_id, path, Status.CREATED)
            live = self._process_alive(conmon.read_int(files.pid))
            status = Status.RUNNING if live else Status.STOPPED
        else:
            record = _read_json(path / "task.json")
            known = self._runc(namespace, record["runtime"]).status(container_id)
            status = Status(known) if known else Status.STOPPED
        if status != Status.STOPPED:
            return self._info(namespace, container_id, exec_id, path, status)
        if not conmon.is_alive(files, record["monitor_id"]):
            # It may have written the exit file just before it exited.
            return self._info(namespace, container_id, exec_id, path, Status.STOPPED,
                              conmon.read_int(files.exit))
        return None

    def _info(self, namespace: str, container_id: str, exec_id: str | None, path: Path,
              status: Status, exit_status: int | None = None) -> TaskInfo:
        files = MonitorFiles(path)
        exited_at = files.exit.stat().st_mtime if exit_status is not None else None
        times = self._record(path)
        return TaskInfo(namespace, container_id, exec_id, status, conmon.read_int(files.pid),
                        exit_status, exited_at, times.get("created_at"),
                        times.get("started_at"))

    def exit_announced(self, namespace: str, container_id: str,
                       exec_id: str | None = None) -> bool:
        """Whether the daemon has told of this process's exit (`announce_exit`): an exit
        found at start-up without it happened while no daemon ran."""
        return (self._dir(namespace, container_id, exec_id) / _EXIT_ANNOUNCED).exists()

    def announce_exit(self, namespace: str, container_id: str,
                      exec_id: str | None = None) -> None:
        (self._dir(namespace, container_id, exec_id) / _EXIT_ANNOUNCED).touch()

    def oom_killed(self, namespace: str, container_id: str) -> bool:
        """Whether the kernel OOM-killed in the container (conmon's `oom` file)."""
        return MonitorFiles(self._dir(namespace, container_id, None)).oom.exists()

    def record_oom(self, namespace: str, container_id: str) -> None:
        """Write the record conmon writes of an OOM kill, for one its cgroup counted:
        conmon misses a kill that ends the container before it reads its eventfd (and
        sees none once it is gone itself), and the record outlives the daemon."""
        MonitorFiles(self._dir(namespace, container_id, None)).oom.touch()

    @staticmethod
    def _process_alive(pid: int | None) -> bool:
        if pid is None:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):  # gone, or exited mid-read (ESRCH)
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"

    def wait(self, namespace: str, container_id: str, exec_id: str | None = None,
             timeout: float | None = None) -> TaskInfo:
        """Block until the init or exec has exited (or `timeout` passed), then its state.
        For threads and tests; the daemon watches `files().exit` with inotify instead."""
        deadline = None if timeout is None else time.monotonic() + timeout
        path = self._dir(namespace, container_id, exec_id)
        while True:
            info = self._probe(namespace, container_id, exec_id, path)
            if info is not None and info.status == Status.STOPPED:
                return info
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return info or self._info(namespace, container_id, exec_id, path,
                                          Status.STOPPED)
            self._await_monitor(path, min(left, 1.0) if left is not None else 1.0)

    def _await_monitor(self, path: Path, timeout: float) -> None:
        """Sleep until the task's conmon exits (its exit file is written then) or
        `timeout` passes; a task without a running conmon (an exec not started, a
        monitor killed) is looked at again after a short nap."""
        files, monitor_id = MonitorFiles(path), self._record(path).get("monitor_id")
        if monitor_id is None or not conmon.is_alive(files, monitor_id):
            time.sleep(min(timeout, _NO_MONITOR_NAP))
            return
        conmon.wait_gone(files, monitor_id, timeout)

    # --- verbs --------------------------------------------------------------------------

    def _what(self, container_id: str, exec_id: str | None) -> str:
        if exec_id is None:
            return f'container "{container_id}"'
        return f'exec "{exec_id}" of container "{container_id}"'

    def _checked(self, verb: Verb, namespace: str, container_id: str,
                 exec_id: str | None) -> TaskInfo:
        info = self.state(namespace, container_id, exec_id)
        check(verb, info.status, self._what(container_id, exec_id))
        return info

    def _runtime(self, namespace: str, container_id: str) -> Runc:
        record = _read_json(self.bundle(namespace, container_id) / "task.json")
        return self._runc(namespace, record["runtime"])

    def start(self, namespace: str, container_id: str, exec_id: str | None = None
              ) -> TaskInfo:
        """Run the user's program (init: `runc start`; exec: conmon runs `runc exec`).
        InvalidArgument unless created; Unavailable when the runtime fails."""
        created = self._checked(Verb.START, namespace, container_id, exec_id)
        if exec_id is not None:
            self._start_exec(namespace, container_id, exec_id)
            return self.state(namespace, container_id, exec_id)
        record_path = self.bundle(namespace, container_id) / "task.json"
        record = _read_json(record_path)
        self._runc(namespace, record["runtime"]).start(container_id)
        # When the program started, kept beside the task's other facts so it outlives
        # the daemon (status, pid and exit come from runc and conmon).
        record["started_at"] = time.time()
        _write_json(record_path, record)
        # The init as it started. Asking its state now would race a quick program's
        # exit, whose exit file conmon writes a moment after the process is gone.
        return dataclasses.replace(created, status=Status.RUNNING,
                                   started_at=record["started_at"])

    def kill(self, namespace: str, container_id: str, signum: int,
             exec_id: str | None = None) -> None:
        """Send `signum` to the init (`runc kill`) or the exec's process. A paused
        container's processes receive it when resumed. InvalidArgument once stopped."""
        info = self._checked(Verb.KILL, namespace, container_id, exec_id)
        if exec_id is None:
            try:
                self._runtime(namespace, container_id).kill(container_id, signum)
            except Unavailable:
                # It exited between the check and the kill: refused as for a stopped one.
                self._checked(Verb.KILL, namespace, container_id, exec_id)
                raise
        elif info.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signum)

    def stop(self, namespace: str, container_id: str, grace: float = 10.0,
             exec_id: str | None = None, signum: int = signal.SIGTERM) -> TaskInfo:
        """`signum` (TERM, or the image's StopSignal), then KILL if it has not exited
        after `grace` seconds; returns the stopped state. A paused container is
        resumed so that it can handle the signal."""
        info = self._checked(Verb.STOP, namespace, container_id, exec_id)
        try:
            self.kill(namespace, container_id, signum, exec_id)
        except InvalidArgument:
            stopped = self.state(namespace, container_id, exec_id)
            if stopped.status == Status.STOPPED:
                return stopped  # it exited by itself since the check: what stop is for
            raise
        if info.status == Status.PAUSED:
            self.resume(namespace, container_id)
        info = self.wait(namespace, container_id, exec_id, timeout=grace)
        if info.status != Status.STOPPED:
            with contextlib.suppress(InvalidArgument):
                self.kill(namespace, container_id, signal.SIGKILL, exec_id)
            info = self.wait(namespace, container_id, exec_id, timeout=_EXIT_WAIT_AFTER_KILL)
        return info

    def reopen_log(self, namespace: str, container_id: str) -> None:
        """conmon starts the init's log afresh at its path (see conmon.reopen_log), as
        CRI's ReopenContainerLog after kubelet renamed the log away; returns once the
        new file is there (conmon does it when it next reads its ctl fifo), so the
        caller may look for it at once. InvalidArgument once stopped: no conmon is
        left to write a log; Unavailable if conmon does not answer in time."""
        self._checked(Verb.REOPEN_LOG, namespace, container_id, None)
        files = MonitorFiles(self.bundle(namespace, container_id))
        before = _inode(files.log)
        conmon.reopen_log(files)
        deadline = time.monotonic() + _REOPEN_WAIT
        while _inode(files.log) in (None, before):
            if time.monotonic() > deadline:
                raise Unavailable(f'reopen-log: conmon of "{container_id}" started no new log '
                                  f"within {_REOPEN_WAIT:g} s")
            time.sleep(0.005)

    def pause(self, namespace: str, container_id: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        self._checked(Verb.PAUSE, namespace, container_id, None)
        self._runtime(namespace, container_id).pause(container_id)

    def resume(self, namespace: str, container_id: str) -> None:
        self._checked(Verb.RESUME, namespace, container_id, None)
        self._runtime(namespace, container_id).resume(container_id)

    def update(self, namespace: str, container_id: str, resources: dict[str, Any]) -> None:
        """Change the container's cgroup limits (`runc update --resources -`), e.g.
        {"memory": {"limit": 67108864}, "pids": {"limit": 100}}."""
        if not isinstance(resources, dict):
            raise InvalidArgument(f"resources: must be an object, not {resources!r}")
        self._checked(Verb.UPDATE, namespace, container_id, None)
        self._runtime(namespace, container_id).update(container_id, resources)

    # --- stdin --------------------------------------------------------------------------

    def write_stdin(self, namespace: str, container_id: str, data: bytes,
                    exec_id: str | None = None) -> int:
        """Send `data` to the process's stdin (it must have been created with stdin).
        The connection to conmon stays open between writes, and across daemon restarts:
        a keeper process holds it too (see stdin_keeper.py), and a new daemon writes
        through the keeper's connection."""
        path = self._dir(namespace, container_id, exec_id)
        self._checked(Verb.WRITE_STDIN, namespace, container_id, exec_id)
        if not self._record(path).get("stdin"):
            raise InvalidArgument(f"{self._what(container_id, exec_id)} has no stdin")
        with self._lock:
            sock = self._stdin.get(path)
            if sock is None:
                if (path / _STDIN_CLOSED).exists():
                    raise InvalidArgument(
                        f"{self._what(container_id, exec_id)}: stdin is closed")
                files = MonitorFiles(path)
                sock = stdin_keeper.reclaim(files)
                if sock is None:
                    sock = conmon.connect_attach(files)
                    keeper = stdin_keeper.keep(files, sock)
                    for done in [p for p, k in self._keepers.items() if k.poll() is not None]:
                        del self._keepers[done]  # reaped: their conmon ended
                    if keeper is not None:
                        self._keepers[path] = keeper
                self._stdin[path] = sock
            try:
                for start in range(0, len(data), conmon.ATTACH_PACKET):
                    sock.sendall(data[start : start + conmon.ATTACH_PACKET])
            except OSError as e:
                del self._stdin[path]
                sock.close()
                raise Unavailable(f"stdin of {self._what(container_id, exec_id)}: "
                                  f"{e.strerror}") from None
        return len(data)

    def close_stdin(self, namespace: str, container_id: str, exec_id: str | None = None
                    ) -> None:
        """Close the process's stdin: it reads end of file. A terminal's input stays
        open (its program reads end of file when ^D is typed), so for a terminal this
        does nothing."""
        path = self._dir(namespace, container_id, exec_id)
        if self._record(path).get("terminal"):
            return
        self._checked(Verb.CLOSE_STDIN, namespace, container_id, exec_id)
        with self._lock:
            (path / _STDIN_CLOSED).touch()
            self._release_keeper(path)
            sock = self._stdin.pop(path, None)
            if sock is None and self._record(path).get("stdin") and self._monitor_started(path):
                sock = self._stdin_connection(namespace, container_id, exec_id)
            if sock is not None:
                sock.close()

    def _stdin_connection(self, namespace: str, container_id: str, exec_id: str | None
                          ) -> socket.socket | None:
        """A connection to the process's stdin, or None when it has exited and its
        stdin went with it. The connection is tried first and the state read only when
        it fails: a process that exits between a check and the connect (conmon gone,
        its attach socket with it) is what closing stdin wanted, not an error."""
        try:
            return conmon.connect_attach(MonitorFiles(self._dir(namespace, container_id,
                                                                exec_id)))
        except Unavailable:
            if self.state(namespace, container_id, exec_id).status == Status.STOPPED:
                return None
            raise

    # --- terminals ----------------------------------------------------------------------

    def terminal(self, namespace: str, container_id: str, exec_id: str | None = None
                 ) -> bool:
        """Whether the process runs on a terminal (its spec said `terminal: true`)."""
        return bool(self._record(self._dir(namespace, container_id, exec_id)).get("terminal"))

    def resize(self, namespace: str, container_id: str, rows: int, cols: int,
               exec_id: str | None = None) -> None:
        """Set the window size of the process's terminal; the program sees it at once
        (SIGWINCH). An exec not started yet gets it as process.consoleSize, the size
        runc gives its terminal at start. InvalidArgument without a terminal, for a
        size out of 1..65535, or once stopped."""
        path = self._dir(namespace, container_id, exec_id)
        what = self._what(container_id, exec_id)
        if not self._record(path).get("terminal"):
            raise InvalidArgument(f"{what} has no terminal")
        for name, value in (("rows", rows), ("columns", cols)):
            if not 0 < value <= _WINDOW_MAX:
                raise InvalidArgument(f"resize: {name} must be 1..{_WINDOW_MAX}, not {value}")
        self._checked(Verb.RESIZE, namespace, container_id, exec_id)
        if self._monitor_started(path):
            conmon.resize(MonitorFiles(path), rows, cols)
            return
        process = _read_json(path / "process.json")
        process["consoleSize"] = {"height": rows, "width": cols}
        _write_json(path / "process.json", process)

    def _record(self, path: Path) -> dict[str, Any]:
        name = "exec.json" if path.parent.name == "execs" else "task.json"
        return _read_json(path / name)

    def _monitor_started(self, path: Path) -> bool:
        return self._record(path).get("monitor_id") is not None

    def _release_keeper(self, path: Path) -> None:
        """End the keeper of the process's stdin connection (and reap it if it is
        this daemon's child). Called with the lock held. Our own child is killed by
        its Popen: just after the fork its cmdline is still ours, not the keeper's, and
        stdin_keeper.release (which checks that, for an earlier daemon's keeper) would
        leave it holding the connection, and the process would never read EOF."""
        keeper = self._keepers.pop(path, None)
        if keeper is not None:
            keeper.kill()
            keeper.wait()
        stdin_keeper.release(MonitorFiles(path))

    def _drop_stdin(self, path: Path) -> None:
        with self._lock:
            for key in [key for key in self._stdin if key == path or path in key.parents]:
                self._release_keeper(key)
                self._stdin.pop(key).close()

    # --- execs --------------------------------------------------------------------------

    def exec(self, namespace: str, container_id: str, exec_id: str, process: dict[str, Any],
             stdin: bool = False) -> TaskInfo:
        """Create an exec (status created; `start` runs it). `process` is an OCI process;
        fields it leaves out (env, cwd, user...) come from the container's process.
        InvalidArgument for a bad process or a container not running, AlreadyExists."""
        bundle = self._dir(namespace, container_id, None)
        identifiers.validate(exec_id, "exec id")
        if not isinstance(process, dict):
            raise InvalidArgument(f"process.json: must be a JSON object, not {process!r}")
        base = {k: v for k, v in self.config(namespace, container_id)["process"].items()
                if k not in ("args", "terminal")}
        full = spec.merge(base, process)
        spec.validate_process(full)
        self._checked(Verb.EXEC, namespace, container_id, None)
        path = bundle / "execs" / exec_id
        path.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f'exec "{exec_id}" exists in "{container_id}"') from None
        _write_json(path / "process.json", full)
        _write_json(path / "exec.json", {"id": exec_id, "stdin": stdin, "monitor_id": None,
                                         "terminal": full.get("terminal", False) is True,
                                         "created_at": time.time()})
        return self.state(namespace, container_id, exec_id)

    def _start_exec(self, namespace: str, container_id: str, exec_id: str) -> None:
        path = self._dir(namespace, container_id, exec_id)
        record = _read_json(path / "exec.json")
        record["monitor_id"] = uuid.uuid4().hex
        record["started_at"] = time.time()
        runtime = _read_json(self.bundle(namespace, container_id) / "task.json")["runtime"]
        launch = self._launch(namespace, container_id, record["monitor_id"], runtime,
                              MonitorFiles(path), record["stdin"],
                              record.get("terminal", False), path / "process.json")
        _write_json(path / "exec.json", record)
        try:
            conmon.spawn(launch)
        except BaseException:
            record["monitor_id"] = None
            del record["started_at"]
            _write_json(path / "exec.json", record)
            raise

    # --- delete and recovery ------------------------------------------------------------

    def delete(self, namespace: str, container_id: str, force: bool = False,
               exec_id: str | None = None) -> None:
        """Remove a created or stopped container (or exec) and all its files, unmounting
        its rootfs. Busy while it runs or is paused, unless `force` (then it is killed)."""
        path = self._dir(namespace, container_id, exec_id)
        info = self.state(namespace, container_id, exec_id)
        if not force:
            check(Verb.DELETE, info.status, self._what(container_id, exec_id))
        if exec_id is not None:
            if info.status == Status.RUNNING:
                self.kill(namespace, container_id, signal.SIGKILL, exec_id)
                self.wait(namespace, container_id, exec_id, timeout=_EXIT_WAIT_AFTER_KILL)
            self._drop_stdin(path)
            shutil.rmtree(path, ignore_errors=True)
            return
        record = _read_json(path / "task.json")
        runtime = self._runc(namespace, record["runtime"])
        if info.status != Status.STOPPED or force:
            runtime.delete(container_id, force=True)
            self.wait(namespace, container_id, timeout=_EXIT_WAIT_AFTER_KILL)
        runtime.delete(container_id, force=True)
        self._drop_stdin(path)
        if record.get("rootfs_mounted"):
            unmount_all(path / "rootfs")
        self._unlink_sockets(path)
        shutil.rmtree(path, ignore_errors=True)

    def _unlink_sockets(self, bundle: Path) -> None:
        """Remove conmon's links (named by monitor id) to the container's directories."""
        ids = {_read_json(bundle / "task.json").get("monitor_id")}
        execs = bundle / "execs"
        if execs.is_dir():
            for name in os.listdir(execs):
                with contextlib.suppress(OSError, ValueError):
                    ids.add(_read_json(execs / name / "exec.json").get("monitor_id"))
        for monitor_id in ids - {None}:
            with contextlib.suppress(FileNotFoundError):
                (self._sockets / str(monitor_id)).unlink()

    def recover(self) -> builtins.list[TaskInfo]:
        """After a daemon restart: the state of every container and exec. A process whose
        conmon died can no longer be watched, so it is killed and recorded as exited
        (137 when cdfs killed it, 255 when it had exited unseen) rather than lost."""
        infos = []
        for namespace, container_id in self.list():
            bundle = self.bundle(namespace, container_id)
            self._reap_orphan(namespace, container_id, None, bundle)
            infos.append(self.state(namespace, container_id))
            for exec_id in self.list_execs(namespace, container_id):
                self._reap_orphan(namespace, container_id, exec_id,
                                  bundle / "execs" / exec_id)
                infos.append(self.state(namespace, container_id, exec_id))
        return infos

    def _reap_orphan(self, namespace: str, container_id: str, exec_id: str | None,
                     path: Path) -> None:
        files = MonitorFiles(path)
        record = self._record(path)
        monitor_id = record.get("monitor_id")
        if monitor_id is None or files.exit.exists() or conmon.is_alive(files, monitor_id):
            return
        info = self.state(namespace, container_id, exec_id)
        status = EXIT_UNKNOWN
        if info.status != Status.STOPPED:
            if exec_id is None:
                self._runc(namespace, record["runtime"]).delete(container_id, force=True)
            elif info.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
            status = 128 + signal.SIGKILL
        temporary = files.dir / ".exit.tmp"
        temporary.write_text(str(status))
        os.replace(temporary, files.exit)
