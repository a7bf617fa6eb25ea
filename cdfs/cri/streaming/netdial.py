"""A TCP connection to a port on a pod's loopback, made inside the pod's network namespace.

A socket belongs to the network namespace of the thread that created it, for its
whole life, so the connection is made by a thread that joins the pod's namespace
(setns) and then ends: no thread of the server is ever left in a pod's namespace,
even if going back would have failed. Python 3.11 has no os.setns, hence libc.
"""

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0

_libc = ctypes.CDLL(None, use_errno=True)


def connect(netns_path: str | None, port: int, timeout: float = CONNECT_TIMEOUT
            ) -> socket.socket:
    """Connected to 127.0.0.1:`port` in the namespace at `netns_path` (None: ours, as
    for a pod on the host network). OSError as connect() would raise it."""
    if not netns_path:
        return socket.create_connection(("127.0.0.1", port), timeout)
    outcome: list[socket.socket | OSError] = []

    def dial() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome.append(socket.create_connection(("127.0.0.1", port), timeout))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=dial, name=f"netns-dial-{port}", daemon=True)
    thread.start()
    thread.join()
    result = outcome[0]
    if isinstance(result, OSError):
        raise result
    result.settimeout(None)
    return result
