"""The one error vocabulary of cdfs.

Domain code (content/, runtime/, cdfs/) raises these with a message that quotes
what was refused; mountpoint/ alone turns them into an errno and the `err` line.
Anything else escaping a handler is a bug and is reported as EIO.
"""


class CdfsError(Exception):
    """Base of every error the filesystem reports to its users."""


class NotFound(CdfsError):
    """The named object does not exist (ENOENT)."""


class AlreadyExists(CdfsError):
    """An object of that name exists already (EEXIST)."""


class InvalidArgument(CdfsError):
    """The input is malformed or not allowed here (EINVAL)."""


class Busy(CdfsError):
    """The object is in use and cannot be changed or removed now (EBUSY)."""


class PermissionDenied(CdfsError):
    """The operation is not allowed for this caller or object (EACCES)."""


class NoSpace(CdfsError):
    """The disk holding the daemon's root is (nearly) full (ENOSPC)."""


class Unavailable(CdfsError):
    """A registry, the OCI runtime or another outside party failed (EIO)."""


class TooLarge(InvalidArgument):
    """The input is over its documented limit (EFBIG); a kind of invalid argument."""
