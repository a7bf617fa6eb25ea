"""The one place where a refusal becomes a gRPC status.

RPC code raises: a TreeError (the daemon refused a file operation; its errno says
which kind of refusal and its message is the directory's `err` line), a CriError,
a refusal of the CRI server's own that names its status (a bad request, a deadline,
a container not running), or an OSError of a host path the server uses itself (a
pod's files under --root, a mount's host directory), answered by its errno as the
tree's refusals are, with the path, not as an uncaught exception. The server's own
"no such pod or container" is a TreeError with ENOENT, like the tree's, because Stop
and Remove treat an unknown id as done whoever found it unknown, and so catch one
kind. The interceptor turns all three into a status for every RPC of every service,
so no call maps errors itself and none can forget to.
"""

import errno
import logging
from collections.abc import Callable
from typing import Any

import grpc

from cdfs.client.tree import TreeError

log = logging.getLogger(__name__)

CODES: dict[int, grpc.StatusCode] = {
    errno.ENOENT: grpc.StatusCode.NOT_FOUND,
    errno.EEXIST: grpc.StatusCode.ALREADY_EXISTS,
    errno.EINVAL: grpc.StatusCode.INVALID_ARGUMENT,
    errno.EFBIG: grpc.StatusCode.INVALID_ARGUMENT,
    errno.EBUSY: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EACCES: grpc.StatusCode.PERMISSION_DENIED,
    errno.EPERM: grpc.StatusCode.PERMISSION_DENIED,
    errno.ENOSPC: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.ENOTCONN: grpc.StatusCode.UNAVAILABLE,  # the daemon behind the mount is gone
}


class CriError(Exception):
    """A request the CRI server refuses itself, with the status it answers."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> CriError:
    return CriError(grpc.StatusCode.INVALID_ARGUMENT, message)


def unsupported(message: str) -> CriError:
    """A feature cdfs does not have: UNIMPLEMENTED, which kubelet and critest read as
    "this runtime lacks it" (an INVALID_ARGUMENT would blame the request)."""
    return CriError(grpc.StatusCode.UNIMPLEMENTED, message)


def not_found(message: str) -> CriError:
    return CriError(grpc.StatusCode.NOT_FOUND, message)


Refusal = TreeError | CriError | OSError


def status_of(exc: Refusal) -> grpc.StatusCode:
    """NOT_FOUND, INVALID_ARGUMENT... by the errno of the refusal; a registry or
    runtime failure (EIO) and anything unnamed are UNKNOWN, with the err line."""
    if isinstance(exc, CriError):
        return exc.code
    if isinstance(exc, TreeError) and exc.errno is None:  # no tree at the mount at all
        return grpc.StatusCode.UNAVAILABLE
    return CODES.get(exc.errno or 0, grpc.StatusCode.UNKNOWN)


def message_of(exc: Refusal) -> str:
    """The err line, or for a host path's OSError `PATH: what went wrong`."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def _mapped(behaviour: Behaviour, method: str) -> Behaviour:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behaviour(request, context)
        except (TreeError, CriError, OSError) as exc:
            code, message = status_of(exc), message_of(exc)
            log.info("%s: %s %s", method, code.name, message)
            context.abort(code, message)
    return call


class ErrorMapping(grpc.ServerInterceptor):
    """Wraps every unary RPC (CRI has no other kind that cdfs serves) in the mapping."""

    def intercept_service(self, continuation: Callable[[Any], Any],
                          details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _mapped(handler.unary_unary, details.method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
