"""Stopping a tree container's task, for pods (their pause and member containers)
and CRI containers alike: one way to stop, one way to tolerate the races."""

import errno

from cdfs.client.tree import Tree, TreeError
from cdfs.cri.container_record import LIVE, PAUSED


def stop_task(tree: Tree, container_id: str, grace: int, signal: str = "") -> None:
    """`stop GRACE [SIGNAL]` in the container's ctl (`signal`, else its image's stop
    signal, then KILL after GRACE seconds), resuming a paused one first. Nothing for a
    container that is gone or not live, nor for one whose own exit won the race with
    the stop (the tree then refuses the verb, and the status says it is over)."""
    box = tree.container(container_id)
    try:
        status = _status(tree, container_id)
        if status not in LIVE:
            return
        if status == PAUSED:
            tree.write(box / "ctl", "resume\n")
        tree.write(box / "ctl", f"stop {grace} {signal}".rstrip() + "\n")
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            return
        if exc.errno == errno.EINVAL and _status(tree, container_id) not in LIVE:
            return
        raise


def _status(tree: Tree, container_id: str) -> str:
    """The task's status; "" for a container that went meanwhile."""
    try:
        return tree.read(tree.container(container_id) / "status").strip()
    except TreeError as exc:
        if exc.errno == errno.ENOENT:
            return ""
        raise
