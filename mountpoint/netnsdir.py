"""netns/: named network namespaces (those of `ip netns`), and primitives to wire them."""

from mountpoint.ctl import Verb, VerbTable
from mountpoint.table import Ctl, Err, Table, Value, collection, show

NETNS_VERBS = VerbTable(
    Verb("veth", "HOST_IF PEER_IF",
         "make a veth pair: HOST_IF up in the host, PEER_IF (down) in this namespace",
         lambda app, s, args: app.netns.veth(s["netns"], args[0], args[1])),
    Verb("up", "IF", "bring the interface IF of this namespace up",
         lambda app, s, args: app.netns.set_up(s["netns"], args[0], True)),
    Verb("down", "IF", "bring the interface IF of this namespace down",
         lambda app, s, args: app.netns.set_up(s["netns"], args[0], False)),
    Verb("addr", "IF CIDR", "add the address CIDR (10.0.0.2/24, fd00::2/64) to IF",
         lambda app, s, args: app.netns.add_address(s["netns"], args[0], args[1])),
)

NETNS_ONE = Table(
    "one network namespace",
    entries=(
        Value("path", "/run/netns/<name>: what `ip netns`, nsenter and runtime specs use",
              read=show(lambda app, s: app.netns.path(s["netns"]))),
        Ctl("ctl", "wiring primitives (no IPAM); only in namespaces cdfs made", NETNS_VERBS),
        Value("links", "one interface a line: `IF STATE ADDR/PREFIX…`",
              read=show(lambda app, s: app.netns.links(s["netns"]))),
        Value("counters", "one interface a line: `IF RX_BYTES RX_ERRORS TX_BYTES TX_ERRORS`,\n"
              "counted since the interface was made (a pod's traffic, for kubelet's stats)",
              read=show(lambda app, s: app.netns.counters(s["netns"]))),
        Err(),
    ),
)

NETNS = Table(
    "named network namespaces",
    entries=(Err(),),
    children=collection(
        "netns",
        "a named network namespace; the listing mirrors /run/netns (`ip netns list`).\n"
        "mkdir NAME makes one with lo up; rmdir removes one cdfs made (EACCES for\n"
        "others), EBUSY while a process (a running container) is inside. A container\n"
        "joins one by writing its name to containers/<id>/netns.",
        NETNS_ONE,
        names=lambda app, s: app.netns.names(),
        exists=lambda app, s, name: app.netns.exists(name),
        make=lambda app, s, name: app.netns.create(name),
        remove=lambda app, s, name: app.netns.remove(name)),
)
