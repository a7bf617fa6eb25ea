"""The reference of the tree, generated from its tables: the root `README` file and
docs/filesystem.md are this text, so neither can drift from what the tree serves."""

from cdfs.topics import TOPICS
from mountpoint.ctl import QUOTING
from mountpoint.table import (
    Children,
    Ctl,
    Dir,
    Entry,
    HostTree,
    Link,
    Output,
    Stream,
    Table,
    access,
)
from mountpoint.writes import CTL_LINE_LIMIT, JSON_LIMIT, QUOTE_LIMIT, VALUE_LIMIT, KiB, MiB

INTRO = """\
# The cdfs filesystem

cdfs is a container runtime whose whole API is this tree. `mkdir` creates an
object, `rmdir` deletes it (EBUSY while in use); files hold one value, or
`key value` lines, or JSON; `ctl` files take text verbs, one per line, and
`cat ctl` lists them; streams block until there is data.

A refused write fails that write() with an errno (EINVAL bad input, ENOENT
unknown name, EEXIST, EBUSY, EACCES, EIO when a registry or the runtime failed)
and the directory's `err` file says why in one line, quoting what was refused.
Bad input changes nothing.

The tree is root's: only root may use it, unless the daemon was started with
`--allow-group GROUP`, which gives that group's members the same rights. Whoever
may run containers (and import or export at host paths) is as good as root, as
with docker's group: allow only a group you would give root.

The `cdfs` command is a client of this tree and of nothing else: `cdfs run`,
`ps`, `logs`, `exec`, `attach`, `stop`, `rm`, `pull` and `images` are a few
reads and writes of the files below (`cdfs --help`). `cdfs run -it` runs on
`tty`, `resize` and `wait`; `cdfs logs -f` reads `follow/log`; `cdfs ps` is
`cat containers/list`, `cdfs images` `cat images/list`; `cdfs pull` draws the
image's `progress` file.

## Kinds of files

Each file below is marked with its kind, and each kind keeps one contract:

- **read-only, read-write, write-only** (values): st_size is the length a read returns
  now (a write-only file, such as `stdin`, reads empty for root), mtime and ctime are when the
  object (a container's making, start or exit, an image's pull) or the value last
  changed; seekable; reads never wait. `tar`, `cp`,
  `rsync`, `jq` and `stat` work on them as on any file.
- **output** (`stdout`, `stderr`, `log`): a growing log file: everything written so
  far, its real size, seekable, end of file at the current end, never waiting, so
  `tail -f` (GNU tail polls on FUSE), `tail -n`, `head`, `less -F`, `grep` and `tar`
  behave as on a log file. A task's log is kept up to a cap (`cdfs serve
  --log-size-max BYTES` or CDFS_LOG_SIZE_MAX, default 64 MiB); at the cap conmon
  starts it afresh (as it does at `reopen-log`, after kubelet renamed a CRI log
  away), and from then on each output file begins with one line
  `[cdfs: N earlier bytes of stdout were dropped here: the log was started afresh ...]`
  (its size shrinks, as a log file's does when it is cut); when output comes faster
  than cdfs reads it, the line also counts the whole logs cut before it read them.
  Only cuts made while the daemon ran are counted.
- **stream** (`events`, `wait`, `tty`, `follow/*`, `stats/stream`): reads wait for
  data and end cleanly (`cat follow/stdout` is `docker logs -f`: from the start,
  ends at exit). poll, select and epoll report real readiness; a file opened with
  O_NONBLOCK answers EAGAIN when nothing has come (within 0.1 s); a blocked read is
  released by a signal (EINTR), so `timeout` and Ctrl-C work. Streams are not
  seekable and report size 0.
- **ctl**: text verbs, one per line; reading lists them.
- **link**: a symbolic link inside the tree.

Tools that read every file of a tree never end on a stream; leave them out (the
write-only files, such as `stdin`, read empty for root, so nothing else stops them):

```
grep -r --exclude=events --exclude=wait --exclude=tty --exclude=stream \\
     --exclude-dir=follow PATTERN /mnt/cdfs
find /mnt/cdfs \\( -name events -o -name wait -o -name tty -o -name stream \\
     -o -name follow \\) -prune -o -type f -exec cat {} +
tar -cf tree.tar --exclude=events --exclude=wait --exclude=tty --exclude=stream \\
     --exclude=follow -C /mnt/cdfs .
```

Every path below, with what it is. `<name>/` stands for objects made by mkdir
(or by the daemon); a trailing `/` marks a directory, `->` a symbolic link.
"""


WRITES = f"""
## Writes

What the write() calls on one open file do, for shells (bash writes a multi-line
string one line per write(), and ignores errors at close) and for programs alike:

- **ctl files** act on each line as its newline arrives; a write fails with the
  errno of the first line refused in it (the lines before it were done). An
  unfinished last line runs at close. A line is at most {CTL_LINE_LIMIT // KiB} KiB: the write
  that crosses that fails with EFBIG at once, and so does the rest of that line.
  Quoting: {QUOTING}.
  So `echo 'import "/tmp/a b/x.tar" REF' > images/ctl` names a path with a space;
  a verb that takes JSON (`update`) takes the rest of its line as it is.
  A verb runs inside its write(): `echo pull REF > images/ctl` returns when the
  image is ready, or fails with the errno that says why. Each open of a ctl file
  for writing runs its verbs apart from every other open: a `tag`, a small pull or
  an `ls` beside a long pull in the same namespace do not wait for it (each writer
  gets an inode of its own, so stat may show a ctl file's inode number change).
- **value files** (image, labels, runtime, ...) hold everything written through
  the open file so far, stored whole at each line end (at close if the last line
  has no newline): `printf 'a=1\\nb=2\\n' > labels` keeps both lines. A refused
  value fails the write() that completed it, and every later write on that open
  file; what the lines before it stored stays. At most {VALUE_LIMIT // KiB} KiB (EFBIG).
- **config.json, process.json** are stored once their JSON object closes. A write
  fails with EINVAL at once when the bytes can no longer become one JSON object: a
  first non-space byte other than `{{`, anything but space after the object, a line
  end that left the document broken (`{{bad`). At most {JSON_LIMIT // MiB} MiB (EFBIG).
- **stdin, ingest files** take bytes as they come. What a close does happens once,
  when the last copy of the open file is closed (a dup, `exec 7>`, a forked child
  closing its copy do nothing): stdin's end of file, an ingest's hash and commit.
  That last close is not waited for by close() itself, so its refusal (an ingest
  that does not hash to what was expected) is the directory's err line, and the
  blob stays absent; with an expected digest, every close also fails with EINVAL
  while the bytes so far do not match. Looking at blobs/, usage or ingest/ waits
  for commits in flight, so `cp x content/ingest/y && ls content/blobs/sha256`
  sees the blob.
- **Blocking writes** (stop, pull, push, import, export, a create that unpacks, a
  stdin the process does not read) are released by a signal, as reads are: the
  writer's write() fails with EINTR (a stdin write returns as written: its bytes
  stay queued, in order), and the work goes on to its end. A pull's progress file
  shows it, a stop still kills at the end of its grace period, and a failure of
  work nobody waits for any more is the directory's err line.
- **err lines** say which file refused what, and why, once (`config.json: ...`),
  quote at most {QUOTE_LIMIT} characters of the input, and go with their object: a
  container made again under the same name starts with an empty err. A registry's
  or the runtime's failure is said in one phrase (`connection refused`, `cannot
  resolve host x`, `the spec's process.args: a string where a list of strings is
  wanted`), not as the library's text.
"""


REGISTRIES = """
## Registries

Registries on loopback addresses (127.0.0.0/8, ::1, localhost) are reached over plain
HTTP, others over HTTPS with the system's CAs. Credentials, insecure (plain HTTP)
hosts and mirrors come from `<root>/registries.json` (default
/var/lib/cdfs/registries.json), read at start; the format is docker's config.json,
plus an `insecure` list and a `mirrors` object:

```
{
  "auths": {
    "registry.example.com": {"auth": "<base64 of user:password>"},
    "127.0.0.1:5000": {"username": "me", "password": "secret"},
    "sso.example.com": {"identitytoken": "<OAuth2 refresh token>"},
    "ci.example.com": {"registrytoken": "<bearer token>"}
  },
  "insecure": ["registry.lan:5000"],
  "mirrors": {
    "registry.k8s.io": {"endpoints": ["http://127.0.0.1:5000/cri-mirror/registry.k8s.io"]},
    "docker.io": {"endpoints": ["https://harbor.lan/dockerhub"], "upstream": false}
  }
}
```

Credentials are sent only to the host they belong to (never across a redirect to
another host). Basic and Bearer token authentication are both understood; an
identity token is traded at the token server for access tokens (OAuth2 refresh
grant), a registry token is sent as the bearer token itself.

Mirrors work as containerd's hosts.toml: a pull of an image of a listed host tries
its `endpoints` in order, then the host itself unless `"upstream": false`. An
endpoint is `scheme://host[:port][/prefix]`; the prefix goes before the repository
path, so the example fetches registry.k8s.io/pause:3.9 as repository
cri-mirror/registry.k8s.io/pause of 127.0.0.1:5000 (a plain registry filled with
`skopeo copy`, or a Harbor proxy project, holds mirrored images so). The image keeps
its upstream name; the layers come from the endpoint that had the manifest; an
endpoint's credentials are the ones filed under its host[:port]. When every source
fails, the error names each failure. Pushes never go to mirrors.

A pull can bring its own credentials (`pull REF credentials=FILE` in images/ctl, as
`cdfs cri` does with a CRI request's AuthConfig): FILE holds one entry as in `auths`
(`{"username": "u", "password": "p"}`, `{"auth": ...}`, `{"identitytoken": ...}` or
`{"registrytoken": ...}`), must be readable by nobody but its owner (mode 600)
and belong to the user whose process writes the line (a member of --allow-group
cannot name another's file, root's included: EACCES; root may name any), and is
read once when the pull starts. Only its path is ever quoted (in err, logs,
progress); those credentials go to the image's registry and to mirrors without
credentials of their own.
"""


def _events() -> str:
    """The topics table of the reference, from cdfs.topics."""
    lines = ["\n## Events\n",
             "Each line of an `events` file is one JSON object: `time` (RFC 3339), `namespace`,",
             "`topic`, `id` (the object's name), and the topic's own fields, as in containerd.",
             "A reader sees the events from the moment it opened the file; one that falls",
             "behind never slows the daemon (it loses events, and is told so).", "", "```"]
    for topic in TOPICS:
        first, *more = topic.when.splitlines()
        lines.append(f"{topic.name:<22} {first}")
        lines.extend(f"{'':<22} {line}" for line in more)
        if topic.fields:
            lines.append(f"{'':<22} fields: {topic.fields}")
    return "\n".join(lines) + "\n```\n"


def _kind(entry: Entry) -> str:
    if isinstance(entry, Ctl):
        return "ctl"
    if isinstance(entry, Stream):
        return "stream rw" if entry.input else "stream"
    if isinstance(entry, Output):
        return "output"
    if isinstance(entry, Link):
        return "link"
    if isinstance(entry, HostTree):
        return "tree"
    readable, writable = access(entry)
    if writable:
        return "read-write" if readable else "write-only"
    return "read-only"


def _row(lines: list[str], depth: int, name: str, kind: str, doc: str) -> None:
    label = "  " * depth + name
    first, *more = doc.splitlines() or [""]
    lines.append(f"{label:<34} {kind:<10} {first}".rstrip())
    lines.extend(f"{'':<34} {'':<10} {line}".rstrip() for line in more)


def _table(lines: list[str], table: Table, depth: int) -> None:
    for entry in table.entries:
        if isinstance(entry, Dir):
            _row(lines, depth, entry.name + "/", "dir", entry.doc)
            _table(lines, entry.table, depth + 1)
            continue
        name = entry.name
        if isinstance(entry, Link) and isinstance(entry.target, str):
            name = f"{entry.name} -> {entry.target}"
        _row(lines, depth, name, _kind(entry), entry.doc)
        if isinstance(entry, Ctl):
            for verb in entry.verbs.verbs.values():
                _row(lines, depth + 1, f"» {verb.synopsis}", "", verb.help)
    if table.children is not None:
        _children(lines, table.children, depth)


def _children(lines: list[str], children: Children, depth: int) -> None:
    making = [word for word, able in (("mkdir", children.mkdir), ("rmdir", children.rmdir),
                                      ("create", children.create), ("rm", children.unlink))
              if able is not None]
    kind = "/".join(making) or "listed"
    if children.table is not None:
        _row(lines, depth, f"<{children.param}>/", kind, children.doc)
        _table(lines, children.table, depth + 1)
    else:
        _row(lines, depth, f"<{children.param}>", kind, children.doc)


SPACE = """
## Disk space: gc, leases, labels, a full disk

- **gc** (`ctl gc` at the root) frees at once every blob, snapshot and ingest that
  nothing references: no image (with all its manifest reaches), no container, no
  lease. `rm` of an image and then `ctl gc` gives its space back; so does rmdir of
  a namespace (its snapshots go with it). Layers are shared: a namespace pulling an
  image whose layers another namespace unpacked uses those snapshots (by chain ID)
  and stores none of its own; each namespace still lists only what it uses, and a
  shared layer leaves the disk with the last namespace using it.
- **leases** (namespaces/NS/leases/NAME): a lease keeps what its
  `containerd.io/gc.ref.content*` and `containerd.io/gc.ref.snapshot*` labels name
  until rmdir releases it or its `expires` time passes. The daemon itself holds a
  lease while a pull, an import or a container creation is in flight: gc never
  frees what such work has fetched or unpacked and not yet named.
- **content labels** (content/labels/sha256/HEX, `key=value` lines, kept in the
  database): `containerd.io/gc.root=…` makes the blob a root of gc, and
  `containerd.io/gc.ref.content.NAME=sha256:…` keeps the named blob for as long as
  the labelled one is kept. A blob gc frees loses its labels.
- **a full disk**: blob writes and layer unpacking stop while a reserve is still
  free on the root's filesystem (a thirty-second of it, between 1 and 64 MiB), so
  the database can still record the clean-up. A pull that runs out fails with
  ENOSPC and err says `no space left on ROOT while pulling REF: N bytes needed
  for its blobs alone, M free`; what the pull wrote (its ingests, blobs and
  half-unpacked snapshots, files first) is removed before the write returns, and
  the daemon goes on serving. Any other failed pull removes what it wrote too.
"""


def reference(root: Table) -> str:
    """The whole reference: the introduction and every path, file and verb."""
    lines: list[str] = []
    _table(lines, root, 0)
    return (INTRO + "\n```\n" + "\n".join(lines) + "\n```\n" + WRITES + SPACE
            + _events() + REGISTRIES)
