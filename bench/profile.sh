#!/usr/bin/env bash
# Where the time of clone, checkout and snapshot goes, next to the floor probe: system call
# counts (`strace -c -f`) and a CPU profile (`perf record -g`, top entries of `perf report`).
#
#   sudo bench/profile.sh                      # the generated bench tree
#   sudo env TREE=/path/to/tree bench/profile.sh
#
# Mounts a fresh XFS (reflink=1) loop filesystem through scripts/mounts.sh (always unmounted),
# puts the tree on it, records it in a store there, and for each of: the floor probe
# (bench/clone-floor.c), `cowtree clone`, `cowtree checkout`, `cowtree snapshot` into an empty
# store, runs it once under `strace -c -f` and once under `perf record -e cpu-clock -g`, with
# the destination removed and the filesystem synced and frozen and thawed before each run.
# Output: bench/out/profile-<UTC date>/ (strace summaries, perf reports).
#
# Environment: COWTREE (default: cargo build --release), TREE=DIR, SCALE and SEED for the
# generated tree (default 1 and 1), TOP=N lines of each perf report kept (default 60),
# PROFILE="floor clone ..." to profile only some of floor, clone, checkout and snapshot
# (default: all four; another name is refused).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "profile: $*" >&2; exit 1; }
KNOWN="floor clone checkout snapshot"
read -ra PROFILED <<<"${PROFILE:-$KNOWN}"
((${#PROFILED[@]})) || die "PROFILE names nothing to profile (known: $KNOWN)"
for name in "${PROFILED[@]}"; do
  [[ " $KNOWN " == *" $name "* ]] || die "PROFILE: unknown name '$name' (known: $KNOWN)"
done
# profiled NAME: NAME is in PROFILE
profiled() {
  local name
  for name in "${PROFILED[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}
[[ "$(id -u)" == 0 ]] || die "needs root: sudo bench/profile.sh"
for t in perf strace cc python3; do command -v "$t" >/dev/null || die "needs $t"; done
# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh
OUT="$ROOT/bench/out/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
TOP=${TOP:-60}

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap 'cowtree_mounts_down' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cowtree_mounts_up xfs >&2
XFS=${COWTREE_TEST_XFS:?could not mount XFS}
FLOOR="$COWTREE_MOUNT_WORK/clone-floor"
cc -O2 -pthread -o "$FLOOR" bench/clone-floor.c
if [[ -n "${TREE:-}" ]]; then
  cp -a "$TREE" "$XFS/src"
else
  python3 bench/gentree.py "$XFS/src" --scale "${SCALE:-1}" --seed "${SEED:-1}" >/dev/null
fi
if profiled checkout; then
  ID=$("$COWTREE" --store "$XFS/store" snapshot "$XFS/src" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
fi
sleep 3 # the tree's ctimes older than the snapshot's margin, as in bench/run.sh

settle() {
  rm -rf "$XFS/dst" "$XFS/store-fresh"
  local rc=0
  cowtree_quiesce "$XFS" || rc=$?
  ((rc != 2)) || die "could not thaw $XFS"
}
# profile NAME CMD...: strace -c -f and perf record -g of one run each
profile() {
  local name=$1
  shift
  settle
  echo "profile: $name: strace (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  strace -c -f -o "$OUT/$name.strace" "$@" >/dev/null 2>&1
  settle
  echo "profile: $name: perf (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  perf record -q -e cpu-clock -g -o "$OUT/$name.perf.data" -- "$@" >/dev/null 2>&1
  perf report -i "$OUT/$name.perf.data" --stdio --no-children --percent-limit 1 \
    --sort dso,symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -"$TOP" >"$OUT/$name.perf.txt"
  perf report -i "$OUT/$name.perf.data" --stdio --children --percent-limit 5 \
    --sort symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -"$TOP" >"$OUT/$name.perf-children.txt"
  rm -f "$OUT/$name.perf.data"
}
profiled floor && profile floor "$FLOOR" -j "$(nproc)" "$XFS/src" "$XFS/dst"
profiled clone && profile clone "$COWTREE" clone --quiet "$XFS/src" "$XFS/dst"
profiled checkout && profile checkout "$COWTREE" --store "$XFS/store" checkout "$ID" "$XFS/dst"
profiled snapshot && profile snapshot "$COWTREE" --store "$XFS/store-fresh" snapshot "$XFS/src"
settle
for f in "$OUT"/*.strace; do
  echo "== $(basename "$f" .strace): strace -c -f (top 12 by time)"
  sed -n '1,2p' "$f"
  sed -n '3,$p' "$f" | grep -v '^-' | sort -k2 -g -r | head -12
done | tee "$OUT/summary.txt"
for f in "$OUT"/*.perf.txt; do
  echo "== $(basename "$f" .perf.txt): perf, self time by symbol (top 15)"
  head -15 "$f"
done | tee -a "$OUT/summary.txt"
echo "profile: output in $OUT" >&2
