"""A pull's progress bars, drawn from the image's `progress` file while the pull runs.

The file has a `DIGEST DONE/TOTAL` line per blob and, at the end, "done" or the error;
the pull itself is a blocking write of `pull REF` in another thread. The image's
directory is named by the normalised reference (`busybox` is
docker.io/library/busybox:latest), which content.reference computes as the daemon does.
"""

import threading
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from cdfs.client.tree import Tree
from content.reference import parse_reference

POLL_SECONDS = 0.2


def blob_lines(text: str) -> dict[str, tuple[int, int]]:
    """{digest: (done, total)} from a progress file's text."""
    blobs: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        digest, _, counts = line.partition(" ")
        done, slash, total = counts.partition("/")
        if slash and done.isdigit() and total.isdigit():
            blobs[digest] = (int(done), int(total))
    return blobs


def follow_pull(tree: Tree, ref: str, worker: threading.Thread, quiet: bool) -> None:
    """Draw the progress of the pull `worker` runs, on stderr, until it ends."""
    if quiet:
        worker.join()
        return
    progress_file = tree.images / str(parse_reference(ref)) / "progress"
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bars:  # stdout stays the task's
        tasks: dict[str, TaskID] = {}
        while True:
            running = worker.is_alive()
            try:
                text = progress_file.read_text()
            except OSError:
                text = ""
            for digest, (done, total) in blob_lines(text).items():
                if digest not in tasks:
                    tasks[digest] = bars.add_task(digest.removeprefix("sha256:")[:12],
                                                  total=total or None)
                bars.update(tasks[digest], completed=done, total=total or None)
            if not running:
                return
            time.sleep(POLL_SECONDS)
