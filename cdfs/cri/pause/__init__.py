"""The pause program (pause.c beside this file): what a pod sandbox runs.

Its binary is built static from pause.c by `make` and lives beside the source as
package data; a checkout where `make` has not run yet gets one built into the CRI
server's own directory at start (`find_or_build`), so `cdfs cri` always has one.
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


def find_or_build(workdir: Path) -> Path:
    """The packaged binary, else one compiled once into `workdir` (kept for the next
    start; rebuilt when pause.c is newer)."""
    if BINARY.is_file():
        return BINARY
    workdir.mkdir(parents=True, exist_ok=True)
    built = workdir / "pause"
    if not built.is_file() or built.stat().st_mtime < SOURCE.stat().st_mtime:
        temp = workdir / "pause.tmp"
        compile_pause(temp)
        temp.replace(built)
    return built
