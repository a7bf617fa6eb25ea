#!/usr/bin/env bash
# A container's life as a shell user drives it: mkdir, echo, cat, rmdir. $M is the mount.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
C="$M/containers/shell-c"

mkdir "$C"
[ "$(cat "$C/status")" = empty ] || fail "a new slot is empty"
echo busybox > "$C/image" 2>/dev/null && fail "an image the namespace lacks was accepted"
grep -q '"busybox"' "$C/err" || fail "err quotes the unknown image"
echo cdfs.local/busybox:latest > "$C/image"
echo '{"process": {"args": []}}' > "$C/config.json" 2>/dev/null && fail "empty args accepted"
grep -q 'process.args' "$C/err" || fail "err says where the spec is bad"
[ "$(cat "$C/status")" = empty ] || fail "a refused config.json created something"

echo '{"process": {"args": ["sh", "-c", "read name; echo hello $name; echo warn >&2; exit 3"]}}' \
    > "$C/config.json"
[ "$(cat "$C/status")" = created ] || fail "config.json creates"
echo start > "$C/ctl"
[ "$(cat "$C/status")" = running ] || fail "start runs it"
rmdir "$C" 2>/dev/null && fail "rmdir of a running container"
echo world > "$C/stdin"
[ "$(timeout 20 cat "$C/wait")" = 3 ] || fail "wait gives the exit status"
[ "$(timeout 5 cat "$C/follow/stdout")" = "hello world" ] || fail "stdout"
[ "$(timeout 5 cat "$C/follow/stderr")" = warn ] || fail "stderr"
[ "$(cat "$C/exit")" = 3 ] || fail "exit"
[ "$(cat "$C/status")" = stopped ] || fail "status after exit"
[ -z "$(cat "$C/pid")" ] || fail "no pid once stopped"
rmdir "$C"
[ ! -e "$C" ] || fail "rmdir removes it"

D="$M/containers/shell-d"
mkdir "$D"
echo cdfs.local/busybox:latest > "$D/image"
echo '{"process": {"args": ["sleep", "100"]}}' > "$D/config.json"
echo start > "$D/ctl"
mkdir "$D/exec/x"
echo '{"args": ["sh", "-c", "echo in exec; exit 4"]}' > "$D/exec/x/process.json"
echo start > "$D/exec/x/ctl"
[ "$(timeout 20 cat "$D/exec/x/wait")" = 4 ] || fail "exec exit"
[ "$(timeout 5 cat "$D/exec/x/follow/stdout")" = "in exec" ] || fail "exec stdout"
start=$(date +%s%N)
echo stop 1 > "$D/ctl"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed" -ge 1000 ] || fail "stop 1 waited only ${elapsed} ms"
[ "$(cat "$D/exit")" = 137 ] || fail "KILL after the grace period: 137"
rmdir "$D/exec/x" "$D"
echo ok
