"""stats/ of real containers (real runc, real cgroups) through the mounted tree, the
OOM event before the exit it caused, and resource updates seen in stats."""

import errno
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from support import Daemon, wait_opened, wait_until

BUSY_LOOP = {"process": {"args": ["sh", "-c", "while :; do :; done"]}}
SLEEPER = {"process": {"args": ["sleep", "600"]}}
MB = 1 << 20
UNLIMITED = 2**64 - 1
BUSYBOX = "cdfs.local/busybox:latest"


class Container:
    """One container of the default namespace, driven through its files. The id is
    unique on the host, since cgroup paths (/cdfs/default/<id>) are host-wide."""

    def __init__(self, daemon: Daemon, prefix: str) -> None:
        self.daemon = daemon
        self.id = f"{prefix}-{secrets.token_hex(3)}"
        self.dir = daemon.path("containers", self.id)

    def create(self, spec: dict[str, Any], image: str = BUSYBOX) -> "Container":
        self.dir.mkdir()
        (self.dir / "image").write_text(image + "\n")
        (self.dir / "config.json").write_text(json.dumps(spec))
        return self

    def ctl(self, line: str) -> None:
        (self.dir / "ctl").write_text(line + "\n")

    def read(self, *parts: str) -> str:
        return self.dir.joinpath(*parts).read_text()

    def stats(self, group: str) -> dict[str, int]:
        return {key: int(value) for key, value in
                (line.split() for line in self.read("stats", group).splitlines())}

    def wait(self, timeout: float = 20) -> int:
        """The exit status, read from `wait` (which blocks until the task exits)."""
        done = subprocess.run(["timeout", str(timeout), "cat", str(self.dir / "wait")],
                              capture_output=True, text=True, timeout=timeout + 5)
        assert done.returncode == 0, f"wait: {done.returncode} {done.stderr}"
        return int(done.stdout)


@pytest.fixture
def container(daemon: Daemon) -> Callable[[str], Container]:
    return lambda prefix: Container(daemon, prefix)


def stream_objects(path: str, count: int, timeout: float = 15) -> list[dict[str, object]]:
    """The first `count` objects of a stats stream, read by `head` under `timeout`."""
    done = subprocess.run(["timeout", str(timeout), "head", "-n", str(count), path],
                          capture_output=True, text=True, timeout=timeout + 5)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_stats_follow_a_busy_loop(container: Callable[[str], Container]) -> None:
    busy = container("busy").create(BUSY_LOOP)
    assert busy.stats("pids")["current"] >= 1  # created, not started: runc init waits
    busy.ctl("start")
    first = busy.stats("cpu")
    assert set(first) == {"usage_usec", "user_usec", "system_usec", "throttled_usec",
                          "nr_periods", "nr_throttled"}
    # The loop burns CPU (as much as a loaded 2-core test machine gives it).
    assert wait_until(lambda: busy.stats("cpu")["usage_usec"] > first["usage_usec"] + 200_000,
                      timeout=15, interval=0.2)
    memory = busy.stats("memory")
    assert {"usage", "limit", "max_usage", "cache", "rss", "swap", "oom_kills"} <= set(memory)
    assert 0 < memory["usage"] <= memory["max_usage"] and memory["limit"] == UNLIMITED
    assert busy.stats("pids") == {"current": 1, "limit": UNLIMITED}
    assert set(busy.stats("io")) == {"read_bytes", "write_bytes", "read_ops", "write_ops"}

    busy.ctl("kill KILL")
    assert busy.wait() == 137
    last = stream_objects(str(busy.dir / "stats" / "stream"), 5, timeout=10)
    assert len(last) == 1, "the stream ends with the first object that counts no process"
    assert last[0]["pids"] == {"current": 0, "limit": UNLIMITED}


def test_stats_of_a_container_without_task(daemon: Daemon) -> None:
    daemon.path("containers", "slot-only").mkdir()
    for name in ("cpu", "memory", "pids", "io", "stream"):
        with pytest.raises(FileNotFoundError):
            daemon.path("containers", "slot-only", "stats", name).read_text()
    assert daemon.path("containers", "slot-only", "stats", "interval").read_text() == "1\n"
    daemon.path("containers", "slot-only").rmdir()


def test_stream_gives_json_lines_each_interval(container: Callable[[str], Container]) -> None:
    busy = container("stream").create(BUSY_LOOP)
    busy.ctl("start")
    stats = busy.dir / "stats"
    for bad in ("0.01", "soon", "-1", "99999"):
        fd = os.open(stats / "interval", os.O_WRONLY)
        try:
            with pytest.raises(OSError) as refused:
                os.write(fd, bad.encode() + b"\n")
        finally:
            os.close(fd)
        assert refused.value.errno == errno.EINVAL
        assert f'"{bad}"' in (stats / "err").read_text()
    assert (stats / "interval").read_text() == "1\n"
    busy.daemon.sh(f'echo 0.2 > "{stats}/interval"')
    assert (stats / "interval").read_text() == "0.2\n"

    started = time.monotonic()
    objects = stream_objects(str(stats / "stream"), 4)
    elapsed = time.monotonic() - started
    assert len(objects) == 4
    assert 0.5 < elapsed < 5, elapsed  # an object at once, then one each 0.2 s
    assert all(o.keys() == {"timestamp", "id", "cpu", "memory", "pids", "io"} for o in objects)
    assert all(o["id"] == busy.id for o in objects)
    times = [datetime.fromisoformat(str(o["timestamp"])) for o in objects]
    assert times == sorted(times) and len(set(times)) == 4
    usage = [o["cpu"]["usage_usec"] for o in objects]  # type: ignore[index]
    assert usage == sorted(usage) and usage[-1] > usage[0]


def test_oom_kill_is_published_before_the_exit(
        container: Callable[[str], Container], daemon: Daemon) -> None:
    events = subprocess.Popen(["timeout", "60", "cat",
                               str(daemon.path("namespaces", "default", "events"))],
                              stdout=subprocess.PIPE, text=True)
    try:  # the reader is subscribed before the container exists
        wait_opened(events, daemon.path("namespaces", "default", "events"))
        hog = container("oom").create({
            "process": {"args": ["sh", "-c", "x=0123456789; while :; do x=$x$x; done"]},
            "linux": {"resources": {"memory": {"limit": 32 * MB}}},
        })
        assert hog.stats("memory")["limit"] == 32 * MB
        hog.ctl("start")
        assert hog.wait() == 137
        assert hog.stats("memory")["oom_kills"] >= 1
        hog.dir.rmdir()  # /containers/delete: the last event we wait for
        topics = []
        assert events.stdout is not None
        for line in events.stdout:
            event = json.loads(line)
            if event.get("container_id", event["id"]) == hog.id:
                topics.append((event["topic"], event.get("exit_status")))
            if event["topic"] == "/containers/delete":
                break
    finally:
        events.kill()
        events.wait(timeout=10)
    oom = topics.index(("/tasks/oom", None))
    assert topics[oom + 1] == ("/tasks/exit", 137), topics
    assert topics.index(("/tasks/start", None)) < oom


def test_update_changes_limits_seen_in_stats(container: Callable[[str], Container]) -> None:
    sleeper = container("update").create(SLEEPER)
    sleeper.ctl("start")
    assert sleeper.stats("memory")["limit"] == UNLIMITED
    sleeper.ctl('update {"memory": {"limit": 67108864}, "pids": {"limit": 50}}')
    assert sleeper.stats("memory")["limit"] == 64 * MB
    assert sleeper.stats("pids")["limit"] == 50
    result = sleeper.daemon.sh(f'echo \'update {{"memory": {{"limit": "lots"}}}}\' '
                               f'> "{sleeper.dir}/ctl"', check=False)
    assert result.returncode == 1
    assert sleeper.stats("memory")["limit"] == 64 * MB
    sleeper.ctl("kill KILL")
    assert sleeper.wait() == 137


def test_pids_limit_stops_a_fork_loop(container: Callable[[str], Container]) -> None:
    forker = container("pids").create({
        "process": {"args": ["sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 60 & "
                             "i=$((i+1)); done; echo all forked; sleep 60"]},
        "linux": {"resources": {"pids": {"limit": 16}}},
    })
    forker.ctl("start")
    assert forker.wait() == 2  # busybox sh gives up at the first failed fork
    assert "can't fork" in forker.read("stderr")
    assert "all forked" not in forker.read("stdout")
    assert forker.stats("pids") == {"current": 0, "limit": 16}
    assert wait_until(lambda: forker.read("status") == "stopped\n", timeout=5)


def test_oom_after_a_daemon_restart_still_comes_before_the_exit(
        container: Callable[[str], Container], daemon: Daemon) -> None:
    hog = container("oom-restart").create({
        "process": {"args": ["sh", "-c", "while [ ! -e /go ]; do sleep 0.1; done; "
                             "x=0123456789; while :; do x=$x$x; done"]},
        "linux": {"resources": {"memory": {"limit": 32 * MB}}},
    })
    hog.ctl("start")
    daemon.kill9()
    daemon.start()
    assert hog.read("status") == "running\n"
    events = subprocess.Popen(["timeout", "60", "cat",
                               str(daemon.path("namespaces", "default", "events"))],
                              stdout=subprocess.PIPE, text=True)
    try:
        wait_opened(events, daemon.path("namespaces", "default", "events"))
        (daemon.state / "runtime" / "tasks" / "default" / hog.id / "rootfs" / "go").touch()
        assert hog.wait() == 137
        topics = []
        assert events.stdout is not None
        for line in events.stdout:
            event = json.loads(line)
            topics.append(event["topic"])
            if event["topic"] == "/tasks/exit":
                break
    finally:
        events.kill()
        events.wait(timeout=10)
    assert topics[-2:] == ["/tasks/oom", "/tasks/exit"], topics
