"""The commands for people: `cdfs run`, `ps`, `logs`, `exec`, `attach`, `stop`, `rm`,
`pull`, `images`, each a few reads and writes of the tree's files.

A task (a container's init or an exec) is run the same way whichever it is: its
output is followed from its stream files (opened before it starts, so nothing is
missed), its input comes from ours, and its exit status, read from `wait`, becomes
ours. Signals we receive while waiting go on to the task, as docker's sig-proxy does.
"""

import argparse
import contextlib
import errno
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from cdfs.client import streams
from cdfs.client.progress import follow_pull
from cdfs.client.tree import Tree, TreeError

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def parse_size(text: str) -> int:
    """`64m`, `1g`, `512k` or bytes, as docker's --memory."""
    number, unit = text.rstrip("bBkKmMgG"), text[len(text.rstrip("bBkKmMgG")):].lower()
    unit = unit.rstrip("b") or ("b" if unit else "")
    if not number.isdigit() or unit not in _SIZE_UNITS:
        raise TreeError(f'bad size "{text}" (use bytes or a number with k, m or g)')
    return int(number) * _SIZE_UNITS[unit]


def parse_user(text: str) -> dict[str, Any]:
    """`-u` as docker takes it: `UID[:GID]` or a user name from the image's passwd."""
    name, _, group = text.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return {"uid": int(name), "gid": int(group or 0)}
    if group:
        raise TreeError(f'bad user "{text}": use UID[:GID] or a user name')
    return {"username": name}


def process_of(args: argparse.Namespace) -> dict[str, Any]:
    """The OCI process fields the flags ask for; what is left out comes from the image."""
    process: dict[str, Any] = {}
    if args.command:
        process["args"] = args.command
    if args.env:
        process["env"] = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in args.env]
    if args.workdir:
        process["cwd"] = args.workdir
    if args.user:
        process["user"] = parse_user(args.user)
    if args.tty:
        process["terminal"] = True
    return process


# -- running a task ---------------------------------------------------------------
def _exit_status(tree: Tree, task: Path) -> int:
    """Block until the task exits (`wait`), and give its exit status. The wait is
    an open_stream's, so a signal we get meanwhile is handled (passed on to the task)
    at once even if it lands just before the read."""
    try:
        with streams.open_stream(task / "wait") as wait:
            text = wait.read().decode().strip()
    except OSError as exc:
        raise TreeError(f"{task / 'wait'}: {exc.strerror}", exc.errno) from None
    return int(text) if text.lstrip("-").isdigit() else 1


@contextlib.contextmanager
def forwarding_signals(tree: Tree, task: Path) -> Iterator[None]:
    """While the block runs, the signals we receive go on to the task (docker's
    sig-proxy): installed before the task starts, so that none is missed."""

    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(TreeError):
            tree.write(task / "ctl", f"kill {signum}\n")

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def run_task(tree: Tree, task: Path, start: Callable[[], None], interactive: bool,
             terminal: bool) -> int:
    """Start the created task `task` and relay its input and output until it exits."""
    if terminal:
        return _run_on_terminal(tree, task, start, interactive)
    try:
        outputs = [streams.copy_out(task / "follow" / "stdout", sys.stdout.buffer),
                   streams.copy_out(task / "follow" / "stderr", sys.stderr.buffer)]
    except OSError as exc:
        raise TreeError(f"{task.name}: cannot follow its output: {exc.strerror}") from None
    with forwarding_signals(tree, task):
        start()
        if interactive:
            streams.copy_in(sys.stdin.buffer, task / "stdin")
        else:
            tree.write(task / "ctl", "closeio\n")  # as docker run without -i: no input
        status = _exit_status(tree, task)
    for thread in outputs:
        thread.join(timeout=5)
    return status


def _run_on_terminal(tree: Tree, task: Path, start: Callable[[], None],
                     interactive: bool) -> int:
    ended = threading.Event()

    def show() -> None:
        with contextlib.suppress(OSError), open(task / "tty", "rb", buffering=0) as screen:
            while chunk := screen.read(1 << 16):
                os.write(sys.stdout.fileno(), chunk)
        ended.set()

    def resize(rows: int, cols: int) -> None:
        with contextlib.suppress(TreeError):
            tree.write(task / "ctl", f"resize {rows} {cols}\n")

    shown = threading.Thread(target=show, daemon=True)
    shown.start()
    local_tty = sys.stdin.isatty()
    with contextlib.ExitStack() as stack:
        if local_tty:  # the first size is set before the program starts
            stack.enter_context(streams.on_window_change(resize))
        start()
        if interactive and local_tty:
            stack.enter_context(streams.raw_terminal())
        if interactive:
            streams.type_into(task / "tty", ended)
        else:
            ended.wait()
    shown.join(timeout=5)
    return _exit_status(tree, task)


# -- the commands -------------------------------------------------------------------
def run(tree: Tree, args: argparse.Namespace) -> int:
    container_id = args.name or secrets.token_hex(6)
    container = tree.container(container_id)
    config: dict[str, Any] = {"process": process_of(args)}
    if args.memory:
        config["linux"] = {"resources": {"memory": {"limit": parse_size(args.memory)}}}
    tree.mkdir(container)
    try:
        _set_image(tree, container, args.image)
        tree.write(container / "config.json", json.dumps(config))
    except TreeError:
        with contextlib.suppress(TreeError):
            tree.rmdir(container)
        raise
    start = lambda: tree.write(container / "ctl", "start\n")  # noqa: E731
    if args.detach:
        start()
        print(container_id)
        return 0
    try:
        return run_task(tree, container, start, args.interactive, args.tty)
    finally:
        if args.rm:
            with contextlib.suppress(TreeError):
                tree.rmdir(container)


def _set_image(tree: Tree, container: Path, image: str) -> None:
    """Name the container's image, pulling it first when the namespace lacks it."""
    try:
        tree.write(container / "image", image + "\n")
    except TreeError as exc:
        if exc.errno != errno.ENOENT:
            raise
        pull_image(tree, image, quiet=False)
        tree.write(container / "image", image + "\n")


def exec_(tree: Tree, args: argparse.Namespace) -> int:
    container = tree.container(args.id)
    task = container / "exec" / f"exec-{secrets.token_hex(4)}"
    tree.mkdir(task)
    try:
        tree.write(task / "process.json", json.dumps(process_of(args)))
        start = lambda: tree.write(task / "ctl", "start\n")  # noqa: E731
        return run_task(tree, task, start, args.interactive, args.tty)
    finally:
        with contextlib.suppress(TreeError):
            tree.rmdir(task)


def attach(tree: Tree, args: argparse.Namespace) -> int:
    """Join a running container: its terminal, or its output from now on and our
    input to its stdin."""
    container = tree.container(args.id)
    spec = json.loads(tree.read(container / "config.json") or "{}")
    if spec.get("process", {}).get("terminal"):
        return _run_on_terminal(tree, container, lambda: None, interactive=True)
    exited = threading.Event()
    outputs = [_tail(container / "stdout", sys.stdout.buffer, exited),
               _tail(container / "stderr", sys.stderr.buffer, exited)]
    if not sys.stdin.isatty() or args.stdin:
        streams.copy_in(sys.stdin.buffer, container / "stdin")
    try:
        with forwarding_signals(tree, container):
            return _exit_status(tree, container)
    finally:
        exited.set()
        for thread in outputs:
            thread.join(timeout=5)


def _tail(output: Path, sink: Any, exited: threading.Event) -> threading.Thread:
    """New bytes of the output file `output`, from its end now, until `exited`."""

    def pump() -> None:
        with contextlib.suppress(OSError), open(output, "rb", buffering=0) as f:
            f.seek(0, os.SEEK_END)
            while True:
                done = exited.is_set()
                while chunk := f.read(1 << 16):
                    sink.write(chunk)
                    sink.flush()
                if done:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def logs(tree: Tree, args: argparse.Namespace) -> int:
    container = tree.container(args.id)
    source = container / "follow" / "log" if args.follow else container / "log"
    try:
        with streams.open_stream(source) if args.follow else open(source, "rb") as log:
            streams.demux_log(log, sys.stdout.buffer, sys.stderr.buffer)
    except OSError as exc:
        raise TreeError(f"{args.id}: {exc.strerror}") from None
    return 0


def stop(tree: Tree, args: argparse.Namespace) -> int:
    for container_id in args.ids:
        grace = f" {args.time}" if args.time is not None else ""
        tree.write(tree.container(container_id) / "ctl", f"stop{grace}\n")
        print(container_id)
    return 0


def rm(tree: Tree, args: argparse.Namespace) -> int:
    for container_id in args.ids:
        container = tree.container(container_id)
        if args.force and tree.read(container / "status").strip() in ("running", "paused"):
            tree.write(container / "ctl", "kill KILL\n")
            tree.read(container / "wait")
        tree.rmdir(container)
        print(container_id)
    return 0


def ps(tree: Tree, args: argparse.Namespace) -> int:
    sys.stdout.write(tree.read(tree.containers / "list"))
    return 0


def pull(tree: Tree, args: argparse.Namespace) -> int:
    pull_image(tree, args.ref, quiet=args.quiet)
    return 0


def pull_image(tree: Tree, ref: str, quiet: bool) -> None:
    """`pull REF` in the namespace's images/ctl, showing its progress file meanwhile."""
    failure: list[TreeError] = []

    def work() -> None:
        try:
            tree.write(tree.images / "ctl", f"pull {ref}\n")
        except TreeError as exc:
            failure.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    follow_pull(tree, ref, worker, quiet)
    worker.join()
    if failure:
        raise failure[0]


def images(tree: Tree, args: argparse.Namespace) -> int:
    rows: list[tuple[str, ...]] = [("REF", "DIGEST", "PLATFORM", "SIZE")]
    for image in tree.images_listed():
        rows.append((image["REF"], image["DIGEST"], image["PLATFORM"], _human(int(image["SIZE"]))))
    _print_table(rows)
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
