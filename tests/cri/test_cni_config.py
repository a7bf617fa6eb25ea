"""What cni.py hands the plugins, without running them: the network chosen from the
config dir, each plugin's stdin, CNI_ARGS, and the pod's addresses in a result."""

import json
from pathlib import Path

import pytest

from cdfs.cri.cni import (
    DEFAULT_CONFLIST,
    Attachment,
    CniError,
    load_conflist,
    plugin_stdin,
    pod_ips,
    with_data_dir,
)
from cdfs.cri.sandbox_record import PortMapping

ATTACHMENT = Attachment("c" * 64, "/run/netns/x", "web", "default", "uid-1",
                        (PortMapping(80, 8080, "TCP", "127.0.0.1"), PortMapping(53, 0, "UDP")))


def test_an_empty_or_missing_dir_gives_the_default(tmp_path: Path) -> None:
    assert load_conflist(tmp_path / "absent") == DEFAULT_CONFLIST
    assert load_conflist(tmp_path) == DEFAULT_CONFLIST
    (tmp_path / "README").write_text("no config here")
    assert load_conflist(tmp_path) == DEFAULT_CONFLIST


def test_the_first_config_by_name_wins(tmp_path: Path) -> None:
    (tmp_path / "20-b.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "b", "plugins": [{"type": "bridge"}]}))
    (tmp_path / "10-a.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "a", "type": "ptp"}))
    assert load_conflist(tmp_path) == {"cniVersion": "0.4.0", "name": "a",
                                       "plugins": [{"cniVersion": "0.4.0", "name": "a",
                                                    "type": "ptp"}]}


def test_a_broken_first_config_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "10-a.conflist").write_text("{")
    with pytest.raises(CniError, match=r"10-a\.conflist"):
        load_conflist(tmp_path)
    (tmp_path / "10-a.conflist").write_text('{"name": "a", "plugins": []}')
    with pytest.raises(CniError, match="no plugins"):
        load_conflist(tmp_path)


def test_host_local_keeps_its_data_under_the_root(tmp_path: Path) -> None:
    conflist = with_data_dir(DEFAULT_CONFLIST, tmp_path / "networks")
    assert conflist["plugins"][0]["ipam"]["dataDir"] == str(tmp_path / "networks")
    assert "dataDir" not in DEFAULT_CONFLIST["plugins"][0]["ipam"], "the default is unchanged"
    own = {"name": "n", "plugins": [{"type": "bridge",
                                     "ipam": {"type": "host-local", "dataDir": "/mine"}}]}
    assert with_data_dir(own, tmp_path)["plugins"][0]["ipam"]["dataDir"] == "/mine"


def test_plugin_stdin_carries_name_prev_result_and_declared_capabilities() -> None:
    bridge, portmap = DEFAULT_CONFLIST["plugins"]
    first = plugin_stdin(DEFAULT_CONFLIST, bridge, ATTACHMENT, None)
    assert first["name"] == "cdfs" and first["cniVersion"] == "1.0.0"
    assert "prevResult" not in first and "runtimeConfig" not in first
    prev = {"cniVersion": "1.0.0", "ips": [{"address": "10.223.0.2/16"}]}
    second = plugin_stdin(DEFAULT_CONFLIST, portmap, ATTACHMENT, prev)
    assert second["prevResult"] == prev
    assert "capabilities" not in second
    # Only mappings with a host port are offered, protocol in lower case.
    assert second["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]}


def test_cni_args_name_the_pod() -> None:
    args = dict(pair.split("=", 1) for pair in ATTACHMENT.cni_args().split(";"))
    assert args == {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "default",
                    "K8S_POD_NAME": "web", "K8S_POD_INFRA_CONTAINER_ID": "c" * 64,
                    "K8S_POD_UID": "uid-1"}


def test_pod_ips_are_the_pod_interfaces_ipv4_first() -> None:
    result = {
        "interfaces": [{"name": "cdfs0"}, {"name": "veth1"},
                       {"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "fd00::5/64", "interface": 2},
                {"address": "10.223.0.1/16", "interface": 0},
                {"address": "10.223.0.5/16", "interface": 2},
                {"address": "not an address", "interface": 2}],
    }
    assert pod_ips(result) == ("10.223.0.5", "fd00::5")
    assert pod_ips({"ips": [{"address": "10.0.0.9/8"}]}) == ("10.0.0.9",)
    assert pod_ips({}) == ()


def test_the_documented_default_is_the_default() -> None:
    """docs/kubernetes.md shows the conflist to copy: it must be the one in use."""
    docs = (Path(__file__).parents[2] / "docs" / "kubernetes.md").read_text()
    section = docs[docs.index("### CNI set-up"):]
    block = section[section.index("```json") + len("```json"):]
    assert json.loads(block[:block.index("```")]) == DEFAULT_CONFLIST
