"""containers/: one directory per container, its files mapped onto the containers
service (cdfs.services.containers), and exec/ for the processes run inside it."""

import json
import os
from collections.abc import Awaitable, Callable, Mapping

from base.errors import NotFound
from cdfs.services.container_config import format_labels, parse_grace
from cdfs.services.containers import EMPTY, Times
from mountpoint.ctl import Verb, VerbTable
from mountpoint.services import ContainerSettings
from mountpoint.statsdir import STATS
from mountpoint.table import (
    Ctl,
    Dir,
    Err,
    GrowingFile,
    HostTree,
    Input,
    Output,
    Scope,
    Services,
    Sink,
    Stream,
    StreamReader,
    Table,
    TreeView,
    Value,
    align,
    collection,
    line,
    opens,
    show,
    take,
)
from mountpoint.writes import JSON_LIMIT
from runtime.state import LIVE
from runtime.tasks import TaskInfo


def _exec_id(scope: Scope) -> str | None:
    return scope.get("exec")


# --- state files, shared by containers and execs ---------------------------------------


def _state(app: Services, scope: Scope) -> Awaitable[TaskInfo | None]:
    return app.containers.state(scope["ns"], scope["id"], _exec_id(scope))


def _status(info: TaskInfo | None) -> str:
    return f"{info.status if info is not None else EMPTY}\n"


def _pid(info: TaskInfo | None) -> str:
    live = info is not None and info.status in LIVE and info.pid
    return f"{info.pid}\n" if live and info is not None else ""


def _exit(info: TaskInfo | None) -> str:
    return line(info.exit_status if info is not None else None)


def _times(app: Services, scope: Scope) -> Awaitable[Times]:
    return app.containers.times(scope["ns"], scope["id"], _exec_id(scope))


def _output(output: str) -> Callable[[Services, Scope], Awaitable[GrowingFile]]:
    async def open_(app: Services, scope: Scope) -> GrowingFile:
        return app.containers.output_file(scope["ns"], scope["id"], _exec_id(scope), output)

    return open_


def _follow(output: str) -> Callable[[Services, Scope], Awaitable[StreamReader]]:
    return opens(lambda app, s: app.containers.follow(s["ns"], s["id"], _exec_id(s), output))


def _from_now(output: str) -> Callable[[Services, Scope], Awaitable[StreamReader]]:
    return opens(lambda app, s: app.containers.follow_from_now(s["ns"], s["id"], _exec_id(s),
                                                               output))


FROM_NOW = Table(
    "stdout, stderr and log from the moment of opening, as `docker attach` shows them",
    entries=(
        Stream("stdout", "stdout from the moment of opening (what was written before is\n"
               "skipped); a read waits for more while the process runs, and the stream\n"
               "ends when it has exited: `cat follow/now/stdout` is attaching to its output",
               _from_now("stdout")),
        Stream("stderr", "the same for stderr", _from_now("stderr")),
        Stream("log", "the same for the combined log", _from_now("log")),
    ),
)


FOLLOW = Table(
    "stdout, stderr and log as streams, as `docker logs -f`",
    entries=(
        Stream("stdout", "stdout from its first byte; a read waits for more while the\n"
               "process runs, and the stream ends when it has exited: `cat follow/stdout`\n"
               "prints the whole output and returns at exit", _follow("stdout")),
        Stream("stderr", "the same for stderr", _follow("stderr")),
        Stream("log", "the same for the combined log", _follow("log")),
        Dir("now", "the same from the moment of opening (what attaching shows)", FROM_NOW),
    ),
)


class _Stdin:
    """One open of a stdin file: each write goes to the process; the last close of
    the open file sends EOF."""

    def __init__(self, app: Services, scope: Scope) -> None:
        self._app = app
        self._scope = scope

    async def write(self, offset: int, data: bytes) -> None:
        scope = self._scope
        await self._app.containers.write_stdin(scope["ns"], scope["id"], data, _exec_id(scope))

    async def check(self) -> None:
        """An earlier close (a forked child's copy) ends nothing."""

    async def close(self) -> None:
        scope = self._scope
        info = await self._app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
        if info is not None and info.status in LIVE:
            await self._app.containers.close_stdin(scope["ns"], scope["id"], _exec_id(scope))


async def _stdin(app: Services, scope: Scope) -> Sink:
    await app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
    return _Stdin(app, scope)


class _Keystrokes(_Stdin):
    """One open of a tty for writing: each write is typed into the terminal; closing
    it ends nothing (a terminal's input stays open: type ^D for end of file)."""

    async def close(self) -> None:
        pass


async def _keystrokes(app: Services, scope: Scope) -> Sink:
    await app.containers.require_terminal(scope["ns"], scope["id"], _exec_id(scope))
    return _Keystrokes(app, scope)


async def _changed_at(app: Services, scope: Scope) -> str | None:
    """When the container (or exec) last changed: its exit, start or creation."""
    times = await app.containers.times(scope["ns"], scope["id"], _exec_id(scope))
    return times.exited or times.started or times.created or None


# --- ctl verbs -------------------------------------------------------------------------


async def _kill(app: Services, scope: Scope, args: list[str]) -> None:
    await app.containers.kill(scope["ns"], scope["id"], args[0] if args else None,
                              _exec_id(scope))


async def _stop(app: Services, scope: Scope, args: list[str]) -> None:
    await app.containers.stop(scope["ns"], scope["id"], parse_grace(args), _exec_id(scope),
                              args[1] if len(args) > 1 else None)


_START = Verb("start", "", "run the program (the task was created stopped before it)",
              lambda app, s, args: app.containers.start(s["ns"], s["id"], _exec_id(s)))
_KILL = Verb("kill", "[SIGNAL]", "send SIGNAL (a name such as KILL or a number; default TERM)",
             _kill)
_STOP = Verb("stop", "[SECONDS] [SIGNAL]",
             "SIGNAL, else the image's StopSignal (TERM without one, and for an exec), then\n"
             "KILL after SECONDS (default 10); returns once it has exited (a signal\n"
             "releases the writer with EINTR; the stop goes on)", _stop)
_CLOSEIO = Verb("closeio", "", "close its stdin: the program reads end of file (a terminal's\n"
                "input stays open: type ^D into tty instead)",
                lambda app, s, args: app.containers.close_stdin(s["ns"], s["id"], _exec_id(s)))
_RESIZE = Verb("resize", "ROWS COLS", "set the terminal's window size (the program sees it\n"
               "at once: `stty size`, SIGWINCH); before an exec starts: its first size",
               lambda app, s, args: app.containers.resize(s["ns"], s["id"], args, _exec_id(s)))

CONTAINER_VERBS = VerbTable(
    _START, _KILL, _STOP,
    Verb("pause", "", "freeze every process of the container (cgroup freezer)",
         lambda app, s, args: app.containers.pause(s["ns"], s["id"])),
    Verb("resume", "", "thaw a paused container",
         lambda app, s, args: app.containers.resume(s["ns"], s["id"])),
    _CLOSEIO, _RESIZE,
    Verb("reopen-log", "", "conmon starts the log afresh at its path (logpath, or the\n"
         "task's own) and the write returns once the new file is there: after\n"
         "kubelet renamed the log away, its rotation (CRI's ReopenContainerLog);\n"
         "stdout, stderr and log then go on in the new one",
         lambda app, s, args: app.containers.reopen_log(s["ns"], s["id"])),
    Verb("update", "JSON", 'new cgroup limits, as linux.resources: {"memory": {"limit": N}, '
         '"cpu": {...}, "pids": {"limit": N}}',
         lambda app, s, args: app.containers.update(s["ns"], s["id"], args[0]), rest=True),
)
EXEC_VERBS = VerbTable(_START, _KILL, _STOP, _CLOSEIO, _RESIZE)

# --- the container's own files ---------------------------------------------------------


def _settings(app: Services, scope: Scope) -> ContainerSettings:
    return app.containers.get(scope["ns"], scope["id"])


def _spec(spec: Mapping[str, object] | None) -> str:
    return json.dumps(spec, indent=2) + "\n" if spec is not None else ""


async def _rootfs(app: Services, scope: Scope) -> TreeView:
    return await app.containers.rootfs(scope["ns"], scope["id"])


async def _root_stat(app: Services, scope: Scope) -> os.stat_result | None:
    return await app.containers.root_stat(scope["ns"], scope["id"])


def _task_files(stdin_doc: str) -> tuple[Value | Stream | Output | Input | Dir, ...]:
    """The files a container and an exec both have, about their process."""
    return (
        Value("status", "created | running | paused | stopped; `empty` until it is created",
              read=show(_state, _status), task_state=True),
        Value("pid", "the host pid of the process (empty unless it is created, running or "
              "paused)", read=show(_state, _pid), task_state=True),
        Value("exit", "the exit status once stopped (128+N when killed by signal N: 137 "
              "for KILL)", read=show(_state, _exit), task_state=True),
        Value("created", "when the task was created (config.json or process.json), RFC 3339\n"
              "UTC; empty before", read=show(_times, lambda times: line(times.created)),
              task_state=True),
        Value("started", "when `start` ran the program; empty before",
              read=show(_times, lambda times: line(times.started)), task_state=True),
        Value("exited", "when the program exited; empty before",
              read=show(_times, lambda times: line(times.exited)), task_state=True),
        Stream("wait", "blocks until the process has exited, then gives its exit status",
               opens(lambda app, s: app.containers.wait(s["ns"], s["id"], _exec_id(s)))),
        Input("stdin", stdin_doc, _stdin),
        Output("stdout", "everything the process wrote to stdout so far, as a growing log\n"
               "file: its size is the bytes so far, end of file is where the process\n"
               "has got to, nothing waits. `tail -f stdout` follows it; `cat wait;\n"
               "cat stdout` prints the whole output once it has exited", _output("stdout")),
        Output("stderr", "the same for stderr", _output("stderr")),
        Stream("tty", "the terminal, when process.terminal is true (EINVAL otherwise). A\n"
               "read streams what the terminal shows from the moment of opening\n"
               "(echoed keystrokes, \\r\\n line ends, escape sequences), waiting for\n"
               "more and ending when the process exits; a write types keystrokes\n"
               "(`printf 'ls\\r' > tty`; ^C is \\003, ^D \\004). `resize ROWS COLS` in\n"
               "ctl sets its size (or process.consoleSize). A terminal merges stdout\n"
               "and stderr: stdout and log record all it showed, stderr stays empty.\n"
               "Open it once for reading and once for writing (or O_RDWR) to drive it",
               opens(lambda app, s: app.containers.tty(s["ns"], s["id"], _exec_id(s))),
               input=_keystrokes),
        Output("log", "stdout and stderr combined as conmon's timestamped log lines\n"
               "(`<time> stdout|stderr F|P <text>`), growing like stdout. A log is kept\n"
               "up to a cap (`cdfs serve --log-size-max`, default 64 MiB); at the cap\n"
               "conmon starts it afresh, and stdout, stderr and log then begin with a\n"
               "line `[cdfs: N earlier bytes of stdout were dropped here: ...]`",
               _output("log")),
        Dir("follow", "the output as streams that wait for more", FOLLOW),
    )


EXEC = Table(
    "one process run inside the container",
    time=_changed_at,
    entries=(
        Value("process.json", "writing it creates the exec (status created; `start` in ctl\n"
              "runs it): an OCI process, fields left out (env, cwd, user...) taken from\n"
              "the container's process; reading gives it as created",
              read=show(lambda app, s: app.containers.exec_process(s["ns"], s["id"], s["exec"]),
                        _spec),
              write=lambda app, s, data: app.containers.create_exec(s["ns"], s["id"],
                                                                    s["exec"], data),
              json=True, limit=JSON_LIMIT),
        Ctl("ctl", "the exec's verbs", EXEC_VERBS),
        *_task_files("writes go to the exec's stdin; the last close of the open file\n"
                     "(or `closeio`) sends end of file; a daemon restart does not: stdin\n"
                     "stays open, writable again once the daemon is back"),
        Err(),
    ),
)

# The events at which a container's _changed_at moves (its task's times).
CHANGED_BY = ("/containers/create", "/tasks/create", "/tasks/start", "/tasks/exit")

CONTAINER = Table(
    "one container",
    time=_changed_at,
    changed_by=CHANGED_BY,
    entries=(
        Value("image", "an image ref (`busybox`, `cdfs.local/busybox:latest`) to base the\n"
              "rootfs on; written before config.json (ENOENT when the namespace\n"
              "lacks the image); reads back the image's full name",
              read=show(lambda app, s: _settings(app, s).image),
              write=take(lambda app, s, text: app.containers.set_image(s["ns"], s["id"], text)),
              written_only=True),
        Value("netns", "a network namespace to join, by name (netns/<name>/, i.e.\n"
              "/run/netns/<name>) or as an absolute path to a namespace file; written\n"
              "before config.json. Without it the container gets a new network\n"
              "namespace of its own with only loopback, up",
              read=show(lambda app, s: _settings(app, s).netns),
              write=take(lambda app, s, text: app.containers.set_netns(s["ns"], s["id"], text)),
              written_only=True),
        Value("logpath", "an absolute host path where conmon writes the output log,\n"
              "instead of inside the daemon's state: the path kubelet gives (CRI\n"
              "log_directory/log_path), whose format, `<RFC3339Nano> stdout|stderr\n"
              "F|P <text>`, is the CRI's and that of `log`; written before\n"
              "config.json, its directory made if missing. stdout, stderr, log and\n"
              "follow/ read it; the file is left when the container is deleted",
              read=show(lambda app, s: _settings(app, s).log_path),
              write=take(lambda app, s, text: app.containers.set_log_path(s["ns"], s["id"],
                                                                          text)),
              written_only=True),
        Value("config.json", "writing it creates the container. Either a full OCI runtime\n"
              "spec (it has `ociVersion`; used as written) or a partial one, merged\n"
              "over the default spec and the image's config (Entrypoint+Cmd as args,\n"
              "Env, WorkingDir, User) as containerd's WithImageConfig: objects merge\n"
              "key by key, lists and values replace (but process.env entries replace\n"
              "or add to the image's variables, and mounts are added to the default\n"
              "ones, replacing a default at the same destination), null deletes.\n"
              "A `root.path` that\n"
              "is absolute brings your own rootfs (no image needed). It is acted on\n"
              "as soon as the JSON object written closes (at most 4 MiB); a bad spec,\n"
              "or bytes that cannot become an object, fail the write with EINVAL,\n"
              "`err` saying what and where, and create nothing. A full disk fails it\n"
              "with ENOSPC (`err`: `no space left on ROOT while preparing the snapshot\n"
              "of container ID: N bytes free`), leaving nothing. Reading gives the\n"
              "final spec",
              read=show(lambda app, s: app.containers.config_json(s["ns"], s["id"])),
              write=lambda app, s, data: app.containers.create(s["ns"], s["id"], data),
              json=True, limit=JSON_LIMIT),
        Ctl("ctl", "the container's verbs", CONTAINER_VERBS),
        *_task_files("writes go to the init process's stdin; the last close of the\n"
                     "open file (or `closeio`) sends end of file, so `printf 'a\\n' > stdin`\n"
                     "sends a line and EOF, and `{ echo a; sleep 1; echo b; } > stdin` both\n"
                     "lines, then EOF. A daemon restart sends no EOF: stdin stays open,\n"
                     "writable again once the daemon is back"),
        Dir("exec", "processes run inside the running container", Table(
            "processes run inside the running container",
            children=collection(
                "exec", "an exec: mkdir NAME, then write process.json to create it and\n"
                "`start` in its ctl to run it. rmdir deletes it (EBUSY while it runs)",
                EXEC,
                names=lambda app, s: app.containers.exec_names(s["ns"], s["id"]),
                make=lambda app, s, name: app.containers.make_exec(s["ns"], s["id"], name),
                remove=lambda app, s, name: app.containers.remove_exec(s["ns"], s["id"], name)),
        )),
        HostTree("rootfs", "the container's root filesystem while it is mounted (from\n"
                 "config.json until rmdir), live: readable, and writable for files and\n"
                 "directories (create, write, truncate, mkdir, rm, rmdir, chmod, chown),\n"
                 "so cp in and out of it is docker cp. Every path resolves inside it", _rootfs,
                 remembered=_root_stat),
        Dir("stats", "resource usage of the container's cgroup", STATS),
        Value("info", "the container at a glance, one JSON object: id, status, pid, image,\n"
              "created, started, exited, exit, labels, runtime, netns, logpath, and\n"
              "oom_killed (whether the kernel killed in it for memory, kept across\n"
              "restarts) (null where a fact is absent), for jq",
              read=show(lambda app, s: app.containers.info(s["ns"], s["id"]),
                        lambda info: json.dumps(info) + "\n")),
        Value("labels", "key=value lines; writing replaces them all with every line\n"
              "written through the open file",
              read=show(lambda app, s: format_labels(_settings(app, s).labels)),
              write=take(lambda app, s, text: app.containers.set_labels(s["ns"], s["id"], text),
                         strip=False), written_only=True),
        Value("runtime", "the OCI runtime binary (default runc); written before\n"
              "config.json", read=show(lambda app, s: _settings(app, s).runtime),
              write=take(lambda app, s, text: app.containers.set_runtime(s["ns"], s["id"],
                                                                         text)),
              written_only=True),
        Err(),
    ),
)


LIST_COLUMNS = ("ID", "STATUS", "PID", "IMAGE", "CREATED", "EXIT")


async def _list(app: Services, scope: Scope) -> str:
    """The rows from what the service keeps in memory (not `info`, whose oom_killed
    reads conmon's files in a thread: a hundred containers would be a hundred hops
    for each stat and open of the list)."""
    rows: list[tuple[str, ...]] = [LIST_COLUMNS]
    for name in app.containers.names(scope["ns"]):
        try:
            info = await app.containers.state(scope["ns"], name)
            created = (await app.containers.times(scope["ns"], name)).created
            image = app.containers.get(scope["ns"], name).image
        except NotFound:
            continue  # removed while the list was made
        cells = (name, _status(info), _pid(info), image, created, _exit(info))
        rows.append(tuple(cell.strip() or "-" for cell in cells))
    return align(rows)


CONTAINERS = Table(
    "the namespace's containers",
    entries=(
        Value("list", "one line per container, a header first: ID STATUS PID IMAGE CREATED\n"
              "EXIT, aligned (`-` where a fact is absent): `ctr task ls` in one read",
              read=_list),
        Err(),
    ),
    children=collection(
        "id", "a container. mkdir ID makes an empty slot; write image, netns,\n"
        "runtime, logpath and labels as needed, then config.json to create it, then\n"
        "`start` in ctl. rmdir deletes the container (EBUSY while it runs or is\n"
        "paused: stop it first); its task, snapshot and state go from disk just after\n"
        "rmdir returns, and a mkdir of the same name waits for that",
        CONTAINER,
        names=lambda app, s: app.containers.names(s["ns"]),
        exists=lambda app, s, name: app.containers.exists(s["ns"], name),
        make=lambda app, s, name: app.containers.make(s["ns"], name),
        remove=lambda app, s, name: app.containers.remove(s["ns"], name),
        removed="/containers/delete"),
)
