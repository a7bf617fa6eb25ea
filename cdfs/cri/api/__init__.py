"""runtime_v1.proto, the CRI v1 API, and the stubs grpcio-tools makes from it
(runtime_v1_pb2 with its .pyi, runtime_v1_pb2_grpc). A wheel carries them and `make`
writes them; a checkout that was never built gets them here, at first import."""

import contextlib
from pathlib import Path

from cdfs.cri.api import protoc

_SOURCE_ROOT = Path(__file__).resolve().parents[3]

if protoc.stale(_SOURCE_ROOT):
    # without grpcio-tools (a plain install) the stubs the install carries are used
    with contextlib.suppress(ImportError):
        protoc.generate(_SOURCE_ROOT, _SOURCE_ROOT)
