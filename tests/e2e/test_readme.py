"""README.md's tour and its `cdfs` command block run as written, on a real daemon.

The blocks are taken from the README itself, so a command shown there that stops
working fails here. Only the mount path is changed, to this test's."""

import os
import re
import subprocess
import sys
from pathlib import Path

from support import Daemon

README = Path(__file__).resolve().parents[2] / "README.md"


def block(heading: str) -> str:
    """The first ```sh block of the README section called `heading`."""
    text = README.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, f"no sh block under {heading!r}"
    return found.group(1)


def run_as_written(daemon: Daemon, script: str, tmp_path: Path,
                   stdin: str = "") -> tuple[int, str, str]:
    """Run `script` with bash, `cdfs` on PATH, the mount as /mnt/cdfs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "cdfs"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m cdfs.cli \"$@\"\n")
    wrapper.chmod(0o755)
    out, err = tmp_path / "out", tmp_path / "err"
    work = tmp_path / "work"  # not tmp_path, whose cdfs/ (the daemon's) would shadow the package
    work.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "CDFS_MOUNT": str(daemon.mount), "PAGER": "cat"}
    with open(out, "w") as stdout, open(err, "w") as stderr:  # files: a background
        done = subprocess.run(  # reader of the tour must not hold a pipe open
            ["bash", "-c", script.replace("/mnt/cdfs", str(daemon.mount))], cwd=work,
            env=env, input=stdin.encode(), stdout=stdout, stderr=stderr, timeout=120)
    return done.returncode, out.read_text(), err.read_text()


def test_the_tour_runs_as_written(daemon: Daemon, tmp_path: Path) -> None:
    code, out, err = run_as_written(daemon, "set -e\n" + block("A five-minute tour"), tmp_path,
                                    stdin="echo typed-$((40+2))\nexit\n")
    assert code == 0, err
    assert "got hello" in out
    assert "got it\n" in out and "exit 3\n" in out  # events interleave: the tour reads them
    assert "typed-42" in out
    assert "Invalid argument" in err  # the tour's refused write, shown on purpose


def test_the_cdfs_command_block_runs_as_written(daemon: Daemon, tmp_path: Path) -> None:
    code, out, err = run_as_written(daemon, block("The `cdfs` command"), tmp_path,
                                    stdin="echo typed-$((40+2))\nexit\n")
    assert code == 0, err
    assert "hi\n5\n" in out
    assert "\n42\n" in out
    assert "typed-42" in out
    assert "cdfs " not in err, err  # no command refused
