"""What every benchmark needs: a cdfs daemon, a containerd and a docker-registry of its
own on temp dirs, each stopped by pid with whatever it started, and the arithmetic of
the results table.

Everything here cleans up after itself even when a benchmark fails half way: the
`Stack` an `open_*` function is given owns the teardown, in reverse order of starting.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime import conmon
from runtime.mounts import unmount_all

Stack = contextlib.ExitStack
BUSYBOX = "cdfs.local/busybox:latest"
NAMESPACE = "cdfs-bench"  # containerd's; also the parent cgroup of its containers


# -- arithmetic and output ---------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p90(values: Sequence[float]) -> float:
    """The 90th percentile, nearest rank (with 20 samples: the 18th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]


@dataclass(frozen=True)
class Target:
    """What a figure should be: at most `limit` times its anchor (or, with
    `absolute`, at most `limit` in the row's own unit); `strict` for "below"."""

    limit: float
    absolute: bool = False
    strict: bool = False

    def text(self, row: "Row") -> str:
        sign = "<" if self.strict else "≤"
        if self.absolute:
            return f"{sign} {self.limit:g} {row.unit}"
        return f"{sign} {self.limit:g} x {row.anchor}"

    def met(self, row: "Row") -> bool | None:
        value = row.cdfs if self.absolute else row.ratio
        if value is None or value != value:  # no anchor measured, or NaN
            return None
        return value < self.limit if self.strict else value <= self.limit


@dataclass(frozen=True)
class Row:
    """One line of a results table: a figure for cdfs, the anchor it is measured
    beside in the same run (containerd, runc, GNU tar, the pyfuse3 floor...), and the
    target, if the figure has one."""

    measure: str
    unit: str
    cdfs: float
    anchor: str = ""
    against: float | None = None
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        return self.cdfs / self.against if self.against else None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        met = self.target.met(self)
        return "no figure" if met is None else ("**met**" if met else "**missed**")


def _cell(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (what bench/README.md holds)."""
    lines = ["| measure | unit | cdfs | anchor | anchor's | ratio | target | verdict |",
             "|---|---|---:|---|---:|---:|---|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        target = row.target.text(row) if row.target else ""
        lines.append(f"| {row.measure} | {row.unit} | {_cell(row.cdfs)} | {row.anchor} | "
                     f"{_cell(row.against)} | {ratio} | {target} | {row.verdict} |")
    return "\n".join(lines) + "\n"


def against_targets(rows: Sequence[Row]) -> str:
    """The verdicts alone, one line per target: the summary bench/README.md keeps
    generated so it can never contradict the table."""
    lines = []
    for row in rows:
        if row.target is not None:
            shown = f"{_cell(row.cdfs)} {row.unit}"
            if row.against is not None and not row.target.absolute:
                shown += f" against {_cell(row.against)} ({row.ratio:.2f} x {row.anchor})"
            lines.append(f"- {row.measure}: {shown}; target {row.target.text(row)}: "
                         f"{row.verdict}")
    met = sum(1 for row in rows if row.target is not None and row.target.met(row))
    total = sum(1 for row in rows if row.target is not None)
    return f"{met} of {total} targets met in this run.\n\n" + "\n".join(lines) + "\n"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` took, by the monotonic clock."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# -- processes -----------------------------------------------------------------------------
def run(command: Sequence[str], timeout: float = 300, **kwargs: object) -> str:
    """Run a command that must succeed; its stdout. A failure quotes its stderr."""
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                            check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {result.returncode}: {result.stderr}")
    return str(result.stdout)


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def pids_of(executable: str, marker: str) -> list[int]:
    """Pids of the processes running `executable` whose command line names `marker` (a
    path under one of our temp dirs): never someone else's process."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = cmdline(int(entry))
            if line.split(b"\0")[0].endswith(executable.encode()) and marker.encode() in line:
                found.append(int(entry))
    return found


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)


def unmount_under(directory: Path) -> None:
    """Lazily unmount every mount below `directory`, deepest first (rootfs overlays a
    killed shim or monitor left behind)."""
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        targets = [line.split()[4] for line in mountinfo]
    for target in sorted({t for t in targets if t.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)


def temp_dir(stack: Stack, prefix: str) -> Path:
    """A fresh directory under /tmp, removed at teardown (short: socket paths must fit
    in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=f"cdfs-bench-{prefix}-", dir="/tmp"))
    stack.callback(shutil.rmtree, path, True)
    stack.callback(unmount_under, path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- docker-registry -----------------------------------------------------------------------
def open_registry(stack: Stack, home: Path) -> str:
    """Debian's docker-registry on a free loopback port; returns host:port."""
    port = free_port()
    config = home / "registry.yml"
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(home / "registry")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(stop_process, proc)

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("docker-registry exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        return False

    wait_until(listening, 15, "docker-registry listening")
    return f"127.0.0.1:{port}"


class Throttle:
    """A loopback TCP relay in front of a registry that passes its replies on at no
    more than `rate` bytes a second, all connections together: a pull through it lasts
    as long as the bench needs it to (requests go through unslowed)."""

    def __init__(self, upstream: str, rate: float) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._free_at = time.monotonic()  # when the shared line is next free
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.upstream)
                self._sockets += [client, server]
                threading.Thread(target=self._pump, args=(client, server, False),
                                 daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client, True),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, slowed: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(16384):
                if slowed:
                    self._wait_for_line(len(data))
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _wait_for_line(self, size: int) -> None:
        with self._lock:
            sent_by = max(time.monotonic(), self._free_at) + size / self.rate
            self._free_at = sent_by
        time.sleep(max(0.0, sent_by - time.monotonic()))

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def open_throttle(stack: Stack, upstream: str, rate: float) -> str:
    """A `Throttle` in front of `upstream` (host:port), closed at teardown; its
    host:port."""
    throttle = Throttle(upstream, rate)
    stack.callback(throttle.close)
    return throttle.address


# -- cdfs ----------------------------------------------------------------------------------
@dataclass
class Cdfs:
    """A `cdfs serve` daemon on a temp dir: mnt/, root/, state/ and daemon.log."""

    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def mount(self) -> Path:
        return self.home / "mnt"

    @property
    def state(self) -> Path:
        return self.home / "state"

    def path(self, *parts: str) -> Path:
        return self.mount.joinpath(*parts)

    def ns(self, *parts: str) -> Path:
        """A path in the default namespace, the one that holds the busybox image."""
        return self.path("namespaces", "default", *parts)

    def images_ctl(self, line: str) -> None:
        write(self.ns("images", "ctl"), line + "\n")


def write(path: Path, text: str) -> None:
    """One write(2) of `text`, as `echo text > path` does; an OSError says why."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _is_served(mount: Path) -> bool:
    with open("/proc/self/mountinfo") as mountinfo:
        if not any(line.split()[4] == str(mount) for line in mountinfo):
            return False
    try:
        os.statvfs(mount)
    except OSError:
        return False
    return True


def open_cdfs(stack: Stack, home: Path | None = None) -> Cdfs:
    """A cdfs daemon; stopped at teardown after its
    containers are killed (runc delete -f by id, conmon by its recorded pid)."""
    home = home or temp_dir(stack, "cdfs")
    for sub in ("mnt", "root", "state"):
        (home / sub).mkdir()
    with open(home / "daemon.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cdfs.cli", "serve", "--mount", str(home / "mnt"),
             "--root", str(home / "root"), "--state", str(home / "state"),
             "--log-level", "warning"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    daemon = Cdfs(home, proc)
    stack.callback(_stop_cdfs, daemon)
    stack.callback(kill_tasks, daemon.state)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"cdfs exited:\n{(home / 'daemon.log').read_text()}")
        return _is_served(daemon.mount)

    wait_until(up, 30, "cdfs mounted")
    return daemon


def kill_tasks(state: Path) -> None:
    """Kill and unmount the containers a TaskService under `state`/runtime left (a
    daemon's, or the bench's own): runc delete -f by id, conmon by its recorded pid."""
    runc_root = state / "runtime" / "runc"
    for namespace_root in runc_root.glob("*"):
        for container_id in os.listdir(namespace_root):
            subprocess.run(["runc", "--root", str(namespace_root), "delete", "-f", container_id],
                           capture_output=True, timeout=30, check=False)
    for pid_file in (state / "runtime" / "tasks").rglob("conmon.pid"):
        pid = conmon.read_int(pid_file)
        if pid and str(pid_file.parent).encode() in cmdline(pid):
            kill_pid(pid)
    for rootfs in (state / "runtime" / "tasks").glob("*/*/rootfs"):
        unmount_all(rootfs)


def _stop_cdfs(daemon: Cdfs) -> None:
    stop_process(daemon.proc)
    if _is_served(daemon.mount) or daemon.mount.is_mount():
        subprocess.run(["fusermount3", "-uz", str(daemon.mount)], capture_output=True,
                       check=False)


# -- containerd ----------------------------------------------------------------------------
@dataclass
class Containerd:
    """A containerd of our own: root, state, socket and runc root under one temp dir."""

    home: Path
    proc: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.home / "sock"

    @property
    def runc_root(self) -> Path:
        return self.home / "runc"

    def ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args]

    def shim_pids(self) -> list[int]:
        return pids_of("containerd-shim-runc-v2", str(self.socket))


def open_containerd(stack: Stack) -> Containerd:
    """containerd with the CRI plugin off; at teardown its tasks are killed through ctr,
    then containerd and every shim that names our socket, by pid."""
    home = temp_dir(stack, "ctrd")
    (home / "config.toml").write_text(
        f'version = 2\nroot = "{home}/root"\nstate = "{home}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{home}/sock"\n')
    with open(home / "log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(home / "config.toml")],
                                stdout=log, stderr=subprocess.STDOUT)
    daemon = Containerd(home, proc)
    stack.callback(_stop_containerd, daemon)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"containerd exited:\n{(home / 'log').read_text()}")
        return daemon.socket.exists()

    wait_until(up, 30, "containerd listening")
    return daemon


def _stop_containerd(daemon: Containerd) -> None:
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        listing = subprocess.run(daemon.ctr("tasks", "ls", "-q"), capture_output=True,
                                 text=True, timeout=60, check=False).stdout.split()
        for task in listing:
            subprocess.run(daemon.ctr("tasks", "kill", "-s", "KILL", task),
                           capture_output=True, timeout=30, check=False)
        for task in listing:
            subprocess.run(daemon.ctr("tasks", "delete", "-f", task), capture_output=True,
                           timeout=30, check=False)
            subprocess.run(daemon.ctr("containers", "delete", task), capture_output=True,
                           timeout=30, check=False)
    shims = daemon.shim_pids()
    stop_process(daemon.proc)
    for pid in shims:
        kill_pid(pid)
    if daemon.runc_root.is_dir():
        for container_id in os.listdir(daemon.runc_root):
            subprocess.run(["runc", "--root", str(daemon.runc_root), "delete", "-f",
                            container_id], capture_output=True, timeout=30, check=False)
    for parent in Path("/sys/fs/cgroup").glob(f"*/{NAMESPACE}"):
        with contextlib.suppress(OSError):  # gone already, or (not ours) still in use
            parent.rmdir()


# -- memory ----------------------------------------------------------------------------------
def memory_kib(pid: int, field: str = "Pss") -> int:
    """A process's memory in KiB: `Rss` or `Pss` from smaps_rollup (Pss splits shared
    pages between the processes that map them)."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process, from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the pyfuse3 floor -----------------------------------------------------------------------
FLOOR = Path(__file__).resolve().parent / "floor.py"


@dataclass
class Floor:
    """bench/floor.py serving its one file, `value`."""

    value: Path
    pid: int


def open_floor(stack: Stack) -> Floor:
    """bench/floor.py serving its one file on a temp dir."""
    mount = temp_dir(stack, "floor")
    proc = subprocess.Popen([sys.executable, str(FLOOR), str(mount)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(_stop_floor, proc, mount)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError("bench/floor.py exited")
        return _is_served(mount)

    wait_until(up, 15, "floor mounted")
    return Floor(mount / "value", proc.pid)


@contextlib.contextmanager
def one_cpu(*servers: int) -> Iterator[None]:
    """Run this process and every thread of the `servers` (pids) on one CPU until the
    block ends; threads they start meanwhile inherit it.
    On an idle 2-vCPU machine the scheduler otherwise places each server on the
    reader's CPU or on the other one as history has it, and a FUSE round trip across
    the two costs ~70 µs more than one on the reader's CPU: which server of two got
    which placement decided their ratio (1x or 2x at the same per-request cost)."""
    def everyone(cpus: set[int]) -> None:
        for tid in [0, *(int(t) for pid in servers for t in os.listdir(f"/proc/{pid}/task"))]:
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setaffinity(tid, cpus)

    allowed = os.sched_getaffinity(0)
    everyone({min(allowed)})
    try:
        yield
    finally:
        everyone(allowed)


def _stop_floor(proc: subprocess.Popen[bytes], mount: Path) -> None:
    stop_process(proc)
    if _is_served(mount) or mount.is_mount():
        subprocess.run(["fusermount3", "-uz", str(mount)], capture_output=True, check=False)
