"""The benchmarks still run: `bench/run.py --quick` (tiny image, 2 iterations, 2 containers
a side) against a real cdfs, containerd and docker-registry. Times are printed, never
checked: only that every table row came out."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[2] / "bench" / "run.py"

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("containerd", "ctr", "runc", "conmon")),
    reason="needs containerd, runc and conmon")


def test_quick_benchmarks_print_the_whole_table() -> None:
    result = subprocess.run([sys.executable, str(RUN), "--quick"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    measures = [row.split(" | ")[0] for row in rows]
    for expected in ("cold pull", "run `true` to exit", "monitor memory", "stats/memory",
                     "cdfs daemon CPU", "control read", "scale:", "runtime layer alone"):
        assert any(expected in measure for measure in measures), result.stdout
