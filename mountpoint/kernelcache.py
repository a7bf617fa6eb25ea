"""Withdrawing what the kernel caches of the tree when an event says it changed.

The kernel keeps a name for its `entry_timeout` and a node's attributes for its
`attr_timeout`; attributes.py says which may be kept at all. Besides fixed rows, two
things are kept because their services announce every change with an event:
the names of the children of a collection with `Children.removed` (namespaces,
containers: a walk to containers/X/status asks nothing about X), and the attributes
of directories, streams and inputs dated by a table with `Table.changed_by` (a
container's directory, those below it, its wait, tty and stdin: their mtime is the
container's). At each such event this module
tells the kernel to forget the name, or to ask again for the attributes.

An rmdir through the mount needs none of it (the kernel drops the name itself); the
events matter for what the daemon changes on its own (an exit, a removal that came
another way). A removal that publishes nothing must not happen to a child of such a
collection: an empty container slot is removed only by rmdir.

The attributes of the values that show a task's state (status, pid, exit, created,
started, exited: `Value.task_state`) are kept too, and withdrawn at each change of
that state the containers service tells (`on_state_change`: each time it forgets
what it knew, at its verbs, the watcher's exits and the end of a started process
(seen even when its conmon was killed), and when a fresh answer differs from the one
before); a stat made in between a change nothing reports and the next open of the
value may see the old size for up to the timeout.

Attributes are withdrawn at once, inside the publish (`invalidate_inode` with
`attr_only` takes no lock in the kernel but a spinlock, and bumps the inode's
attribute version, so a getattr answer already on its way is not kept): when the
write that started a container returns, a stat of its directory asks again. Names
are withdrawn from pyfuse3's notify thread (`invalidate_entry_async`), never from
the loop: `invalidate_entry` waits in the kernel for the directory's lock, which
the rmdir or mkdir being served holds (a deadlock, see docs/fuse-notes.md). So a
name the daemon removed on its own may still be walked to for the moment that thread
takes.
"""

import contextlib
import os
from typing import NamedTuple

import pyfuse3

from mountpoint.attributes import dated
from mountpoint.nodes import Node, NodeTable
from mountpoint.services import BusEvent
from mountpoint.table import Children, Value


class Withdrawal(NamedTuple):
    """The attributes of inode `ino` (no `name`), or the name `name` in directory `ino`."""

    ino: int
    name: str | None = None


def _child_of(node: Node) -> Children | None:
    """The collection `node` is a dynamic child of, if it is one."""
    parent = node.parent
    if not node.dynamic or parent is None or parent.table is None:
        return None
    return parent.table.children


def withdrawals(nodes: NodeTable, event: BusEvent) -> list[Withdrawal]:
    """What the kernel holds that `event` changed: the names it removed, the
    attributes of the directories it re-dated. Only the nodes in the scope of the
    object the event names are looked at (`NodeTable.of_object`); all of a
    directory's nodes are in its object's scope (nothing below a container binds
    `ns` or `id` again: Children checks the params events can name)."""
    found: list[Withdrawal] = []
    for node in nodes.of_object(event.namespace, event.id):
        children = _child_of(node)
        if children is not None and children.removed == event.topic \
                and node.scope.get(children.param) == event.id:
            assert node.parent is not None
            found.append(Withdrawal(node.parent.ino, node.name))
    in_scope = nodes.of_object(event.namespace, event.container_id)
    for node in in_scope:
        children = _child_of(node)
        if children is not None and node.table is not None \
                and event.topic in node.table.changed_by \
                and node.scope.get(children.param) == event.container_id:
            found += [Withdrawal(below.ino) for below in in_scope
                      if dated(below) and below.path[:len(node.path)] == node.path]
    return found


def task_values(nodes: NodeTable, namespace: str, container_id: str, exec_id: str | None,
                every_exec: bool) -> list[int]:
    """The inodes of the values that show this task's state (`Value.task_state`): in
    its container's scope, which a namespace's own nodes share when the container is
    named as the namespace (`object_key`)."""
    return [node.ino for node in nodes.of_object(namespace, container_id)
            if isinstance(node.entry, Value) and node.entry.task_state
            and node.scope.get("id") == container_id
            and (every_exec or node.scope.get("exec") == exec_id)]


class KernelCache:
    """A bus listener that sends the kernel the withdrawals of each event, and a
    listener of task state changes that withdraws the attributes of their values."""

    def __init__(self, nodes: NodeTable) -> None:
        self._nodes = nodes
        self.enabled = False  # once mounted (Filesystem.withdraw_cached)

    def listen(self, event: BusEvent) -> None:
        for ino, name in withdrawals(self._nodes, event):
            if name is not None:
                pyfuse3.invalidate_entry_async(ino, os.fsencode(name), ignore_enoent=True)
                continue
            _drop_attrs(ino)

    def task_changed(self, namespace: str, container_id: str, exec_id: str | None,
                     every_exec: bool) -> None:
        for ino in task_values(self._nodes, namespace, container_id, exec_id, every_exec):
            _drop_attrs(ino)

    def writer_opened(self, node: Node) -> None:
        """A ctl file was opened for writing: the kernel forgets its name, so the next
        walk looks it up and gets an inode of its own (nodes.py); a walk in the moment
        before the notify thread sends this shares the busy inode and waits for it."""
        if self.enabled and node.parent is not None:
            pyfuse3.invalidate_entry_async(node.parent.ino, os.fsencode(node.name),
                                           ignore_enoent=True)

    def value_stored(self, node: Node) -> None:
        """A value the kernel keeps was stored (`Value.written_only`): the kernel
        dropped its attributes at the write, but a stat since may have fetched the
        old ones (a value stored at close, or after a signal released its writer)."""
        if self.enabled and isinstance(node.entry, Value) and node.entry.kept:
            _drop_attrs(node.ino)


def _drop_attrs(ino: int) -> None:
    """At once, from anywhere (even a handler of the same inode): see the module doc."""
    with contextlib.suppress(FileNotFoundError):  # the kernel forgot it first
        pyfuse3.invalidate_inode(ino, attr_only=True)
