"""netns/ through the mounted tree, with iproute2 as the independent witness. Every
namespace and host-side interface a test names is deleted in teardown, even when the
test fails; processes a test starts are killed by pid."""

import errno
import json
import os
import secrets
import subprocess

import pytest
from support import Daemon, Names, ip, listed, wait_until


def refused(daemon: Daemon, path: str, line: str) -> tuple[int, str]:
    """Write one ctl line through os.write; the errno it failed with, and the err line."""
    fd = os.open(daemon.path(path, "ctl"), os.O_WRONLY)
    try:
        with pytest.raises(OSError) as failure:
            os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)
    return failure.value.errno, daemon.path(path, "err").read_text()


def test_mkdir_wire_and_rmdir(daemon: Daemon, names: Names) -> None:
    name, host_if = names.namespace(), names.host_if()
    where = f"netns/{name}"
    daemon.path(where).mkdir()
    assert name in listed()
    assert name in os.listdir(daemon.path("netns"))
    assert sorted(os.listdir(daemon.path(where))) == ["counters", "ctl", "err", "links", "path"]
    assert daemon.path(where, "path").read_text() == f"/run/netns/{name}\n"
    assert daemon.path(where, "links").read_text().startswith("lo UNKNOWN 127.0.0.1/8")
    assert ",UP," in ip("-n", name, "link", "show", "lo")

    daemon.sh(f'cd "$M/{where}" && echo "veth {host_if} eth1" > ctl'
              ' && echo "addr eth1 10.77.0.2/24" > ctl && echo "up eth1" > ctl')
    inside = ip("-n", name, "-o", "addr", "show", "dev", "eth1")
    assert "10.77.0.2/24" in inside
    assert ",UP" in ip("-n", name, "link", "show", "eth1")
    assert host_if in ip("link", "show", host_if)
    links = {line.split()[0]: line.split()[1:]
             for line in daemon.path(where, "links").read_text().splitlines()}
    assert links["eth1"][0] in ("UP", "LOWERLAYERDOWN") and "10.77.0.2/24" in links["eth1"]
    counters = {line.split()[0]: line.split()[1:]
                for line in daemon.path(where, "counters").read_text().splitlines()}
    assert set(counters) == {"lo", "eth1"}
    assert all(len(values) == 4 and all(v.isdigit() for v in values)
               for values in counters.values())

    daemon.sh(f'echo "down eth1" > "$M/{where}/ctl"')
    assert ",UP" not in ip("-n", name, "link", "show", "eth1")

    daemon.path(where).rmdir()
    assert name not in listed()
    assert name not in os.listdir(daemon.path("netns"))
    assert not daemon.path(where).exists()
    # The kernel frees the namespace, and the veth with it, asynchronously.
    assert wait_until(lambda: not os.path.exists(f"/sys/class/net/{host_if}"), timeout=10)


def test_bad_input_is_refused_and_changes_nothing(daemon: Daemon, names: Names) -> None:
    with pytest.raises(OSError) as bad:
        daemon.path("netns", "bad/../name").mkdir()
    with pytest.raises(OSError) as bad:
        daemon.path("netns", "-dash").mkdir()
    assert bad.value.errno == errno.EINVAL
    assert '"-dash"' in daemon.path("netns", "err").read_text()

    name = names.namespace()
    where = f"netns/{name}"
    daemon.path(where).mkdir()
    with pytest.raises(FileExistsError):
        daemon.path(where).mkdir()
    before = ip("-n", name, "-o", "addr")
    code, err = refused(daemon, where, "addr lo 10.0.0.1")
    assert code == errno.EINVAL and '"10.0.0.1"' in err
    code, err = refused(daemon, where, "addr nosuchif 10.0.0.1/24")
    assert code == errno.ENOENT and '"nosuchif"' in err
    code, err = refused(daemon, where, "veth way-too-long-interface-name x")
    assert code == errno.EINVAL and "way-too-long-interface-name" in err
    code, err = refused(daemon, where, "up")
    assert code == errno.EINVAL and "usage: up IF" in err
    code, err = refused(daemon, where, "route add default")
    assert code == errno.EINVAL and '"route add default"' in err
    assert ip("-n", name, "-o", "addr") == before
    assert "veth" in daemon.path(where, "ctl").read_text()


def test_rmdir_is_busy_while_a_process_is_inside(daemon: Daemon, names: Names) -> None:
    name = names.namespace()
    daemon.path("netns", name).mkdir()
    inside = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"])
    try:
        assert wait_for_user(name, inside.pid)
        with pytest.raises(OSError) as busy:
            daemon.path("netns", name).rmdir()
        assert busy.value.errno == errno.EBUSY
        assert str(inside.pid) in daemon.path("netns", "err").read_text()
        assert name in listed()
    finally:
        inside.kill()
        inside.wait(timeout=10)
    daemon.path("netns", name).rmdir()
    assert name not in listed()


def wait_for_user(name: str, pid: int) -> bool:
    """Whether `pid` is in the namespace `name` within a few seconds (after its exec)."""
    target = os.stat(f"/run/netns/{name}").st_ino

    def inside() -> bool:
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == target
        except FileNotFoundError:
            return False

    return wait_until(inside, timeout=10)


def test_namespaces_of_other_software_are_listed_not_changed(
        daemon: Daemon, names: Names) -> None:
    name = names.namespace()
    ip("netns", "add", name)
    assert name in os.listdir(daemon.path("netns"))
    assert daemon.path("netns", name, "links").read_text().startswith("lo ")
    code, err = refused(daemon, f"netns/{name}", "up lo")
    assert code == errno.EACCES and "not made by cdfs" in err
    with pytest.raises(PermissionError):
        daemon.path("netns", name).rmdir()
    assert name in listed()


def run_in_container(daemon: Daemon, prefix: str, args: list[str], netns: str | None = None
                     ) -> tuple[int, str]:
    """Run `args` in a new busybox container (joining `netns` if given) to its end: its
    exit status and stdout. The container is deleted afterwards."""
    container = daemon.path("containers", f"{prefix}-{secrets.token_hex(3)}")
    container.mkdir()
    try:
        (container / "image").write_text("cdfs.local/busybox:latest\n")
        if netns is not None:
            (container / "netns").write_text(netns + "\n")
        (container / "config.json").write_text(json.dumps({"process": {"args": args}}))
        (container / "ctl").write_text("start\n")
        done = subprocess.run(["timeout", "20", "cat", str(container / "wait")],
                              capture_output=True, text=True, timeout=30)
        return int(done.stdout), (container / "stdout").read_text()
    finally:
        container.rmdir()


def test_container_in_the_namespace_sees_the_veth_peer(daemon: Daemon, names: Names) -> None:
    name, host_if = names.namespace(), names.host_if()
    where = daemon.path("netns", name)
    where.mkdir()
    daemon.sh(f'cd "{where}" && echo "veth {host_if} eth1" > ctl'
              ' && echo "addr eth1 10.78.0.2/24" > ctl && echo "up eth1" > ctl')
    status, output = run_in_container(daemon, "joined", ["ip", "addr"], netns=name)
    assert status == 0
    assert "eth1" in output and "inet 10.78.0.2/24" in output
    assert host_if not in output
    where.rmdir()  # no container is left inside


def test_container_without_netns_has_its_own_with_loopback_up(daemon: Daemon) -> None:
    status, output = run_in_container(daemon, "alone", ["ip", "link"])
    assert status == 0
    interfaces = [line.split(":")[1].strip() for line in output.splitlines()
                  if line[:1].isdigit()]
    assert interfaces == ["lo"], output
    assert "<LOOPBACK,UP,LOWER_UP>" in output
