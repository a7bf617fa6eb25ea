"""What tests share: a real cdfs daemon on temp dirs, and small helpers."""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdfs.config import default_cgroup_parent
from runtime import cgroups
from runtime.logs import LogIndex
from runtime.mounts import unmount_all
from runtime.tasks import TaskService

REPO = Path(__file__).resolve().parent.parent
CDFS = [sys.executable, "-m", "cdfs.cli"]


def mount_id(path: Path) -> str | None:
    """The id of the topmost mount at `path`, or None."""
    target, found = str(path), None
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            if fields[4] == target:
                found = fields[0]
    return found


def is_mounted(path: Path) -> bool:
    return mount_id(path) is not None


def is_served(path: Path) -> bool:
    """Mounted and answered by a live daemon (a dead one's mount says ENOTCONN). The
    mount must be the same before and after the statvfs: a new daemon unmounting a
    stale mount in between would let it answer from the directory underneath."""
    before = mount_id(path)
    if before is None:
        return False
    try:
        os.statvfs(path)
    except OSError:
        return False
    return mount_id(path) == before


def terminate(proc: "subprocess.Popen[bytes]", timeout: float = 15) -> int:
    """A graceful stop (SIGTERM) of a process a test started, and a kill when it does
    not end within `timeout`; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0,
               interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _family(pid: int) -> list[int]:
    """`pid` and its descendants (a `timeout cat FILE`'s cat is its child)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError, ValueError):
                    pending += map(int, Path(f"/proc/{current}/task/{task}/children")
                                   .read_text().split())
    return found


def has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` or a descendant has `path` open."""
    target = str(path)
    for member in _family(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{member}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{member}/fd/{fd}") == target:
                        return True
    return False


def wait_opened(proc: "subprocess.Popen[Any]", path: Path, timeout: float = 20.0) -> None:
    """Return once the reader `proc` started in the background (`timeout cat STREAM`)
    has `path` open: a stream file subscribes at open, so what happens after this is
    what it reads. A fixed sleep instead lost the race on a loaded machine."""
    if not wait_until(lambda: has_open(proc.pid, path) or proc.poll() is not None, timeout):
        raise AssertionError(f"{path} was not opened within {timeout} s")
    if proc.poll() is not None:
        raise AssertionError(f"the reader of {path} ended ({proc.returncode})")


@dataclass
class Daemon:
    """A `cdfs serve` process on temp dirs, with what a test needs to drive it."""

    mount: Path
    root: Path
    state: Path
    log: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Daemon":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*CDFS, "serve", "--mount", str(self.mount), "--root", str(self.root),
                 "--state", str(self.state), "--log-level", "debug", *self.extra_args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        if not wait_until(lambda: is_served(self.mount) or self.proc.poll() is not None):
            raise RuntimeError(f"cdfs did not mount:\n{self.log.read_text()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"cdfs exited {self.proc.returncode}:\n{self.log.read_text()}")
        return self

    def stop(self) -> None:
        """SIGTERM and wait; what does not end is killed and unmounted by force."""
        if self.proc is not None:
            terminate(self.proc)
        self.force_unmount()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=15)

    def force_unmount(self) -> None:
        if is_mounted(self.mount):
            subprocess.run(["fusermount3", "-uz", str(self.mount)], check=False)

    def path(self, *parts: str) -> Path:
        return self.mount.joinpath(*parts)

    @property
    def cgroup_parent(self) -> str:
        """The cgroup its containers go under (/PARENT/NAMESPACE/ID)."""
        if "--cgroup-parent" in self.extra_args:
            return self.extra_args[self.extra_args.index("--cgroup-parent") + 1].strip("/")
        return default_cgroup_parent(self.root)

    def sh(self, script: str, timeout: float = 60, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
        """Run a shell snippet with $M set to the mount."""
        return subprocess.run(["bash", "-c", script], env={**os.environ, "M": str(self.mount)},
                              capture_output=True, text=True, timeout=timeout, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(workdir: Path, htpasswd: Path | None = None
                   ) -> tuple[str, subprocess.Popen[bytes]]:
    """Debian's docker-registry on a free loopback port (with `htpasswd`, one that
    wants Basic credentials of its users); returns host:port and the process (the
    caller kills it). A port taken between finding it free and the registry's bind
    (another program's connection) makes it exit: then another port is tried."""
    for _ in range(4):
        started = _start_registry(workdir, free_port(), htpasswd)
        if started is not None:
            return started
    raise RuntimeError("docker-registry did not start")


def _start_registry(workdir: Path, port: int, htpasswd: Path | None
                    ) -> tuple[str, subprocess.Popen[bytes]] | None:
    config = workdir / "registry.yml"
    settings: dict[str, object] = {
        "version": 0.1, "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "registry")},
                    "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    if htpasswd is not None:
        settings["auth"] = {"htpasswd": {"realm": "cdfs-test", "path": str(htpasswd)}}
    config.write_text(json.dumps(settings))
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                if proc.poll() is None:  # and it runs: one that lost the port exits
                    return f"127.0.0.1:{port}", proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("docker-registry did not start") from None
        if proc.poll() is not None:
            return None
        time.sleep(0.05)


BUSYBOX_APPLETS = ("sh", "echo", "cat", "sleep", "ls", "id", "true", "false", "yes", "head",
                   "wc", "sync", "trap", "kill", "env", "pwd", "dd", "seq")


def make_busybox_rootfs(root: Path) -> Path:
    """A bring-your-own rootfs: /bin/busybox, links to the applets tests use, and the
    directories a container expects."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for name in ("proc", "dev", "sys", "tmp", "etc", "run"):
        (root / name).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


def cleanup_runtime(runtime: Path) -> None:
    """Kill and forget every container and monitor a TaskService on `runtime` started
    (containers and conmon outlive a daemon by design): `runc delete -f` each by id,
    kill each conmon by the pid it recorded (checked against its command line), and
    unmount each rootfs."""
    runc_root = runtime / "runc"
    for namespace in sorted(runc_root.glob("*")):
        for container in sorted(namespace.glob("*")):
            subprocess.run(["runc", "--root", str(namespace), "delete", "-f", container.name],
                           capture_output=True, timeout=30)
    tasks = runtime / "tasks"
    for pid_file in tasks.rglob("conmon.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if str(pid_file.parent).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    for rootfs in tasks.glob("*/*/rootfs"):
        unmount_all(rootfs)


def remove_cgroups(parent: str) -> None:
    """Remove the empty cgroups a daemon left under its cgroup parent: a clean stop
    removes them itself, a kill -9 leaves them."""
    cgroups.remove_empty(f"/{parent}")


IP_TIMEOUT = 60.0
"""iproute2 waits for the kernel's RTNL lock, which a busy machine's network namespace
teardowns (other test runs' pods, bridges, iptables) can hold for more than 10 s."""


def ip(*args: str) -> str:
    """iproute2, the independent witness of network namespaces and links."""
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True,
                          timeout=IP_TIMEOUT).stdout


def listed() -> list[str]:
    """The names `ip netns list` shows."""
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


@dataclass
class Names:
    """Unique network namespace and interface names for one test; `delete` removes
    whatever exists of them (the `names` fixture calls it at teardown)."""

    token: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    host_ifs: list[str] = field(default_factory=list)

    def namespace(self) -> str:
        name = f"cdfs-t-{self.token}-{len(self.namespaces)}"
        self.namespaces.append(name)
        return name

    def host_if(self) -> str:
        name = f"cdfs{self.token}h{len(self.host_ifs)}"
        self.host_ifs.append(name)
        return name

    def delete(self) -> None:
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True,
                           timeout=IP_TIMEOUT)
        for ifname in self.host_ifs:
            subprocess.run(["ip", "link", "delete", ifname], capture_output=True,
                           timeout=IP_TIMEOUT)


def write(path: Path, text: str) -> None:
    """Write `text` in one write(), as `echo text > path` does: errors come from it."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def write_errno(path: Path, line: str) -> int:
    """Write one line in one write(): the errno it was refused with, or 0."""
    try:
        write(path, line + "\n")
    except OSError as exc:
        return exc.errno or -1
    return 0


def task_output(service: TaskService, stream: str, namespace: str, container_id: str,
                exec_id: str | None = None) -> bytes:
    """Everything a task wrote to `stream` so far, read as the daemon reads it."""
    index = LogIndex(service.files(namespace, container_id, exec_id).log, cap=1 << 40)
    try:
        return index.read(stream, 0, 1 << 24)[1]
    finally:
        index.close()
