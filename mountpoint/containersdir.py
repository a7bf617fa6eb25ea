"""containers/: one directory per container, its files mapped onto the containers
service (cdfs.services.containers), and exec/ for the processes run inside it."""

import json

from base.errors import InvalidArgument, NotFound
from cdfs.services.container_config import format_labels, parse_grace
from cdfs.services.containers import EMPTY
from mountpoint.ctl import Verb, VerbTable
from mountpoint.statsdir import STATS
from mountpoint.table import (
    Children,
    Ctl,
    Dir,
    Err,
    Input,
    Scope,
    Sink,
    Stream,
    StreamReader,
    Table,
    Value,
)
from mountpoint.table import Services as S
from runtime.state import LIVE


def json_complete(buffer: bytes) -> bool:
    """A JSON document is acted on once it parses, or once a line ends where no more
    bytes could mend it (so `echo '{bad' > config.json` fails its write, while a big
    document arriving in several writes waits for the rest)."""
    try:
        text = buffer.decode()
        json.loads(text)
    except UnicodeDecodeError:
        return True
    except json.JSONDecodeError as e:
        return text.endswith("\n") and e.pos < len(text.rstrip())
    return True


def _exec_id(scope: Scope) -> str | None:
    return scope.get("exec")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode().strip()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{what}: not UTF-8 text") from None


# --- state files, shared by containers and execs ---------------------------------------


async def _status(app: S, scope: Scope) -> str:
    info = await app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
    return f"{info.status if info is not None else EMPTY}\n"


async def _pid(app: S, scope: Scope) -> str:
    info = await app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
    live = info is not None and info.status in LIVE and info.pid
    return f"{info.pid}\n" if live else ""


async def _exit(app: S, scope: Scope) -> str:
    info = await app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
    stopped = info is not None and info.exit_status is not None
    return f"{info.exit_status}\n" if stopped else ""


async def _created(app: S, scope: Scope) -> str:
    return _line((await app.containers.times(scope["ns"], scope["id"], _exec_id(scope))).created)


async def _started(app: S, scope: Scope) -> str:
    return _line((await app.containers.times(scope["ns"], scope["id"], _exec_id(scope))).started)


async def _exited(app: S, scope: Scope) -> str:
    return _line((await app.containers.times(scope["ns"], scope["id"], _exec_id(scope))).exited)


def _line(value: str) -> str:
    return f"{value}\n" if value else ""


async def _wait(app: S, scope: Scope) -> StreamReader:
    reader: StreamReader = app.containers.wait(scope["ns"], scope["id"], _exec_id(scope))
    return reader


async def _stdout(app: S, scope: Scope) -> StreamReader:
    reader: StreamReader = app.containers.output(scope["ns"], scope["id"], _exec_id(scope),
                                                 "stdout")
    return reader


async def _stderr(app: S, scope: Scope) -> StreamReader:
    reader: StreamReader = app.containers.output(scope["ns"], scope["id"], _exec_id(scope),
                                                 "stderr")
    return reader


async def _log(app: S, scope: Scope) -> StreamReader:
    reader: StreamReader = app.containers.log(scope["ns"], scope["id"], _exec_id(scope))
    return reader


class _Stdin:
    """One open of a stdin file: each write goes to the process, close sends EOF."""

    def __init__(self, app: S, scope: Scope) -> None:
        self._app = app
        self._scope = scope

    async def write(self, offset: int, data: bytes) -> None:
        scope = self._scope
        await self._app.containers.write_stdin(scope["ns"], scope["id"], data, _exec_id(scope))

    async def close(self) -> None:
        scope = self._scope
        info = await self._app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
        if info is not None and info.status in LIVE:
            await self._app.containers.close_stdin(scope["ns"], scope["id"], _exec_id(scope))


async def _stdin(app: S, scope: Scope) -> Sink:
    await app.containers.state(scope["ns"], scope["id"], _exec_id(scope))
    return _Stdin(app, scope)


async def _tty(app: S, scope: Scope) -> StreamReader:
    reader: StreamReader = await app.containers.tty(scope["ns"], scope["id"], _exec_id(scope))
    return reader


class _Keystrokes:
    """One open of a tty for writing: each write is typed into the terminal; closing
    it ends nothing (a terminal's input stays open: type ^D for end of file)."""

    def __init__(self, app: S, scope: Scope) -> None:
        self._app = app
        self._scope = scope

    async def write(self, offset: int, data: bytes) -> None:
        scope = self._scope
        await self._app.containers.write_stdin(scope["ns"], scope["id"], data, _exec_id(scope))

    async def close(self) -> None:
        pass


async def _keystrokes(app: S, scope: Scope) -> Sink:
    await app.containers.require_terminal(scope["ns"], scope["id"], _exec_id(scope))
    return _Keystrokes(app, scope)


# --- ctl verbs -------------------------------------------------------------------------


async def _start(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.start(scope["ns"], scope["id"], _exec_id(scope))


async def _kill(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.kill(scope["ns"], scope["id"], args[0] if args else None,
                              _exec_id(scope))  # fmt: skip


async def _stop(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.stop(scope["ns"], scope["id"], parse_grace(args), _exec_id(scope))


async def _pause(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.pause(scope["ns"], scope["id"])


async def _resume(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.resume(scope["ns"], scope["id"])


async def _closeio(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.close_stdin(scope["ns"], scope["id"], _exec_id(scope))


async def _resize(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.resize(scope["ns"], scope["id"], args, _exec_id(scope))


async def _update(app: S, scope: Scope, args: list[str]) -> None:
    await app.containers.update(scope["ns"], scope["id"], args[0])


_START = Verb("start", "", "run the program (the task was created stopped before it)", _start)
_KILL = Verb("kill", "[SIGNAL]", "send SIGNAL (a name such as KILL or a number; default TERM)",
             _kill)
_STOP = Verb("stop", "[SECONDS]",
             "the image's StopSignal (TERM without one, and for an exec), then KILL after\n"
             "SECONDS (default 10); returns once it has exited", _stop)
_CLOSEIO = Verb("closeio", "", "close its stdin: the program reads end of file (a terminal's\n"
                "input stays open: type ^D into tty instead)", _closeio)
_RESIZE = Verb("resize", "ROWS COLS", "set the terminal's window size (the program sees it\n"
               "at once: `stty size`, SIGWINCH); before an exec starts: its first size",
               _resize)

CONTAINER_VERBS = VerbTable(
    _START, _KILL, _STOP,
    Verb("pause", "", "freeze every process of the container (cgroup freezer)", _pause),
    Verb("resume", "", "thaw a paused container", _resume),
    _CLOSEIO, _RESIZE,
    Verb("update", "JSON", 'new cgroup limits, as linux.resources: {"memory": {"limit": N}, '
         '"cpu": {...}, "pids": {"limit": N}}', _update, rest=True),
)  # fmt: skip
EXEC_VERBS = VerbTable(_START, _KILL, _STOP, _CLOSEIO, _RESIZE)

# --- the container's own files ---------------------------------------------------------


async def _read_setting(app: S, scope: Scope, name: str) -> str:
    value = getattr(app.containers.get(scope["ns"], scope["id"]), name)
    return f"{value}\n" if value else ""


async def _image(app: S, scope: Scope) -> str:
    return await _read_setting(app, scope, "image")


async def _write_image(app: S, scope: Scope, data: bytes) -> None:
    await app.containers.set_image(scope["ns"], scope["id"], _text(data, "image"))


async def _netns(app: S, scope: Scope) -> str:
    return await _read_setting(app, scope, "netns")


async def _write_netns(app: S, scope: Scope, data: bytes) -> None:
    await app.containers.set_netns(scope["ns"], scope["id"], _text(data, "netns"))


async def _runtime(app: S, scope: Scope) -> str:
    return await _read_setting(app, scope, "runtime")


async def _write_runtime(app: S, scope: Scope, data: bytes) -> None:
    await app.containers.set_runtime(scope["ns"], scope["id"], _text(data, "runtime"))


async def _labels(app: S, scope: Scope) -> str:
    return format_labels(app.containers.get(scope["ns"], scope["id"]).labels)


async def _write_labels(app: S, scope: Scope, data: bytes) -> None:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidArgument("labels: not UTF-8 text") from None
    await app.containers.set_labels(scope["ns"], scope["id"], text)


async def _info(app: S, scope: Scope) -> str:
    return json.dumps(await app.containers.info(scope["ns"], scope["id"])) + "\n"


async def _config(app: S, scope: Scope) -> str:
    config = app.containers.config_json(scope["ns"], scope["id"])
    return json.dumps(config, indent=2) + "\n" if config is not None else ""


async def _write_config(app: S, scope: Scope, data: bytes) -> None:
    await app.containers.create(scope["ns"], scope["id"], data)


async def _process(app: S, scope: Scope) -> str:
    process = await app.containers.exec_process(scope["ns"], scope["id"], scope["exec"])
    return json.dumps(process, indent=2) + "\n" if process is not None else ""


async def _write_process(app: S, scope: Scope, data: bytes) -> None:
    await app.containers.create_exec(scope["ns"], scope["id"], scope["exec"], data)


def _task_files(stdin_doc: str) -> tuple[Value | Stream | Input, ...]:
    """The files a container and an exec both have, about their process."""
    return (
        Value("status", "created | running | paused | stopped; `empty` until it is created",
              read=_status),
        Value("pid", "the host pid of the process (empty unless it is created, running or "
              "paused)", read=_pid),
        Value("exit", "the exit status once stopped (128+N when killed by signal N: 137 "
              "for KILL)", read=_exit),
        Value("created", "when the task was created (config.json or process.json), RFC 3339\n"
              "UTC; empty before", read=_created),
        Value("started", "when `start` ran the program; empty before", read=_started),
        Value("exited", "when the program exited; empty before", read=_exited),
        Stream("wait", "blocks until the process has exited, then gives its exit status",
               _wait),
        Input("stdin", stdin_doc, _stdin),
        Stream("stdout", "everything the process wrote to stdout, from the start; while it\n"
               "runs a read waits for more, and the stream ends when it exits, so\n"
               "`cat stdout` prints the whole output and returns at exit", _stdout),
        Stream("stderr", "the same for stderr", _stderr),
        Stream("tty", "the terminal, when process.terminal is true (EINVAL otherwise). A\n"
               "read streams what the terminal shows from the moment of opening\n"
               "(echoed keystrokes, \\r\\n line ends, escape sequences), waiting for\n"
               "more and ending when the process exits; a write types keystrokes\n"
               "(`printf 'ls\\r' > tty`; ^C is \\003, ^D \\004). `resize ROWS COLS` in\n"
               "ctl sets its size (or process.consoleSize). A terminal merges stdout\n"
               "and stderr: stdout and log record all it showed, stderr stays empty.\n"
               "Open it once for reading and once for writing (or O_RDWR) to drive it", _tty,
               input=_keystrokes),
        Stream("log", "stdout and stderr combined as conmon's timestamped log lines\n"
               "(`<time> stdout|stderr F|P <text>`), following like stdout; bounded in\n"
               "size: when full, the log starts afresh", _log),
    )  # fmt: skip


async def _exec_names(app: S, scope: Scope) -> list[str]:
    names: list[str] = app.containers.exec_names(scope["ns"], scope["id"])
    return names


async def _make_exec(app: S, scope: Scope, name: str) -> None:
    await app.containers.make_exec(scope["ns"], scope["id"], name)


async def _remove_exec(app: S, scope: Scope, name: str) -> None:
    await app.containers.remove_exec(scope["ns"], scope["id"], name)


EXEC = Table(
    "one process run inside the container",
    entries=(
        Value("process.json", "writing it creates the exec (status created; `start` in ctl\n"
              "runs it): an OCI process, fields left out (env, cwd, user...) taken from\n"
              "the container's process; reading gives it as created", read=_process,
              write=_write_process, complete=json_complete),
        Ctl("ctl", "the exec's verbs", EXEC_VERBS),
        *_task_files("writes go to the exec's stdin; closing the file (or `closeio`)\n"
                     "sends end of file"),
        Err(),
    ),
)  # fmt: skip

CONTAINER = Table(
    "one container",
    entries=(
        Value("image", "an image ref (`busybox`, `cdfs.local/busybox:latest`) to base the\n"
              "rootfs on; written before config.json (ENOENT when the namespace\n"
              "lacks the image); reads back the image's full name", read=_image,
              write=_write_image),
        Value("netns", "a network namespace to join, by name (netns/<name>/, i.e.\n"
              "/run/netns/<name>) or as an absolute path to a namespace file; written\n"
              "before config.json. Without it the container gets a new network\n"
              "namespace of its own with only loopback, up", read=_netns, write=_write_netns),
        Value("config.json", "writing it creates the container. Either a full OCI runtime\n"
              "spec (it has `ociVersion`; used as written) or a partial one, merged\n"
              "over the default spec and the image's config (Entrypoint+Cmd as args,\n"
              "Env, WorkingDir, User) as containerd's WithImageConfig: objects merge\n"
              "key by key, lists and values replace (but process.env entries replace\n"
              "or add to the image's variables, and mounts are added to the default\n"
              "ones, replacing a default at the same destination), null deletes.\n"
              "A `root.path` that\n"
              "is absolute brings your own rootfs (no image needed). It is acted on\n"
              "as soon as the bytes written parse as JSON; a bad spec fails the write\n"
              "with EINVAL, `err` saying what and where, and creates nothing. Reading\n"
              "gives the final spec", read=_config, write=_write_config,
              complete=json_complete),
        Ctl("ctl", "the container's verbs", CONTAINER_VERBS),
        *_task_files("writes go to the init process's stdin; closing the file (or\n"
                     "`closeio`) sends end of file, so `printf 'a\\n' > stdin` sends a line\n"
                     "and EOF"),
        Dir("exec", "processes run inside the running container", Table(
            "processes run inside the running container",
            children=Children(
                "exec", "an exec: mkdir NAME, then write process.json to create it and\n"
                "`start` in its ctl to run it. rmdir deletes it (EBUSY while it runs)",
                list=_exec_names, mkdir=_make_exec, rmdir=_remove_exec, table=EXEC),
        )),
        Dir("stats", "resource usage of the container's cgroup", STATS),
        Value("info", "the container at a glance, one JSON object: id, status, pid, image,\n"
              "created, started, exited, exit, labels, runtime, netns (null where a\n"
              "fact is absent), for jq", read=_info),
        Value("labels", "key=value lines; writing replaces them all", read=_labels,
              write=_write_labels),
        Value("runtime", "the OCI runtime binary (default runc); written before\n"
              "config.json", read=_runtime, write=_write_runtime),
        Err(),
    ),
)  # fmt: skip


async def _names(app: S, scope: Scope) -> list[str]:
    names: list[str] = app.containers.names(scope["ns"])
    return names


async def _exists(app: S, scope: Scope, name: str) -> bool:
    found: bool = app.containers.exists(scope["ns"], name)
    return found


async def _mkdir(app: S, scope: Scope, name: str) -> None:
    await app.containers.make(scope["ns"], name)


async def _rmdir(app: S, scope: Scope, name: str) -> None:
    await app.containers.remove(scope["ns"], name)


LIST_COLUMNS = ("ID", "STATUS", "PID", "IMAGE", "CREATED", "EXIT")


async def _list(app: S, scope: Scope) -> str:
    rows: list[tuple[str, ...]] = [LIST_COLUMNS]
    for name in app.containers.names(scope["ns"]):
        try:
            info = await app.containers.info(scope["ns"], name)
        except NotFound:
            continue  # removed while the list was made
        rows.append(tuple("-" if info[key] is None else str(info[key])
                          for key in ("id", "status", "pid", "image", "created", "exit")))
    return align(rows)


def align(rows: list[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell, three spaces apart (as ctr prints tables)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                     strict=True)).rstrip()
                   + "\n" for row in rows)


CONTAINERS = Table(
    "the namespace's containers",
    entries=(
        Value("list", "one line per container, a header first: ID STATUS PID IMAGE CREATED\n"
              "EXIT, aligned (`-` where a fact is absent): `ctr task ls` in one read",
              read=_list),
        Err(),
    ),
    children=Children(
        "id", "a container. mkdir ID makes an empty slot; write image, netns,\n"
        "runtime and labels as needed, then config.json to create it, then\n"
        "`start` in ctl. rmdir deletes the container, its snapshot and its state\n"
        "(EBUSY while it runs or is paused: stop it first)",
        list=_names, exists=_exists, mkdir=_mkdir, rmdir=_rmdir, table=CONTAINER),
)
