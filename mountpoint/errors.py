"""The one place where domain errors become an errno and an `err` line."""

import errno
import logging

from base import errors

log = logging.getLogger(__name__)

ERRNO: dict[type[errors.CdfsError], int] = {
    errors.NotFound: errno.ENOENT,
    errors.AlreadyExists: errno.EEXIST,
    errors.InvalidArgument: errno.EINVAL,
    errors.Busy: errno.EBUSY,
    errors.PermissionDenied: errno.EACCES,
    errors.Unavailable: errno.EIO,
}


def errno_of(exc: BaseException) -> int:
    """The errno a refused request answers with; anything unexpected is EIO (and a
    bug, so it is logged with its traceback)."""
    for cls in type(exc).__mro__:
        if cls in ERRNO:
            return ERRNO[cls]
    log.error("unexpected error", exc_info=exc)
    return errno.EIO


def err_line(filename: str, exc: BaseException) -> str:
    """The line the directory's `err` file shows: which file refused what, and why."""
    message = str(exc) if isinstance(exc, errors.CdfsError) else f"internal error: {exc!r}"
    return f"{filename}: {' '.join(message.split())}\n"
