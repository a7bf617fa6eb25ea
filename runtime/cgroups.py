"""Resource usage of one container's cgroup, read the same way on cgroup v1 and v2.

A container's cgroup is named by its OCI `linux.cgroupsPath` ("/cdfs/<namespace>/<id>",
cgroupfs style; runc creates it). `open_cgroup` resolves that name once into the
directories to read, so that each stats call is only a handful of open/read/close
calls (~12 µs a file here) and never walks the hierarchy again.

Both versions answer with the same keys in the same units, so callers and users never
need to know which one the host runs:

    cpu     usage_usec user_usec system_usec throttled_usec nr_periods nr_throttled
    memory  usage limit max_usage cache rss shmem swap inactive_file  (bytes)
            pgfault pgmajfault oom_kills                              (counts)
    pids    current limit
    io      read_bytes write_bytes read_ops write_ops

On v1 the io counters come from blkio.throttle.*, which kernel 6.x only counts for
devices that have a throttle rule in the cgroup; without one they stay 0.

A limit that is not set ("max" on v2, PAGE_COUNTER_MAX on v1) is reported as
`UNLIMITED` (2**64 - 1, what containerd's v2 metrics report), so `usage < limit`
keeps meaning what it says. A counter whose controller is not enabled for the
cgroup (e.g. memory on a hybrid host's unified hierarchy) reads as 0.

cgroupspy models the v1 hierarchy as a tree it walks on construction and lacks the
pids controller, the blkio throttle statistics and cpuacct's user/system split, so
the readers here are plain file reads (cgroupspy costs ~40 µs a value here, a plain
read ~12 µs); the tests use cgroupspy to set up v1 cgroups and as a second witness.
"""

import contextlib
import errno
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Final

from base.errors import InvalidArgument, NotFound

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")

UNLIMITED: Final = 2**64 - 1
"""The value of a limit that is not set (v2 "max", v1 PAGE_COUNTER_MAX)."""

# v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 with
# 4 KiB pages); anything at or above 2**62 bytes cannot be a real limit.
_V1_UNLIMITED_FROM: Final = 2**62

_V1_CONTROLLERS: Final = ("cpu", "cpuacct", "memory", "pids", "blkio")

Stats = dict[str, int]


# --- pure parsers ---------------------------------------------------------------------


def parse_keyed(text: str) -> Stats:
    """Parse a flat keyed file ("key value" lines: cpu.stat, memory.stat, memory.events,
    memory.oom_control). Lines that are not `key integer` are skipped."""
    values: Stats = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            continue
    return values


def parse_limit(text: str) -> int:
    """Parse a limit file: "max" (v2, v1 pids) and v1's PAGE_COUNTER_MAX become UNLIMITED."""
    text = text.strip()
    if text == "max":
        return UNLIMITED
    value = int(text)
    return UNLIMITED if value >= _V1_UNLIMITED_FROM else value


def parse_blkio(text: str) -> tuple[int, int]:
    """Sum the Read and Write rows over all devices of a v1 blkio file
    (`MAJ:MIN Read|Write|Sync|Async|Discard|Total N` lines, then a `Total N` line)."""
    read = write = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        if fields[1] == "Read":
            read += int(fields[2])
        elif fields[1] == "Write":
            write += int(fields[2])
    return read, write


def parse_io_stat(text: str) -> Stats:
    """Sum v2 io.stat (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N …` lines) over devices."""
    totals = {"rbytes": 0, "wbytes": 0, "rios": 0, "wios": 0}
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key in totals:
                totals[key] += int(value)
    return {
        "read_bytes": totals["rbytes"],
        "write_bytes": totals["wbytes"],
        "read_ops": totals["rios"],
        "write_ops": totals["wios"],
    }


def check_cgroups_path(cgroups_path: str) -> tuple[str, ...]:
    """The components of an absolute cgroupfs path; anything that could leave the
    hierarchy (relative, '..', '.', NUL, empty parts) is refused."""
    parts = tuple(cgroups_path.split("/")[1:])
    if (
        not cgroups_path.startswith("/")
        or not parts
        or "\0" in cgroups_path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise InvalidArgument(f'bad cgroups path: "{cgroups_path}"')
    return parts


def remove_empty(cgroups_path: str, *, below: bool = True, root: Path = CGROUP_ROOT) -> None:
    """Remove the cgroup `cgroups_path` in every hierarchy if it is empty, and with
    `below` the empty cgroups under it first, deepest first. runc deletes a container's
    own cgroup, not the ones it made above it (the daemon's parent, a namespace's),
    which would otherwise stay for every root a daemon ever served; a cgroup still in
    use stays, since rmdir refuses it."""
    parts = check_cgroups_path(cgroups_path)
    hierarchies = [root] if is_pure_v2(root) else [
        hierarchy for hierarchy in root.iterdir()
        if hierarchy.is_dir() and not hierarchy.is_symlink()]  # cpu -> cpu,cpuacct
    for top in (hierarchy.joinpath(*parts) for hierarchy in hierarchies):
        directories = [entry[0] for entry in os.walk(top)] if below else [str(top)]
        for directory in sorted(directories, key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def is_pure_v2(root: Path = CGROUP_ROOT) -> bool:
    """True when `root` is a cgroup v2 mount (it has cgroup.controllers); a v1 or
    hybrid host has a tmpfs there with one directory per v1 hierarchy."""
    return (root / "cgroup.controllers").exists()


# --- readers --------------------------------------------------------------------------


def _read(path: str, directory: str, cgroups_path: str) -> str | None:
    """The text of a cgroup file; None if the file is absent while its cgroup is
    there (controller not enabled); NotFound if the cgroup itself has gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if os.path.isdir(directory):
            return None
        raise NotFound(f'no cgroup: "{cgroups_path}"') from None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError as e:
        # A removed cgroup's files fail with ENODEV on read (kernfs).
        if e.errno == errno.ENODEV:
            raise NotFound(f'no cgroup: "{cgroups_path}"') from None
        raise
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


class Cgroup(ABC):
    """One container's cgroup. Every method reads the files afresh; NotFound when the
    cgroup has gone. Blocking (file I/O): call from a worker thread."""

    def __init__(self, cgroups_path: str) -> None:
        self.cgroups_path = cgroups_path

    @abstractmethod
    def cpu(self) -> Stats:
        """usage_usec user_usec system_usec throttled_usec nr_periods nr_throttled."""

    @abstractmethod
    def memory(self) -> Stats:
        """usage limit max_usage cache rss shmem swap inactive_file (bytes), pgfault
        pgmajfault and oom_kills (counts)."""

    @abstractmethod
    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this cgroup so far."""

    @abstractmethod
    def pids(self) -> Stats:
        """current and limit (UNLIMITED when not set)."""

    @abstractmethod
    def io(self) -> Stats:
        """read_bytes write_bytes read_ops write_ops, summed over devices."""

    def all(self) -> dict[str, Stats]:
        """Every group of stats, keyed cpu/memory/pids/io (for stats and stream files)."""
        return {"cpu": self.cpu(), "memory": self.memory(), "pids": self.pids(), "io": self.io()}


class CgroupV1(Cgroup):
    """A cgroup on a v1 (or hybrid) host: one directory per controller hierarchy."""

    def __init__(self, cgroups_path: str, dirs: dict[str, str]) -> None:
        super().__init__(cgroups_path)
        self.dirs = dirs
        """The cgroup's directory in each mounted controller hierarchy, by controller."""

    def _file(self, controller: str, name: str) -> str | None:
        directory = self.dirs.get(controller)
        if directory is None:
            return None
        return _read(f"{directory}/{name}", directory, self.cgroups_path)

    def _keyed(self, controller: str, name: str) -> Stats:
        text = self._file(controller, name)
        return parse_keyed(text) if text is not None else {}

    def _int(self, controller: str, name: str) -> int:
        text = self._file(controller, name)
        return int(text) if text is not None else 0

    def cpu(self) -> Stats:
        throttling = self._keyed("cpu", "cpu.stat")
        return {
            "usage_usec": self._int("cpuacct", "cpuacct.usage") // 1000,
            "user_usec": self._int("cpuacct", "cpuacct.usage_user") // 1000,
            "system_usec": self._int("cpuacct", "cpuacct.usage_sys") // 1000,
            "throttled_usec": throttling.get("throttled_time", 0) // 1000,
            "nr_periods": throttling.get("nr_periods", 0),
            "nr_throttled": throttling.get("nr_throttled", 0),
        }

    def memory(self) -> Stats:
        stat = self._keyed("memory", "memory.stat")
        limit = self._file("memory", "memory.limit_in_bytes")
        return {
            "usage": self._int("memory", "memory.usage_in_bytes"),
            "limit": parse_limit(limit) if limit is not None else UNLIMITED,
            "max_usage": self._int("memory", "memory.max_usage_in_bytes"),
            "cache": stat.get("total_cache", 0),
            "rss": stat.get("total_rss", 0),
            "shmem": stat.get("total_shmem", 0),
            "swap": stat.get("total_swap", 0),
            "inactive_file": stat.get("total_inactive_file", 0),
            "pgfault": stat.get("total_pgfault", 0),
            "pgmajfault": stat.get("total_pgmajfault", 0),
            "oom_kills": self.oom_kills(),
        }

    def oom_kills(self) -> int:
        return self._keyed("memory", "memory.oom_control").get("oom_kill", 0)

    def pids(self) -> Stats:
        limit = self._file("pids", "pids.max")
        return {
            "current": self._int("pids", "pids.current"),
            "limit": parse_limit(limit) if limit is not None else UNLIMITED,
        }

    def io(self) -> Stats:
        service_bytes = self._file("blkio", "blkio.throttle.io_service_bytes_recursive")
        serviced = self._file("blkio", "blkio.throttle.io_serviced_recursive")
        read_bytes, write_bytes = parse_blkio(service_bytes or "")
        read_ops, write_ops = parse_blkio(serviced or "")
        return {
            "read_bytes": read_bytes,
            "write_bytes": write_bytes,
            "read_ops": read_ops,
            "write_ops": write_ops,
        }


class CgroupV2(Cgroup):
    """A cgroup on the unified hierarchy: one directory, files named by controller."""

    def __init__(self, cgroups_path: str, directory: str) -> None:
        super().__init__(cgroups_path)
        self.directory = directory

    def _file(self, name: str) -> str | None:
        return _read(f"{self.directory}/{name}", self.directory, self.cgroups_path)

    def _keyed(self, name: str) -> Stats:
        text = self._file(name)
        return parse_keyed(text) if text is not None else {}

    def _int(self, name: str) -> int:
        text = self._file(name)
        return int(text) if text is not None else 0

    def _limit(self, name: str) -> int:
        text = self._file(name)
        return parse_limit(text) if text is not None else UNLIMITED

    def cpu(self) -> Stats:
        stat = self._keyed("cpu.stat")
        keys = ("usage_usec", "user_usec", "system_usec", "throttled_usec")
        counts = ("nr_periods", "nr_throttled")
        return {key: stat.get(key, 0) for key in keys + counts}

    def memory(self) -> Stats:
        stat = self._keyed("memory.stat")
        return {
            "usage": self._int("memory.current"),
            "limit": self._limit("memory.max"),
            # memory.peak exists from Linux 5.19; before that there is no high-water mark.
            "max_usage": self._int("memory.peak"),
            "cache": stat.get("file", 0),
            "rss": stat.get("anon", 0),
            "shmem": stat.get("shmem", 0),
            "swap": self._int("memory.swap.current"),
            "inactive_file": stat.get("inactive_file", 0),
            "pgfault": stat.get("pgfault", 0),
            "pgmajfault": stat.get("pgmajfault", 0),
            "oom_kills": self.oom_kills(),
        }

    def oom_kills(self) -> int:
        return self._keyed("memory.events").get("oom_kill", 0)

    def pids(self) -> Stats:
        return {"current": self._int("pids.current"), "limit": self._limit("pids.max")}

    def io(self) -> Stats:
        return parse_io_stat(self._file("io.stat") or "")


def open_cgroup(cgroups_path: str, root: Path = CGROUP_ROOT) -> Cgroup:
    """The cgroup named `cgroups_path` (absolute cgroupfs path, e.g. "/cdfs/default/web")
    under the cgroup mount `root`; v1 or v2 is detected from `root`.

    InvalidArgument for a malformed path; NotFound if the cgroup does not exist (on v1:
    in any mounted hierarchy it is read from)."""
    parts = check_cgroups_path(cgroups_path)
    relative = "/".join(parts)
    if is_pure_v2(root):
        directory = f"{root}/{relative}"
        if not os.path.isdir(directory):
            raise NotFound(f'no cgroup: "{cgroups_path}"')
        return CgroupV2(cgroups_path, directory)
    dirs = {
        controller: f"{root}/{controller}/{relative}"
        for controller in _V1_CONTROLLERS
        if os.path.isdir(f"{root}/{controller}")
    }
    if not dirs or not all(os.path.isdir(d) for d in dirs.values()):
        raise NotFound(f'no cgroup: "{cgroups_path}"')
    return CgroupV1(cgroups_path, dirs)
