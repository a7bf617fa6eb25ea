"""Named network namespaces as the daemon serves them (netns/ at the root).

The tree mirrors the host: every namespace in /run/netns is listed, whoever made it
(`ip netns add` included), and its path and links can be read. Changing one — ctl
verbs, rmdir — is allowed only for the namespaces cdfs made itself, so that a user of
the mount cannot rewire or delete namespaces that belong to other software. Which
ones cdfs made is remembered by a marker file each under <state>/netns/, which lives
exactly as long as /run/netns does (until the host reboots).

Every pyroute2 call blocks (it forks a helper that enters the namespace), so each
runs in a worker thread.
"""

import logging
from pathlib import Path

import trio

from base.errors import Busy, InvalidArgument, NotFound, PermissionDenied
from cdfs.events import EventBus
from runtime import netns

# pyroute2 logs every netlink message at debug level, which would drown the daemon's log.
logging.getLogger("pyroute2").setLevel(logging.INFO)


class NetworkNamespaces:
    """Create, configure and remove named network namespaces."""

    def __init__(self, state: Path, bus: EventBus) -> None:
        self._made = state / "netns"
        self._made.mkdir(parents=True, exist_ok=True)
        self._bus = bus

    async def names(self) -> list[str]:
        """Every named network namespace on the host whose name cdfs can serve."""
        found = await trio.to_thread.run_sync(netns.names)
        return [name for name in found if _valid(name)]

    async def exists(self, name: str) -> bool:
        return _valid(name) and await trio.to_thread.run_sync(netns.exists, name)

    def path(self, name: str) -> str:
        """/run/netns/<name>, what a runtime spec's network namespace path names.
        InvalidArgument for a bad name."""
        return str(netns.path(name))

    async def create(self, name: str) -> None:
        """Make the namespace `name` with `lo` up. InvalidArgument for a bad name,
        AlreadyExists if the host has one of that name."""
        await trio.to_thread.run_sync(netns.create, name)
        await trio.to_thread.run_sync((self._made / name).touch)
        self._bus.publish("", "/netns/create", name, name=name)

    async def remove(self, name: str) -> None:
        """Remove a namespace cdfs made. Busy while a process (a running container)
        lives in it; PermissionDenied for one made by other software."""
        await self._check_owned(name)
        users = await trio.to_thread.run_sync(_users, name)
        if users:
            pids = " ".join(str(pid) for pid in users)
            raise Busy(f'network namespace "{name}" is in use by pid {pids}')
        await trio.to_thread.run_sync(netns.remove, name)
        await trio.to_thread.run_sync(lambda: (self._made / name).unlink(missing_ok=True))
        self._bus.publish("", "/netns/delete", name, name=name)

    async def veth(self, name: str, host_if: str, peer_if: str) -> None:
        """A veth pair: `host_if` up in the host, `peer_if` (down) inside `name`."""
        await self._check_owned(name)
        await trio.to_thread.run_sync(netns.veth, name, host_if, peer_if)

    async def set_up(self, name: str, ifname: str, up: bool) -> None:
        await self._check_owned(name)
        await trio.to_thread.run_sync(netns.set_up, name, ifname, up)

    async def add_address(self, name: str, ifname: str, cidr: str) -> None:
        await self._check_owned(name)
        await trio.to_thread.run_sync(netns.add_address, name, ifname, cidr)

    async def links(self, name: str) -> str:
        """`IF STATE ADDR/PREFIX…` lines, one interface each, by index."""
        found = await trio.to_thread.run_sync(netns.links, name)
        return "".join(link.line() + "\n" for link in found)

    async def counters(self, name: str) -> str:
        """`IF RX_BYTES RX_ERRORS TX_BYTES TX_ERRORS` lines, one interface each."""
        found = await trio.to_thread.run_sync(netns.links, name)
        return "".join(link.counters_line() + "\n" for link in found)

    async def _check_owned(self, name: str) -> None:
        """Refuse to change a namespace cdfs did not make (its marker file says)."""
        await trio.to_thread.run_sync(_check_owned, self._made, name)


def _valid(name: str) -> bool:
    try:
        netns.check_name(name)
    except InvalidArgument:
        return False
    return True


def _check_owned(made: Path, name: str) -> None:
    if not (made / netns.check_name(name)).exists():
        if not netns.exists(name):
            raise NotFound(f'no network namespace: "{name}"')
        raise PermissionDenied(f'network namespace "{name}" was not made by cdfs')


def _users(name: str) -> list[int]:
    """The processes in `name`; none for a name whose namespace is already unmounted."""
    return netns.users(name) if netns.exists(name) else []
