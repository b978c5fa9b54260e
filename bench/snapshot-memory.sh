#!/usr/bin/env bash
# The snapshot's peak memory and time, two builds side by side (issue 35): each run a
# `cowtree snapshot` into an empty store from cold caches, the builds alternating OLD, NEW,
# NEW, OLD in every round, and each run's snapshot id printed so that the two builds can be
# seen to record the same tree. Two trees of the same count, one after the other on a fresh
# XFS loop filesystem (direct I/O): real paths (bench/realpaths.py: the directories, names and
# symlinks of real trees, copied COPIES times, each file one line of its own) and gentree.py's
# (as scale.sh makes it: FILES/16 directories, median file 0.25 KiB).
#
#   sudo env OLD=/tmp/cowtree-before NEW=target/release/cowtree bench/snapshot-memory.sh
#   sudo env OLD=... NEW=... COPIES=1 FILES=80000 RUNS=2 bench/snapshot-memory.sh  # quick
#
# Environment:
#   OLD, NEW   the two binaries (required; NEW may be the same as OLD for a run-to-run check)
#   REAL="NAME=DIR ..."  the real trees whose paths are copied (default: usr=/usr, and the Rust
#              toolchains and crate sources under /root when they exist); REAL=none: none
#   COPIES=N   copies of the real trees' paths (default 7: about 2M files from /usr, the
#              toolchains and the crate sources of a development machine)
#   FILES=N    gentree.py's tree, in files (default 2000000; 0: none)
#   RUNS=N     rounds (default 1); each runs OLD, NEW, NEW, OLD
#   SIZE=S     image size (default 200G, sparse)
# Prints, and writes to bench/out/snapshot-memory-<date>.txt, one line a run:
# `snapshot-memory TREE FILES BUILD WALL_S PEAK_KIB ID`, then for each tree and build the median
# wall time and peak and the peak per file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_start snapshot-memory "$@"
bench_two_builds
bench_real_trees
COPIES=${COPIES:-7}
FILES=${FILES:-2000000}
RUNS=${RUNS:-1}
SIZE=${SIZE:-200G}
for v in COPIES FILES RUNS; do [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a count"; done
((RUNS > 0)) || die "RUNS must be at least 1"
bench_install /usr/bin/time time || die "needs GNU time (/usr/bin/time) for peak RSS"

bench_results snapshot-memory
bench_mount xfs "$SIZE"
say "snapshot-memory: $(date -u +%FT%TZ), old $OLD, new $NEW, runs $RUNS, load $(uptime | sed 's/.*load average: //')"

# measure TREE NAME: RUNS rounds of OLD, NEW, NEW, OLD on TREE.
measure() {
  local tree=$1 name=$2 files r b
  files=$(find "$tree" -type f | wc -l)
  for ((r = 1; r <= RUNS; r++)); do
    for b in old new new old; do
      local bin=$OLD
      [[ $b == new ]] && bin=$NEW
      rm -rf "$MNT/s"
      bench_quiesce cold
      /usr/bin/time -f '%e %M' -o "$MNT/time.out" "$bin" --store "$MNT/s" --json snapshot "$tree" \
        >"$MNT/out.json" 2>"$MNT/err.log" || { cat "$MNT/err.log" >&2; die "$b: snapshot of $tree failed"; }
      say "snapshot-memory $name $files $b $(cat "$MNT/time.out") $(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <"$MNT/out.json")"
    done
  done
  rm -rf "$MNT/s" "$tree"
}

if [[ -n $REAL && $COPIES -gt 0 ]]; then
  # shellcheck disable=SC2086 # NAME=DIR words, split on purpose
  say "$(python3 bench/realpaths.py "$MNT/real" "$COPIES" $REAL)"
  measure "$MNT/real" real-paths
fi
if ((FILES > 0)); then
  python3 bench/gentree.py "$MNT/gen" --files "$FILES" --dirs $((FILES / 16)) --large 0 \
    --median 0.25 | tee -a "$RESULTS" >&2
  measure "$MNT/gen" gentree
fi
python3 - "$RESULTS" <<'PY' | tee -a "$RESULTS"
import statistics, sys
runs = {}
ids = {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[:1] != ["snapshot-memory"] or len(f) != 7:
        continue
    _, tree, files, build, wall, peak, ident = f
    runs.setdefault((tree, int(files), build), []).append((float(wall), int(peak)))
    ids.setdefault(tree, set()).add(ident)
for (tree, files, build), rs in runs.items():
    wall = statistics.median(w for w, _ in rs)
    peak = statistics.median(p for _, p in rs)
    print(f"{tree:>11} {files:>8} {build}: wall {wall:.2f} s, peak {peak / 1024:.1f} MiB, "
          f"{peak * 1024 / files:.0f} bytes per file ({len(rs)} runs)")
for tree, s in ids.items():
    print(f"{tree:>11}: {'the same id from every run' if len(s) == 1 else 'IDS DIFFER: ' + ' '.join(s)}")
PY
