"""`cdfs serve`: mount the tree, serve it until SIGINT or SIGTERM, unmount cleanly."""

import errno
import fcntl
import grp
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import IO

import pyfuse3
import trio

from cdfs.app import App
from cdfs.config import Config
from mountpoint.fs import Filesystem, Owner
from mountpoint.rootdir import ROOT
from runtime.mounts import mounted_type

log = logging.getLogger(__name__)

# Blocked stream readers each hold a pyfuse3 worker task: allow thousands (docs/fuse-notes.md).
MIN_TASKS, MAX_TASKS = 8, 10000
FSNAME = "cdfs"


class StartupError(Exception):
    """The daemon cannot start; the message says why."""


def refuse_nested(config: Config) -> None:
    """--root and --state hold bundles, rootfs and logs that runc and conmon use and the
    daemon writes: inside its own mount they would be served by the daemon to itself."""
    mount = Path(os.path.realpath(config.mount.parent)) / config.mount.name
    for flag, path in (("--root", config.root), ("--state", config.state)):
        if Path(os.path.realpath(path)).is_relative_to(mount):
            raise StartupError(f"{flag} {path} is inside the mount {config.mount}; "
                               "choose a directory outside it")


def prepare_mountpoint(path: Path) -> None:
    """Make `path` ready to mount on: recover a stale mount left by a crashed daemon,
    refuse one a live daemon serves. Mountinfo is read before anything touches the
    path: once the kernel's cached attributes expire, any stat of a stale mount
    (mkdir's exist_ok check included) fails with ENOTCONN."""
    kind = mounted_type(path)
    if kind is None:
        path.mkdir(parents=True, exist_ok=True)
        return
    if not kind.startswith("fuse"):
        raise StartupError(f"{path} is a mount point ({kind}); choose an empty directory")
    try:
        os.statvfs(path)  # always asks the daemon: attributes may be cached
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise
        log.warning("%s is a stale mount from a crashed daemon: unmounting it", path)
        subprocess.run(["fusermount3", "-uz", str(path)], check=True)
        return
    raise StartupError(f"{path} is already served by a live FUSE daemon ({kind}); stop it first")


def lock_state(state: Path) -> IO[str]:
    """Hold the state dir's lock for the daemon's lifetime: one daemon per state."""
    state.mkdir(parents=True, exist_ok=True)
    lock = open(state / "cdfs.lock", "a+")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        raise StartupError(f"another cdfs (pid {lock.read().strip() or '?'}) uses {state}") \
            from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def owner_of(config: Config) -> tuple[Owner, set[str]]:
    """Who may use the mount: root alone, or also the members of `allow_group`."""
    if config.allow_group is None:
        return Owner(), set()
    try:
        gid = grp.getgrnam(config.allow_group).gr_gid
    except KeyError:
        raise StartupError(f'no group "{config.allow_group}"') from None
    return Owner(gid=gid, group_access=True), {"allow_other"}


async def _stop_on_signal(filesystem: Filesystem) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: unmounting", signal.Signals(signum).name)
            filesystem.shutdown()
            pyfuse3.terminate()
            return


async def serve(config: Config, banner: str | None = None) -> None:
    """Serve the tree at config.mount until a signal ends it."""
    refuse_nested(config)
    owner, extra_options = owner_of(config)
    lock = lock_state(config.state)
    prepare_mountpoint(config.mount)
    app = await App.open(config)
    filesystem = Filesystem(app, ROOT, owner)
    # nosuid, nodev: rootfs/ trees show an image's setuid files and device nodes as
    # they are, which must never run as setuid or open a host device from here.
    options = {f"fsname={FSNAME}", f"subtype={FSNAME}", "default_permissions", "nosuid",
               "nodev", *extra_options}
    pyfuse3.init(filesystem, str(config.mount), options)
    log.info("cdfs %s serving %s (root %s, state %s)", app.version, config.mount,
             config.root, config.state)
    if banner:
        print(banner, flush=True)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, filesystem)
            filesystem.run_work_in(nursery)
            filesystem.withdraw_cached()
            await app.run(nursery)
            await pyfuse3.main(MIN_TASKS, MAX_TASKS)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await app.aclose()
        pyfuse3.close(unmount=True)
        lock.close()
    log.info("unmounted %s", config.mount)
