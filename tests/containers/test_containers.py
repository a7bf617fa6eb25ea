"""containers/ through the mounted tree, with real runc, conmon and the busybox image,
driven by plain os calls as a user's program would."""

import errno
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import REPO, Daemon, wait_opened, wait_until, write

from content.archive import export_archive
from content.build import BuildConfig, Entry, Layer, build_image
from content.store import ContentStore

BUSYBOX = "cdfs.local/busybox:latest"


def read_with_timeout(path: Path, timeout: float = 20) -> str:
    """A blocking stream read, bounded: `timeout` kills the reader."""
    result = subprocess.run(["timeout", str(timeout), "cat", str(path)], capture_output=True,
                            text=True, timeout=timeout + 10)
    assert result.returncode == 0, f"reading {path}: {result.returncode} {result.stderr}"
    return result.stdout


def first_line(path: Path, timeout: float = 20) -> str:
    """The first line of a stream, without waiting for its end."""
    result = subprocess.run(["timeout", str(timeout), "head", "-n1", str(path)],
                            capture_output=True, text=True, timeout=timeout + 10)
    return result.stdout.strip()



def refused(path: Path, text: str) -> int:
    """The errno of a refused write of `text` to `path` (fails the test if accepted)."""
    with pytest.raises(OSError) as refusal:
        write(path, text)
    return refusal.value.errno


class Container:
    def __init__(self, daemon: Daemon, name: str, namespace: str = "default") -> None:
        self.dir = daemon.path("namespaces", namespace, "containers", name)

    def __truediv__(self, name: str) -> Path:
        return self.dir / name

    def make(self, args: list[str] | None = None, image: str = BUSYBOX,
             **config: Any) -> "Container":
        self.dir.mkdir()
        if image:
            write(self / "image", image + "\n")
        if args is not None:
            config = {**config, "process": {**config.get("process", {}), "args": args}}
        write(self / "config.json", json.dumps(config))
        return self

    def ctl(self, line: str) -> None:
        write(self / "ctl", line + "\n")

    def value(self, name: str) -> str:
        return (self / name).read_text().strip()

    def wait(self) -> int:
        return int(read_with_timeout(self / "wait"))


def run(daemon: Daemon, name: str, args: list[str]) -> Container:
    container = Container(daemon, name).make(args)
    container.ctl("start")
    return container


class Events:
    """The namespace's events, read by `timeout cat` in the background."""

    def __init__(self, daemon: Daemon, namespace: str = "default") -> None:
        path = daemon.path("namespaces", namespace, "events")
        self.proc = subprocess.Popen(["timeout", "60", "cat", str(path)],
                                     stdout=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        wait_opened(self.proc, path)  # open before the events to see

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def topics(self, container_id: str) -> list[str]:
        return [e["topic"] for e in self.lines
                if e.get("container_id", e["id"]) == container_id]

    def topics_once(self, container_id: str, count: int, timeout: float = 20) -> list[str]:
        """The container's topics once `count` have come: an exit is published after
        the read of `wait` that tells it can return."""
        wait_until(lambda: len(self.topics(container_id)) >= count, timeout)
        return self.topics(container_id)

    def wait_for(self, topic: str, timeout: float = 20) -> dict[str, Any]:
        assert wait_until(lambda: any(e["topic"] == topic for e in self.lines), timeout)
        return next(e for e in self.lines if e["topic"] == topic)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def test_lifecycle_output_exit_and_events_in_order(daemon: Daemon) -> None:
    events = Events(daemon)
    try:
        c = Container(daemon, "web")
        c.dir.mkdir()
        assert c.value("status") == "empty"
        assert sorted(os.listdir(daemon.path("containers"))) == ["err", "list", "web"]
        write(c / "image", "cdfs.local/busybox\n")
        assert c.value("image") == BUSYBOX
        write(c / "labels", "app=web\ntier=front\n")
        write(c / "config.json", json.dumps({"process": {
            "args": ["sh", "-c", "echo out; echo err >&2; pwd; echo $GREETING; exit 3"],
            "env": ["GREETING=hi"], "cwd": "/tmp"}}))
        assert c.value("status") == "created"
        assert int(c.value("pid")) > 0
        spec = json.loads((c / "config.json").read_text())
        assert spec["process"]["args"][0] == "sh"
        assert "GREETING=hi" in spec["process"]["env"]
        assert any(e.startswith("PATH=") for e in spec["process"]["env"])  # from the image
        c.ctl("start")
        assert c.wait() == 3
        assert read_with_timeout(c / "follow" / "stdout") == "out\n/tmp\nhi\n"
        assert read_with_timeout(c / "follow" / "stderr") == "err\n"
        log = read_with_timeout(c / "follow" / "log").splitlines()
        # two pipes: stdout's lines keep their order, stderr's may come between
        assert sorted(line.split(" ", 1)[1] for line in log) == [
            "stderr F err", "stdout F /tmp", "stdout F hi", "stdout F out"]
        assert c.value("status") == "stopped" and c.value("exit") == "3"
        assert c.value("pid") == ""
        assert c.value("labels").splitlines() == ["app=web", "tier=front"]
        c.dir.rmdir()
        assert not c.dir.exists()
        events.wait_for("/containers/delete")
        assert events.topics("web") == [
            "/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit",
            "/tasks/delete", "/containers/delete"]
        exit_event = next(e for e in events.lines if e["topic"] == "/tasks/exit")
        assert exit_event["exit_status"] == 3 and exit_event["exited_at"].endswith("Z")
        assert exit_event["container_id"] == "web" and exit_event["pid"] > 0
    finally:
        events.close()


def test_ls_l_of_an_empty_slot_lists_no_rootfs(daemon: Daemon) -> None:
    """A listing skips a rootfs that is not there yet (its refusal escaped readdir
    and ended the daemon) and says of a mounted one only that it is a directory,
    whose real attributes stat gives."""
    c = Container(daemon, "slot")
    c.dir.mkdir()
    listing = subprocess.run(["ls", "-l", str(c.dir)], capture_output=True, text=True,
                             timeout=10)
    assert listing.returncode == 0, listing.stderr
    assert " rootfs" not in listing.stdout and " status" in listing.stdout
    write(c / "image", "cdfs.local/busybox\n")
    write(c / "config.json", json.dumps({"process": {"args": ["true"]}}))
    listed = subprocess.run(["ls", "-l", "--time-style=+%s", str(c.dir)], capture_output=True,
                            text=True, timeout=10, check=True).stdout
    rootfs = next(line for line in listed.splitlines() if line.endswith(" rootfs"))
    real = daemon.state / "runtime" / "tasks" / "default" / "slot" / "rootfs"
    assert rootfs.startswith("d") and f" {int(real.stat().st_mtime)} " in rootfs
    c.dir.rmdir()


STATE_VALUES = ("status", "pid", "exit", "created", "started", "exited")


def _sizes(directory: Path) -> dict[str, int]:
    """st_size of each value of the task's state, by stat alone (a read would make
    the kernel ask for the attributes again anyway: it marks their atime stale)."""
    return {name: (directory / name).stat().st_size for name in STATE_VALUES}


def _read_sizes(directory: Path) -> dict[str, int]:
    return {name: len((directory / name).read_bytes()) for name in STATE_VALUES}


def test_a_stat_of_state_values_is_current_after_each_change(daemon: Daemon) -> None:
    """The kernel keeps the attributes of status, pid, exit and the times (and of
    wait, stdin and tty, dated by the container), and the tree withdraws them at each
    change of the task: the stat right after the write that made the change (or after
    `wait`) gives the new size and time, for execs too."""
    c = Container(daemon, "kept")
    c.dir.mkdir()
    assert _sizes(c.dir)["status"] == len("empty\n")
    write(c / "image", "cdfs.local/busybox\n")
    write(c / "config.json", json.dumps({"process": {"args": ["sleep", "100"]}}))
    created = _sizes(c.dir)
    assert created["status"] == len("created\n") and created["started"] == 0
    assert created == _read_sizes(c.dir)
    assert _sizes(c.dir)["started"] == 0  # kept by the kernel from here
    dated = {name: (c / name).stat().st_mtime_ns for name in ("wait", "stdin", "tty")}
    c.ctl("start")
    started = _sizes(c.dir)
    assert started["started"] > 0 and started["exit"] == 0
    for name, mtime in dated.items():  # dated by the container, which just started
        assert (c / name).stat().st_mtime_ns > mtime, name
    run_exec = c / "exec" / "e"
    run_exec.mkdir()
    assert _sizes(run_exec)["status"] == len("empty\n")
    write(run_exec / "process.json", json.dumps({"args": ["true"]}))
    assert _sizes(run_exec)["exit"] == 0
    write(run_exec / "ctl", "start\n")
    assert read_with_timeout(run_exec / "wait") == "0\n"
    ran = _sizes(run_exec)
    assert ran["exit"] == 2 and ran["exited"] > 0 and ran == _read_sizes(run_exec)
    c.ctl("kill KILL")
    assert c.wait() == 137
    stopped = _sizes(c.dir)
    assert stopped["exit"] == len("137\n") and stopped["pid"] == 0 and stopped["exited"] > 0
    assert stopped == _read_sizes(c.dir)
    run_exec.rmdir()
    c.dir.rmdir()
    c.dir.mkdir()  # a new slot of the same name: empty again
    assert _sizes(c.dir) == {**dict.fromkeys(STATE_VALUES, 0), "status": len("empty\n")}
    c.dir.rmdir()


def test_an_end_no_monitor_saw_shows_in_a_stat(daemon: Daemon) -> None:
    """With its conmon killed (-9), a container's end writes no exit file; the tree
    sees the process end itself and withdraws what the kernel keeps of its status,
    so a stat shows the change long before the kernel's own 5 s are up."""
    c = run(daemon, "orphan", ["sleep", "100"])
    pid = int(c.value("pid"))
    task = daemon.state / "runtime" / "tasks" / "default" / "orphan"
    os.kill(int((task / "conmon.pid").read_text()), signal.SIGKILL)
    assert c.value("status") == "running"  # the container outlives its monitor
    running = (c / "status").stat()  # kept by the kernel from here
    os.kill(pid, signal.SIGKILL)

    def changed() -> bool:
        now = (c / "status").stat()
        return (now.st_size, now.st_mtime_ns) != (running.st_size, running.st_mtime_ns)

    assert wait_until(changed, timeout=3)
    assert c.value("status") == "stopped"
    c.dir.rmdir()


def test_a_stat_of_a_setting_is_current_after_its_store(daemon: Daemon) -> None:
    """The kernel keeps the attributes of image, netns, logpath, labels and runtime
    (only their writes change them) and drops them at each write; a value stored at
    close, after a stat fetched the old size in between, is withdrawn by the store."""
    c = Container(daemon, "settings")
    c.dir.mkdir()
    write(c / "labels", "a=1\n")
    assert (c / "labels").stat().st_size == len("a=1\n")
    with open(c / "labels", "w") as labels:
        labels.write("longer=2")  # no line end: stored at close
        labels.flush()
        assert (c / "labels").stat().st_size == len("a=1\n")  # not stored yet
    assert (c / "labels").stat().st_size == len("longer=2\n")
    assert (c / "labels").read_text() == "longer=2\n"
    write(c / "image", "cdfs.local/busybox\n")
    assert (c / "image").stat().st_size == len(BUSYBOX + "\n")  # the name it resolved to
    c.dir.rmdir()


def test_exit_codes_of_signals(daemon: Daemon) -> None:
    killed = run(daemon, "killed", ["sleep", "100"])
    trapping = run(daemon, "trapping", ["sh", "-c", "trap 'exit 143' TERM; echo ready; "
                                        "while true; do sleep 0.1; done"])
    assert first_line(trapping / "follow" / "stdout") == "ready"  # the trap is set
    killed.ctl("kill KILL")
    assert killed.wait() == 137
    trapping.ctl("kill")  # TERM by default
    assert trapping.wait() == 143
    assert trapping.value("exit") == "143"
    quick = run(daemon, "quick", ["true"])
    assert quick.wait() == 0


def test_status_read_right_after_wait_shows_the_exit(daemon: Daemon) -> None:
    """The daemon remembers task states between events: the exit must show in the
    very next read after `wait` returns, even before the watcher's event about it."""
    for attempt in range(5):
        c = run(daemon, f"gone{attempt}", ["sleep", "100"])
        assert c.value("status") == "running"  # remembered as running
        c.ctl("kill KILL")
        shown = daemon.sh(f'cd "{c.dir}" && cat wait status exit pid', timeout=30).stdout
        assert shown.split() == ["137", "stopped", "137"]


def test_stop_waits_the_grace_period_then_kills(daemon: Daemon) -> None:
    stubborn = run(daemon, "stubborn", ["sleep", "100"])  # pid 1 ignores TERM
    started = time.monotonic()
    stubborn.ctl("stop 1")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 6, elapsed
    assert stubborn.value("status") == "stopped" and stubborn.value("exit") == "137"
    polite = run(daemon, "polite", ["sh", "-c", "trap 'exit 143' TERM; echo ready; "
                                    "while true; do sleep 0.1; done"])
    assert first_line(polite / "follow" / "stdout") == "ready"
    started = time.monotonic()
    polite.ctl("stop 30")
    assert time.monotonic() - started < 5
    assert polite.value("exit") == "143"


def test_stdin_is_piped_into_cat(daemon: Daemon) -> None:
    c = run(daemon, "cat", ["cat"])
    daemon.sh(f'printf "one\\ntwo\\n" > "{c / "stdin"}"')  # closing sends EOF
    assert c.wait() == 0
    assert read_with_timeout(c / "follow" / "stdout") == "one\ntwo\n"
    d = run(daemon, "cat2", ["sh", "-c", "cat; echo eof"])
    write(d / "stdin", "kept open? no: ")
    assert d.wait() == 0
    assert read_with_timeout(d / "follow" / "stdout") == "kept open? no: eof\n"
    e = run(daemon, "cat3", ["cat"])
    with open(e / "stdin", "wb", buffering=0) as stdin:
        stdin.write(b"a\n")
        stdin.write(b"b\n")
        e.ctl("closeio")
        assert e.wait() == 0
    assert read_with_timeout(e / "follow" / "stdout") == "a\nb\n"


def test_stdout_follows_a_running_container(daemon: Daemon) -> None:
    c = run(daemon, "ticker", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done"])
    started = time.monotonic()
    assert read_with_timeout(c / "follow" / "stdout") == "1\n2\n3\n"  # returns at exit, not before
    assert time.monotonic() - started > 0.5


def test_live_output_starts_at_the_moment_of_opening(daemon: Daemon) -> None:
    c = run(daemon, "talker", ["sh", "-c", "echo before; echo early >&2; read go; "
                                           "echo after; echo late >&2"])
    assert first_line(c / "follow" / "stdout") == "before"
    assert wait_until(lambda: (c / "stderr").read_text() == "early\n", 10)
    out, err = (subprocess.Popen(["timeout", "20", "cat", str(c / "follow" / "now" / name)],
                                 stdout=subprocess.PIPE, text=True)
                for name in ("stdout", "stderr"))
    wait_opened(out, c / "follow" / "now" / "stdout")  # both opened before it goes on
    wait_opened(err, c / "follow" / "now" / "stderr")
    write(c / "stdin", "go\n")
    assert c.wait() == 0
    assert out.communicate(timeout=25)[0] == "after\n" and out.returncode == 0
    assert err.communicate(timeout=25)[0] == "late\n" and err.returncode == 0
    assert read_with_timeout(c / "follow" / "now" / "stdout") == ""  # opened after the exit


def test_exec_has_its_own_output_exit_and_events(daemon: Daemon) -> None:
    events = Events(daemon)
    try:
        c = run(daemon, "host", ["sleep", "100"])
        e = c.dir / "exec" / "probe"
        e.mkdir()
        assert (e / "status").read_text() == "empty\n"
        write(e / "process.json", json.dumps(
            {"args": ["sh", "-c", "echo from exec; echo oops >&2; exit 7"]}))
        assert (e / "status").read_text() == "created\n"
        assert json.loads((e / "process.json").read_text())["cwd"] == "/"
        write(e / "ctl", "start\n")
        assert int(read_with_timeout(e / "wait")) == 7
        assert read_with_timeout(e / "follow" / "stdout") == "from exec\n"
        assert read_with_timeout(e / "follow" / "stderr") == "oops\n"
        assert c.value("status") == "running"
        term = c.dir / "exec" / "term"
        term.mkdir()
        write(term / "process.json", json.dumps({"args": ["sleep", "100"]}))
        write(term / "ctl", "start\n")
        assert wait_until(lambda: (term / "pid").read_text() != "")
        with pytest.raises(OSError) as busy:
            term.rmdir()
        assert busy.value.errno == errno.EBUSY
        write(term / "ctl", "kill TERM\n")  # not pid 1: TERM's default action kills it
        assert int(read_with_timeout(term / "wait")) == 143
        assert sorted(os.listdir(c.dir / "exec")) == ["probe", "term"]
        term.rmdir()
        assert os.listdir(c.dir / "exec") == ["probe"]
        c.ctl("kill KILL")
        assert c.wait() == 137
        assert events.topics_once("host", 10) == [
            "/containers/create", "/tasks/create", "/tasks/start",
            "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit",
            "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/exit"]
        exits = [e for e in events.lines if e["topic"] == "/tasks/exit"]
        assert [(x["id"], x["exit_status"]) for x in exits] == [
            ("probe", 7), ("term", 143), ("host", 137)]
    finally:
        events.close()


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_pause_stops_cpu_and_resume_restarts_it(daemon: Daemon) -> None:
    events = Events(daemon)
    try:
        c = run(daemon, "busy", ["sh", "-c", "while true; do :; done"])
        pid = int(c.value("pid"))
        c.ctl("pause")
        assert c.value("status") == "paused"
        with pytest.raises(OSError) as busy:
            c.dir.rmdir()
        assert busy.value.errno == errno.EBUSY
        before = cpu_ticks(pid)
        time.sleep(0.5)
        assert cpu_ticks(pid) == before
        c.ctl("resume")
        assert c.value("status") == "running"
        assert wait_until(lambda: cpu_ticks(pid) > before, 10)  # however loaded the host
        c.ctl("kill KILL")
        assert c.wait() == 137
        assert events.topics_once("busy", 6)[2:] == [
            "/tasks/start", "/tasks/paused", "/tasks/resumed", "/tasks/exit"]
    finally:
        events.close()


def test_rmdir_refused_while_running_and_namespace_stays_busy(daemon: Daemon,
                                                              own_rootfs: Path) -> None:
    daemon.path("namespaces", "team").mkdir()
    c = Container(daemon, "svc", "team").make(["sleep", "100"], image="",
                                              root={"path": str(own_rootfs)})
    c.ctl("start")
    with pytest.raises(OSError) as busy:
        c.dir.rmdir()
    assert busy.value.errno == errno.EBUSY
    assert '"svc" is running' in daemon.path("namespaces", "team", "containers", "err")\
        .read_text()
    assert c.value("status") == "running"
    with pytest.raises(OSError) as ns_busy:
        daemon.path("namespaces", "team").rmdir()
    assert ns_busy.value.errno == errno.EBUSY
    assert "svc" not in os.listdir(daemon.path("containers"))  # namespaces are apart
    c.ctl("stop 0")
    c.dir.rmdir()
    daemon.path("namespaces", "team").rmdir()


BAD_CONFIGS = [
    ("{not json\n", "invalid JSON at line 1"),
    ('["a list"]\n', "must be a JSON object"),
    ('{"process": {"args": []}}', "process.args: must be a non-empty list"),
    ('{"process": {"args": "sh"}}', "process.args: must be a non-empty list"),
    ('{"process": {"user": {"uid": "bob"}}}', "process.user.uid"),
    ('{"hostname": 7}', "hostname: must be a string"),
    ('{"mounts": [{"destination": "tmp", "type": "tmpfs", "source": "x"}]}',
     "mounts[0].destination: must be absolute"),
    ('{"process": {"terminal": 1}}', "process.terminal: must be a boolean"),
    ('{"linux": {"namespaces": [{"type": "bogus"}]}}', "linux.namespaces[0].type"),
]


@pytest.mark.parametrize(("config", "complaint"), BAD_CONFIGS)
def test_bad_config_is_refused_and_creates_nothing(daemon: Daemon, config: str,
                                                   complaint: str) -> None:
    c = Container(daemon, "bad")
    c.dir.mkdir()
    write(c / "image", BUSYBOX + "\n")
    assert refused(c / "config.json", config) == errno.EINVAL
    assert complaint in c.value("err")
    assert c.value("status") == "empty"
    assert (c / "config.json").read_text() == ""
    assert not (daemon.state / "runtime" / "tasks" / "default" / "bad").exists()
    assert "bad" not in os.listdir(daemon.path("namespaces", "default", "snapshots"))
    # and the slot still works
    write(c / "config.json", json.dumps({"process": {"args": ["true"]}}))
    assert c.value("status") == "created"


def test_refusals_of_settings(daemon: Daemon, own_rootfs: Path) -> None:
    c = Container(daemon, "settings")
    c.dir.mkdir()
    assert refused(c / "image", "no-such-image\n") == errno.ENOENT
    assert "no-such-image" in c.value("err")
    assert refused(c / "netns", "no-such-netns\n") == errno.ENOENT
    assert refused(c / "runtime", "no-such-runtime\n") == errno.EINVAL
    assert refused(c / "labels", "no equals sign\n") == errno.EINVAL
    assert refused(c / "config.json", '{"process": {"args": ["true"]}}') == errno.EINVAL
    assert "no rootfs" in c.value("err")  # neither an image nor root.path
    with pytest.raises(OSError) as bad_name:
        daemon.path("containers", "bad..name").mkdir()
    assert bad_name.value.errno == errno.EINVAL
    with pytest.raises(FileExistsError):
        c.dir.mkdir()
    write(c / "config.json", json.dumps(
        {"root": {"path": str(own_rootfs)}, "process": {"args": ["true"]}}))
    assert refused(c / "image", BUSYBOX + "\n") == errno.EINVAL
    assert refused(c / "config.json", '{"process": {"args": ["true"]}}') == errno.EEXIST
    assert refused(c / "ctl", "resume\n") == errno.EINVAL
    assert "it is created" in c.value("err")
    assert refused(c / "ctl", "kill NOSUCHSIG\n") == errno.EINVAL
    assert refused(c / "ctl", "stop soon\n") == errno.EINVAL
    assert c.value("status") == "created"


def test_ids_of_76_characters_work_and_77_are_refused(daemon: Daemon) -> None:
    """One identifier grammar (base.identifiers): the longest id containerd allows runs
    end to end (the tree, the snapshot, the bundle, conmon, runc, the cgroup)."""
    longest = "a" + "-b" * 37 + "c"
    assert len(longest) == 76
    c = run(daemon, longest, ["sh", "-c", "hostname; exit 7"])
    assert c.wait() == 7
    assert c.value("exit") == "7"
    assert c.value("stdout") == longest[:64]  # sethostname(2) takes 64 bytes
    assert json.loads((c / "config.json").read_text())["linux"]["cgroupsPath"] == (
        f"/{daemon.cgroup_parent}/default/{longest}")
    c.dir.rmdir()
    too_long = longest + "d"
    with pytest.raises(OSError) as refusal:
        daemon.path("containers", too_long).mkdir()
    assert refusal.value.errno == errno.EINVAL
    err = daemon.path("containers", "err").read_text()
    assert f'"{too_long}" is longer than 76 characters' in err
    assert too_long not in os.listdir(daemon.path("containers"))


def test_bring_your_own_rootfs_and_own_network_namespace(daemon: Daemon,
                                                         own_rootfs: Path) -> None:
    c = Container(daemon, "byo").make(
        ["sh", "-c", "cat /proc/net/dev | cut -d: -f1 | tail -n +3"], image="",
        root={"path": str(own_rootfs), "readonly": True})
    c.ctl("start")
    assert c.wait() == 0
    assert read_with_timeout(c / "follow" / "stdout").split() == ["lo"]


def test_joining_a_named_network_namespace(daemon: Daemon) -> None:
    name = f"cdfs-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "probe0", "type", "veth", "peer",
                        "name", "probe1"], check=True)
        c = Container(daemon, "joined")
        c.dir.mkdir()
        write(c / "image", BUSYBOX + "\n")
        write(c / "netns", name + "\n")
        write(c / "config.json", json.dumps({"process": {"args": ["cat", "/proc/net/dev"]}}))
        spec = json.loads((c / "config.json").read_text())
        assert {"type": "network", "path": f"/run/netns/{name}"} in spec["linux"]["namespaces"]
        c.ctl("start")
        assert c.wait() == 0
        assert "probe0:" in read_with_timeout(c / "follow" / "stdout")
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_update_changes_limits(daemon: Daemon) -> None:
    c = run(daemon, "limited", ["sleep", "100"])
    before = json.loads((c / "config.json").read_text())  # rendered once per spec
    assert before["linux"]["resources"].get("memory", {}).get("limit") != 67108864
    c.ctl('update {"memory": {"limit": 67108864}, "pids": {"limit": 50}}')
    spec = json.loads((c / "config.json").read_text())
    assert spec["linux"]["resources"]["memory"]["limit"] == 67108864
    limit = Path(f"/sys/fs/cgroup/memory/{daemon.cgroup_parent}/default/limited/"
                 "memory.limit_in_bytes")
    if limit.exists():
        assert int(limit.read_text()) == 67108864
    assert refused(c / "ctl", "update {nope}\n") == errno.EINVAL
    c.ctl("stop 0")


def _cgroups_under(parent: str) -> list[Path]:
    """Every directory of `parent` in the host's cgroup hierarchies (v1 or v2)."""
    tops = [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()]
    return [top / parent for top in tops if (top / parent).is_dir()]


def test_namespace_removal_and_a_clean_stop_leave_no_empty_cgroup(
        make_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    """runc deletes a container's own cgroup but not the /PARENT/NS above it; cdfs
    removes a namespace's at its rmdir and its parent at a clean stop, so serving a
    root for a while leaves nothing in /sys/fs/cgroup (a cgroup in use stays)."""
    daemon = make_daemon()
    daemon.path("namespaces", "team").mkdir()
    write(daemon.path("images", "ctl"), f"export {BUSYBOX} {tmp_path / 'busybox.tar'}\n")
    team_images = daemon.path("namespaces", "team", "images", "ctl")
    write(team_images, f"import {tmp_path / 'busybox.tar'} {BUSYBOX}\n")
    for namespace in ("default", "team"):
        brief = Container(daemon, "brief", namespace).make(["true"])
        brief.ctl("start")
        assert brief.wait() == 0
        brief.dir.rmdir()
    assert _cgroups_under(f"{daemon.cgroup_parent}/team")  # runc left it
    write(team_images, f"rm {BUSYBOX}\n")
    daemon.path("namespaces", "team").rmdir()
    assert wait_until(lambda: not _cgroups_under(f"{daemon.cgroup_parent}/team"), timeout=10)
    assert _cgroups_under(f"{daemon.cgroup_parent}/default")
    daemon.stop()
    assert _cgroups_under(daemon.cgroup_parent) == []


def test_daemons_on_two_roots_give_a_container_of_the_same_name_two_cgroups(
        make_daemon: Callable[..., Daemon]) -> None:
    """Two `cdfs serve` on one host, each on its own root, each run a container named
    web: the cgroup parent comes from the root, so each container has a cgroup of its
    own and a limit set through one daemon never reaches the other's container."""
    daemons = [make_daemon("one"), make_daemon("two")]
    webs = [run(daemon, "web", ["sleep", "300"]) for daemon in daemons]
    paths = [json.loads((web / "config.json").read_text())["linux"]["cgroupsPath"]
             for web in webs]
    assert paths == [f"/{daemon.cgroup_parent}/default/web" for daemon in daemons]
    assert paths[0] != paths[1]
    for web, path in zip(webs, paths, strict=True):
        lines = Path(f"/proc/{web.value('pid')}/cgroup").read_text().splitlines()
        assert any(line.split(":", 2)[2] == path for line in lines), lines
    for web, limit in zip(webs, (50, 60), strict=True):
        web.ctl(f'update {{"pids": {{"limit": {limit}}}}}')
    for web, path, limit in zip(webs, paths, (50, 60), strict=True):
        pids_max = Path(f"/sys/fs/cgroup/pids{path}/pids.max")
        if pids_max.exists():
            assert pids_max.read_text() == f"{limit}\n"
        assert json.loads((web / "config.json").read_text())["linux"]["resources"]["pids"] \
            == {"limit": limit}
    for web in webs:
        web.ctl("kill 9")
        assert web.wait() == 137
    assert "1" not in {web.value("pid") for web in webs}


def test_daemon_kill9_and_restart_keeps_containers(make_daemon: Callable[..., Daemon]
                                                   ) -> None:
    first = make_daemon()
    waiting = run(first, "waiting", ["sh", "-c", "echo before; read line; echo got $line; "
                                     "exit 5"])
    done = run(first, "done", ["sh", "-c", "echo finished; exit 3"])
    created = Container(first, "created").make(["true"])
    Container(first, "slot").dir.mkdir()
    assert done.wait() == 3
    assert first_line(waiting / "follow" / "stdout") == "before"
    pid = waiting.value("pid")
    first.kill9()
    second = first.start()
    waiting, done, created = (Container(second, n) for n in ("waiting", "done", "created"))
    assert sorted(os.listdir(second.path("containers"))) == [
        "created", "done", "err", "list", "slot", "waiting"]
    assert waiting.value("status") == "running" and waiting.value("pid") == pid
    assert done.value("status") == "stopped" and done.value("exit") == "3"
    assert read_with_timeout(done / "follow" / "stdout") == "finished\n"
    assert created.value("status") == "created"
    assert Container(second, "slot").value("status") == "empty"
    events = Events(second)
    try:
        write(waiting / "stdin", "hello\n")
        assert waiting.wait() == 5
        assert read_with_timeout(waiting / "follow" / "stdout") == "before\ngot hello\n"
        assert events.wait_for("/tasks/exit")["exit_status"] == 5
    finally:
        events.close()
    for name in ("waiting", "done", "created", "slot"):
        second.path("containers", name).rmdir()


def test_fifty_containers_at_once(daemon: Daemon) -> None:
    names = [f"many{i}" for i in range(50)]
    errors: list[BaseException] = []

    def start(name: str) -> None:
        try:
            run(daemon, name, ["sh", "-c", f"echo {name}; read x"])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=start, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for name in names:
        assert Container(daemon, name).value("status") == "running"
    pids = {Container(daemon, name).value("pid") for name in names}
    assert len(pids) == 50
    daemon.sh(" & ".join(f'echo > "$M/containers/{name}/stdin"' for name in names) + "; wait")
    for name in names:
        c = Container(daemon, name)
        assert c.wait() == 0
        assert read_with_timeout(c / "follow" / "stdout") == f"{name}\n"
    for name in names:
        Container(daemon, name).dir.rmdir()
    assert sorted(os.listdir(daemon.path("containers"))) == ["err", "list"]


def test_shell_scripts(daemon: Daemon) -> None:
    for script in sorted((REPO / "tests" / "shell").glob("containers*.sh")):
        result = subprocess.run(["bash", str(script)], env={**os.environ, "M": str(daemon.mount)},
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{script.name}:\n{result.stdout}\n{result.stderr}"
        assert result.stdout == "ok\n"


def test_a_c_program_with_plain_file_io_is_enough(daemon: Daemon, tmp_path: Path) -> None:
    binary = tmp_path / "lifecycle"
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", str(binary),
                    str(REPO / "tests" / "containers" / "client" / "lifecycle.c")],
                   check=True, timeout=60)
    result = subprocess.run([str(binary), str(daemon.path("containers")), "from-c"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "got one\ngot two\nexit 9\n"
    assert not daemon.path("containers", "from-c").exists()


def test_no_daemon_descriptor_leaks_into_a_container(daemon: Daemon) -> None:
    """The FUSE device, sqlite and sockets of the daemon stay out: pid 1 has stdio only."""
    leak = run(daemon, "fds", ["sh", "-c", "ls /proc/1/fd; true"])
    assert leak.wait() == 0
    assert read_with_timeout(leak / "follow" / "stdout").split() == ["0", "1", "2"]


def test_stop_sends_the_images_stop_signal(daemon: Daemon, tmp_path: Path) -> None:
    """As containerd's WithImageStopSignal: an image that asks for USR1 gets USR1."""
    store = ContentStore(tmp_path / "store")
    applets = [Entry.symlink(f"bin/{name}", "busybox") for name in ("sh", "sleep", "echo")]
    image = build_image(store, [Layer([
        Entry.dir("bin"), Entry.dir("proc"), Entry.dir("dev"), Entry.dir("sys"),
        Entry.file("bin/busybox", source=Path("/bin/busybox"), mode=0o755), *applets])],
        BuildConfig(cmd=["sh"], stop_signal="SIGUSR1"))
    archive = tmp_path / "usr1.tar"
    export_archive(store, image, "example.com/usr1:1", archive)
    daemon.sh(f'echo "import {archive}" > "$M/images/ctl"')

    polite = Container(daemon, "polite").make(
        ["sh", "-c", "trap 'echo got USR1; exit 7' USR1; echo ready; "
               "while :; do sleep 0.1; done"],
        image="example.com/usr1:1")
    polite.ctl("start")
    assert first_line(polite / "follow" / "stdout") == "ready"  # the trap is set
    polite.ctl("stop 5")
    assert polite.value("exit") == "7"
    assert read_with_timeout(polite / "follow" / "stdout") == "ready\ngot USR1\n"


def test_stop_sends_the_signal_it_names(daemon: Daemon) -> None:
    """`stop SECONDS SIGNAL` sends SIGNAL instead of the image's (CRI's stop_signal);
    a signal that is none is refused and the container keeps running."""
    polite = run(daemon, "named", ["sh", "-c", "trap 'echo got USR2; exit 9' USR2; "
                                   "echo ready; while :; do sleep 0.1; done"])
    assert first_line(polite / "follow" / "stdout") == "ready"
    assert refused(polite / "ctl", "stop 5 NOSUCH\n") == errno.EINVAL
    assert polite.value("status") == "running"
    polite.ctl("stop 5 USR2")
    assert polite.value("exit") == "9"
    assert read_with_timeout(polite / "follow" / "stdout") == "ready\ngot USR2\n"


# --- at a glance: created/started/exited, info and containers/list ----------------------

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def when(stamp: str) -> float:
    assert STAMP.match(stamp), stamp
    return datetime.fromisoformat(stamp[:26] + "+00:00").timestamp()


def test_times_are_empty_until_they_happen(daemon: Daemon) -> None:
    before = time.time()
    box = Container(daemon, "box")
    box.dir.mkdir()
    assert [(box / n).read_text() for n in ("created", "started", "exited")] == ["", "", ""]
    write(box / "image", BUSYBOX + "\n")
    write(box / "config.json", json.dumps({"process": {"args": ["sh", "-c", "read x; exit 4"]}}))
    created = box.value("created")
    assert before - 1 < when(created) < time.time() + 1
    assert box.value("started") == "" and box.value("exited") == ""
    box.ctl("start")
    started = box.value("started")
    assert when(created) <= when(started) and box.value("exited") == ""
    write(box / "stdin", "go\n")
    assert box.wait() == 4
    assert when(started) <= when(box.value("exited")) < time.time() + 1


def test_exec_times(daemon: Daemon) -> None:
    box = run(daemon, "box", ["sleep", "30"])
    execdir = box / "exec" / "e"
    execdir.mkdir()
    assert [(execdir / n).read_text() for n in ("created", "started", "exited")] == ["", "", ""]
    write(execdir / "process.json", json.dumps({"args": ["sh", "-c", "exit 2"]}))
    assert STAMP.match((execdir / "created").read_text().strip())
    assert (execdir / "started").read_text() == ""
    write(execdir / "ctl", "start\n")
    assert read_with_timeout(execdir / "wait").strip() == "2"
    created, started, exited = ((execdir / n).read_text().strip()
                                for n in ("created", "started", "exited"))
    assert when(created) <= when(started) <= when(exited)
    box.ctl("kill KILL")
    assert box.wait() == 137


def test_info_and_list_survive_a_restart(make_daemon: Callable[..., Daemon]) -> None:
    first = make_daemon()
    running = run(first, "running", ["sleep", "60"])
    write(running / "labels", "app=web\n")
    stopped = run(first, "stopped", ["sh", "-c", "exit 3"])
    assert stopped.wait() == 3
    Container(first, "created").make(["true"])
    Container(first, "slot").dir.mkdir()

    def glance(daemon: Daemon) -> tuple[dict[str, dict], list[str]]:
        infos = {name: json.loads(Container(daemon, name).value("info"))
                 for name in ("running", "stopped", "created", "slot")}
        return infos, daemon.path("namespaces", "default", "containers", "list"
                                  ).read_text().splitlines()

    infos, lines = glance(first)
    run_info = infos["running"]
    assert run_info["status"] == "running" and run_info["pid"] == int(running.value("pid"))
    assert run_info["labels"] == {"app": "web"} and run_info["image"] == BUSYBOX
    assert run_info["exit"] is None and run_info["exited"] is None
    assert run_info["runtime"] == "runc" and run_info["netns"] is None
    assert run_info["logpath"] is None and run_info["oom_killed"] is False
    assert set(run_info) == {"id", "status", "pid", "image", "created", "started", "exited",
                             "exit", "labels", "runtime", "netns", "logpath", "oom_killed"}
    assert infos["stopped"]["exit"] == 3 and infos["stopped"]["pid"] is None
    assert STAMP.match(infos["stopped"]["exited"])
    assert infos["created"]["status"] == "created" and infos["created"]["started"] is None
    assert infos["slot"] == {**infos["slot"], "status": "empty", "created": None, "pid": None}

    assert lines[0].split() == ["ID", "STATUS", "PID", "IMAGE", "CREATED", "EXIT"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["running"][1:4] == ["running", running.value("pid"), BUSYBOX]
    assert rows["running"][5] == "-" and rows["stopped"][5] == "3"
    assert rows["stopped"][1:3] == ["stopped", "-"]
    assert rows["slot"] == ["slot", "empty", "-", "-", "-", "-"]
    assert rows["created"][4] == infos["created"]["created"]
    starts = {line.index(word) for line in lines for word in line.split()[2:3]}
    assert len(starts) == 1, "the PID column is aligned"

    first.kill9()
    second = first.start()
    assert glance(second) == (infos, lines)
    Container(second, "running").ctl("kill KILL")
    assert Container(second, "running").wait() == 137
    for name in ("running", "stopped", "created", "slot"):
        second.path("namespaces", "default", "containers", name).rmdir()
