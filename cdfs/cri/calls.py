"""What every CRI service mixin sees: the tree of the CRI namespace, the server's
own state directory for the few files that must be on the host (a pod's hosts and
resolv.conf, bind-mounted into its containers), and the rest of its configuration."""

from functools import cached_property

from cdfs.client.tree import Tree
from cdfs.cri.cni import Cni
from cdfs.cri.config import CriConfig


class Calls:
    """The base of each mixin of RuntimeService and of ImageService; the mixins hold
    no state of their own beyond this."""

    def __init__(self, tree: Tree, config: CriConfig) -> None:
        self.tree = tree
        self.config = config
        self.root = config.root

    @cached_property
    def cni(self) -> Cni:
        """Pod networking: the CNI config dir's network, its state under the root."""
        return Cni(self.config.cni_conf_dir, self.root / "cni")
