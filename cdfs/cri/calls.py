"""What every CRI service mixin sees: the tree of the CRI namespace, and the server's
own state directory for the few files that must be on the host (a pod's hosts and
resolv.conf, bind-mounted into its containers)."""

from pathlib import Path

from cdfs.client.tree import Tree


class Calls:
    """The base of each mixin of RuntimeService and of ImageService; the mixins hold
    no state of their own beyond this."""

    def __init__(self, tree: Tree, root: Path) -> None:
        self.tree = tree
        self.root = root
