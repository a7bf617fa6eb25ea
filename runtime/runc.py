"""The OCI runtime's command line (runc and compatibles), one method per subcommand.

Each cdfs namespace gets its own `--root`, so ids need only be unique per namespace.
A failing command raises Unavailable quoting the runtime's own complaint.
"""

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from base.errors import InvalidArgument, NotFound, Unavailable

_TIMEOUT = 60.0
# runc gives up on a cgroup v1 freeze that stays FREEZING through its quick retries
# ("unable to freeze", seen on this 2-core host under load with a busy loop inside) and
# thaws the cgroup again; pause asks again this many times, waiting a little longer
# each time for the machine to let the container's tasks reach the freezer.
_FREEZE_ATTEMPTS = 5


def executable(runtime: str) -> str:
    """The OCI runtime `runtime` (a name looked up on PATH, or a path) as the absolute
    path conmon is given; InvalidArgument, quoting it, when it is no executable. The
    one check behind a container's `runtime` file and every create and exec."""
    found = shutil.which(runtime)
    if found is None:
        raise InvalidArgument(f'runtime: "{runtime}" is not an executable')
    return os.path.abspath(found)


def runtime_message(line: str) -> str:
    """The message of a runc log line (`time=... level=error msg="..."`), or the line,
    with Go's JSON decoding errors said in the spec's terms."""
    quoted = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
    message = quoted.group(1).replace('\\"', '"') if quoted else line.strip()
    return _GO_JSON.sub(_spec_terms, message)


# json: cannot unmarshal string into Go struct field Process.process.args of type []string
_GO_JSON = re.compile(r"json: cannot unmarshal (\w+)(?: -?[\d.e+]+)? into Go "
                      r"(?:struct field \w+\.([\w.]+)|value) of type (\S+)")
_GO_TYPES = (("[]string", "a list of strings"), ("[]", "a list"), ("map[", "an object"),
             ("string", "a string"), ("bool", "true or false"), ("int", "an integer"),
             ("uint", "an integer >= 0"), ("float", "a number"))


def _spec_terms(found: "re.Match[str]") -> str:
    """A Go JSON type error as `the spec's F: a V where T is wanted`."""
    value, field, go_type = found.groups()
    wanted = next((words for prefix, words in _GO_TYPES if go_type.startswith(prefix)),
                  "an object")
    where = f"the spec's {field}" if field else "the spec"
    return f"{where}: {'an' if value[0] in 'aeiou' else 'a'} {value} where {wanted} is wanted"


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), which
    tells a live init from a reused pid; None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _frozen(cgroups: dict[str, str]) -> bool:
    """Whether the container's cgroup is frozen (v1 freezer, or v2 cgroup.freeze)."""
    with contextlib.suppress(OSError):
        if "freezer" in cgroups:
            state = Path(cgroups["freezer"], "freezer.state").read_text().strip()
            return state in ("FROZEN", "FREEZING")
        if "" in cgroups:
            return Path(cgroups[""], "cgroup.freeze").read_text().strip() == "1"
    return False


class Runc:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    def _run(self, *args: str, stdin: bytes | None = None) -> bytes:
        argv = [self.binary, "--root", str(self.root), *args]
        try:
            result = subprocess.run(
                argv, input=stdin, capture_output=True, close_fds=True, timeout=_TIMEOUT,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"{self.binary} {args[0]}: {e}") from None
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            text = runtime_message(message[-1] if message else f"exit status {result.returncode}")
            if "does not exist" in text:
                raise NotFound(f'{self.binary} {args[0]} "{args[-1]}": {text}')
            raise Unavailable(f'{self.binary} {args[0]} "{args[-1]}": {text}')
        return result.stdout

    def state(self, container_id: str) -> dict[str, Any] | None:
        """runc's view of the container (status, pid...), None when it does not know it."""
        try:
            return dict(json.loads(self._run("state", container_id)))
        except NotFound:
            return None

    def status(self, container_id: str) -> str | None:
        """created, running, paused or stopped; None when the runtime does not know the
        container. Read from runc's state.json as `runc state` itself decides it
        (libcontainer's currentStatus), which costs a few file reads instead of a
        process: status files are read often. Runtimes that keep no such file are
        asked with `state`."""
        directory = self.root / container_id
        try:
            saved = json.loads((directory / "state.json").read_bytes())
            pid, started = int(saved["init_process_pid"]), int(saved["init_process_start"])
            cgroups: dict[str, str] = saved.get("cgroup_paths") or {}
        except FileNotFoundError:
            if not directory.exists():
                return None
            state = self.state(container_id)
            return str(state["status"]) if state else None
        except (ValueError, KeyError, TypeError):
            state = self.state(container_id)
            return str(state["status"]) if state else None
        if _start_time(pid) != started:
            return "stopped"
        if (directory / "exec.fifo").exists():
            return "created"
        return "paused" if _frozen(cgroups) else "running"

    def start(self, container_id: str) -> None:
        """Let the created container's init exec the user's program. For runc this is
        what `runc start` does itself (libcontainer's exec): read the init's exec.fifo
        until the init execs, then remove the fifo; done here it saves a runc process
        on the path of every container start. Other runtimes get their `start`."""
        if not self._start_through_fifo(container_id):
            self._run("start", container_id)

    def _start_through_fifo(self, container_id: str) -> bool:
        fifo = self.root / container_id / "exec.fifo"
        if Path(self.binary).name != "runc":
            return False
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            self._read_until_exec(container_id, fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fifo)
        return True

    def _read_until_exec(self, container_id: str, fd: int) -> None:
        """The init writes a byte once the fifo is opened, then execs the program, which
        closes its end (close-on-exec): data, then end of file."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        data = b""
        deadline = time.monotonic() + _TIMEOUT
        while True:
            if poller.poll(100):
                try:
                    chunk = os.read(fd, 64)
                except BlockingIOError:
                    continue
                if chunk:
                    data += chunk
                    continue
                if data:
                    return
            if self.status(container_id) != "created" or time.monotonic() > deadline:
                raise Unavailable(f'{self.binary} start "{container_id}": '
                                  "the container's init is gone")

    def kill(self, container_id: str, signum: int, all_processes: bool = False) -> None:
        self._run("kill", *(["--all"] if all_processes else []), container_id, str(signum))

    def pause(self, container_id: str) -> None:
        for attempt in range(1, _FREEZE_ATTEMPTS + 1):
            try:
                self._run("pause", container_id)
                return
            except Unavailable as e:
                if "unable to freeze" not in str(e) or attempt == _FREEZE_ATTEMPTS:
                    raise
            time.sleep(0.05 * attempt)

    def resume(self, container_id: str) -> None:
        self._run("resume", container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self._run("update", "--resources", "-", container_id,
                  stdin=json.dumps(resources).encode())

    def delete(self, container_id: str, force: bool = False) -> None:
        """Forget the container (killing it first when forced); unknown ids are fine."""
        if self._forget_stopped(container_id):
            return
        with contextlib.suppress(NotFound):
            self._run("delete", *(["--force"] if force else []), container_id)

    def _forget_stopped(self, container_id: str) -> bool:
        """What `runc delete` does for a container whose init has exited (libcontainer's
        destroy): remove its cgroups and its state directory. Done here it saves a runc
        process on every container removal; a container with poststop hooks, or cgroups
        that are not empty yet, is left to runc."""
        directory = self.root / container_id
        if Path(self.binary).name != "runc" or self.status(container_id) != "stopped":
            return False
        try:
            saved = json.loads((directory / "state.json").read_bytes())
            hooks = (saved.get("config") or {}).get("Hooks") or {}
            cgroups = set((saved.get("cgroup_paths") or {}).values())
        except (OSError, ValueError, AttributeError):
            return False
        if hooks.get("poststop"):
            return False
        for path in sorted(cgroups, key=len, reverse=True):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                continue
            except OSError:
                return False
        shutil.rmtree(directory, ignore_errors=True)
        return True
