"""runtime.v1.ImageService over the images/ directory of the CRI namespace."""

from cdfs.cri.calls import Calls


class ImageCalls(Calls):
    """The image RPCs."""
