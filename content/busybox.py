"""A runnable image made from the host's busybox-static, so cdfs has an image to run
without a registry (the daemon imports it as `cdfs.local/busybox:latest`)."""

import subprocess
from pathlib import Path

from base.errors import InvalidArgument, NotFound
from content.build import BuildConfig, Entry, Layer, build_image
from content.descriptor import Descriptor
from content.store import ContentStore

BUSYBOX = Path("/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def busybox_applets(busybox: Path) -> list[str]:
    """The applet names the binary implements (`busybox --list`)."""
    if not busybox.is_file():
        raise NotFound(f'no busybox binary at "{busybox}"')
    result = subprocess.run([str(busybox), "--list"], capture_output=True, timeout=30,
                            check=False)
    if result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()
        raise InvalidArgument(f'"{busybox} --list" failed: {error}')
    names = result.stdout.decode().split()
    return sorted({name for name in names if "/" not in name and name not in ("", ".", "..")})


def busybox_entries(busybox: Path) -> list[Entry]:
    """The root filesystem: /bin/busybox, a symlink per applet in /bin, and the few
    files and directories a shell and `ps`, `id` or `mount` expect."""
    entries = [
        Entry.dir("bin"),
        Entry.file("bin/busybox", mode=0o755, source=busybox),
        Entry.dir("dev"),
        Entry.dir("etc"),
        Entry.file("etc/passwd", PASSWD),
        Entry.file("etc/group", GROUP),
        Entry.dir("proc", 0o555),
        Entry.dir("root", 0o700),
        Entry.dir("sys", 0o555),
        Entry.dir("tmp", 0o1777),
        Entry.dir("usr"),
        Entry.dir("usr/bin"),
        Entry.dir("var"),
    ]
    applets = set(busybox_applets(busybox)) | {"sh"}
    applets.discard("busybox")
    entries += [Entry.symlink(f"bin/{name}", "busybox") for name in sorted(applets)]
    return entries


def build_busybox_image(store: ContentStore, busybox: Path = BUSYBOX) -> Descriptor:
    """Build the busybox image into `store` and return its manifest descriptor. The
    same binary always gives the same digest. NotFound without a busybox binary."""
    config = BuildConfig(cmd=["sh"], env=[PATH_ENV])
    return build_image(store, [Layer(busybox_entries(busybox))], config)
