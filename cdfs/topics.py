"""Every event topic cdfs publishes, with its fields: the reference of the events
files. A test checks that the code publishes no topic missing here."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    fields: str
    when: str


TASK = "container_id, pid"

TOPICS: tuple[Topic, ...] = (
    Topic("/namespaces/create", "name", "a namespace was made"),
    Topic("/namespaces/delete", "name", "a namespace was removed"),
    Topic("/content/create", "digest, size", "a blob was committed to the store (namespace \"\")"),
    Topic("/images/pull", "name, digest, done, total",
          "a blob of a pull started or finished downloading"),
    Topic("/images/create", "name, digest", "an image was named (pull, import, tag)"),
    Topic("/images/update", "name, digest", "an image name now points elsewhere"),
    Topic("/images/push", "name, digest", "an image was pushed"),
    Topic("/images/delete", "name", "an image name was removed"),
    Topic("/containers/create", "image, runtime", "config.json created a container"),
    Topic("/containers/update", "image, labels", "a container's settings changed"),
    Topic("/containers/delete", "", "a container was removed (rmdir)"),
    Topic("/tasks/create", f"{TASK}, bundle", "a container's task was created (runc create)"),
    Topic("/tasks/start", TASK, "the task started"),
    Topic("/tasks/exec-added", "container_id, exec_id", "an exec was created"),
    Topic("/tasks/exec-started", f"{TASK}, exec_id", "an exec started"),
    Topic("/tasks/paused", "container_id", "the task was paused"),
    Topic("/tasks/resumed", "container_id", "the task was resumed"),
    Topic("/tasks/oom", "container_id", "the kernel killed a process of the container for\n"
          "memory; always published before that task's /tasks/exit"),
    Topic("/tasks/exit", f"{TASK}, exit_status, exited_at",
          "a task or exec exited (id is the exec id for an exec)"),
    Topic("/tasks/delete", f"{TASK}, exit_status, exited_at", "a task was deleted"),
    Topic("/netns/create", "name", "a network namespace was made (namespace \"\")"),
    Topic("/netns/delete", "name", "a network namespace was removed (namespace \"\")"),
    Topic("/leases/create", "lease", "a lease was made (mkdir leases/NAME)"),
    Topic("/leases/delete", "lease", "a lease was released (rmdir, or it expired)"),
    Topic("/gc", "blobs, bytes, snapshots, ingests", "garbage collection freed what it counts"),
    Topic("/events/lost", "lost", "this reader fell behind and that many events were\n"
          "dropped for it (only this reader sees it)"),
)
