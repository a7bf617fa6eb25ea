"""netns/: named network namespaces (those of `ip netns`), and primitives to wire them."""

from mountpoint.ctl import Verb, VerbTable
from mountpoint.table import Children, Ctl, Err, Scope, Table, Value
from mountpoint.table import Services as S


async def _names(app: S, scope: Scope) -> list[str]:
    names: list[str] = await app.netns.names()
    return names


async def _exists(app: S, scope: Scope, name: str) -> bool:
    found: bool = await app.netns.exists(name)
    return found


async def _mkdir(app: S, scope: Scope, name: str) -> None:
    await app.netns.create(name)


async def _rmdir(app: S, scope: Scope, name: str) -> None:
    await app.netns.remove(name)


async def _path(app: S, scope: Scope) -> str:
    return f"{app.netns.path(scope['netns'])}\n"


async def _links(app: S, scope: Scope) -> str:
    text: str = await app.netns.links(scope["netns"])
    return text


async def _veth(app: S, scope: Scope, args: list[str]) -> None:
    await app.netns.veth(scope["netns"], args[0], args[1])


async def _up(app: S, scope: Scope, args: list[str]) -> None:
    await app.netns.set_up(scope["netns"], args[0], True)


async def _down(app: S, scope: Scope, args: list[str]) -> None:
    await app.netns.set_up(scope["netns"], args[0], False)


async def _addr(app: S, scope: Scope, args: list[str]) -> None:
    await app.netns.add_address(scope["netns"], args[0], args[1])


NETNS_VERBS = VerbTable(
    Verb("veth", "HOST_IF PEER_IF",
         "make a veth pair: HOST_IF up in the host, PEER_IF (down) in this namespace", _veth),
    Verb("up", "IF", "bring the interface IF of this namespace up", _up),
    Verb("down", "IF", "bring the interface IF of this namespace down", _down),
    Verb("addr", "IF CIDR", "add the address CIDR (10.0.0.2/24, fd00::2/64) to IF", _addr),
)

NETNS_ONE = Table(
    "one network namespace",
    entries=(
        Value("path", "/run/netns/<name>: what `ip netns`, nsenter and runtime specs use",
              read=_path),
        Ctl("ctl", "wiring primitives (no IPAM); only in namespaces cdfs made", NETNS_VERBS),
        Value("links", "one interface a line: `IF STATE ADDR/PREFIX…`", read=_links),
        Err(),
    ),
)

NETNS = Table(
    "named network namespaces",
    entries=(Err(),),
    children=Children(
        "netns",
        "a named network namespace; the listing mirrors /run/netns (`ip netns list`).\n"
        "mkdir NAME makes one with lo up; rmdir removes one cdfs made (EACCES for\n"
        "others), EBUSY while a process (a running container) is inside. A container\n"
        "joins one by writing its name to containers/<id>/netns.",
        list=_names, exists=_exists, mkdir=_mkdir, rmdir=_rmdir, table=NETNS_ONE),
)
