"""The pure spec functions: defaults, image config, merge and validation."""

import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base.errors import InvalidArgument
from runtime import spec

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534::/:/bin/false\n"
    "app:x:1000:1001::/app:/bin/sh\n"
)
GROUP = "root:x:0:\napp:x:1001:\nwheel:x:10:app,root\naudio:x:29:app\nnogroup:x:65534:\n"


def default() -> dict[str, Any]:
    return spec.default_spec("ns", "web", {"RLIMIT_NOFILE": 20000})


def test_default_spec_is_valid_and_sane() -> None:
    s = default()
    spec.validate(s)
    assert s["linux"]["cgroupsPath"] == "/cdfs/ns/web"
    assert {m["destination"] for m in s["mounts"]} >= {
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount",
                                                             "network"]
    assert s["process"]["terminal"] is False
    assert "CAP_SYS_ADMIN" not in s["process"]["capabilities"]["bounding"]
    assert "/proc/kcore" in s["linux"]["maskedPaths"]


def test_rlimits_are_clamped_to_the_host() -> None:
    s = spec.default_spec("ns", "web", {"RLIMIT_NOFILE": 512})
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]
    host = spec.host_rlimits()["RLIMIT_NOFILE"]
    (limit,) = spec.default_spec("ns", "web", spec.host_rlimits())["process"]["rlimits"]
    assert limit["hard"] <= host


def test_image_config_like_containerd() -> None:
    image = {"config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "WorkingDir": "/app",
                        "Env": ["PATH=/app/bin", "MODE=image"], "User": "app"}}
    base = spec.merge(default(), {"process": {"env": ["MODE=spec", "EXTRA=1"]}})
    s = spec.with_image_config(base, image, passwd=PASSWD, group=GROUP)
    assert s["process"]["args"] == ["/bin/app", "--serve"]
    assert s["process"]["cwd"] == "/app"
    assert s["process"]["env"] == ["PATH=/app/bin", "MODE=spec", "EXTRA=1"]
    assert s["process"]["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [10, 29]}
    assert base["process"]["args"] == ["sh"], "the input is not changed"


def test_image_without_env_or_user_gets_defaults() -> None:
    s = spec.with_image_config(default(), {"Cmd": ["sh"]})
    assert s["process"]["env"] == [spec.DEFAULT_PATH_ENV]
    assert s["process"]["cwd"] == "/"
    assert s["process"]["user"] == {"uid": 0, "gid": 0}


@pytest.mark.parametrize(("user", "expected"), [
    ("0", (0, 0)), ("1000", (1000, 1001)), ("4242", (4242, 0)), ("app:wheel", (1000, 10)),
    ("1000:5", (1000, 5)), ("nobody", (65534, 65534)), ("4242:4242", (4242, 4242)),
])
def test_resolve_user(user: str, expected: tuple[int, int]) -> None:
    assert spec.resolve_user(user, PASSWD, GROUP)[:2] == expected


@pytest.mark.parametrize("user", ["ghost", "app:ghosts", ":0", "app:"])
def test_unknown_users_are_refused(user: str) -> None:
    with pytest.raises(InvalidArgument, match=user.split(":")[-1] or "bad user"):
        spec.resolve_user(user, PASSWD, GROUP)


def test_named_user_without_passwd_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="ghost"):
        spec.with_image_config(default(), {"User": "ghost"}, passwd=None)


def test_env_replace_append_remove() -> None:
    assert spec.replace_or_append_env(["A=1", "B=2"], ["B=3", "C=4", "A"]) == ["B=3", "C=4"]


def test_merge_recursive_objects_replaced_lists() -> None:
    base = {"process": {"args": ["a"], "env": ["X=1"], "cwd": "/"}, "hostname": "h"}
    merged = spec.merge(base, {"process": {"args": ["b", "c"]}, "hostname": None})
    assert merged == {"process": {"args": ["b", "c"], "env": ["X=1"], "cwd": "/"}}
    assert base["process"]["args"] == ["a"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(string.ascii_letters, max_size=3),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text("abc", max_size=2), children, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text("abc", max_size=2), json_values, max_size=4)


@given(json_objects, json_objects)
def test_merge_properties(base: dict[str, Any], partial: dict[str, Any]) -> None:
    merged = spec.merge(base, partial)
    for key, value in partial.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert merged[key] == value
    for key in base.keys() - partial.keys():
        assert merged[key] == base[key]
    assert spec.merge(merged, partial) == merged, "merging twice changes nothing more"


@given(st.lists(st.text("AB=x", max_size=4), max_size=5),
       st.lists(st.text("AB=y", max_size=4), max_size=5))
def test_env_overrides_win(defaults: list[str], overrides: list[str]) -> None:
    result = spec.replace_or_append_env(defaults, overrides)
    for override in overrides:
        key, has_value, _ = override.partition("=")
        last = [o for o in overrides if o.partition("=")[0] == key][-1]
        if has_value and last == override:
            assert override in result


@pytest.mark.parametrize(("patch", "message"), [
    ({"process": {"args": []}}, "process.args: must be a non-empty list of strings"),
    ({"process": {"args": ["a", 1]}}, "process.args: must be a non-empty list of strings"),
    ({"process": {"cwd": "rel"}}, "process.cwd: must be an absolute path"),
    ({"process": {"terminal": "yes"}}, "process.terminal: must be a boolean"),
    ({"process": {"terminal": True, "consoleSize": {"height": 24}}},
     "process.consoleSize: must be"),
    ({"process": {"env": ["NOVALUE"]}}, 'process.env[0]: must be KEY=VALUE, not "NOVALUE"'),
    ({"process": {"user": {"uid": -1, "gid": 0}}}, "process.user.uid: must be an integer"),
    ({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}]}},
     "process.rlimits[0].soft: must not exceed hard"),
    ({"mounts": [{"destination": "/a"}, {"destination": "/b"}, {"destination": "rel"}]},
     "mounts[2].destination: must be absolute"),
    ({"mounts": "x"}, "mounts: must be a list"),
    ({"root": {"path": ""}}, "root.path: must be a non-empty string"),
    ({"hostname": 5}, "hostname: must be a string"),
    ({"hostname": "h" * 65}, "hostname: must be at most 64 bytes"),
    ({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}},
     'linux.namespaces[1].type: "pid" appears twice'),
    ({"linux": {"namespaces": [{"type": "nope"}]}}, "linux.namespaces[0].type: must be one of"),
    ({"linux": {"cgroupsPath": "rel"}}, "linux.cgroupsPath: must be an absolute path"),
])
def test_validate_names_the_bad_field(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        spec.validate(spec.merge(default(), patch))
    assert str(refused.value).startswith(message)


def test_parse_reports_where_json_broke() -> None:
    with pytest.raises(InvalidArgument, match="line 2 column 1"):
        spec.parse('{"a": 1,\n}')
    with pytest.raises(InvalidArgument, match="must be a JSON object"):
        spec.parse("[1]")
    assert spec.parse(json.dumps({"a": 1}).encode()) == {"a": 1}


def test_with_username_resolves_uid_gid_and_groups() -> None:
    s = spec.merge(default(), {"process": {"user": {"username": "app"}}})
    user = spec.with_username(s, PASSWD, GROUP)["process"]["user"]
    assert (user["uid"], user["gid"], user["additionalGids"]) == (1000, 1001, [10, 29])
    assert spec.with_username(default(), None, None) == default()  # no name: unchanged
    for passwd, said in [(None, "has no /etc/passwd"), (PASSWD, "is not in the root's")]:
        with pytest.raises(InvalidArgument, match=said):
            spec.with_username(spec.merge(default(), {"process": {"user": {
                "username": "ghost"}}}), passwd, GROUP)


def test_parse_refuses_deep_nesting_without_recursing() -> None:
    assert spec.parse('{"a":' * 63 + "1" + "}" * 63)
    for depth in (65, 100_000):
        with pytest.raises(InvalidArgument, match="nested deeper than 64"):
            spec.parse('{"a":' * depth + "1" + "}" * depth)


@pytest.mark.parametrize(("resources", "strict", "said"), [
    ({"memory": {"limit": "1g"}}, False, "memory.limit: must be an integer"),
    ({"cpu": {"shares": -1}}, False, "cpu.shares: must be an integer >= 0"),
    ({"blockIO": {"weight": 70000}}, False, "blockIO.weight: must be an integer from 0"),
    ({"devices": [{"allow": "yes"}]}, False, r"devices\[0\].allow: must be a boolean"),
    ({"blockIO": {"throttleReadBpsDevice": [{"rate": -5}]}}, False,
     r"throttleReadBpsDevice\[0\].rate"),
    ({"unified": {"memory.max": 5}}, False, "unified.memory.max: must be a string"),
    ({"memroy": {}}, True, 'unknown field "memroy"'),
    ({"pids": {"limt": 1}}, True, 'unknown field "limt"'),
])
def test_resources_are_checked_field_by_field(resources: dict[str, Any], strict: bool,
                                              said: str) -> None:
    with pytest.raises(InvalidArgument, match=said):
        spec.validate_resources(resources, "r", strict)


def test_valid_resources_pass_and_unknown_fields_pass_unless_strict() -> None:
    spec.validate_resources({"memory": {"limit": -1, "disableOOMKiller": True},
                             "cpu": {"cpus": "0-1"}, "devices": [{"allow": False}]}, "r", True)
    spec.validate_resources({"future": {"x": 1}}, "r", False)
