"""CRI's stop signals: the Signal enum of a ContainerConfig as the name the image
config's StopSignal uses (SIGUSR1, SIGRTMIN+3), as containerd converts them, and that
name as the tree's `stop SECONDS SIGNAL` takes it."""

import signal

from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.errors import invalid

_PREFIX = "SIGNAL_"  # the proto's value names are SIGNAL_SIGTERM for cri-api's SIGTERM


def name_of(value: int) -> str:
    """The signal a ContainerConfig's stop_signal names, "" for RUNTIME_DEFAULT (the
    image's, else TERM); an unknown number is a bad request."""
    if value == pb.SIGNAL_RUNTIME_DEFAULT:
        return ""
    try:
        name = pb.Signal.Name(value)
    except ValueError:
        raise invalid(f"stop_signal: unknown signal {value}") from None
    return name.removeprefix(_PREFIX).replace("PLUS", "+", 1).replace("MINUS", "-", 1)


def value_of(name: str) -> int:
    """A stop signal's name as CRI's enum (ContainerStatus), RUNTIME_DEFAULT for one it
    has no value for."""
    key = _PREFIX + name.replace("+", "PLUS", 1).replace("-", "MINUS", 1)
    try:
        return pb.Signal.Value(key)
    except ValueError:
        return pb.SIGNAL_RUNTIME_DEFAULT


def for_tree(name: str) -> str:
    """The name as the tree's signal words take it: a real-time one by its number."""
    for base, sign in (("SIGRTMIN", "+"), ("SIGRTMAX", "-")):
        head, found, offset = name.partition(sign)
        if found and head == base and offset.isdigit():
            number = int(getattr(signal, base)) + (int(offset) if sign == "+" else -int(offset))
            return str(number)
    return name
