"""The pause program (pause.c beside this file): what a pod sandbox runs.

Its binary is built static from pause.c by `make` and lives beside the source as
package data, so `cdfs cri` has one to import as an image.
"""

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("pause.c")
BINARY = Path(__file__).with_name("pause")
CC_FLAGS = ("-static", "-Os", "-s", "-Wall", "-Wextra")


def compile_pause(output: Path, source: Path = SOURCE) -> None:
    """Build the static pause binary at `output` with the host's C compiler (the
    package build and `make` both come here)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) to build the pause program with")
    output.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([cc, *CC_FLAGS, "-o", str(output), str(source)], check=True, timeout=120)
