"""The root of the tree."""

import logging

from base.errors import InvalidArgument
from mountpoint.contentdir import CONTENT
from mountpoint.ctl import Verb, VerbTable
from mountpoint.namespacedir import NAMESPACES
from mountpoint.netnsdir import NETNS
from mountpoint.readme import reference
from mountpoint.table import Ctl, Dir, Err, Link, Scope, Services, Stream, Table, Value, opens, show

LOG_LEVELS = ("debug", "info", "warning", "error")


def _readme(app: Services, scope: Scope) -> str:
    return reference(ROOT)


async def _log_level(app: Services, scope: Scope, args: list[str]) -> None:
    level = args[0].lower()
    if level not in LOG_LEVELS:
        raise InvalidArgument(f'unknown log level "{args[0]}" (levels: {", ".join(LOG_LEVELS)})')
    logging.getLogger().setLevel(level.upper())


async def _gc(app: Services, scope: Scope, args: list[str]) -> None:
    await app.collect_garbage()


ROOT_VERBS = VerbTable(
    Verb("gc", "", "free at once the blobs, snapshots and ingests no image, container\n"
         "or lease uses (pulls in flight hold leases: see namespaces/NS/leases)", _gc),
    Verb("log-level", "LEVEL", "set the daemon's log level: debug, info, warning or error",
         _log_level),
)

ROOT = Table(
    "the root",
    entries=(
        Value("README", "this reference", read=show(_readme)),
        Value("version", '"cdfs X.Y.Z"', read=show(lambda app, s: f"cdfs {app.version}")),
        Ctl("ctl", "global verbs", ROOT_VERBS),
        Err(),
        Stream("events", "every event of every namespace, one JSON object a line:\n"
               '{"time", "namespace", "topic", "id", …}, from the moment the reader opened',
               opens(lambda app, s: app.bus.subscribe())),
        Dir("content", "the content-addressed store, shared by every namespace", CONTENT),
        Dir("namespaces", "tenants", NAMESPACES),
        Link("images", "the default namespace's images", "namespaces/default/images"),
        Link("containers", "the default namespace's containers",
             "namespaces/default/containers"),
        Dir("netns", "named network namespaces", NETNS),
        Value("space", "the filesystem of the snapshots (and the rest of the daemon's root),\n"
              "as statvfs counts it: `path DIR`, `bytes-used N`, `bytes-free N`,\n"
              "`inodes-used N`, `inodes-free N` lines (CRI's ImageFsInfo reads it)",
              read=show(lambda app, s: app.snapshots.space(), lambda space: space.render())),
    ),
)
