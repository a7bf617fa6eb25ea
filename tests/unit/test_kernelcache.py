"""What the kernel may cache of the tree, and which of it each event withdraws
(mountpoint/attributes.py, mountpoint/kernelcache.py), over the harness's fakes."""

from dataclasses import dataclass, field
from typing import Any

import pytest
from unit.harness import FakeServices, Tree

from mountpoint.attributes import CACHE_TIMEOUT
from mountpoint.kernelcache import Withdrawal, task_values, withdrawals
from mountpoint.table import Dir, Table, Value, collection, show


@dataclass(frozen=True)
class Event:
    namespace: str
    topic: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def container_id(self) -> str:
        return str(self.fields.get("container_id") or self.id)


BOXES = {"ns1": {"a", "b", "ns1"}, "ns2": {"a"}}
BOX = Table("one box", time=lambda app, s: _stamp(), changed_by=("/boxes/start",), entries=(
    Value("state", "changes", read=show(lambda app, s: "on")),
    Value("status", "its task's state", read=show(lambda app, s: "running"), task_state=True),
    Dir("parts", "dated by the box", Table("parts")),
))
SHELF = Table("one shelf", time=lambda app, s: _stamp(), entries=(
    Value("state", "changes", read=show(lambda app, s: "on")),
))
ROOT = Table("root", children=collection(
    "ns", "namespaces", Table("one namespace", entries=(
        Dir("boxes", "boxes", Table("boxes", children=collection(
            "id", "boxes", BOX, names=lambda app, s: sorted(BOXES[s["ns"]]),
            removed="/boxes/delete"))),
        Dir("shelves", "shelves", Table("shelves", children=collection(
            "id", "shelves", SHELF, names=lambda app, s: ["s"]))),
    )),
    names=lambda app, s: sorted(BOXES), removed="/namespaces/delete"))


async def _stamp() -> str:
    return "2026-12-01T00:00:00Z"


async def _tree() -> Tree:
    tree = Tree(FakeServices(), ROOT)
    for path in ("ns1/boxes/a/parts", "ns1/boxes/b/parts", "ns2/boxes/a/parts",
                 "ns1/shelves/s/state", "ns1/boxes/a/status", "ns2/boxes/a/status"):
        await tree.stat(path)
    return tree


async def test_announced_names_and_dated_directories_are_cached_the_rest_asked() -> None:
    tree = await _tree()
    box, parts, state = [await tree.stat(f"ns1/boxes/a/{p}") for p in ("", "parts", "state")]
    assert (box.entry_timeout, box.attr_timeout) == (CACHE_TIMEOUT, CACHE_TIMEOUT)
    assert parts.attr_timeout == CACHE_TIMEOUT  # dated by the box, whose changes are told
    assert state.attr_timeout == 0  # a value's size and time are asked at every stat
    shelf = await tree.stat("ns1/shelves/s")
    assert (shelf.entry_timeout, shelf.attr_timeout) == (0, 0)  # nothing announces them
    assert (await tree.stat("ns1/boxes")).attr_timeout == CACHE_TIMEOUT  # never changes


async def test_a_removal_withdraws_that_name_in_that_namespace_only() -> None:
    tree = await _tree()
    boxes = await tree.inode("ns1/boxes")
    assert withdrawals(tree.fs.nodes, Event("ns1", "/boxes/delete", "a")) == \
        [Withdrawal(boxes, "a")]
    root = await tree.inode("")
    assert withdrawals(tree.fs.nodes, Event("ns2", "/namespaces/delete", "ns2")) == \
        [Withdrawal(root, "ns2")]
    assert withdrawals(tree.fs.nodes, Event("ns1", "/boxes/delete", "c")) == []


async def test_a_change_withdraws_the_attributes_of_the_directories_it_dates() -> None:
    tree = await _tree()
    event = Event("ns1", "/boxes/start", "exec1", {"container_id": "a"})
    found = {w.ino for w in withdrawals(tree.fs.nodes, event)}
    assert found == {await tree.inode("ns1/boxes/a"), await tree.inode("ns1/boxes/a/parts")}
    assert withdrawals(tree.fs.nodes, Event("ns1", "/boxes/stop", "a")) == []


async def test_a_task_change_withdraws_the_attributes_of_that_tasks_values() -> None:
    tree = await _tree()
    status = await tree.stat("ns1/boxes/a/status")
    assert status.attr_timeout == CACHE_TIMEOUT  # kept until the task changes
    assert task_values(tree.fs.nodes, "ns1", "a", None, False) == [status.st_ino]
    assert task_values(tree.fs.nodes, "ns1", "a", "exec1", False) == []  # another task
    assert task_values(tree.fs.nodes, "ns1", "a", "exec1", True) == [status.st_ino]
    assert task_values(tree.fs.nodes, "ns1", "b", None, True) == []


async def test_a_task_change_looks_only_at_its_containers_nodes() -> None:
    """Nodes are indexed by (namespace, id): a change withdraws exactly the task's
    values the kernel holds, none of a same-named box in another namespace, none
    forgotten, each once however often it was looked up."""
    tree = await _tree()
    for path in ("ns1/boxes/b/status", "ns1/boxes/a/state", "ns1/boxes/a/status"):
        await tree.stat(path)
    nodes = tree.fs.nodes
    a1 = await tree.inode("ns1/boxes/a/status")
    assert task_values(nodes, "ns1", "a", None, True) == [a1]
    assert task_values(nodes, "ns2", "a", None, True) == [await tree.inode("ns2/boxes/a/status")]
    assert {node.ino for node in nodes.of_object("ns1", "a")} == {
        node.ino for node in nodes if node.scope.get("ns") == "ns1"
        and node.scope.get("id") == "a"}
    held = nodes.get(a1).lookups
    await tree.fs.forget([(a1, held)])
    assert task_values(nodes, "ns1", "a", None, True) == []
    assert a1 not in {node.ino for node in nodes.of_object("ns1", "a")}


async def test_an_event_looks_only_at_the_nodes_of_the_object_it_names() -> None:
    """Withdrawals are found through the (namespace, id) index: a box named as its
    namespace shares that namespace's key, and each event still withdraws only its
    own object's nodes; a node the kernel forgot is not withdrawn."""
    tree = await _tree()
    await tree.stat("ns1/boxes/ns1/parts")
    nodes = tree.fs.nodes
    root, boxes = await tree.inode(""), await tree.inode("ns1/boxes")
    box, parts = await tree.inode("ns1/boxes/ns1"), await tree.inode("ns1/boxes/ns1/parts")
    assert withdrawals(nodes, Event("ns1", "/namespaces/delete", "ns1")) == \
        [Withdrawal(root, "ns1")]
    assert withdrawals(nodes, Event("ns1", "/boxes/delete", "ns1")) == [Withdrawal(boxes, "ns1")]
    start = Event("ns1", "/boxes/start", "ns1")
    assert {w.ino for w in withdrawals(nodes, start)} == {box, parts}
    assert withdrawals(nodes, Event("ns2", "/boxes/start", "ns1")) == []
    await tree.fs.forget([(parts, nodes.get(parts).lookups)])
    assert [w.ino for w in withdrawals(nodes, start)] == [box]


def test_only_children_an_event_can_name_announce_removals_or_changes() -> None:
    with pytest.raises(ValueError, match="'shelf'"):
        collection("shelf", "shelves", SHELF, names=lambda app, s: [], removed="/x/delete")
    with pytest.raises(ValueError, match="'shelf'"):
        collection("shelf", "boxes", BOX, names=lambda app, s: [])
    collection("shelf", "shelves", SHELF, names=lambda app, s: [])  # nothing announced
