"""The build hook: the CRI stubs are generated from cdfs/cri/api/*.proto and the pause
program is compiled from cdfs/cri/pause/pause.c; neither is committed.

Everything else about the package is in pyproject.toml. A wheel (and so `pip install .`)
gets the stubs through `build_py`; an editable install gets them in the source tree, and
`make` remakes them there whenever a .proto changes (`python cdfs/cri/api/protoc.py`).
The recipe itself is cdfs/cri/api/protoc.py, loaded by path: the package's dependencies
are not there at build time. The pause binary goes the same way (its recipe is
cdfs/cri/pause/__init__.py, which needs nothing but the standard library and a C
compiler); `make` builds it too.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("cri_protoc", HERE / "cdfs/cri/api/protoc.py")
assert _spec is not None and _spec.loader is not None
protoc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protoc)
_spec = importlib.util.spec_from_file_location("cri_pause", HERE / "cdfs/cri/pause/__init__.py")
assert _spec is not None and _spec.loader is not None
pause = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pause)


class BuildPyWithStubs(build_py):
    """build_py that also writes the stubs and the pause binary: into the build dir for
    a wheel, into the source tree for an editable install (which imports from there)."""

    def run(self) -> None:
        target = HERE if self.editable_mode else Path(self.build_lib)
        protoc.generate(HERE, target)
        super().run()
        pause.compile_pause(target / "cdfs/cri/pause/pause", HERE / "cdfs/cri/pause/pause.c")


setup(cmdclass={"build_py": BuildPyWithStubs})
