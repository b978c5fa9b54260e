#!/usr/bin/env bash
# The checkout's peak memory and time, two builds side by side (issue 35): a tree of real
# paths (bench/realpaths.py) and gentree.py's trees (as scale.sh makes them: FILES/16
# directories, median file 0.25 KiB), each snapshotted once into a new store on a fresh XFS
# loop filesystem (direct I/O), then each run a `cowtree checkout` of that snapshot into a
# new directory from cold caches, the builds alternating OLD, NEW, NEW, OLD in every round. After each checkout, `cowtree status` of the new worktree must find it
# clean without hashing a file (the stat cache the checkout wrote is whole and trusted);
# then the worktree is removed.
#
#   sudo env OLD=/tmp/cowtree-before NEW=target/release/cowtree bench/checkout-memory.sh
#   sudo env OLD=... NEW=... FILES=80000 RUNS=2 bench/checkout-memory.sh  # quick
#
# Environment:
#   OLD, NEW   the two binaries (required; NEW may be the same as OLD for a run-to-run check)
#   REAL="NAME=DIR ..."  real trees whose paths are copied (bench/realpaths.py: directories,
#              names and symlinks, each file one line of its own; default: usr=/usr, and the
#              Rust toolchains and crate sources under /root when they exist); REAL=none: none
#   COPIES=N   copies of the real trees' paths (default 1; 0: no real tree)
#   FILES="N ..."  gentree.py's trees, in files (default "200000 2000000"; FILES=none: none)
#   RUNS=N     rounds (default 1); each runs OLD, NEW, NEW, OLD
#   SIZE=S     image size (default 100G, sparse)
# Prints, and writes to bench/out/checkout-memory-<date>.txt, one line a run:
# `checkout-memory TREE FILES BUILD WALL_S PEAK_KIB`, then for each tree and build the median
# wall time and peak and the peak per file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_start checkout-memory "$@"
bench_two_builds
bench_real_trees
COPIES=${COPIES:-1}
FILES=${FILES:-200000 2000000}
if [[ $FILES == none ]]; then FILES=""; fi
[[ $COPIES =~ ^[0-9]+$ ]] || die "COPIES must be a count"
RUNS=${RUNS:-1}
SIZE=${SIZE:-100G}
for n in $FILES; do [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "FILES must be counts: $FILES"; done
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS == 0)); then die "RUNS must be at least 1"; fi
bench_install /usr/bin/time time || die "needs GNU time (/usr/bin/time) for peak RSS"

bench_results checkout-memory
bench_mount xfs "$SIZE"
say "checkout-memory: $(date -u +%FT%TZ), old $OLD, new $NEW, runs $RUNS, load $(uptime | sed 's/.*load average: //')"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# measure TREE NAME: TREE snapshotted into a new store, then RUNS rounds of checkouts.
measure() {
  local tree=$1 name=$2 id files r b bin wt=$MNT/wt got hashed clean
  rm -rf "$MNT/s"
  "$NEW" --store "$MNT/s" --json snapshot "$tree" >"$MNT/snap.json" 2>"$MNT/err.log" ||
    { cat "$MNT/err.log" >&2; die "snapshot of $tree failed"; }
  id=$(json '["id"]' <"$MNT/snap.json")
  files=$(json '["files"]' <"$MNT/snap.json")
  # The tree is in the store now; its files are not needed (and free the page cache's room).
  rm -rf "$tree"
  for ((r = 1; r <= RUNS; r++)); do
    for b in old new new old; do
      bin=$OLD
      [[ $b == new ]] && bin=$NEW
      bench_quiesce cold
      /usr/bin/time -f '%e %M' -o "$MNT/time.out" "$bin" --store "$MNT/s" --json checkout "$id" \
        "$wt" >"$MNT/out.json" 2>"$MNT/err.log" || { cat "$MNT/err.log" >&2; die "$b: checkout failed"; }
      got=$(json '["files"]' <"$MNT/out.json")
      [[ $got == "$files" ]] || die "$b: checkout wrote $got files of $files"
      "$bin" --store "$MNT/s" --json status "$wt" >"$MNT/status.json" 2>"$MNT/err.log" ||
        { cat "$MNT/err.log" >&2; die "$b: status after checkout failed"; }
      read -r hashed clean < <(python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["hashed"], v["clean"])' <"$MNT/status.json")
      [[ $hashed == 0 && $clean == True ]] ||
        die "$b: status right after checkout hashed $hashed files (clean: $clean)"
      say "checkout-memory $name $files $b $(cat "$MNT/time.out")"
      "$bin" --store "$MNT/s" worktree rm "$wt" >/dev/null 2>"$MNT/err.log" ||
        { cat "$MNT/err.log" >&2; die "$b: worktree rm failed"; }
    done
  done
}

if [[ -n $REAL && $COPIES -gt 0 ]]; then
  # shellcheck disable=SC2086 # NAME=DIR words, split on purpose
  say "$(python3 bench/realpaths.py "$MNT/real" "$COPIES" $REAL)"
  measure "$MNT/real" real-paths
fi
for files in $FILES; do
  python3 bench/gentree.py "$MNT/gen" --files "$files" --dirs $((files / 16)) --large 0 \
    --median 0.25 | tee -a "$RESULTS" >&2
  measure "$MNT/gen" gentree
done
python3 - "$RESULTS" <<'PY' | tee -a "$RESULTS"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[:1] != ["checkout-memory"] or len(f) != 6:
        continue
    _, tree, files, build, wall, peak = f
    runs.setdefault((tree, int(files), build), []).append((float(wall), int(peak)))
for (tree, files, build), rs in runs.items():
    wall = statistics.median(w for w, _ in rs)
    peak = statistics.median(p for _, p in rs)
    print(f"{tree:>10} {files:>8} {build}: wall {wall:.2f} s, peak {peak / 1024:.1f} MiB, "
          f"{peak * 1024 / files:.0f} bytes per file ({len(rs)} runs)")
PY
