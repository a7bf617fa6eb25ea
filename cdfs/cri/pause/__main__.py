"""`python3 -m cdfs.cri.pause OUTPUT`: build the pause binary at OUTPUT (for `make`)."""

import sys
from pathlib import Path

from cdfs.cri.pause import compile_pause

if len(sys.argv) != 2:
    sys.exit("usage: python3 -m cdfs.cri.pause OUTPUT")
compile_pause(Path(sys.argv[1]))
