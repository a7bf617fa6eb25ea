"""The event bus: every event of every namespace, fanned out to readers.

An event is one JSON object a line, `{"time", "namespace", "topic", "id", …}`,
with containerd's topic names (/namespaces/create, /tasks/exit, …). Each reader
has a bounded queue of its own: a reader that is slow or stops reading never blocks
the daemon; what overflows its queue is dropped and counted, and once the reader has
read what was kept it sees a `/events/lost` event saying how many were dropped.
`publish` runs on the trio loop; worker threads hand events over with
`trio.from_thread.run_sync(bus.publish, …)`.

Services that react to events in-process (Metrics watches a task's cgroup once it is
created) `listen` instead: a listener gets each `Event` as a typed value, at once and
in order, without parsing the JSON the readers get.
"""

import json
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from base.clock import rfc3339

log = logging.getLogger(__name__)

QUEUE_LENGTH = 4096
# Events the daemon finds at start-up (exits and OOM kills that happened while none ran)
# go to every reader that subscribes within this many seconds: no reader can be there
# before the daemon serves.
REPLAY_S = 30.0


@dataclass(frozen=True)
class Event:
    """One published event, as listeners receive it."""

    namespace: str
    topic: str
    id: str
    fields: Mapping[str, Any]

    @property
    def container_id(self) -> str:
        """The container the event is about: its `container_id` field (a task's events
        name an exec by `id`), else its id."""
        return str(self.fields.get("container_id") or self.id)


# Called on the trio loop inside `publish`: it must not block, and what it raises is
# logged, never passed on to the publisher.
Listener = Callable[[Event], None]


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=False).encode() + b"\n"


class Subscription:
    """One reader's view of the bus from the moment it subscribed: a byte stream of
    JSON lines, optionally limited to one namespace."""

    def __init__(self, bus: "EventBus", namespace: str | None, maxlen: int) -> None:
        self._bus = bus
        self.namespace = namespace
        self._queue: deque[bytes] = deque()
        self._maxlen = maxlen
        self._pending = b""
        self._lost = 0
        self._wakeup = trio.Event()
        self.closed = False

    def _offer(self, event: dict[str, Any], line: bytes) -> None:
        if self.namespace is not None and event.get("namespace") != self.namespace:
            return
        if len(self._queue) >= self._maxlen:
            self._lost += 1
        else:
            self._queue.append(line)
        self._wakeup.set()

    def _take(self, size: int) -> bytes:
        if not self._pending:
            if self._queue:
                self._pending = self._queue.popleft()
            elif self._lost:
                lost_event = {"time": rfc3339(), "namespace": self.namespace or "",
                              "topic": "/events/lost", "lost": self._lost}
                self._pending, self._lost = encode(lost_event), 0
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    async def read(self, size: int) -> bytes:
        """The next bytes of the stream, waiting for an event if there is none.
        Cancel-safe: nothing is taken from the queue until it is returned."""
        while not (self._pending or self._queue or self._lost):
            if self.closed:
                return b""
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        return self._take(size)

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._bus._subscribers.discard(self)


class EventBus:
    """Publishes events to every current subscriber."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._replayed: list[tuple[float, dict[str, Any], bytes]] = []
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call `listener` with every event published from now on."""
        self._listeners.append(listener)

    def subscribe(self, namespace: str | None = None,
                  maxlen: int = QUEUE_LENGTH) -> Subscription:
        subscription = Subscription(self, namespace, maxlen)
        self._subscribers.add(subscription)
        if self._replayed:
            now = trio.current_time()
            self._replayed = [kept for kept in self._replayed if kept[0] > now]
            for _, event, line in self._replayed:
                subscription._offer(event, line)
        return subscription

    def publish(self, namespace: str, topic: str, id: str = "", **fields: Any) -> None:
        self._offer(self._notify(namespace, topic, id, fields))

    def publish_found(self, namespace: str, topic: str, id: str = "", **fields: Any) -> None:
        """Publish what start-up found happened while no daemon ran; readers that
        subscribe in the next REPLAY_S seconds get it too."""
        event = self._notify(namespace, topic, id, fields)
        self._replayed.append((trio.current_time() + REPLAY_S, event, encode(event)))
        self._offer(event)

    def _notify(self, namespace: str, topic: str, id: str, fields: dict[str, Any]
                ) -> dict[str, Any]:
        """Tell the listeners; the event as readers get it."""
        for listener in self._listeners:
            try:
                listener(Event(namespace, topic, id, fields))
            except Exception:
                log.exception("listener of %s failed", topic)
        return {"time": rfc3339(), "namespace": namespace, "topic": topic, "id": id, **fields}

    def _offer(self, event: dict[str, Any]) -> None:
        line = encode(event)
        for subscription in list(self._subscribers):
            subscription._offer(event, line)

    def close(self) -> None:
        """End every reader's stream (the daemon is stopping)."""
        for subscription in list(self._subscribers):
            subscription.close()


