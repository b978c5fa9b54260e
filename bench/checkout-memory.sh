#!/usr/bin/env bash
# The checkout's peak memory and time, two builds side by side (issue 35): gentree.py's trees
# (as scale.sh makes them: FILES/16 directories, median file 0.25 KiB) snapshotted once into
# a store on a fresh XFS loop filesystem (direct I/O), then each run a `cowtree checkout` of
# that snapshot into a new directory from cold caches, the builds alternating OLD, NEW, NEW,
# OLD in every round. After each checkout, `cowtree status` of the new worktree must find it
# clean without hashing a file (the stat cache the checkout wrote is whole and trusted);
# then the worktree is removed.
#
#   sudo env OLD=/tmp/cowtree-before NEW=target/release/cowtree bench/checkout-memory.sh
#   sudo env OLD=... NEW=... FILES=80000 RUNS=2 bench/checkout-memory.sh  # quick
#
# Environment:
#   OLD, NEW   the two binaries (required; NEW may be the same as OLD for a run-to-run check)
#   FILES="N ..."  the trees, in files (default "200000 2000000")
#   RUNS=N     rounds (default 1); each runs OLD, NEW, NEW, OLD
#   SIZE=S     image size (default 100G, sparse)
# Prints, and writes to bench/out/checkout-memory-<date>.txt, one line a run:
# `checkout-memory FILES BUILD WALL_S PEAK_KIB`, then for each tree and build the median
# wall time and peak and the peak per file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_start checkout-memory "$@"
bench_two_builds
FILES=${FILES:-200000 2000000}
RUNS=${RUNS:-1}
SIZE=${SIZE:-100G}
for n in $FILES; do [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "FILES must be counts: $FILES"; done
if ! [[ $RUNS =~ ^[0-9]+$ ]] || ((RUNS == 0)); then die "RUNS must be at least 1"; fi
bench_install /usr/bin/time time || die "needs GNU time (/usr/bin/time) for peak RSS"

bench_results checkout-memory
bench_mount xfs "$SIZE"
say "checkout-memory: $(date -u +%FT%TZ), old $OLD, new $NEW, runs $RUNS, load $(uptime | sed 's/.*load average: //')"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

for files in $FILES; do
  tree=$MNT/gen-$files
  python3 bench/gentree.py "$tree" --files "$files" --dirs $((files / 16)) --large 0 \
    --median 0.25 | tee -a "$RESULTS" >&2
  id=$("$NEW" --store "$MNT/s" --json snapshot "$tree" 2>"$MNT/err.log" | json '["id"]') ||
    { cat "$MNT/err.log" >&2; die "snapshot of $tree failed"; }
  # The tree is in the store now; its files are not needed (and free the page cache's room).
  rm -rf "$tree"
  for ((r = 1; r <= RUNS; r++)); do
    for b in old new new old; do
      bin=$OLD
      [[ $b == new ]] && bin=$NEW
      wt=$MNT/wt
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
      say "checkout-memory $files $b $(cat "$MNT/time.out")"
      "$bin" --store "$MNT/s" worktree rm "$wt" >/dev/null 2>"$MNT/err.log" ||
        { cat "$MNT/err.log" >&2; die "$b: worktree rm failed"; }
    done
  done
done
python3 - "$RESULTS" <<'PY' | tee -a "$RESULTS"
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[:1] != ["checkout-memory"] or len(f) != 5:
        continue
    _, files, build, wall, peak = f
    runs.setdefault((int(files), build), []).append((float(wall), int(peak)))
for (files, build), rs in runs.items():
    wall = statistics.median(w for w, _ in rs)
    peak = statistics.median(p for _, p in rs)
    print(f"{files:>8} {build}: wall {wall:.2f} s, peak {peak / 1024:.1f} MiB, "
          f"{peak * 1024 / files:.0f} bytes per file ({len(rs)} runs)")
PY
