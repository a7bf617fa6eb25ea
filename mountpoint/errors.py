"""The one place where domain errors become an errno and an `err` line."""

import errno
import logging

from base import errors

log = logging.getLogger(__name__)
ERR_LIMIT = 400  # an err line quotes at most ~200 characters of input, plus why

ERRNO: dict[type[errors.CdfsError], int] = {
    errors.TooLarge: errno.EFBIG,
    errors.NotFound: errno.ENOENT,
    errors.AlreadyExists: errno.EEXIST,
    errors.InvalidArgument: errno.EINVAL,
    errors.Busy: errno.EBUSY,
    errors.PermissionDenied: errno.EACCES,
    errors.NoSpace: errno.ENOSPC,
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


def err_line(what: str, exc: BaseException) -> str:
    """The line the directory's `err` file shows: which file refused what, and why,
    with one prefix (a message that names the file already is not prefixed again)
    and at most ERR_LIMIT characters."""
    message = str(exc) if isinstance(exc, errors.CdfsError) else f"internal error: {exc!r}"
    message = " ".join(message.split())
    name = what.split(" ", 1)[0]
    line = message if message.startswith(f"{name}:") else f"{what}: {message}"
    if len(line) > ERR_LIMIT:
        line = line[:ERR_LIMIT] + f"… ({len(line)} characters)"
    return line + "\n"
