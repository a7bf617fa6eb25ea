"""Arrivals: an unpack that follows a download in another thread."""

import threading
import time

import pytest

from base.errors import Unavailable
from cdfs.services.images import Arrivals
from content.descriptor import Descriptor

LAYERS = [Descriptor("application/vnd.oci.image.layer.v1.tar", "sha256:" + c * 64, 1)
          for c in "abc"]


def test_the_unpack_waits_for_each_layer_as_it_lands() -> None:
    arrivals = Arrivals()
    landed: list[str] = []

    def download() -> None:
        for layer in reversed(LAYERS):
            time.sleep(0.02)
            landed.append(layer.digest)
            arrivals.arrived(layer)

    thread = threading.Thread(target=arrivals.run, args=(download,))
    thread.start()
    for layer in LAYERS:
        arrivals.wait(layer)
        assert layer.digest in landed
    thread.join(timeout=5)
    arrivals.check()


def test_a_failed_download_fails_the_waiting_unpack() -> None:
    arrivals = Arrivals()

    def download() -> None:
        arrivals.arrived(LAYERS[0])
        raise Unavailable("registry went away")

    thread = threading.Thread(target=arrivals.run, args=(download,))
    thread.start()
    arrivals.wait(LAYERS[0])
    with pytest.raises(Unavailable, match="went away"):
        arrivals.wait(LAYERS[1])
    thread.join(timeout=5)
    with pytest.raises(Unavailable):
        arrivals.check()
