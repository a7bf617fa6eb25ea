#!/usr/bin/env bash
# The foundation as a shell user drives it. $M is the mount.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(cut -d' ' -f1 < "$M/version")" = cdfs ] || fail "version"
grep -q '^log-level LEVEL' "$M/ctl" || fail "cat ctl lists the verbs"

if echo nonsense > "$M/ctl" 2>/dev/null; then fail "a bogus verb was accepted"; fi
grep -q '"nonsense"' "$M/err" || fail "err quotes the refused verb"

mkdir "$M/namespaces/shell-ns"
[ -d "$M/namespaces/shell-ns/images" ] || fail "a namespace has images/"
ls "$M/namespaces" | grep -qx shell-ns || fail "ls shows the namespace"
rmdir "$M/namespaces/shell-ns"
[ ! -e "$M/namespaces/shell-ns" ] || fail "rmdir removed the namespace"
if mkdir "$M/namespaces/no/slash" 2>/dev/null; then fail "nested mkdir"; fi

blobs_before=$(ls "$M/content/blobs/sha256" | wc -l)
printf 'some bytes\n' > "$M/content/ingest/note"
hex=$(printf 'some bytes\n' | sha256sum | cut -d' ' -f1)
[ "$(sha256sum < "$M/content/blobs/sha256/$hex" | cut -d' ' -f1)" = "$hex" ] || fail "blob hash"
grep -qx "blobs $((blobs_before + 1))" "$M/content/usage" || fail "usage counts the blob"

start=$(date +%s%N)
timeout 2 cat "$M/events" >/dev/null && fail "events ended by itself"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed" -lt 3000 ] || fail "timeout 2 cat events took ${elapsed} ms"
echo ok
