"""The `cdfs` command: `cdfs serve` runs the daemon, `cdfs cri` serves kubelet's CRI
over a running daemon's mount, `cdfs docs` prints the reference, and the commands
for people (run, ps, logs, exec, attach, stop, rm, pull, images) drive a running daemon
through nothing but the files of its mount."""

import argparse
import logging
import os
import sys

import trio

from cdfs import __version__
from cdfs.config import DEFAULT_LOG_SIZE_MAX, DEFAULT_MOUNT, DEFAULT_ROOT, DEFAULT_STATE, Config

BANNER = """\
cdfs {version} is serving {mount}. In another shell, try:
  cd {mount}; less README                   # every file and verb
  ls images/cdfs.local/                     # busybox:latest, built from the host
  timeout 30 cat events &                   # events as JSON lines
  mkdir containers/web
  echo cdfs.local/busybox:latest > containers/web/image
  echo '{{"process":{{"args":["sh","-c","echo hi"]}}}}' > containers/web/config.json
  echo start > containers/web/ctl
  cat containers/web/wait containers/web/stdout          # 0, then hi
  tail -n 1 containers/web/stdout                       # output files are log files
  rmdir containers/web
  cdfs run -it --rm cdfs.local/busybox:latest sh        # the same, for people
Stop with Ctrl-C: the tree is unmounted; containers keep running under their monitors."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdfs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cdfs {__version__}")
    parser.add_argument("--mount", help=f"the tree (CDFS_MOUNT, default {DEFAULT_MOUNT})")
    parser.add_argument("-n", "--namespace", help="the namespace (CDFS_NAMESPACE, default "
                        "default)")
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_cri(commands)
    commands.add_parser("docs", help="print the filesystem reference (docs/filesystem.md)")
    _add_people(commands)
    return parser


def _add_serve(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    serve = commands.add_parser("serve", help="mount the tree and serve it in the foreground")
    serve.add_argument("--mount", default=argparse.SUPPRESS,
                       help=f"where to mount (CDFS_MOUNT, default {DEFAULT_MOUNT})")
    serve.add_argument("--root", help=f"persistent data (CDFS_ROOT, default {DEFAULT_ROOT})")
    serve.add_argument("--state", help=f"runtime state (CDFS_STATE, default {DEFAULT_STATE})")
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])
    serve.add_argument("--allow-group", metavar="GROUP",
                       help="also let members of GROUP use the mount (allow_other)")
    serve.add_argument("--log-size-max", type=int, metavar="BYTES",
                       help="cap of each container's log; at the cap it starts afresh and\n"
                       "the output files say how much was dropped (CDFS_LOG_SIZE_MAX,\n"
                       f"default {DEFAULT_LOG_SIZE_MAX})")
    serve.add_argument("--cgroup-parent", metavar="PATH",
                       help="the cgroup of containers whose spec names none, as\n"
                       "/PATH/NAMESPACE/ID (CDFS_CGROUP_PARENT, default cdfs for the\n"
                       "default root, cdfs-<hash of the root's path> for any other, so\n"
                       "daemons on other roots never share a cgroup)")
    serve.add_argument("--banner", action="store_true", help="print what to try once mounted")


def _add_cri(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from cdfs.cri.config import (
        DEFAULT_CNI_CONF_DIR,
        DEFAULT_LISTEN,
        DEFAULT_NAMESPACE,
        DEFAULT_ROOT,
        DEFAULT_STREAM_ADDRESS,
    )

    cri = commands.add_parser("cri", help="serve CRI v1 (kubelet, crictl) over the mount, in "
                              "the foreground")
    cri.add_argument("--mount", default=argparse.SUPPRESS,
                     help=f"the tree (CDFS_MOUNT, default {DEFAULT_MOUNT})")
    cri.add_argument("--listen", default=DEFAULT_LISTEN,
                     help=f"unix:///PATH or HOST:PORT (default {DEFAULT_LISTEN})")
    cri.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                     help=f"the tree namespace of CRI's pods and images (default "
                     f"{DEFAULT_NAMESPACE}), made when missing")
    cri.add_argument("--root", default=DEFAULT_ROOT,
                     help=f"the server's own files on the host (default {DEFAULT_ROOT})")
    cri.add_argument("--cni-conf-dir", default=DEFAULT_CNI_CONF_DIR,
                     help="the pod network's CNI config: the first *.conf, *.conflist or "
                     f"*.json there (default {DEFAULT_CNI_CONF_DIR}); cdfs's own bridge "
                     "network when it has none (docs/kubernetes.md)")
    cri.add_argument("--stream-address", default=DEFAULT_STREAM_ADDRESS,
                     help="HOST:PORT of the streaming server whose URLs Exec, Attach and "
                     f"PortForward return (default {DEFAULT_STREAM_ADDRESS}: loopback, a free "
                     "port)")
    cri.add_argument("--log-level", default="info",
                     choices=["debug", "info", "warning", "error"])


def _cri(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cdfs.client.tree import DEFAULT_MOUNT as CLIENT_MOUNT
    from cdfs.cri.config import DEFAULT_NAMESPACE, CriConfig
    from cdfs.cri.server import StartupError, serve

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mount = args.mount or os.environ.get("CDFS_MOUNT", CLIENT_MOUNT)
    config = CriConfig(mount=Path(mount).absolute(), listen=args.listen,
                       namespace=args.namespace or DEFAULT_NAMESPACE,
                       root=Path(args.root).absolute(),
                       cni_conf_dir=Path(args.cni_conf_dir).absolute(),
                       stream_address=args.stream_address)
    try:
        serve(config)
    except StartupError as exc:
        print(f"cdfs cri: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_task_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("-i", "--interactive", action="store_true",
                         help="send our stdin to the process")
    command.add_argument("-t", "--tty", action="store_true",
                         help="run the process on a terminal (with -i: ours, in raw mode)")
    command.add_argument("-e", "--env", action="append", metavar="K=V",
                         help="set a variable (K alone takes ours)")
    command.add_argument("-w", "--workdir", metavar="DIR", help="the working directory")
    command.add_argument("-u", "--user", metavar="USER", help="UID[:GID] or a user name")


def _add_people(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    run = commands.add_parser("run", help="create and start a container, and wait for it "
                              "unless -d; exits with its status")
    run.add_argument("-d", "--detach", action="store_true", help="print its id and return")
    run.add_argument("--rm", action="store_true", help="remove it once it has exited")
    run.add_argument("--name", help="its id (default: random)")
    run.add_argument("--memory", metavar="M", help="memory limit (bytes, or 64m, 1g...)")
    _add_task_flags(run)
    run.add_argument("image", help="image ref (pulled when missing)")
    run.add_argument("command", nargs=argparse.REMAINDER, help="command (default: the image's)")
    commands.add_parser("ps", help="the namespace's containers (containers/list)")
    logs = commands.add_parser("logs", help="a container's output so far")
    logs.add_argument("-f", "--follow", action="store_true", help="and what follows, until exit")
    logs.add_argument("id")
    execute = commands.add_parser("exec", help="run a command in a running container")
    _add_task_flags(execute)
    execute.add_argument("id")
    execute.add_argument("command", nargs=argparse.REMAINDER)
    attach = commands.add_parser("attach", help="join a running container's terminal, or "
                                 "its output from now on")
    attach.add_argument("--stdin", action="store_true", help="send our stdin even from a tty")
    attach.add_argument("id")
    stop = commands.add_parser("stop", help="stop containers (StopSignal, then KILL)")
    stop.add_argument("-t", "--time", type=int, help="seconds before KILL (default 10)")
    stop.add_argument("ids", nargs="+", metavar="id")
    rm = commands.add_parser("rm", help="remove stopped containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill running ones first")
    rm.add_argument("ids", nargs="+", metavar="id")
    pull = commands.add_parser("pull", help="pull an image, with progress bars")
    pull.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    pull.add_argument("ref")
    commands.add_parser("images", help="the namespace's images")


def _people(args: argparse.Namespace) -> int:
    """Run one of the commands for people against the mounted tree."""
    from cdfs.client import commands
    from cdfs.client.tree import Tree, TreeError

    command = {"run": commands.run, "ps": commands.ps, "logs": commands.logs,
               "exec": commands.exec_, "attach": commands.attach, "stop": commands.stop,
               "rm": commands.rm, "pull": commands.pull, "images": commands.images}
    try:
        return command[args.subcommand](Tree.at(args.mount, args.namespace), args)
    except TreeError as exc:
        print(f"cdfs {args.subcommand}: {exc}", file=sys.stderr)
        return 125 if args.subcommand in ("run", "exec") else 1
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.subcommand == "docs":
        from mountpoint.readme import reference
        from mountpoint.rootdir import ROOT

        sys.stdout.write(reference(ROOT))
        return 0
    if args.subcommand == "cri":
        return _cri(args)
    if args.subcommand != "serve":
        return _people(args)
    from cdfs.daemon import StartupError, serve

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = Config.from_env(args.mount, args.root, args.state, log_level=args.log_level,
                                 allow_group=args.allow_group, log_size_max=args.log_size_max,
                                 cgroup_parent=args.cgroup_parent)
    except ValueError as exc:  # a flag or CDFS_* variable out of range
        print(f"cdfs: {exc}", file=sys.stderr)
        return 2
    banner = BANNER.format(version=__version__, mount=config.mount) if args.banner else None
    try:
        trio.run(serve, config, banner)
    except StartupError as exc:
        print(f"cdfs: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
