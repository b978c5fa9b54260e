#!/usr/bin/env bash
# Snapshot from cold caches against its read floor (issue 35): how close a snapshot into an
# empty store comes to reading each file of the tree once, and how both grow with the tree.
# From cold caches the floor of a snapshot of small files is one read of each file from the
# device; `find | xargs -P 4 cat` does that read (4 at a time, as many as the ingest workers
# on 2 cores) and nothing else. The loop device's read count is printed beside each run, so a
# run that reads more than the floor shows it.
#
#   sudo bench/cold-snapshot.sh                              # target/release/cowtree
#   sudo env BINS="old=/tmp/cowtree-old new=target/release/cowtree" bench/cold-snapshot.sh
#   sudo env FILES="80000 2000000" SIZE=60G RUNS=1 bench/cold-snapshot.sh
#   sudo env TREE=~/.cargo/registry/src RUNS=5 bench/cold-snapshot.sh   # a real tree
#
# Mounts a fresh XFS loop filesystem (reflink=1) through scripts/mounts.sh and always unmounts
# it, detaches its loop device and removes its image. Each tree is made by bench/gentree.py as
# bench/scale.sh makes it (FILES/16 directories, no large files, median file 0.25 KiB).
#
# Environment:
#   BINS="label=PATH ..."  the binaries to compare (default: cowtree=target/release/cowtree,
#                 built with cargo build --release)
#   FILES="N ..." tree sizes (default "80000 500000")
#   TREE=DIR      instead of generated trees, a copy of DIR (a real tree: a checkout, a
#                 package cache), copied onto the mount untimed; FILES is then its file count
#   RUNS=N        rounds (default 3): in each, every binary's snapshot and the floor run once,
#                 the order rotated by one from one round to the next; medians are reported
#                 (with an even count, the lower of the two middle runs)
#   SIZE=S        image size (default 40G; sparse)
#   LOOP_DIO=0    the loop device reads its image through the page cache (default: direct
#                 I/O, as a disk; bench/lib.sh says why)
#
# Each tree is snapshotted once, untimed, before the timed runs: the first read of a new file
# updates its access time and the first clone sets its inode's shared flag, which would make
# the first timed run alone write (almost) every source inode. Before every timed run the
# filesystem is synced and frozen/thawed and the page, dentry and inode caches are dropped
# (echo 3 >/proc/sys/vm/drop_caches; with LOOP_DIO=0 the image file's pages with them). The
# store is removed (untimed) after each snapshot. Results are also
# written to bench/out/cold-snapshot-<UTC date>.txt; the load average is printed before and
# after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_start cold-snapshot "$@"
FILES=${FILES:-"80000 500000"}
if [[ -n ${TREE:-} ]]; then
  [[ -d $TREE ]] || die "TREE: $TREE is not a directory"
  TREE=$(realpath "$TREE")
  FILES=$(find "$TREE" -type f | wc -l)
  ((FILES > 0)) || die "TREE: $TREE holds no file"
fi
RUNS=${RUNS:-3}
SIZE=${SIZE:-40G}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
for n in $FILES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "FILES: $n is not a count"; done
# Smallest first: the summary compares the largest tree against the smallest.
# shellcheck disable=SC2086 # split on purpose: each word was checked to be a count above
FILES=$(printf '%s\n' $FILES | sort -n | tr '\n' ' ')
FILES=${FILES% }
[[ -n $FILES ]] || die "FILES names no tree size"
if [[ -z "${BINS:-}" ]]; then
  cargo build --release -q -p cowtree-cli
  BINS="cowtree=$ROOT/target/release/cowtree"
fi
LABELS=()
declare -A BIN
for b in $BINS; do
  label=${b%%=*} path=${b#*=}
  [[ $label != "$b" && -n $label && $label != floor ]] || die "BINS: $b is not label=PATH"
  path=$(realpath "$path")
  [[ -x $path ]] || die "$path is not an executable"
  LABELS+=("$label")
  BIN[$label]=$path
done
((${#LABELS[@]})) || die "BINS names no binary"

bench_results cold-snapshot
bench_mount xfs "$SIZE"
DEV=$LOOP_DEV
[[ -r /sys/block/$DEV/stat ]] || die "no /sys/block/$DEV/stat for $MNT"

# cold OUT CMD...: runs CMD from cold caches; appends "wall_s reads read_MiB" to OUT.
cold() {
  local out=$1; shift
  bench_quiesce cold
  local r0 s0 r1 s1 t0 t1
  read -r r0 _ s0 _ <"/sys/block/$DEV/stat"
  t0=$(date +%s.%N)
  "$@" >"$MNT/out.log" 2>&1 || { cat "$MNT/out.log" >&2; die "failed: $*"; }
  t1=$(date +%s.%N)
  read -r r1 _ s1 _ <"/sys/block/$DEV/stat"
  awk -v a="$t0" -v b="$t1" -v r=$((r1 - r0)) -v s=$((s1 - s0)) \
    'BEGIN {printf "%.3f %d %.1f\n", b - a, r, s / 2048}' >>"$out"
}

say "cold-snapshot: $(date -u +%FT%TZ), xfs on $DEV, files: $FILES, runs: $RUNS"
for l in "${LABELS[@]}"; do say "cold-snapshot: $l = ${BIN[$l]} ($("${BIN[$l]}" --version))"; done
say "cold-snapshot: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
TABLE=$MNT/table.txt
: >"$TABLE"
for files in $FILES; do
  T=$MNT/tree S=$MNT/store
  rm -rf "$T" "$S"
  if [[ -n ${TREE:-} ]]; then
    cp -a "$TREE" "$T"
    say "cold-snapshot: $T: a copy of $TREE ($files files, $(du -sh --apparent-size "$T" | cut -f1) apparent)"
  else
    python3 bench/gentree.py "$T" --files "$files" --dirs $((files / 16)) --large 0 \
      --median 0.25 | tee -a "$RESULTS" >&2
  fi
  # Untimed (see the header): every timed run starts from the same tree. A file changed in
  # the last two seconds is hashed from its clone, not read, so a few may keep their atime.
  bench_quiesce
  "${BIN[${LABELS[0]}]}" --store "$S" -q snapshot "$T" >/dev/null ||
    die "the untimed snapshot of $T failed"
  rm -rf "$S"
  order=(floor "${LABELS[@]}")
  for l in floor "${LABELS[@]}"; do : >"$MNT/$l.t"; done
  for ((r = 1; r <= RUNS; r++)); do
    echo "cold-snapshot: $files files, round $r of $RUNS" >&2
    # Rotated by one each round, so that every run takes every place in turn.
    run=()
    for ((i = 0; i < ${#order[@]}; i++)); do
      run+=("${order[(i + r - 1) % ${#order[@]}]}")
    done
    for l in "${run[@]}"; do
      if [[ $l == floor ]]; then
        # shellcheck disable=SC2016
        cold "$MNT/floor.t" sh -c 'find "$1" -type f -print0 | xargs -0 -P 4 -n 500 cat >/dev/null' sh "$T"
      else
        cold "$MNT/$l.t" "${BIN[$l]}" --store "$S" -q snapshot "$T"
        rm -rf "$S"
      fi
    done
  done
  for l in floor "${LABELS[@]}"; do
    w=$(awk '{print $1}' "$MNT/$l.t" | median)
    rd=$(awk '{print $2}' "$MNT/$l.t" | median)
    mib=$(awk '{print $3}' "$MNT/$l.t" | median)
    all=$(awk '{printf "%s%s", sep, $1; sep=" "}' "$MNT/$l.t")
    printf '%s %s %s %s %s %s\n' "$files" "$l" "$w" "$rd" "$mib" "$all" >>"$TABLE"
  done
  rm -rf "$T"
done

say ""
say "$(printf '%9s  %-10s %8s %8s %9s %9s  %s' files run wall_s us/file reads read_MiB 'runs (s)')"
while read -r files l w rd mib all; do
  say "$(awk -v f="$files" -v l="$l" -v w="$w" -v rd="$rd" -v m="$mib" -v a="$all" \
    'BEGIN {printf "%9d  %-10s %8.2f %8.1f %9d %9.1f  %s", f, l, w, w / f * 1e6, rd, m, a}')"
done <"$TABLE"
say ""
say "per file against the floor, and the growth per file from the smallest tree to the largest:"
first=${FILES%% *} last=${FILES##* }
for l in "${LABELS[@]}"; do
  for files in $FILES; do
    awk -v f="$files" -v l="$l" '
      $1 == f && $2 == "floor" {fl = $3}
      $1 == f && $2 == l {w = $3}
      END {printf "  %-10s %9d files: %.2fx the floor\n", l, f, w / fl}' "$TABLE" | tee -a "$RESULTS"
  done
  if [[ $first != "$last" ]]; then
    awk -v a="$first" -v b="$last" -v l="$l" '
      $1 == a && $2 == "floor" {fa = $3 / a}
      $1 == b && $2 == "floor" {fb = $3 / b}
      $1 == a && $2 == l {la = $3 / a}
      $1 == b && $2 == l {lb = $3 / b}
      END {printf "  %-10s %d -> %d files: time per file %.2fx, the floor'"'"'s %.2fx, own share %.2fx\n",
        l, a, b, lb / la, fb / fa, (lb / la) / (fb / fa)}' "$TABLE" | tee -a "$RESULTS"
  fi
done
say "cold-snapshot: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
