#!/usr/bin/env bash
# Scale sweep (issue 35): every command on trees of growing size, and how its time and peak
# memory per file change with the tree. Prints one table of the whole sweep: files, command,
# median wall seconds, µs per file, median peak RSS, bytes of peak RSS per file, the reference
# tool's median time in the same rounds (for snapshot, the median of each round's clone +
# b3sum), the command's time over it, and the runs counted; then, per command, the per-file
# figures of the largest tree against the smallest's (the targets: memory per file not above
# the smallest tree's, time per file at most 1.2x; snapshot at most 1.1x clone + b3sum),
# beside how much the reference's own time per file grew between the same sizes: what the
# machine does per file (the caches, the device) grows for both, so the command's growth
# divided by its reference's is cowtree's own share. The references, each alternating with its
# command: snapshot, a clone by cp plus b3sum of that fresh clone; clone and checkout,
# cp -a --reflink=always; status, du -s of the worktree (an lstat of every entry); verify and
# push, b3sum of every blob of the store (a read of each); pull, tar -x of the store's blobs
# (a new file written for each, and nothing synced, where pull syncs); switch has none.
#
#   sudo bench/scale.sh                                   # 80k, 500k and 2M files (hours)
#   sudo env FILES="50000 200000" RUNS=1 bench/scale.sh   # a quick sweep
#   sudo env COWTREE=target/release/cowtree bench/scale.sh  # measure a given binary
#   sudo env COMMANDS="status switch" FILES="80000 2000000" bench/scale.sh  # some commands
#
# Mounts a fresh XFS loop filesystem (reflink=1; FS=btrfs for btrfs) through scripts/mounts.sh
# and always unmounts it, detaches its loop device and removes its image. Each tree is made by
# bench/gentree.py (FILES/16 directories, no large files, median file MEDIAN KiB: the figures
# are about counts of files, not bytes), measured, then removed before the next.
#
# Environment:
#   FILES="N ..."  tree sizes in files (default "80000 500000 2000000")
#   RUNS=N         timed runs per command and size (default 3); medians are reported (of an
#                  even count, the mean of the middle two). The cowtree command and its
#                  reference alternate in order between runs, FIRST's first in odd runs.
#   COMMANDS="C ..."  only these of the commands (default all: snapshot clone checkout
#                  status switch verify push pull), each with its reference; the trees and
#                  the store are prepared the same either way (pull without push pushes
#                  untimed first)
#   FIRST=cow|ref  which runs first in the first run (default cow): with RUNS=1, a second
#                  invocation with FIRST=ref runs each pair the other way round.
#   MEDIAN=K       median small-file size in KiB for gentree.py (default 0.25)
#   TREES="DIR ..." real trees instead of generated ones (FILES and MEDIAN then unused): each
#                  copied onto the mount untimed (cp -a) and measured as a generated tree is;
#                  its size is its count of regular files. Paths without whitespace; set SIZE.
#   FS=xfs|btrfs   the filesystem (default xfs)
#   SIZE=S         image size (sparse; default 80 KiB per file of the largest tree, at least
#                  12G: 39G for 500k files, 153G for 2M; a 500k sweep with its references
#                  fills 12G: the tree, the store, worktrees, a pulled store and the tar
#                  reference's archive and extraction are all on the image at once). The
#                  default assumes small files (MEDIAN 0.25): with a larger MEDIAN, set SIZE.
#   LOOP_DIO=0     the loop device reads its image through the page cache (default: direct
#                  I/O, as a disk; bench/lib.sh says why)
#   COWTREE=BIN    the binary (default: cargo build --release, then target/release/cowtree)
#   CACHE=warm|cold  warm (default): the page cache stays as the previous run left it; cold:
#                  every timed run, cowtree's and the reference's, starts with the page,
#                  dentry and inode caches dropped (sync; echo 3 >/proc/sys/vm/drop_caches), so
#                  that every size is read from the device alike (with LOOP_DIO=0 the image
#                  file's pages are dropped too). Runs before 2026-11-25 evening (bench/README)
#                  were made with LOOP_DIO=0, the only mode then.
#
# Every timed run is written to the results file as a `scale-run` line, and the table is made
# from those lines by bench/scale_table.py, which also pools the runs of several results files:
# rounds of one filesystem run at different times (a 2M round takes about an hour) combine into
# medians with `python3 bench/scale_table.py bench/out/scale-A.txt bench/out/scale-B.txt`.
#
# Peak RSS is GNU time's %M (the child's high-water mark, VmHWM). Between timed runs the
# destination is removed and the filesystem synced (and, for XFS, frozen and thawed). The
# machine is shared: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_start scale "$@"
FILES=${FILES:-"80000 500000 2000000"}
RUNS=${RUNS:-3}
MEDIAN=${MEDIAN:-0.25}
FS=${FS:-xfs}
if [[ -n ${TREES:-} ]]; then
  for d in $TREES; do [[ -d $d ]] || die "TREES: $d is not a directory"; done
  [[ -n ${SIZE:-} ]] || die "TREES needs SIZE (the image must hold each tree about five times)"
  SOURCES=$TREES
  KIND="trees: $TREES"
else
  for n in $FILES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "FILES: $n is not a count"; done
  # shellcheck disable=SC2086 # split on purpose: each size was checked to be digits above
  [[ -z $(printf '%s\n' $FILES | sort | uniq -d) ]] || die "FILES: a size is listed twice (use RUNS)"
  SOURCES=$FILES
  KIND="files: $FILES"
fi
if [[ -z "${SIZE:-}" ]]; then
  largest=0
  for n in $FILES; do ((n <= largest)) || largest=$n; done
  SIZE=$(((largest * 80 + 1048575) / 1048576))
  ((SIZE >= 12)) || SIZE=12
  SIZE=${SIZE}G
fi
ALL_COMMANDS="snapshot clone checkout status switch verify push pull"
# (Split on any blank, newlines too: read -d '' reads to the end, and returns 1 there.)
read -r -d '' -a commands <<<"${COMMANDS:-$ALL_COMMANDS}" || true
((${#commands[@]})) || die "COMMANDS names no command (of: $ALL_COMMANDS)"
for c in "${commands[@]}"; do
  [[ " $ALL_COMMANDS " == *" $c "* ]] || die "COMMANDS: $c is not one of: $ALL_COMMANDS"
done
COMMANDS="${commands[*]}"
# want C: C is among COMMANDS.
want() { [[ " $COMMANDS " == *" $1 "* ]]; }
CACHE=${CACHE:-warm}
FIRST=${FIRST:-cow}
case $FIRST in cow) first_ref=0 ;; ref) first_ref=1 ;; *) die "FIRST must be cow or ref" ;; esac
[[ $CACHE == warm || $CACHE == cold ]] || die "CACHE must be warm or cold"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $FS == xfs || $FS == btrfs ]] || die "FS must be xfs or btrfs"
bench_install /usr/bin/time time || die "needs GNU time (/usr/bin/time) for peak RSS"
HAVE_B3SUM=1
bench_install b3sum b3sum || HAVE_B3SUM=0
if [[ -z "${COWTREE:-}" ]]; then
  note "building cowtree --release"
  cargo build --release -q -p cowtree-cli
  COWTREE=$ROOT/target/release/cowtree
fi
COWTREE=$(realpath "$COWTREE")
[[ -x $COWTREE ]] || die "$COWTREE is not an executable"

bench_results scale
bench_mount "$FS" "$SIZE"
W=$MNT/w

# Before every timed run: the filesystem synced (and frozen and thawed); with CACHE=cold, the
# caches dropped.
quiesce() { bench_quiesce "$CACHE"; }
# order: which runs first in round $r, cowtree or its reference: FIRST's in odd rounds, the
# other in even ones.
order() { if (((r + first_ref) % 2)); then echo "cow ref"; else echo "ref cow"; fi; }
# timed NAME COMMAND...: runs COMMAND under GNU time and writes the run to the results file as
# `scale-run FILES ROUND NAME WALL_S PEAK_KIB` (FILES and ROUND are the loops' $files and $r),
# the lines bench/scale_table.py makes the table of.
timed() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$W/time.out" "$@" >"$W/out.log" 2>&1 || {
    cat "$W/out.log" >&2; die "failed: $*"; }
  echo "scale-run $files $r $name $(cat "$W/time.out")" >>"$RESULTS"
}
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <"$W/out.log"; }

if [[ -n ${TREES:-} ]]; then tree_kind="real trees"; else tree_kind="median file ${MEDIAN} KiB"; fi
say "scale: $(date -u +%FT%TZ), $FS, image $SIZE, $KIND, runs: $RUNS ($FIRST first), commands: $COMMANDS, $tree_kind, cache $CACHE"
((HAVE_B3SUM)) || say "scale: no b3sum: snapshot, verify and push have no reference"
say "scale: $COWTREE ($("$COWTREE" --version 2>/dev/null || echo '?'))"
say "scale: load before: $(uptime | sed 's/.*load average/load average/')"

for src in $SOURCES; do
  rm -rf "$W"; mkdir -p "$W"
  T=$MNT/tree
  rm -rf "$T"
  if [[ -n ${TREES:-} ]]; then
    note "copying $src"
    cp -a "$src" "$T"
    files=$(find "$T" -type f | wc -l)
    ((files > 0)) || die "TREES: $src has no regular files"
    say "scale: tree $src: $files files, $(du -sh "$T" | cut -f1)"
  else
    files=$src
    note "generating $files files"
    python3 bench/gentree.py "$T" --files "$files" --dirs $((files / 16)) --large 0 \
      --median "$MEDIAN" | tee -a "$RESULTS" >&2
  fi
  # Prepared untimed: a store holding A (the tree) and B (1% of its files changed), a
  # worktree of A, a file:// remote.
  "$COWTREE" --store "$W/base" --json snapshot "$T" >"$W/out.log"
  A=$(id_of)
  "$COWTREE" --store "$W/base" -q checkout "$A" "$W/wt"
  python3 - "$W/wt" <<'PY'
import os, sys
files = []
for d, ds, ns in os.walk(sys.argv[1]):
    ds.sort()
    files += [os.path.join(d, n) for n in sorted(ns)
              if os.path.isfile(os.path.join(d, n)) and not os.path.islink(os.path.join(d, n))]
step = max(1, len(files) // max(1, len(files) // 100))
for i in range(0, len(files), step):
    with open(files[i], "ab") as f:
        f.write(b"\nchanged %d\n" % i)
PY
  "$COWTREE" --store "$W/base" --json snapshot "$W/wt" >"$W/out.log"
  B=$(id_of)
  "$COWTREE" --store "$W/base" -q switch "$A" "$W/wt"
  # pull's reference extracts this archive of the store's blobs (made untimed).
  if want pull; then tar -C "$W/base" -cf "$W/blobs.tar" blobs; fi
  for ((r = 1; r <= RUNS; r++)); do
    note "$files files: run $r of $RUNS"
    if want snapshot; then
      # snapshot against (clone + b3sum of the fresh clone), order alternating
      for who in $(order); do
        rm -rf "$W/s" "$W/ref"; quiesce
        if [[ $who == cow ]]; then
          timed snapshot "$COWTREE" --store "$W/s" -q snapshot "$T"
        else
          timed ref_clone cp -a --reflink=always "$T" "$W/ref"
          if ((HAVE_B3SUM)); then
            # shellcheck disable=SC2016
            timed ref_b3sum sh -c 'cd "$1" && find . -type f -print0 | xargs -0 -n 2000 b3sum >/dev/null' sh "$W/ref"
          fi
        fi
      done
      rm -rf "$W/s" "$W/ref"
    fi
    if want clone || want checkout; then
      # clone and checkout against cp -a --reflink=always
      for who in $(order); do
        rm -rf "$W/d"; quiesce
        if [[ $who == cow ]]; then
          if want clone; then
            timed clone "$COWTREE" clone "$T" "$W/d"
          fi
          if want checkout; then
            if want clone; then rm -rf "$W/d"; quiesce; fi
            timed checkout "$COWTREE" --store "$W/base" -q checkout "$A" "$W/d"
          fi
        else
          timed cp cp -a --reflink=always "$T" "$W/d"
        fi
      done
      rm -rf "$W/d"
    fi
    if want status; then
      # status against du -s of the worktree (an lstat of every entry)
      for who in $(order); do
        quiesce
        if [[ $who == cow ]]; then
          timed status "$COWTREE" --store "$W/base" status "$W/wt"
        else
          timed du du -s "$W/wt"
        fi
      done
    fi
    if want switch; then
      quiesce
      timed switch "$COWTREE" --store "$W/base" -q switch "$B" "$W/wt"
      "$COWTREE" --store "$W/base" -q switch "$A" "$W/wt"
    fi
    if want verify || want push; then
      # verify against b3sum of every blob (a read of each), order alternating; that b3sum is
      # push's reference too
      for who in $(order); do
        if [[ $who == cow ]] && ! want verify; then continue; fi
        quiesce
        if [[ $who == cow ]]; then
          timed verify "$COWTREE" --store "$W/base" verify
        elif ((HAVE_B3SUM)); then
          # shellcheck disable=SC2016
          timed b3sum_blobs sh -c 'cd "$1" && find . -type f -print0 | xargs -0 -n 2000 b3sum >/dev/null' sh "$W/base/blobs"
        fi
      done
    fi
    if want push || want pull; then
      rm -rf "$W/remote" "$W/pulled" "$W/untar"; mkdir -p "$W/remote" "$W/untar"
      "$COWTREE" remote add scale "file://$W/remote" >/dev/null
      quiesce
      if want push; then
        timed push "$COWTREE" --store "$W/base" push --remote scale "$A"
      else
        "$COWTREE" --store "$W/base" -q push --remote scale "$A"
      fi
      # pull against tar -x of the store's blobs (a new file written for each), order alternating
      for who in $(order); do
        if ! want pull; then break; fi
        quiesce
        if [[ $who == cow ]]; then
          timed pull "$COWTREE" --store "$W/pulled" pull --remote scale "$A"
        else
          timed untar tar -xf "$W/blobs.tar" -C "$W/untar"
        fi
      done
      "$COWTREE" remote rm scale >/dev/null
      rm -rf "$W/remote" "$W/pulled" "$W/untar"
    fi
  done
  # On btrfs the store keeps each checked-out snapshot's tree as a read-only subvolume, which
  # rm cannot empty: delete those first (`cowtree subvolume delete`: as root, one ioctl each).
  if [[ $FS == btrfs ]]; then
    for t in "$W"/*/trees/*/; do
      if [[ -d $t ]]; then "$COWTREE" subvolume delete -q "$t"; fi
    done
  fi
  rm -rf "$W" "$T"
  quiesce
done

say "scale: load after: $(uptime | sed 's/.*load average/load average/')"
say ""
if table=$(python3 bench/scale_table.py "$RESULTS"); then
  say "$table"
else
  die "bench/scale_table.py could not make the table; every run is in $RESULTS"
fi
say "results: $RESULTS"
