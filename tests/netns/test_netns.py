"""Named network namespaces against the real kernel, with iproute2 (`ip netns list`,
`ip -n NAME …`) as the independent witness. Every namespace and host-side veth a test
makes is deleted in teardown, even when the test fails."""

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from support import Names, ip, listed

from base.errors import AlreadyExists, InvalidArgument, NotFound
from runtime import netns


def test_create_list_remove(names: Names) -> None:
    name = names.namespace()
    assert netns.create(name) == netns.NETNS_DIR / name
    assert name in listed()
    assert netns.exists(name)
    assert name in netns.names()
    assert "state UNKNOWN" in ip("-n", name, "link", "show", "lo")
    assert ",UP," in ip("-n", name, "link", "show", "lo")
    netns.remove(name)
    assert name not in listed()
    assert not netns.exists(name)
    assert not (netns.NETNS_DIR / name).exists()


def test_create_twice_is_refused(names: Names) -> None:
    name = names.namespace()
    netns.create(name)
    inode = os.stat(netns.path(name)).st_ino
    with pytest.raises(AlreadyExists, match=name):
        netns.create(name)
    assert os.stat(netns.path(name)).st_ino == inode


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".hidden", "-x", "x" * 77, "a b", "a\0"])
def test_bad_namespace_names(bad: str) -> None:
    before = listed()
    with pytest.raises(InvalidArgument, match="network namespace name"):
        netns.create(bad)
    with pytest.raises(InvalidArgument):
        netns.remove(bad)
    assert listed() == before


@pytest.mark.parametrize("bad", ["", "x" * 16, "a/b", "a b", "a:b", ".."])
def test_bad_interface_names(names: Names, bad: str) -> None:
    name = names.namespace()
    netns.create(name)
    with pytest.raises(InvalidArgument, match="bad interface name"):
        netns.veth(name, names.host_if(), bad)
    with pytest.raises(InvalidArgument, match="bad interface name"):
        netns.set_up(name, bad, True)
    assert [link.name for link in netns.links(name)] == ["lo"]


def test_missing_namespace(names: Names) -> None:
    name = names.namespace()
    for refused in (
        lambda: netns.remove(name),
        lambda: netns.links(name),
        lambda: netns.set_up(name, "lo", True),
        lambda: netns.add_address(name, "lo", "10.1.2.3/8"),
        lambda: netns.veth(name, names.host_if(), "eth0"),
        lambda: netns.users(name),
    ):
        with pytest.raises(NotFound, match=name):
            refused()
    assert name not in listed()


def test_veth_addresses_and_links(names: Names) -> None:
    name, host_if = names.namespace(), names.host_if()
    netns.create(name)
    netns.veth(name, host_if, "eth0")
    assert "state DOWN" in ip("-n", name, "link", "show", "eth0")
    assert ",UP" in ip("link", "show", host_if)

    netns.add_address(name, "eth0", "10.213.7.2/24")
    netns.add_address(name, "eth0", "fd00:cdf5::2/64")
    netns.set_up(name, "eth0", True)

    witness = ip("-n", name, "-o", "addr", "show", "eth0")
    assert "inet 10.213.7.2/24" in witness
    assert "inet6 fd00:cdf5::2/64" in witness
    links = {link.name: link for link in netns.links(name)}
    assert set(links) == {"lo", "eth0"}
    assert links["eth0"].state == "UP"
    assert links["eth0"].addresses[:2] == ("10.213.7.2/24", "fd00:cdf5::2/64")
    assert links["eth0"].line().startswith("eth0 UP 10.213.7.2/24 fd00:cdf5::2/64")
    assert links["lo"].line() == "lo UNKNOWN 127.0.0.1/8 ::1/128"
    ping = subprocess.run(["ip", "netns", "exec", name, "busybox", "ping", "-c", "2", "-W", "2",
                           "127.0.0.1"], capture_output=True, timeout=30)
    assert ping.returncode == 0, ping
    lo = {link.name: link for link in netns.links(name)}["lo"]
    rx_bytes, rx_errors, tx_bytes, tx_errors = lo.counters
    assert rx_bytes >= 2 * 84 and tx_bytes == rx_bytes and rx_errors == tx_errors == 0
    assert lo.counters_line() == f"lo {rx_bytes} 0 {tx_bytes} 0"

    netns.set_up(name, "eth0", False)
    assert "state DOWN" in ip("-n", name, "link", "show", "eth0")
    assert {link.name: link.state for link in netns.links(name)}["eth0"] == "DOWN"


def test_traffic_crosses_the_veth(names: Names) -> None:
    name, host_if = names.namespace(), names.host_if()
    netns.create(name)
    netns.veth(name, host_if, "eth0")
    netns.add_address(name, "eth0", "10.213.8.2/24")
    netns.set_up(name, "eth0", True)
    ip("addr", "add", "10.213.8.1/24", "dev", host_if)
    ping = ["ip", "netns", "exec", name, "busybox", "ping", "-c", "1", "-W", "3", "10.213.8.1"]
    assert subprocess.run(ping, capture_output=True, timeout=10).returncode == 0


def test_duplicates_are_refused(names: Names) -> None:
    name, host_if = names.namespace(), names.host_if()
    netns.create(name)
    netns.veth(name, host_if, "eth0")
    netns.add_address(name, "eth0", "10.213.9.2/24")
    with pytest.raises(AlreadyExists, match=host_if):
        netns.veth(name, host_if, "eth1")
    with pytest.raises(AlreadyExists):
        netns.veth(name, names.host_if(), "eth0")
    with pytest.raises(AlreadyExists, match=re.escape("10.213.9.2/24")):
        netns.add_address(name, "eth0", "10.213.9.2/24")
    with pytest.raises(InvalidArgument, match="want ADDRESS/PREFIX"):
        netns.add_address(name, "eth0", "10.213.9.3")
    with pytest.raises(InvalidArgument):
        netns.add_address(name, "eth0", "10.213.9.300/24")
    assert "eth1" not in ip("-n", name, "-o", "link")
    assert [link.name for link in netns.links(name)] == ["lo", "eth0"]


def test_users_are_the_processes_inside(names: Names) -> None:
    name = names.namespace()
    netns.create(name)
    assert netns.users(name) == []
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        while netns.users(name) != [sleeper.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert netns.users(name) == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
    assert netns.users(name) == []


def test_nothing_leaks(names: Names) -> None:
    """pyroute2 forks helpers and opens netlink sockets: none may outlive a call."""
    fds_before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        name = names.namespace()
        netns.create(name)
        netns.veth(name, names.host_if(), "eth0")
        netns.add_address(name, "eth0", "10.213.10.2/24")
        netns.set_up(name, "eth0", True)
        netns.links(name)
        netns.remove(name)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before
    children = [
        pid
        for task in os.listdir("/proc/self/task")
        for pid in Path(f"/proc/self/task/{task}/children").read_text().split()
    ]
    assert children == []
