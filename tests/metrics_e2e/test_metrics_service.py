"""The metrics service on the trio loop against a pure-v2 cgroup host laid out in a temp
dir: pure helpers, stats and their cache, a cancel-safe stream, and OOM kills published
from the inotify watcher and drained by `before_exit`."""

import json
from pathlib import Path

import pytest
import trio
import trio.testing

from base.errors import InvalidArgument, NotFound
from cdfs.events import EventBus
from cdfs.services.metrics import SAMPLE_REUSE, Metrics, parse_interval, render

CGROUP = "/cdfs/default/web"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids io\n")
    web = tmp_path / CGROUP.lstrip("/")
    web.mkdir(parents=True)
    files = {"cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n",
             "memory.current": "4096\n", "memory.max": "max\n", "memory.stat": "anon 4096\n",
             "memory.events": "oom 0\noom_kill 0\n", "pids.current": "2\n", "pids.max": "64\n",
             "io.stat": "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n"}
    for name, text in files.items():
        (web / name).write_text(text)
    return tmp_path


def metrics_on(root: Path, bus: EventBus) -> Metrics:
    def cgroups_path(namespace: str, container_id: str) -> str:
        if container_id != "web":
            raise NotFound(f'no container "{container_id}"')
        return CGROUP

    return Metrics(bus, cgroups_path, root)


def lines(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.splitlines()]


def test_render_and_parse_interval() -> None:
    assert render({"current": 2, "limit": 64}) == "current 2\nlimit 64\n"
    assert parse_interval(" 0.5\n") == 0.5
    for bad in ("", "soon", "0", "0.05", "3601", "nan"):
        with pytest.raises(InvalidArgument):
            parse_interval(bad)


async def test_stats_and_a_gone_cgroup(root: Path) -> None:
    metrics = metrics_on(root, EventBus())
    assert await metrics.stats("default", "web", "pids") == {"current": 2, "limit": 64}
    assert (await metrics.stats("default", "web", "io"))["write_ops"] == 4
    with pytest.raises(InvalidArgument):
        await metrics.stats("default", "web", "gpu")
    with pytest.raises(NotFound):
        await metrics.stats("default", "other", "cpu")
    for name in (root / CGROUP.lstrip("/")).iterdir():
        name.unlink()
    (root / CGROUP.lstrip("/")).rmdir()
    with pytest.raises(NotFound, match="not running"):
        await metrics.stats("default", "web", "cpu")


async def test_one_sample_serves_the_requests_of_one_read(root: Path,
                                                          mock_clock: trio.testing.MockClock
                                                          ) -> None:
    metrics = metrics_on(root, EventBus())
    first = await metrics.stats("default", "web", "pids")
    (root / CGROUP.lstrip("/") / "pids.current").write_text("5\n")
    assert await metrics.stats("default", "web", "pids") == first  # the stat after the open
    assert (await metrics.stats("default", "web", "io"))["write_ops"] == 4  # each group its own
    mock_clock.jump(SAMPLE_REUSE)
    assert await metrics.stats("default", "web", "pids") == {"current": 5, "limit": 64}


async def test_stream_is_cancel_safe_and_ends_without_processes(root: Path) -> None:
    metrics = metrics_on(root, EventBus())
    metrics.set_interval("default", "web", "0.1")
    stream = await metrics.stream("default", "web")
    first = await stream.read(10)  # a partial read keeps the rest of the line
    rest = await stream.read(1 << 16)
    assert lines(first + rest)[0]["pids"] == {"current": 2, "limit": 64}
    with trio.move_on_after(0.02):  # cancelled while it waits: nothing is lost
        await stream.read(1 << 16)
    (root / CGROUP.lstrip("/") / "pids.current").write_text("0\n")
    with trio.fail_after(2):
        last = await stream.read(1 << 16)
        assert lines(last)[0]["pids"]["current"] == 0  # type: ignore[index]
        assert await stream.read(1 << 16) == b""


async def test_oom_kills_are_published_and_drained_before_exit(root: Path) -> None:
    bus = EventBus()
    reader = bus.subscribe("default")
    metrics = metrics_on(root, bus)
    events = root / CGROUP.lstrip("/") / "memory.events"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(metrics.run)
        await trio.sleep(0.05)
        bus.publish("default", "/tasks/create", "web", container_id="web")
        await trio.sleep(0.2)  # the watcher is set up from the event
        events.write_text("oom 1\noom_kill 1\n")
        with trio.fail_after(2):
            topics = [e["topic"] for e in lines(await reader.read(1 << 16))]
            while "/tasks/oom" not in topics:
                topics += [e["topic"] for e in lines(await reader.read(1 << 16))]
        assert topics == ["/tasks/create", "/tasks/oom"]

        events.write_text("oom 2\noom_kill 2\n")
        await metrics.before_exit("default", "web")  # publishes it now, not later
        bus.publish("default", "/tasks/exit", "web", container_id="web")
        with trio.fail_after(2):
            data = b""
            while data.count(b"\n") < 2:
                data += await reader.read(1 << 16)
        assert [e["topic"] for e in lines(data)] == ["/tasks/oom", "/tasks/exit"]
        nursery.cancel_scope.cancel()
