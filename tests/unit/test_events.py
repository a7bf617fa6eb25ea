"""The event bus: per-reader queues, namespace filters, lost markers."""

import json

import trio

from cdfs.events import EventBus


async def test_readers_see_events_from_when_they_subscribed() -> None:
    bus = EventBus()
    bus.publish("default", "/before")
    everything = bus.subscribe()
    only_a = bus.subscribe("a")
    bus.publish("a", "/namespaces/create", "a", name="a")
    bus.publish("b", "/namespaces/create", "b")
    first = json.loads(await everything.read(4096))
    assert first["topic"] == "/namespaces/create" and first["name"] == "a"
    assert json.loads(await everything.read(4096))["namespace"] == "b"
    assert json.loads(await only_a.read(4096))["namespace"] == "a"
    with trio.move_on_after(0.1) as waited:
        await only_a.read(4096)
    assert waited.cancelled_caught


async def test_small_reads_return_whole_lines_in_pieces() -> None:
    bus = EventBus()
    reader = bus.subscribe()
    bus.publish("default", "/x", "id")
    data = b""
    while not data.endswith(b"\n"):
        data += await reader.read(5)
    assert json.loads(data)["topic"] == "/x"


async def test_a_slow_reader_loses_events_and_is_told_how_many() -> None:
    bus = EventBus()
    reader = bus.subscribe(maxlen=3)
    for n in range(10):
        bus.publish("default", "/n", str(n))
    assert [json.loads(await reader.read(4096))["id"] for _ in range(3)] == ["0", "1", "2"]
    lost = json.loads(await reader.read(4096))
    assert lost == {**lost, "topic": "/events/lost", "lost": 7}


async def test_close_ends_a_blocked_reader() -> None:
    bus = EventBus()
    reader = bus.subscribe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_close_later, bus)
        assert await reader.read(10) == b""


async def _close_later(bus: EventBus) -> None:
    await trio.sleep(0.05)
    bus.close()


async def test_listeners_get_typed_events_and_cannot_break_publish() -> None:
    from cdfs.events import Event

    bus = EventBus()
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("a bug in a listener")

    bus.listen(broken)
    bus.listen(heard.append)
    reader = bus.subscribe()
    bus.publish("default", "/tasks/exit", "e1", container_id="web", exit_status=0)
    assert heard == [Event("default", "/tasks/exit", "e1", {"container_id": "web",
                                                            "exit_status": 0})]
    assert heard[0].container_id == "web"
    assert b'"topic":"/tasks/exit"' in await reader.read(1 << 16)
