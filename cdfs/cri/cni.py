"""Pod networking through CNI plugins (Debian's containernetworking-plugins).

The CRI server wires a pod's network namespace as every CNI runtime does: it reads
the first network configuration of the CNI config dir (`cdfs cri --cni-conf-dir`,
default /etc/cni/net.d; `DEFAULT_CONFLIST` when the dir has none), and runs each
plugin of its list as the CNI spec says: CNI_* variables in the environment, the
plugin's config on stdin with the previous plugin's result as `prevResult` and the
capabilities it declares (`portMappings`) under `runtimeConfig`, the result as JSON
on stdout. ADD runs the list in order, DEL in reverse, CHECK in order.

What ADD returned, and the list it used, are kept in the server's state dir
(`<root>/cni/results/<id>.json`), so that DEL undoes exactly what ADD did even after
the config dir changed, and CHECK has its `prevResult`. DEL is idempotent: without a
cached result it runs the current list anyway (the plugins treat what is gone as
deleted), so a half-finished ADD or a second stop leaks no veth, iptables rule or
host-local address. host-local's allocations live under `<root>/cni/networks`
unless a config names its own `dataDir`.

The loopback interface is brought up by the loopback plugin as a network of its own
(as containerd does), before the pod's network.
"""

import errno
import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

from cdfs.client.tree import TreeError
from cdfs.cri.sandbox_record import PortMapping

PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
CNI_VERSION = "1.0.0"
POD_INTERFACE = "eth0"
PLUGIN_TIMEOUT = 60.0
CONF_SUFFIXES = (".conf", ".conflist", ".json")

DEFAULT_CONFLIST: dict[str, Any] = {
    "cniVersion": CNI_VERSION,
    "name": "cdfs",
    "plugins": [
        {
            "type": "bridge",
            "bridge": "cdfs0",
            "isGateway": True,
            "ipMasq": True,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.223.0.0/16"}]],
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        },
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ],
}
"""The network a pod gets when the CNI config dir holds none: a bridge `cdfs0` with
host-local addresses from 10.223.0.0/16 (a private range few networks use), the
bridge as gateway with masquerading out, and hostPort mappings by portmap."""

LOOPBACK: dict[str, Any] = {"cniVersion": CNI_VERSION, "name": "cni-loopback",
                            "plugins": [{"type": "loopback"}]}


class CniError(TreeError):
    """A plugin failed, or no usable network configuration was found; the message is
    the plugin's own `msg` (and `details`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, errno.EIO)


@dataclass(frozen=True)
class Attachment:
    """One pod's attachment to a network: what the plugins are told about it."""

    container_id: str
    netns: str
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    port_mappings: Sequence[PortMapping] = ()
    interface: str = POD_INTERFACE

    def cni_args(self) -> str:
        """CNI_ARGS as kubelet's runtimes set it."""
        pairs = [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", self.pod_namespace),
                 ("K8S_POD_NAME", self.pod_name),
                 ("K8S_POD_INFRA_CONTAINER_ID", self.container_id),
                 ("K8S_POD_UID", self.pod_uid)]
        return ";".join(f"{key}={value}" for key, value in pairs)

    def runtime_config(self) -> dict[str, Any]:
        """The capability values the runtime offers (CNI conventions.md); a plugin is
        given those it declares."""
        ports = [{"hostPort": p.host_port, "containerPort": p.container_port,
                  "protocol": p.protocol.lower(), "hostIP": p.host_ip}
                 for p in self.port_mappings if p.host_port > 0]
        return {"portMappings": ports}


@dataclass(frozen=True)
class CniResult:
    """The addresses ADD gave the pod's interface, IPv4 first (the pod's IP is the
    first), and the result as the plugins returned it."""

    ips: tuple[str, ...]
    raw: Mapping[str, Any]

    @property
    def ip(self) -> str:
        return self.ips[0] if self.ips else ""


def load_conflist(conf_dir: Path) -> dict[str, Any]:
    """The first network configuration of `conf_dir` in name order (as libcni and
    kubelet pick it: *.conf, *.conflist, *.json), a single-plugin .conf made a list;
    `DEFAULT_CONFLIST` when the dir has none or is absent."""
    try:
        names = sorted(p for p in conf_dir.iterdir() if p.suffix in CONF_SUFFIXES)
    except FileNotFoundError:
        names = []
    for path in names:
        try:
            conf = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CniError(f"CNI config {path}: {exc}") from None
        if not isinstance(conf, dict):
            raise CniError(f"CNI config {path}: not a JSON object")
        if "plugins" not in conf:  # a single plugin's .conf
            conf = {"cniVersion": conf.get("cniVersion", CNI_VERSION),
                    "name": conf.get("name", path.stem), "plugins": [conf]}
        if not isinstance(conf["plugins"], list) or not conf["plugins"]:
            raise CniError(f"CNI config {path}: no plugins")
        return conf
    return json.loads(json.dumps(DEFAULT_CONFLIST))


def with_data_dir(conflist: Mapping[str, Any], data_dir: Path) -> dict[str, Any]:
    """A copy whose host-local IPAM keeps its allocations under `data_dir` unless the
    config names a dataDir itself."""
    result = json.loads(json.dumps(conflist))
    for plugin in result["plugins"]:
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local":
            ipam.setdefault("dataDir", str(data_dir))
    return result


def plugin_stdin(conflist: Mapping[str, Any], plugin: Mapping[str, Any],
                 attachment: Attachment, prev_result: Mapping[str, Any] | None
                 ) -> dict[str, Any]:
    """What one plugin of the list reads on stdin (libcni's buildOneConfig)."""
    conf = dict(plugin)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = conflist.get("cniVersion", CNI_VERSION)
    if prev_result is not None:
        conf["prevResult"] = dict(prev_result)
    capabilities = plugin.get("capabilities")
    if isinstance(capabilities, dict):
        offered = attachment.runtime_config()
        wanted = {key: offered[key] for key, on in capabilities.items()
                  if on and key in offered}
        if wanted:
            conf["runtimeConfig"] = wanted
    conf.pop("capabilities", None)
    return conf


def pod_ips(result: Mapping[str, Any]) -> tuple[str, ...]:
    """The addresses of the pod's own interfaces (those with a `sandbox`), IPv4 first;
    every address when the result names no interfaces."""
    interfaces = result.get("interfaces") or []
    inside = {i for i, interface in enumerate(interfaces)
              if isinstance(interface, dict) and interface.get("sandbox")}
    found = []
    for entry in result.get("ips") or []:
        index = entry.get("interface")
        if inside and index is not None and index not in inside:
            continue
        try:
            found.append(ip_interface(entry["address"]).ip)
        except (KeyError, ValueError):
            continue
    found.sort(key=lambda address: address.version)
    return tuple(str(address) for address in found)


class Cni:
    """The plugins, the config dir and the state this server keeps for CNI."""

    def __init__(self, conf_dir: Path, state_dir: Path,
                 plugin_dirs: Iterable[Path] = PLUGIN_DIRS) -> None:
        self.conf_dir = conf_dir
        self.state_dir = state_dir
        self.plugin_dirs = tuple(plugin_dirs)

    @property
    def data_dir(self) -> Path:
        """host-local's allocations: one file per address given out."""
        return self.state_dir / "networks"

    def cache_path(self, container_id: str) -> Path:
        return self.state_dir / "results" / f"{container_id}.json"

    def problem(self) -> str | None:
        """Why pods cannot get a network now (a broken config, a missing plugin), or
        None: what CRI's NetworkReady condition reports."""
        try:
            conflist = self.conflist()
            for plugin in [*LOOPBACK["plugins"], *conflist["plugins"]]:
                self._plugin(plugin.get("type"))
        except CniError as exc:
            return str(exc)
        return None

    def attached(self, container_id: str) -> bool:
        """ADD ran for it (or began to) and no DEL has finished since."""
        return self.cache_path(container_id).exists()

    def conflist(self) -> dict[str, Any]:
        return with_data_dir(load_conflist(self.conf_dir), self.data_dir)

    # -- the three commands ------------------------------------------------------------
    def add(self, attachment: Attachment) -> CniResult:
        """Attach the pod: loopback up, then the network's plugins in order. On a
        failure what was done is deleted again before the error is raised."""
        conflist = self.conflist()
        self._save(attachment.container_id, {"conflist": conflist, "result": None})
        try:
            self._run_list(LOOPBACK, "ADD", Attachment(attachment.container_id,
                                                       attachment.netns, interface="lo"))
            result = self._run_list(conflist, "ADD", attachment)
        except CniError:
            self.delete(attachment)
            raise
        self._save(attachment.container_id, {"conflist": conflist, "result": result})
        return CniResult(pod_ips(result), result)

    def check(self, attachment: Attachment) -> None:
        """CHECK the attachment ADD made; CniError when a plugin finds it broken."""
        cached = self._load(attachment.container_id)
        if cached is None or cached.get("result") is None:
            raise CniError(f'no CNI attachment of "{attachment.container_id}" to check')
        conflist = cached["conflist"]
        for plugin in conflist["plugins"]:
            self._exec(plugin, "CHECK", attachment,
                       plugin_stdin(conflist, plugin, attachment, cached["result"]))

    def delete(self, attachment: Attachment) -> None:
        """Detach the pod, plugins in reverse order, each one run even when another
        failed (so nothing it holds leaks); the first failure is raised at the end.
        Deleting what is not attached succeeds."""
        cached = self._load(attachment.container_id)
        conflist = cached["conflist"] if cached else self.conflist()
        prev = cached.get("result") if cached else None
        errors = []
        for plugin in reversed(conflist["plugins"]):
            try:
                self._exec(plugin, "DEL", attachment,
                           plugin_stdin(conflist, plugin, attachment, prev))
            except CniError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        self.cache_path(attachment.container_id).unlink(missing_ok=True)

    # -- running plugins ---------------------------------------------------------------
    def _run_list(self, conflist: Mapping[str, Any], command: str,
                  attachment: Attachment) -> dict[str, Any]:
        result: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            result = self._exec(plugin, command, attachment,
                                plugin_stdin(conflist, plugin, attachment, result))
        return result or {}

    def _plugin(self, kind: Any) -> Path:
        if not isinstance(kind, str) or not kind or "/" in kind:
            raise CniError(f"CNI config: bad plugin type {kind!r}")
        for directory in self.plugin_dirs:
            path = directory / kind
            if os.access(path, os.X_OK):
                return path
        raise CniError(f'no CNI plugin "{kind}" in {":".join(map(str, self.plugin_dirs))}')

    def _exec(self, plugin: Mapping[str, Any], command: str, attachment: Attachment,
              stdin: Mapping[str, Any]) -> dict[str, Any]:
        """Run one plugin; its result object (empty for DEL and CHECK)."""
        kind = plugin.get("type")
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": attachment.container_id,
            "CNI_NETNS": attachment.netns,
            "CNI_IFNAME": attachment.interface,
            "CNI_ARGS": attachment.cni_args(),
            "CNI_PATH": ":".join(map(str, self.plugin_dirs)),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        try:
            done = subprocess.run([str(self._plugin(kind))], input=json.dumps(stdin).encode(),
                                  env=env, capture_output=True, timeout=PLUGIN_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise CniError(f"CNI plugin {kind} {command}: no answer in "
                           f"{PLUGIN_TIMEOUT:.0f} s") from None
        if done.returncode != 0:
            raise CniError(f"CNI plugin {kind} {command}: {_plugin_error(done)}")
        if command != "ADD":
            return {}
        try:
            result = json.loads(done.stdout)
        except ValueError:
            raise CniError(f"CNI plugin {kind} ADD: its result is not JSON") from None
        if not isinstance(result, dict):
            raise CniError(f"CNI plugin {kind} ADD: its result is not an object")
        return result

    # -- the cache ---------------------------------------------------------------------
    def _save(self, container_id: str, entry: Mapping[str, Any]) -> None:
        path = self.cache_path(container_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(entry))
        temp.replace(path)

    def _load(self, container_id: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self.cache_path(container_id).read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("conflist"), dict):
            return None
        return entry


def _plugin_error(done: "subprocess.CompletedProcess[bytes]") -> str:
    """A failed plugin's error object in one line (`msg: details`), else its stderr."""
    try:
        error = json.loads(done.stdout)
        message = str(error.get("msg") or "")
        details = str(error.get("details") or "")
        if message:
            return f"{message}: {details}" if details else message
    except (ValueError, AttributeError):
        pass
    text = (done.stderr or done.stdout).decode(errors="replace").strip()
    return text.splitlines()[-1] if text else f"exit status {done.returncode}"
