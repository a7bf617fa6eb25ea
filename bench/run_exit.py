"""Run-to-exit of `true`, the whole life of a container: cdfs (mkdir, image, config.json,
start, wait, rmdir) against `ctr run --rm` on the same image and a plain `runc run` on
an unpacked bundle, and beside them the floor under cdfs: its runtime layer alone
(runtime.tasks.TaskService, conmon per container, from this process on the same bundle
over an overlay rootfs, no daemon and no tree), so what the daemon adds and what the
monitor costs are both figures of the same run."""

import json
import tarfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from harness import (
    BUSYBOX,
    Cdfs,
    Containerd,
    Row,
    Stack,
    Target,
    kill_tasks,
    median,
    open_cdfs,
    open_containerd,
    p90,
    run,
    say,
    temp_dir,
    timed,
    write,
)

from base.mount import Mount
from runtime.tasks import TaskService

PHASES = {
    "mkdir + image": "mkdir, write image",
    "config.json": "write config.json: snapshot, rootfs mount, conmon, runc create",
    "start": "`start` in ctl: runc start",
    "wait": "read wait until the exit status",
    "rmdir": "rmdir: runc delete, unmount, snapshot and state removed",
}

FLOOR_PHASES = {
    "create": "overlay mount, conmon, runc create",
    "start": "start through runc's exec fifo",
    "exit": "conmon's exit file",
    "delete": "cgroups, runc's state, unmount, bundle",
}


def cdfs_run_true(daemon: Cdfs, name: str, phases: dict[str, list[float]]) -> None:
    """One container's life through the tree; each phase's seconds go to `phases`."""
    container = daemon.ns("containers", name)

    def mkdir() -> None:
        container.mkdir()
        write(container / "image", BUSYBOX)

    def wait() -> None:
        status = (container / "wait").read_text().strip()
        if status != "0":
            raise RuntimeError(f"cdfs container {name} exited {status}")

    steps: dict[str, Callable[[], object]] = {
        "mkdir + image": mkdir,
        "config.json": lambda: write(container / "config.json",
                                     json.dumps({"process": {"args": ["true"]}})),
        "start": lambda: write(container / "ctl", "start\n"),
        "wait": wait,
        "rmdir": container.rmdir,
    }
    for phase, step in steps.items():
        phases.setdefault(phase, []).append(timed(step))


def runtime_run_true(tasks: TaskService, bundle: Path, name: str,
                     phases: dict[str, list[float]]) -> None:
    """One container's life through the runtime layer alone: the bundle's spec over an
    overlay of its unpacked rootfs (a fresh upper dir, as a cdfs snapshot gives), under
    conmon; each phase's seconds go to `phases`."""
    spec = json.loads((bundle / "config.json").read_text())
    upper = tasks.state_dir.parent / "snapshots" / name
    (upper / "fs").mkdir(parents=True)
    (upper / "work").mkdir()
    rootfs = [Mount("overlay", "overlay", (f"lowerdir={bundle / 'rootfs'}",
                                           f"upperdir={upper}/fs", f"workdir={upper}/work"))]

    def wait() -> None:
        status = tasks.wait("bench", name, timeout=30).exit_status
        if status != 0:
            raise RuntimeError(f"runtime-layer container {name} exited {status}")

    steps: dict[str, Callable[[], object]] = {
        "create": lambda: tasks.create("bench", name, spec, rootfs),
        "start": lambda: tasks.start("bench", name),
        "exit": wait,
        "delete": lambda: tasks.delete("bench", name),
    }
    for phase, step in steps.items():
        phases.setdefault(phase, []).append(timed(step))


def open_runtime_layer(stack: Stack, workdir: Path) -> TaskService:
    """A TaskService on a state dir of its own under `workdir`; at teardown whatever a
    failed run left is killed and unmounted as a daemon's is (runc delete -f by id,
    conmon by its recorded pid)."""
    home = workdir / "floor"
    stack.callback(kill_tasks, home)
    return TaskService(home / "runtime")


def share_busybox(daemon: Cdfs, containerd: Containerd, workdir: Path) -> None:
    """cdfs's busybox image into containerd, through an OCI layout tar (images/ctl export)."""
    archive = workdir / "busybox.tar"
    daemon.images_ctl(f"export {BUSYBOX} {archive}")
    run(containerd.ctr("images", "import", str(archive)))


def busybox_bundle(archive: Path, bundle: Path) -> None:
    """An OCI bundle for plain runc: the image's layers untarred and `runc spec` running
    `true` without a terminal."""
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(archive) as layout:
        def blob(digest: str) -> bytes:
            member = layout.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
            assert member is not None
            return member.read()

        index = json.loads(layout.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        for layer in manifest["layers"]:
            hex_digest = layer["digest"].split(":")[1]
            layout.extract(f"blobs/sha256/{hex_digest}", bundle / "layout", filter="data")
            run(["tar", "-xzf", str(bundle / "layout" / "blobs" / "sha256" / hex_digest),
                 "-C", str(rootfs)])
    run(["runc", "spec", "--bundle", str(bundle)])
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["true"])
    (bundle / "config.json").write_text(json.dumps(spec))


def sample(action: Callable[[int], object], iterations: int) -> list[float]:
    """Durations of `iterations` calls after one untimed warm-up call."""
    action(-1)
    return [timed(partial(action, i)) for i in range(iterations)]


def bench_run_exit(iterations: int = 20) -> list[Row]:
    with Stack() as stack:
        daemon = open_cdfs(stack)
        containerd = open_containerd(stack)
        workdir = temp_dir(stack, "run")
        share_busybox(daemon, containerd, workdir)
        bundle = workdir / "bundle"
        busybox_bundle(workdir / "busybox.tar", bundle)
        runc_root = workdir / "runc"

        say(f"run-to-exit: {iterations} x cdfs")
        phases: dict[str, list[float]] = {}
        ours = sample(lambda i: cdfs_run_true(daemon, f"t{i + 1}", phases), iterations)
        say(f"run-to-exit: {iterations} x ctr run --rm")
        theirs = sample(lambda i: run(containerd.ctr(
            "run", "--rm", "--runc-root", str(containerd.runc_root), BUSYBOX,
            f"t{i + 1}", "true")), iterations)
        say(f"run-to-exit: {iterations} x runc run")
        plain = sample(lambda i: run(["runc", "--root", str(runc_root), "run", "--bundle",
                                      str(bundle), f"bench-t{i + 1}"]), iterations)
        say(f"run-to-exit: {iterations} x the runtime layer alone (TaskService)")
        tasks = open_runtime_layer(stack, workdir)
        floor_phases: dict[str, list[float]] = {}
        floor = sample(lambda i: runtime_run_true(tasks, bundle, f"floor-t{i + 1}",
                                                  floor_phases), iterations)
    return [
        Row("run `true` to exit, median", "ms", median(ours) * 1e3, "`runc run`",
            median(plain) * 1e3, Target(1.15)),
        Row("run `true` to exit, p90", "ms", p90(ours) * 1e3, "`ctr run --rm`",
            p90(theirs) * 1e3, Target(0.5)),
        Row("run `true` to exit, median", "ms", median(ours) * 1e3, "`ctr run --rm`",
            median(theirs) * 1e3),
        Row("run `true` to exit, median", "ms", median(ours) * 1e3,
            "runtime layer alone", median(floor) * 1e3),
        Row("... the runtime layer alone (TaskService: conmon, runc; no daemon), median",
            "ms", median(floor) * 1e3, "`runc run`", median(plain) * 1e3),
        *(Row(f"... cdfs: {PHASES[phase]}, median", "ms", median(times[1:]) * 1e3)
          for phase, times in phases.items()),
        *(Row(f"... runtime layer: {FLOOR_PHASES[phase]}, median", "ms",
              median(times[1:]) * 1e3) for phase, times in floor_phases.items()),
    ]
