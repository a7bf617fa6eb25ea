"""What `cdfs cri` is told on its command line (kept free of grpc, so that building
the `cdfs` command's parser does not import it)."""

from dataclasses import dataclass
from pathlib import Path

DEFAULT_LISTEN = "unix:///run/cdfs/cri.sock"
DEFAULT_NAMESPACE = "k8s.io"  # as containerd's CRI plugin
DEFAULT_ROOT = "/var/lib/cdfs-cri"
DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_STREAM_ADDRESS = "127.0.0.1:0"  # loopback, any free port: as containerd's default


@dataclass(frozen=True)
class CriConfig:
    """The tree to drive (`mount`, `namespace`), where to listen, and the server's
    own state directory on the host (`root`), and where the pod network's CNI config
    is (`cni_conf_dir`; cdfs's own network when it holds none)."""

    mount: Path
    listen: str = DEFAULT_LISTEN
    namespace: str = DEFAULT_NAMESPACE
    root: Path = Path(DEFAULT_ROOT)
    cni_conf_dir: Path = Path(DEFAULT_CNI_CONF_DIR)
    stream_address: str = DEFAULT_STREAM_ADDRESS
    """where the streaming server of Exec, Attach and PortForward listens (HOST:PORT)"""
