"""The `cdfs` command: `cdfs serve` runs the daemon, `cdfs docs` prints the reference."""

import argparse
import logging
import sys

import trio

from cdfs import __version__
from cdfs.config import DEFAULT_LOG_SIZE_MAX, DEFAULT_MOUNT, DEFAULT_ROOT, DEFAULT_STATE, Config

BANNER = """\
cdfs {version} is serving {mount}. In another shell, try:
  cd {mount}; less README                   # every file and verb
  ls -R images/                             # cdfs.local/busybox:latest, built from the host
  timeout 30 cat events &                   # events as JSON lines
  mkdir containers/web
  echo cdfs.local/busybox:latest > containers/web/image
  echo '{{"process":{{"args":["sh","-c","echo hi"]}}}}' > containers/web/config.json
  echo start > containers/web/ctl
  cat containers/web/wait containers/web/stdout          # 0, then hi
  tail -f containers/web/stdout                         # output files are log files
  rmdir containers/web
Stop with Ctrl-C: the tree is unmounted; containers keep running under their monitors."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdfs", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cdfs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="mount the tree and serve it in the foreground")
    serve.add_argument("--mount", help=f"where to mount (CDFS_MOUNT, default {DEFAULT_MOUNT})")
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
    serve.add_argument("--banner", action="store_true", help="print what to try once mounted")
    commands.add_parser("docs", help="print the filesystem reference (docs/filesystem.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "docs":
        from mountpoint.readme import reference
        from mountpoint.rootdir import ROOT

        sys.stdout.write(reference(ROOT))
        return 0
    from cdfs.daemon import StartupError, serve

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config.from_env(args.mount, args.root, args.state, log_level=args.log_level,
                             allow_group=args.allow_group, log_size_max=args.log_size_max)
    banner = BANNER.format(version=__version__, mount=config.mount) if args.banner else None
    try:
        trio.run(serve, config, banner)
    except StartupError as exc:
        print(f"cdfs: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
