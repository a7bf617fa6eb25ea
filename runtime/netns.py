"""Named network namespaces, made the way `ip netns add` makes them, and their links.

A namespace named N is the nsfs file /run/netns/N bind-mounted over an empty file (on
a shared mount of /run/netns, as iproute2 does), so `ip netns list`, `ip -n N …` and
a runc spec's `{"type": "network", "path": "/run/netns/N"}` all see the same one.
Creation brings `lo` up, as containers expect.

pyroute2 does the work. Its namespace creation and every `IPRoute(netns=…)` fork a
short-lived child (measured here: ~16 ms each) that enters the namespace and hands a
netlink socket back; nothing stays running and every socket is closed before a
function returns. All functions block: call them from a worker thread.

Removing a namespace unmounts its name; the kernel destroys it (and the veth ends in
it, which takes the host ends with them) once the last process and open fd let go,
asynchronously. `users(N)` tells which processes still live in it.
"""

import errno
import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pyroute2 import IPRoute, NetlinkError
from pyroute2 import netns as pyroute2_netns

from base import identifiers
from base.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable

NETNS_DIR: Final = Path("/run/netns")

# As the kernel's dev_valid_name: shorter than IFNAMSIZ (16), no '/', ':' or blanks.
_IFNAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,15}")


@dataclass(frozen=True)
class Link:
    """One network interface in a namespace: name, operational state, addresses (CIDR)."""

    name: str
    state: str
    addresses: tuple[str, ...] = ()
    counters: tuple[int, int, int, int] = (0, 0, 0, 0)
    """rx_bytes, rx_errors, tx_bytes, tx_errors since the interface was made"""

    def line(self) -> str:
        """`IF STATE ADDR…`, the line format of a `links` file."""
        return " ".join((self.name, self.state, *self.addresses))

    def counters_line(self) -> str:
        """`IF RX_BYTES RX_ERRORS TX_BYTES TX_ERRORS`, the line format of `counters`."""
        return " ".join((self.name, *map(str, self.counters)))


def check_name(name: str) -> str:
    """A namespace name, by the one identifier rule (so never '.', '..' or a path)."""
    return identifiers.validate(name, "network namespace name")


def check_ifname(ifname: str) -> str:
    """An interface name the kernel accepts: 1-15 characters of letters, digits, '_.-'."""
    if not _IFNAME.fullmatch(ifname) or ifname in (".", ".."):
        raise InvalidArgument(f'bad interface name: "{ifname}"')
    return ifname


def path(name: str) -> Path:
    """Where the namespace `name` is (or would be) bound: /run/netns/<name>."""
    return NETNS_DIR / check_name(name)


def exists(name: str) -> bool:
    return os.path.ismount(path(name))


def names() -> list[str]:
    """Every named network namespace on the host, sorted (as `ip netns list`)."""
    return sorted(pyroute2_netns.listnetns(str(NETNS_DIR)))


def _require(name: str) -> Path:
    where = path(name)
    if not os.path.ismount(where):
        raise NotFound(f'no network namespace: "{name}"')
    return where


def create(name: str) -> Path:
    """Create the namespace `name` with `lo` up and return its path.

    InvalidArgument for a bad name; AlreadyExists if it exists."""
    where = path(name)
    if where.exists():
        raise AlreadyExists(f'network namespace exists: "{name}"')
    try:
        pyroute2_netns.create(str(where))
    except FileExistsError:
        raise AlreadyExists(f'network namespace exists: "{name}"') from None
    except OSError as e:
        _unbind(where)
        raise Unavailable(f'cannot create network namespace "{name}": {e}') from None
    try:
        set_up(name, "lo", True)
    except BaseException:
        _unbind(where)
        raise
    return where


def remove(name: str) -> None:
    """Remove the name of the namespace `name` (the kernel frees it when unused); also
    clears a name left unmounted by a crash. NotFound if there is no such name."""
    where = path(name)
    if not where.exists():
        raise NotFound(f'no network namespace: "{name}"')
    _unbind(where)


def _unbind(where: Path) -> None:
    """Unmount (lazily) and unlink a namespace's name; a missing one is already gone."""
    with suppress(FileNotFoundError):
        pyroute2_netns.remove(str(where))


def users(name: str) -> list[int]:
    """Pids of the processes whose network namespace is `name` (a /proc scan, ~1 ms per
    few hundred processes). NotFound if there is no such namespace."""
    identity = _identity(_require(name))
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if _identity(Path(entry.path, "ns", "net")) == identity:
                pids.append(int(entry.name))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return sorted(pids)


def _identity(file: Path) -> tuple[int, int]:
    st = os.stat(file)
    return st.st_dev, st.st_ino


@contextmanager
def _netlink(name: str | None, what: str) -> Iterator[IPRoute]:
    """A netlink socket in the namespace `name` (None: the host's), with the kernel's
    refusals turned into cdfs errors that quote `what`."""
    try:
        # flags=0: never create the namespace as a side effect.
        ipr = IPRoute() if name is None else IPRoute(netns=str(_require(name)), flags=0)
    except FileNotFoundError:
        raise NotFound(f'no network namespace: "{name}"') from None
    try:
        yield ipr
    except NetlinkError as e:
        raise _translate(e, what) from None
    finally:
        ipr.close()


def _translate(error: NetlinkError, what: str) -> Exception:
    if error.code == errno.EEXIST:
        return AlreadyExists(f"exists: {what}")
    if error.code in (errno.ENODEV, errno.ENOENT, errno.ESRCH):
        return NotFound(f"not found: {what}")
    if error.code in (errno.EINVAL, errno.EADDRNOTAVAIL, errno.ERANGE):
        return InvalidArgument(f"refused by the kernel: {what}")
    return Unavailable(f"{what}: {os.strerror(error.code)}")


def _index(ipr: IPRoute, ifname: str, name: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        where = "the host" if name is None else f'"{name}"'
        raise NotFound(f'no interface "{ifname}" in {where}')
    return int(found[0])


def veth(name: str, host_if: str, peer_if: str) -> None:
    """Create a veth pair: `host_if` stays in the host and is brought up, `peer_if` is
    moved into the namespace `name` and left down (configure it, then `set_up`).

    InvalidArgument for bad names; NotFound without the namespace; AlreadyExists if
    `host_if` exists in the host or `peer_if` in the namespace."""
    check_ifname(host_if)
    check_ifname(peer_if)
    where = _require(name)
    ns_fd = os.open(where, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _netlink(None, f'veth "{host_if}" to "{peer_if}" in "{name}"') as ipr:
            peer = {"ifname": peer_if, "net_ns_fd": ns_fd}
            ipr.link("add", ifname=host_if, kind="veth", peer=peer)
            ipr.link("set", index=_index(ipr, host_if, None), state="up")
    finally:
        os.close(ns_fd)


def set_up(name: str, ifname: str, up: bool) -> None:
    """Bring the interface `ifname` of the namespace `name` up (or down).

    NotFound without the namespace or interface."""
    check_ifname(ifname)
    state = "up" if up else "down"
    with _netlink(name, f'set "{ifname}" {state} in "{name}"') as ipr:
        ipr.link("set", index=_index(ipr, ifname, name), state=state)


def add_address(name: str, ifname: str, cidr: str) -> None:
    """Add the IPv4 or IPv6 address `cidr` ("10.0.0.2/24", "fd00::2/64") to `ifname`.

    InvalidArgument for a malformed address (a prefix length is required); NotFound
    without the namespace or interface; AlreadyExists if the address is there."""
    check_ifname(ifname)
    try:
        if "/" not in cidr:
            raise ValueError(cidr)
        interface = ipaddress.ip_interface(cidr)
    except ValueError:
        raise InvalidArgument(f'bad address (want ADDRESS/PREFIX): "{cidr}"') from None
    with _netlink(name, f'address {cidr} on "{ifname}" in "{name}"') as ipr:
        ipr.addr(
            "add",
            index=_index(ipr, ifname, name),
            address=str(interface.ip),
            prefixlen=interface.network.prefixlen,
        )


def links(name: str) -> list[Link]:
    """Every interface of the namespace `name` with its state and addresses, by index.

    NotFound without the namespace."""
    with _netlink(name, f'links of "{name}"') as ipr:
        addresses: dict[int, list[str]] = {}
        for message in ipr.get_addr():
            cidr = f"{message.get_attr('IFA_ADDRESS')}/{message['prefixlen']}"
            addresses.setdefault(message["index"], []).append(cidr)
        return [
            _link(message, tuple(addresses.get(message["index"], ())))
            for message in sorted(ipr.get_links(), key=lambda m: m["index"])
        ]


def _link(message: Any, addresses: tuple[str, ...]) -> Link:
    stats = message.get_attr("IFLA_STATS64") or {}
    rx_bytes, rx_errors, tx_bytes, tx_errors = (
        int(stats.get(key, 0)) for key in ("rx_bytes", "rx_errors", "tx_bytes", "tx_errors"))
    return Link(message.get_attr("IFLA_IFNAME"), message.get_attr("IFLA_OPERSTATE"), addresses,
                (rx_bytes, rx_errors, tx_bytes, tx_errors))
