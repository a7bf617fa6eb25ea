"""Making the CRI stubs from runtime_v1.proto with grpcio-tools: the one recipe, used by
setup.py (a wheel, an editable install), by `make stubs` (which runs this file) and by
this package itself when imported from a checkout where none of those ran, or where the
.proto changed since.

Only the standard library and grpc_tools are imported here: setup.py loads this file
by path, before the package's dependencies exist.
"""

import os
import shutil
import tempfile
from pathlib import Path

API = Path("cdfs", "cri", "api")  # where the protos and stubs live, from the source root
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def protos(source_root: Path) -> list[Path]:
    return sorted((source_root / API).glob("*.proto"))


def stale(source_root: Path) -> bool:
    """A stub is missing, or older than its .proto."""
    for proto in protos(source_root):
        made = [proto.with_name(proto.stem + suffix) for suffix in SUFFIXES]
        if any(not m.exists() or m.stat().st_mtime < proto.stat().st_mtime for m in made):
            return True
    return False


def generate(source_root: Path, out_root: Path) -> None:
    """The stubs of every .proto, as modules `cdfs.cri.api.<name>_pb2[_grpc]` under
    `out_root`. Each file is renamed into place whole, so a process importing them
    meanwhile sees the old stub or the new one, never half of one."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"  # the well-known types
    (out_root / API).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".stubs-", dir=out_root / API))
    try:
        for proto in protos(source_root):
            args = ["protoc", f"-I{source_root}", f"-I{include}", f"--python_out={work}",
                    f"--pyi_out={work}", f"--grpc_python_out={work}", str(proto)]
            if protoc.main(args) != 0:
                raise RuntimeError(f"protoc failed on {proto}")
            for suffix in SUFFIXES:
                name = proto.stem + suffix
                os.replace(work / API / name, out_root / API / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # `make stubs`: beside the protos of the checkout holding this file
    checkout = Path(__file__).resolve().parents[3]
    generate(checkout, checkout)
