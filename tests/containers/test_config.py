"""The pure core of containers: spec building, labels, verbs' arguments."""

import pytest

from base.errors import InvalidArgument
from cdfs.config import Config, default_cgroup_parent
from cdfs.services import container_config as cc

LIMITS = {"RLIMIT_NOFILE": 20000}
IMAGE = cc.image_config_mapping(("/entry",), ("arg",), ("PATH=/bin", "A=1"), "/work", "")


def test_partial_spec_merges_over_default_and_image() -> None:
    spec = cc.build_spec("ns", "c1", {"process": {"env": ["B=2", "A=3"]}}, LIMITS,
                         image_config=IMAGE)
    process = spec["process"]
    assert process["args"] == ["/entry", "arg"]
    assert process["env"] == ["PATH=/bin", "A=3", "B=2"]
    assert process["cwd"] == "/work"
    assert spec["linux"]["cgroupsPath"] == "/cdfs/ns/c1"
    assert cc.cgroups_path(spec, "ns", "c1") == "/cdfs/ns/c1"


def test_cgroups_path_has_one_default() -> None:
    """The spec's default and the cgroup stats/ reads when a spec names none agree."""
    default = cc.build_spec("ns", "c1", {}, LIMITS)["linux"]["cgroupsPath"]
    unnamed = cc.build_spec("ns", "c1", {"linux": {"cgroupsPath": None}}, LIMITS)
    assert "cgroupsPath" not in unnamed["linux"]
    assert cc.cgroups_path(unnamed, "ns", "c1") == default == "/cdfs/ns/c1"
    named = cc.build_spec("ns", "c1", {"linux": {"cgroupsPath": "/mine/c1"}}, LIMITS)
    assert cc.cgroups_path(named, "ns", "c1") == "/mine/c1"


def test_users_fields_win_and_null_deletes() -> None:
    spec = cc.build_spec("ns", "c1", {"process": {"args": ["sh"], "cwd": "/tmp"},
                                      "hostname": None}, LIMITS, image_config=IMAGE)
    assert spec["process"]["args"] == ["sh"] and spec["process"]["cwd"] == "/tmp"
    assert "hostname" not in spec


def test_full_spec_is_taken_as_written() -> None:
    full = cc.build_spec("ns", "c1", {}, LIMITS)
    full["process"]["args"] = ["true"]
    del full["linux"]["maskedPaths"]
    assert cc.build_spec("ns", "c1", full, LIMITS, image_config=IMAGE) == full


def test_image_user_resolved_against_passwd_and_groups() -> None:
    image = cc.image_config_mapping((), ("sh",), (), "", "app")
    spec = cc.build_spec("ns", "c", {}, LIMITS, image_config=image,
                         passwd="app:x:1000:1000::/:/bin/sh\n",
                         group="app:x:1000:\nwheel:x:10:app\n")
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    with pytest.raises(InvalidArgument, match='unknown user: "nobody"'):
        cc.build_spec("ns", "c", {}, LIMITS, passwd="root:x:0:0::/:/bin/sh\n",
                      image_config=cc.image_config_mapping((), ("sh",), (), "", "nobody"))


@pytest.mark.parametrize(("user", "where"), [
    ({"process": {"args": []}}, "process.args"),
    ({"mounts": [{"destination": "rel"}]}, "mounts[0].destination"),
    ({"process": {"cwd": "relative"}}, "process.cwd"),
    ({"root": "x"}, "root"),
])
def test_bad_specs_name_where(user: dict[str, object], where: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        cc.build_spec("ns", "c", user, LIMITS)


def test_network_namespace_path_replaces_the_new_one() -> None:
    spec = cc.build_spec("ns", "c", {}, LIMITS, netns_path="/run/netns/blue")
    networks = [n for n in spec["linux"]["namespaces"] if n["type"] == "network"]
    assert networks == [{"type": "network", "path": "/run/netns/blue"}]
    assert len(spec["linux"]["namespaces"]) == 5


def test_labels_round_trip_and_refusal() -> None:
    labels = cc.parse_labels("b=2\n\na=x=y\nempty=\n")
    assert labels == {"a": "x=y", "b": "2", "empty": ""}
    assert cc.format_labels(labels) == "a=x=y\nb=2\nempty=\n"
    for bad in ("novalue\n", "=v\n", "two words=v\n"):
        with pytest.raises(InvalidArgument, match="is not key=value"):
            cc.parse_labels(bad)


def test_grace_and_resources() -> None:
    assert cc.parse_grace([]) == 10.0
    assert cc.parse_grace(["2.5"]) == 2.5
    for bad in ("soon", "-1", "nan", "99999"):
        with pytest.raises(InvalidArgument, match="grace"):
            cc.parse_grace([bad])
    assert cc.parse_resources('{"memory": {"limit": 1}}') == {"memory": {"limit": 1}}
    with pytest.raises(InvalidArgument):
        cc.parse_resources('{"memory": 5}')
    spec = cc.with_resources(cc.build_spec("ns", "c", {}, LIMITS), {"pids": {"limit": 9}})
    assert spec["linux"]["resources"]["pids"] == {"limit": 9}
    assert spec["linux"]["resources"]["devices"]  # kept


def test_the_cgroup_parent_is_the_daemons_own() -> None:
    """cdfs for the default root, one per other root, or as configured (checked)."""
    assert Config.from_env(root="/var/lib/cdfs").cgroup_parent == "cdfs"
    one, two = (Config.from_env(root=root).cgroup_parent for root in ("/srv/a", "/srv/b"))
    assert one != two and one.startswith("cdfs-") and one == default_cgroup_parent(
        Config.from_env(root="/srv/a").root)
    assert Config.from_env(root="/srv/a", cgroup_parent="/team/x/").cgroup_parent == "team/x"
    for bad in ("../up", "a//b", "a/./b", "/"):
        with pytest.raises(ValueError, match="bad cgroup parent"):
            Config.from_env(cgroup_parent=bad)
    spec = cc.build_spec("ns", "c1", {}, LIMITS, cgroup_parent="team/x")
    assert spec["linux"]["cgroupsPath"] == "/team/x/ns/c1"
    assert cc.cgroups_path({}, "ns", "c1", "team/x") == "/team/x/ns/c1"
