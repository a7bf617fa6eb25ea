"""config.json merges over the defaults as containerd's spec options do."""

import errno
import json
import subprocess
from pathlib import Path

import pytest
from support import CDFS, Daemon, is_mounted, make_busybox_rootfs
from support import write as _write

from cdfs.services import container_config as cc


def test_a_users_mount_joins_the_defaults_and_replaces_one_at_its_destination() -> None:
    spec = cc.build_spec("ns", "c", {"mounts": [
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=1m"]},
    ]}, {"RLIMIT_NOFILE": 20000})
    destinations = [m["destination"] for m in spec["mounts"]]
    assert "/proc" in destinations and "/dev" in destinations
    assert destinations.count("/dev/shm") == 1 and destinations[-2:] == ["/data", "/dev/shm"]
    assert next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")["options"] == \
        ["size=1m"]


def test_a_partial_config_with_a_bind_mount_runs(daemon: Daemon, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    container = daemon.path("namespaces", "default", "containers", "bound")
    container.mkdir()
    _write(container / "image", "cdfs.local/busybox:latest\n")
    _write(container / "config.json", json.dumps({
        "process": {"args": ["sh", "-c", "cat /data/hello; test -e /proc/self/stat && echo proc"]},
        "mounts": [{"destination": "/data", "type": "bind", "source": str(shared),
                    "options": ["rbind", "ro"]}]}))
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0", (container / "stderr").read_text()
    assert (container / "stdout").read_text() == "from the host\nproc\n"


def _created(daemon: Daemon, name: str, config: dict[str, object] | str,
             image: str | None = "cdfs.local/busybox:latest") -> tuple[int, str]:
    """mkdir a container, write its config.json: (errno of the write or 0, err line)."""
    container = daemon.path("namespaces", "default", "containers", name)
    container.mkdir()
    if image:
        _write(container / "image", image + "\n")
    try:
        _write(container / "config.json", config if isinstance(config, str)
               else json.dumps(config))
    except OSError as exc:
        return exc.errno or -1, (container / "err").read_text()
    return 0, (container / "err").read_text()


def _run(daemon: Daemon, name: str) -> str:
    container = daemon.path("namespaces", "default", "containers", name)
    _write(container / "ctl", "start\n")
    status = subprocess.run(["timeout", "30", "cat", str(container / "wait")],
                            capture_output=True, text=True, timeout=40).stdout.strip()
    assert status == "0", (container / "stderr").read_text()
    return (container / "stdout").read_text()


def test_a_username_runs_as_that_user_from_the_images_passwd(daemon: Daemon) -> None:
    assert _created(daemon, "nobody", {"process": {
        "args": ["id"], "user": {"username": "nobody"}}}) == (0, "")
    assert _run(daemon, "nobody").startswith("uid=65534(nobody) gid=65534(nogroup)")
    code, err = _created(daemon, "ghost", {"process": {"user": {"username": "ghost"}}})
    assert code == errno.EINVAL
    assert 'process.user.username: "ghost" is not in the root\'s /etc/passwd' in err
    assert (daemon.path("namespaces", "default", "containers", "ghost", "status")
            ).read_text().strip() == "empty"  # refused: nothing created, never run as root


def test_a_username_in_an_own_root_gets_its_groups(daemon: Daemon, tmp_path: Path) -> None:
    root = make_busybox_rootfs(tmp_path / "rootfs")
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    assert _created(daemon, "app", {"root": {"path": str(root)}, "process": {
        "args": ["id"], "user": {"username": "app"}}}, image=None) == (0, "")
    assert _run(daemon, "app").strip() == "uid=1000(app) gid=1000(app) groups=2000(extra)"


@pytest.mark.parametrize(("config", "said"), [
    ({"process": {"user": {"uid": 2**31, "gid": 0}}},
     "process.user.uid: must be an integer from 0 to 2147483647"),
    ({"process": {"user": {"uid": 0, "gid": 0, "additionalGids": [2**32]}}},
     "process.user.additionalGids: must be a list of integers from 0 to 2147483647"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "config.json: JSON nested deeper than 64 levels"),
    ({"linux": {"resources": {"memory": {"limit": "lots"}}}},
     "linux.resources.memory.limit: must be an integer"),
])
def test_bad_values_are_refused_in_cdfs_words(daemon: Daemon, config: dict[str, object] | str,
                                              said: str) -> None:
    code, err = _created(daemon, "bad", config)
    assert code == errno.EINVAL
    assert said in err and "internal error" not in err


def test_update_with_a_wrong_type_is_refused_in_cdfs_words(daemon: Daemon) -> None:
    assert _created(daemon, "up", {"process": {"args": ["sleep", "30"]}}) == (0, "")
    container = daemon.path("namespaces", "default", "containers", "up")
    _write(container / "ctl", "start\n")
    try:
        for line, said in [
            ('update {"memory": {"limit": "64m"}}', "update.memory.limit: must be an integer"),
            ('update {"pids": {"limt": 5}}', 'update.pids: unknown field "limt"'),
            ('update {"cpu": {"shares": -1}}', "update.cpu.shares: must be an integer >= 0"),
            ("update " + "[" * 3000 + "]" * 3000, "update: JSON nested deeper than 64"),
        ]:
            with pytest.raises(OSError) as refused:
                _write(container / "ctl", line + "\n")
            assert refused.value.errno == errno.EINVAL
            err = (container / "err").read_text()
            assert said in err and "internal error" not in err, err
    finally:
        _write(container / "ctl", "kill KILL\n")


def test_paths_inside_the_cdfs_mount_are_refused(daemon: Daemon, tmp_path: Path) -> None:
    inside = daemon.path("namespaces", "default", "containers")
    link = tmp_path / "link"
    link.symlink_to(daemon.mount)
    cases = [
        ({"root": {"path": str(inside)}}, "root.path"),
        ({"mounts": [{"destination": "/x", "type": "bind", "source": str(daemon.mount),
                      "options": ["rbind"]}]}, "mounts[0].source"),
        ({"mounts": [{"destination": "/x", "type": "bind", "source": f"{link}/namespaces",
                      "options": ["rbind"]}]}, "mounts[0].source"),
    ]
    for i, (config, where) in enumerate(cases):
        code, err = _created(daemon, f"in{i}", config)
        assert code == errno.EINVAL, config
        assert f"{where}: " in err and "is inside the cdfs mount" in err


def test_serve_refuses_a_root_or_state_inside_its_mount(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    for flag in ("--root", "--state"):
        dirs = {"--root": str(tmp_path / "root"), "--state": str(tmp_path / "state"),
                flag: str(mount / "inside")}
        done = subprocess.run([*CDFS, "serve", "--mount", str(mount),
                               *(x for pair in dirs.items() for x in pair)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert f"{flag} {mount}/inside is inside the mount {mount}" in done.stderr
        assert not is_mounted(mount)
