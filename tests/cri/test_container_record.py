"""The container record's reads of the tree on a plain directory standing in for a
mount: damage there is the tree's failure, with its path."""

import errno
from pathlib import Path

import pytest

from cdfs.client.tree import Tree, TreeError
from cdfs.cri.container_record import read_spec

CONTAINER_ID = "cd" * 32


def test_a_garbled_spec_is_the_trees_failure(tmp_path: Path) -> None:
    """ContainerStatus reads config.json: damage in it is EIO with the path, not an
    uncaught ValueError (UNKNOWN with a traceback in the log)."""
    tree = Tree(tmp_path, "k8s.io")
    slot = tree.container(CONTAINER_ID)
    slot.mkdir(parents=True)
    (slot / "config.json").write_text("")
    assert read_spec(tree, CONTAINER_ID) == {}  # a slot without a spec yet
    for garbled in ('{"ociVersion": ', "[1, 2]"):
        (slot / "config.json").write_text(garbled)
        with pytest.raises(TreeError) as caught:
            read_spec(tree, CONTAINER_ID)
        assert caught.value.errno == errno.EIO and "config.json" in str(caught.value)
