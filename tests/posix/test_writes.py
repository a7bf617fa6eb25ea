"""The write side of the file contract, on a real mount with real shells: closes act
once, at the last close; values are the whole buffer; JSON refused at once; bounds;
signals release blocking writes; err lines read well and go with their object."""

import errno
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from support import Daemon, wait_until

BUSYBOX = "cdfs.local/busybox:latest"


def container(daemon: Daemon, name: str, args: list[str], start: bool = True) -> Path:
    """A busybox container running `args` (started unless told otherwise)."""
    path = daemon.path("namespaces", "default", "containers", name)
    path.mkdir()
    (path / "image").write_text(BUSYBOX + "\n")
    (path / "config.json").write_text(json.dumps({"process": {"args": args}}))
    if start:
        (path / "ctl").write_text("start\n")
    return path


def exit_status(path: Path, timeout: float = 30) -> str:
    """The `wait` stream, read by `timeout cat`."""
    result = subprocess.run(["timeout", str(timeout), "cat", str(path / "wait")],
                            capture_output=True, text=True, timeout=timeout + 10)
    return result.stdout.strip()


def output(path: Path) -> str:
    """stdout of a container that has exited (whole either way it is served)."""
    return subprocess.run(["timeout", "20", "cat", str(path / "stdout")], capture_output=True,
                          text=True, timeout=30).stdout


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stdin_ends_at_the_last_close_not_at_a_childs(daemon: Daemon) -> None:
    grouped = container(daemon, "grouped", ["cat"])
    # bash closes its copy after the redirection, and `sleep` (a forked child) closes
    # its inherited one at exit: neither may send EOF before `echo b`
    daemon.sh(f'{{ echo a; sleep 1; echo b; }} > "{grouped}/stdin"')
    assert exit_status(grouped) == "0"
    assert output(grouped) == "a\nb\n"

    held = container(daemon, "held", ["cat"])
    daemon.sh(f'exec 7>"{held}/stdin"; echo one >&7; (echo two >&7); '
              f'sh -c "echo three >&7"; cat "{held}/status"; exec 7>&-')
    assert exit_status(held) == "0"
    assert output(held) == "one\ntwo\nthree\n"


def test_ingest_commits_at_the_last_close(daemon: Daemon) -> None:
    blobs = daemon.path("content", "blobs", "sha256")
    part = hashlib.sha256(b"part").hexdigest()
    whole = hashlib.sha256(b"part, then the rest").hexdigest()
    result = daemon.sh(f'exec 3>"$M/content/ingest/held"; printf part >&3; '
                       f'(true >&3); test -e "{blobs}/{part}" && echo early; '
                       f'printf ", then the rest" >&3; exec 3>&-; '
                       f'test -e "{blobs}/{whole}" && echo committed')
    assert result.stdout == "committed\n"
    assert not (blobs / part).exists()

    wrong = "sha256:" + "0" * 64
    result = daemon.sh(f'printf "not those bytes" > "$M/content/ingest/{wrong}"', check=False)
    assert result.returncode == 0  # bash ignores close's EINVAL; err and blobs/ tell
    err = daemon.path("content", "ingest", "err").read_text()
    assert wrong in err and "expected" in err
    assert hashlib.sha256(b"not those bytes").hexdigest() not in os.listdir(blobs)


def test_a_value_written_line_by_line_is_the_whole_buffer(daemon: Daemon) -> None:
    slot = daemon.path("namespaces", "default", "containers", "labelled")
    slot.mkdir()
    daemon.sh(f"printf 'a=1\\nb=2\\n' > \"{slot}/labels\"")  # bash: two write() calls
    assert (slot / "labels").read_text() == "a=1\nb=2\n"
    result = daemon.sh(f"printf 'c=3\\nnot a label\\n' > \"{slot}/labels\"", check=False)
    assert result.returncode != 0  # the write that completed the bad line failed
    assert '"not a label" is not key=value' in (slot / "err").read_text()
    assert (slot / "labels").read_text() == "c=3\n"  # as the good line before it left it


def test_config_json_that_cannot_be_an_object_fails_its_write(daemon: Daemon) -> None:
    slot = daemon.path("namespaces", "default", "containers", "notjson")
    slot.mkdir()
    result = daemon.sh(f"printf 'not json' > \"{slot}/config.json\"", check=False)
    assert result.returncode == 1 and "Invalid argument" in result.stderr
    err = (slot / "err").read_text()
    assert err.startswith("config.json: ") and "config.json: config.json" not in err
    assert "must be a JSON object" in err
    result = daemon.sh(f"printf '{{\"process\": {{}}}} x' > \"{slot}/config.json\"",
                       check=False)
    assert result.returncode == 1 and "after the end" in (slot / "err").read_text()
    assert (slot / "status").read_text() == "empty\n"


def test_err_goes_with_the_object(daemon: Daemon) -> None:
    slot = daemon.path("namespaces", "default", "containers", "again")
    slot.mkdir()
    daemon.sh(f"echo nonsense > \"{slot}/ctl\"", check=False)
    assert "nonsense" in (slot / "err").read_text()
    slot.rmdir()
    slot.mkdir()
    assert (slot / "err").read_text() == ""


@pytest.mark.parametrize(("parts", "limit"), [(("ctl",), 64 * 1024),
                                              (("namespaces", "default", "containers", "big",
                                                "config.json"), 4 * 1024 * 1024)])
def test_a_huge_write_is_refused_fast_and_memory_comes_back(
        daemon: Daemon, parts: tuple[str, ...], limit: int) -> None:
    if parts[-1] == "config.json":
        daemon.path(*parts[:-1]).mkdir()
    target = daemon.path(*parts)
    assert daemon.proc is not None
    before = vm_rss_kib(daemon.proc.pid)
    payload = "{" + "x" * (100 * 1024 * 1024) if parts[-1] == "config.json" \
        else "x" * (100 * 1024 * 1024)
    script = ("import os, sys\n"
              "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)\n"
              "data = memoryview(sys.stdin.buffer.read())\n"
              "try:\n    while data:\n        data = data[os.write(fd, data):]\n"
              "except OSError as e:\n    print(e.errno)\n")  # as cat, on partial writes
    result = subprocess.run(["python3", "-c", script, str(target)], input=payload.encode(),
                            capture_output=True, timeout=60)  # far longer than it takes
    assert result.stdout.decode().strip() == str(errno.EFBIG)
    err = (target.parent / "err").read_text()
    assert len(err) < 500 and f"limit of {limit} bytes" in err
    assert wait_until(lambda: vm_rss_kib(daemon.proc.pid) < before + 50 * 1024, timeout=20)


def test_a_signal_releases_a_blocking_ctl_write_and_the_stop_goes_on(daemon: Daemon) -> None:
    # pid 1 of the container ignores TERM: stop waits its grace period, then KILLs
    sleeper = container(daemon, "sleeper", ["sleep", "60"])
    started = time.monotonic()
    result = daemon.sh(f'timeout 2 sh -c \'echo "stop 8" > "{sleeper}/ctl"\'', check=False,
                       timeout=7)  # raises if the write was not released
    assert result.returncode == 124  # timeout's: the writer was ended by the signal
    assert (sleeper / "status").read_text() == "running\n"
    assert exit_status(sleeper) == "137"  # the stop went on to its KILL
    assert time.monotonic() - started >= 8
