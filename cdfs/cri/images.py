"""runtime.v1.ImageService over the images/ directory of the CRI namespace.

PullImage writes `pull REF` to images/ctl (which returns once the image is unpacked),
RemoveImage `rm NAME` for every name of the image, and the rest reads image
directories (image_index.py). ImageFsInfo reads the tree's root `space` file.
"""

import errno
import time
from typing import Any

from base.errors import InvalidArgument
from cdfs.client.tree import TreeError, ctl_line
from cdfs.cri import image_index
from cdfs.cri.api import runtime_v1_pb2 as pb
from cdfs.cri.calls import Calls
from cdfs.cri.errors import invalid
from cdfs.cri.image_index import CriImage
from cdfs.cri.pause.image import PAUSE_IMAGE
from cdfs.cri.pull_credentials import credentials_file, entry_of
from content.reference import parse_reference


def user_of(config_user: str) -> tuple[int | None, str]:
    """The uid or user name of an image config's User (`1000`, `1000:100`, `nginx`,
    `nginx:www`), as containerd's CRI plugin reads it: the part before `:`."""
    user = config_user.split(":", 1)[0]
    if not user:
        return None, ""
    return (int(user), "") if user.isdigit() else (None, user)


def to_cri(image: CriImage) -> pb.Image:
    uid, username = user_of(image.user)
    return pb.Image(id=image.image_id, repo_tags=image.repo_tags,
                    repo_digests=image.repo_digests, size=image.size,
                    uid=pb.Int64Value(value=uid) if uid is not None else None,
                    username=username, spec=pb.ImageSpec(image=image.image_id),
                    pinned=any(name.name == PAUSE_IMAGE for name in image.names))


class ImageCalls(Calls):
    """The image RPCs."""

    def ListImages(self, request: pb.ListImagesRequest, context: Any) -> pb.ListImagesResponse:
        wanted = request.filter.image.image
        if wanted:
            found = image_index.find(self.tree, wanted)
            images = [found] if found else []
        else:
            images = image_index.list_images(self.tree)
        return pb.ListImagesResponse(images=[to_cri(image) for image in images])

    def ImageStatus(self, request: pb.ImageStatusRequest, context: Any
                    ) -> pb.ImageStatusResponse:
        """An unknown image is an empty answer, not an error: kubelet asks to learn
        whether it must pull."""
        image = image_index.find(self.tree, self._wanted(request.image))
        if image is None:
            return pb.ImageStatusResponse()
        info = {"names": " ".join(n.name for n in image.names)} if request.verbose else {}
        return pb.ImageStatusResponse(image=to_cri(image), info=info)

    def PullImage(self, request: pb.PullImageRequest, context: Any) -> pb.PullImageResponse:
        text = self._wanted(request.image)
        try:
            ref = parse_reference(text)
        except InvalidArgument as exc:
            raise invalid(str(exc)) from None
        ctl = self.tree.images / "ctl"
        entry = entry_of(request.auth, ref)
        if entry is None:
            self.tree.write(ctl, f"pull {ref}\n")
        else:
            with credentials_file(self.root, entry) as path:
                self.tree.write(ctl, ctl_line("pull", str(ref), f"credentials={path}"))
        image = image_index.find(self.tree, str(ref))
        if image is None:  # removed again at once by someone else
            raise TreeError(f'image "{ref}" was pulled but is gone')
        return pb.PullImageResponse(image_ref=image.image_id)

    def RemoveImage(self, request: pb.RemoveImageRequest, context: Any
                    ) -> pb.RemoveImageResponse:
        """Every name of the image goes, whichever name or id the request gives (as in
        containerd); an unknown image is already removed. Then `gc` at the root frees
        what nothing else holds, as containerd deletes an image's content at once:
        kubelet removes images to get disk space back."""
        image = image_index.find(self.tree, self._wanted(request.image))
        if image is None:
            return pb.RemoveImageResponse()
        for name in image.names:
            try:
                self.tree.write(self.tree.images / "ctl", f"rm {name.name}\n")
            except TreeError as exc:
                if exc.errno != errno.ENOENT:  # removed meanwhile: what we want
                    raise
        self.tree.write(self.tree.mount / "ctl", "gc\n")
        return pb.RemoveImageResponse()

    def ImageFsInfo(self, request: pb.ImageFsInfoRequest, context: Any
                    ) -> pb.ImageFsInfoResponse:
        space = dict(line.split(" ", 1)
                     for line in self.tree.read(self.tree.mount / "space").splitlines())
        usage = pb.FilesystemUsage(
            timestamp=time.time_ns(), fs_id=pb.FilesystemIdentifier(mountpoint=space["path"]),
            used_bytes=pb.UInt64Value(value=int(space["bytes-used"])),
            inodes_used=pb.UInt64Value(value=int(space["inodes-used"])))
        return pb.ImageFsInfoResponse(image_filesystems=[usage])

    @staticmethod
    def _wanted(spec: pb.ImageSpec) -> str:
        if not spec.image:
            raise invalid("no image given")
        return spec.image
