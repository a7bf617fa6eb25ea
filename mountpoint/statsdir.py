"""stats/ in each container: its cgroup's resource usage, read afresh at every open.

Exports `STATS`, the table of a container's `stats/` directory. The container table
(mountpoint/containersdir.py) includes it as `Dir("stats", "resource usage …", STATS)`;
its handlers read `scope["ns"]` and `scope["id"]` and call `app.metrics`
(cdfs/services/metrics.py). The usage files and the stream answer ENOENT while the
container has no task.
"""

from cdfs.services.metrics import DEFAULT_INTERVAL, MAX_INTERVAL, MIN_INTERVAL, render
from mountpoint.table import Err, Stream, Table, Value, opens, show, take


def _group(group: str) -> Value:
    return Value(group, DOCS[group], read=show(
        lambda app, s: app.metrics.stats(s["ns"], s["id"], group), render))


DOCS = {
    "cpu": "`key value` lines, microseconds and counts: usage_usec user_usec system_usec\n"
           "throttled_usec nr_periods nr_throttled",
    "memory": "`key value` lines, bytes: usage limit max_usage cache rss shmem swap\n"
              "inactive_file (usage less it is the working set kubelet evicts by), and\n"
              "counts: pgfault pgmajfault oom_kills. A limit that is not set reads\n"
              "18446744073709551615 (2^64-1)",
    "pids": "`key value` lines: current limit (2^64-1 when not set)",
    "io": "`key value` lines summed over devices: read_bytes write_bytes read_ops write_ops",
}

STATS = Table(
    "resource usage of the container's cgroup: ENOENT while it has no task; a stopped\n"
    "task shows its last counters until the container is deleted",
    entries=(
        *(_group(group) for group in DOCS),
        Stream("stream", "one JSON object a line, at once and then every `interval`:\n"
               '{"timestamp", "id", "cpu": {…}, "memory": {…}, "pids": {…}, "io": {…}};\n'
               "blocks in between; ends with the first object that counts no process\n"
               "(the task has exited)",
               opens(lambda app, s: app.metrics.stream(s["ns"], s["id"]))),
        Value("interval", f"seconds between stream objects, {MIN_INTERVAL:g} to "
              f"{MAX_INTERVAL:g} (default {DEFAULT_INTERVAL:g}); write to change it\n"
              "for this container's streams, kept while the daemon runs",
              read=show(lambda app, s: f"{app.metrics.interval(s['ns'], s['id']):g}"),
              write=take(lambda app, s, text: app.metrics.set_interval(s["ns"], s["id"], text))),
        Err(),
    ),
)
