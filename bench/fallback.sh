#!/usr/bin/env bash
# Copying: the copy fallback on ext4 (`cowtree clone` where no file can be cloned, every file
# copied) against `cp -a`; or, with FS=xfs, `cowtree clone --mode copy` (blocks of the copy's
# own) against `cp -a --reflink=never` on XFS with reflink, where a clone would be possible.
# The same disk and page-cache state for both.
#
#   sudo bench/fallback.sh
#   sudo env TREE=/path/to/tree RUNS=5 CACHE=warm bench/fallback.sh
#   sudo env FS=xfs SCALE=0.25 bench/fallback.sh
#
# Every timed run gets a filesystem of its own: a fresh ext4 (or XFS with reflink=1) on a loop
# image (direct I/O to the backing file, so the loop device does not add a second page cache),
# ext4 made with its inode tables and journal written at mkfs time (no background zeroing), the
# source tree copied onto it
# (untimed), synced, and the page cache dropped; with CACHE=warm the source's files are then
# read once. The tool copies the tree within that filesystem (the case of a filesystem without
# reflink). Wall time is taken for the command, and for the command plus a `sync` of the
# filesystem (the data written back, which `cp -a` does not wait for). The tools alternate
# which goes first from round to round. The first output of each is compared with the source
# (names, kinds, sizes, modes, link targets); with FS=xfs, every file of it is also checked to
# share no extent (`filefrag -v`).
#
# Environment:
#   COWTREE=PATH   binary to measure (default: cargo build --release, target/release/cowtree)
#   RUNS=N         timed runs per tool (default 5); medians are reported
#   CACHE=cold|warm  page cache before each run: dropped (cold, default), or dropped and the
#                  source's files read once (warm)
#   TREE=DIR       copy this tree (default: bench/gentree.py --scale $SCALE --seed $SEED)
#   SCALE=F, SEED=N  for the generated tree (default 1 and 1: about 80,000 files, 702 MiB)
#   IMAGE_DIR=D    where the loop image goes (default /var/tmp)
#   FS=ext4|xfs    the filesystem and the pair of commands (default ext4, see above)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "fallback: $*" >&2; exit 1; }
note() { printf 'fallback: %s\n' "$*" >&2; }
[[ "$(id -u)" == 0 ]] || die "needs root for loop mounts: sudo bench/fallback.sh"
RUNS=${RUNS:-5}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
CACHE=${CACHE:-cold}
[[ $CACHE == cold || $CACHE == warm ]] || die "CACHE must be cold or warm"
SCALE=${SCALE:-1}
SEED=${SEED:-1}
FS=${FS:-ext4}
case $FS in
  ext4) MKFS=mkfs.ext4 ;;
  xfs) MKFS=mkfs.xfs ;;
  *) die "FS must be ext4 or xfs" ;;
esac
for t in "$MKFS" losetup /usr/bin/time python3 filefrag; do
  command -v "$t" >/dev/null || die "needs $t"
done

# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh

WORK=$(mktemp -d "${IMAGE_DIR:-/var/tmp}/cowtree-fallback.XXXXXX")
MNT="$WORK/mnt"
IMG="$WORK/$FS.img"
LOOP=""
mkdir -p "$MNT" "$ROOT/bench/out"
RESULTS="$ROOT/bench/out/fallback-$FS-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
unmount() {
  if mountpoint -q "$MNT"; then umount "$MNT"; fi
  if [[ -n "$LOOP" ]]; then losetup -d "$LOOP" 2>/dev/null || true; fi
  LOOP=""
}
cleanup() {
  local rc=$?
  unmount
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The tree: generated, or the one given, copied once to the work directory on the host.
if [[ -n "${TREE:-}" ]]; then
  [[ -d "$TREE" ]] || die "TREE=$TREE is not a directory"
  note "copying $TREE to the work directory"
  cp -a "$TREE" "$WORK/master"
  TREE_DESC="$TREE"
else
  note "generating the tree (scale $SCALE, seed $SEED)"
  python3 bench/gentree.py "$WORK/master" --scale "$SCALE" --seed "$SEED" --json >/dev/null
  TREE_DESC="bench/gentree.py --scale $SCALE --seed $SEED"
fi
FILES=$(find "$WORK/master" -type f | wc -l)
BYTES=$(du -sb --apparent-size "$WORK/master" | cut -f1)
# Room for the tree twice, its metadata, and the journal.
SIZE_MB=$((BYTES * 5 / 2 / 1048576 + 1024))

fresh_fs() { # a new $FS on $MNT holding the tree at $MNT/src, synced, cache as $CACHE
  unmount
  rm -f "$IMG"
  truncate -s "${SIZE_MB}M" "$IMG"
  if [[ $FS == ext4 ]]; then
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$IMG"
  else
    mkfs.xfs -q -f -m reflink=1 "$IMG"
  fi
  LOOP=$(losetup -f --show --direct-io=on "$IMG")
  mount "$LOOP" "$MNT"
  cp -a "$WORK/master" "$MNT/src"
  sync -f "$MNT"
  sleep 1
  echo 3 >/proc/sys/vm/drop_caches
  if [[ $CACHE == warm ]]; then
    find "$MNT/src" -type f -print0 | xargs -0 cat >/dev/null
  fi
}

listing() {
  (cd "$1" && find . -mindepth 1 \( -type f -printf '%P f %s %m\n' \) -o \
    \( -type l -printf '%P l %l\n' \) -o \( -printf '%P %y %m\n' \)) | LC_ALL=C sort | md5sum | cut -d' ' -f1
}

SAMPLES="$WORK/samples"
: >"$SAMPLES"
WRONG=""
SHARED=""
# one KEY ROUND CMD...: a fresh filesystem, then one timed run of CMD SRC DST
one() {
  local key=$1 round=$2 t0 t1 t2 rss cpu
  shift 2
  fresh_fs
  t0=$(date +%s%N)
  /usr/bin/time -f '%M %U %S' -o "$WORK/time" "$@" "$MNT/src" "$MNT/dst" >"$WORK/log" 2>&1 ||
    { tail -5 "$WORK/log" >&2; die "$key failed: $*"; }
  t1=$(date +%s%N)
  sync -f "$MNT"
  t2=$(date +%s%N)
  read -r rss cpu < <(tail -1 "$WORK/time" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }')
  echo "$key $(((t1 - t0) / 1000)) $(((t2 - t0) / 1000)) $rss $cpu" >>"$SAMPLES"
  if ((round == 1)) && [[ "$(listing "$MNT/dst")" != "$(listing "$MNT/src")" ]]; then
    WRONG="$WRONG $key"
    note "WRONG: $key: the copy differs from the source"
  fi
  if ((round == 1)) && [[ $FS == xfs ]]; then
    local shared
    shared=$(find "$MNT/dst" -type f -size +0 -exec filefrag -v {} + 2>/dev/null | grep -c 'shared' || true)
    SHARED="$SHARED $key:$shared"
    ((shared == 0)) || { WRONG="$WRONG $key-shares"; note "WRONG: $key: $shared extents shared"; }
  fi
  [[ $key == cowtree && $round == 1 ]] && cp "$WORK/log" "$WORK/cowtree.log"
  return 0
}

if [[ $FS == ext4 ]]; then
  COW_CMD=("$COWTREE" clone)
  CP_CMD=(cp -a)
  TITLE="cowtree copy fallback on ext4"
else
  COW_CMD=("$COWTREE" clone --mode copy)
  CP_CMD=(cp -a --reflink=never)
  TITLE="cowtree clone --mode copy on XFS (reflink=1)"
fi
say "$TITLE $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine: $(uname -srm), $(nproc) cores; load at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "cowtree: $COWTREE (sha256 $(sha256sum "$COWTREE" | cut -c1-16)); harness: bench/fallback.sh at commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); $(cp --version | head -1)"
say "tree: $TREE_DESC: $FILES files, $BYTES bytes apparent; a fresh ${SIZE_MB} MiB $FS loop filesystem per run (direct I/O); page cache: $CACHE; RUNS=$RUNS, alternating order"
for ((r = 1; r <= RUNS; r++)); do
  note "round $r/$RUNS (load $(cut -d' ' -f1 /proc/loadavg))"
  if ((r % 2)); then
    one cowtree "$r" "${COW_CMD[@]}"
    one cp "$r" "${CP_CMD[@]}"
  else
    one cp "$r" "${CP_CMD[@]}"
    one cowtree "$r" "${COW_CMD[@]}"
  fi
done
unmount

stats() { # stats KEY FIELD: median min max of FIELD (2: wall, 3: wall + sync, 5: CPU)
  awk -v k="$1" -v f="$2" '$1 == k { print $f }' "$SAMPLES" | sort -g |
    awk -v f="$2" '{ a[NR] = (f == 5) ? $1 : $1 / 1e6 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f\n", m, a[1], a[NR] }'
}
say ""
say "== load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
say "$(printf '%-16s %10s %8s %8s %14s %8s %8s %7s' tool wall_s min max 'wall+sync_s' min max cpu_s) rss_MiB"
declare -A MED MEDS
for k in cowtree cp; do
  read -r m a b < <(stats "$k" 2)
  read -r ms as bs < <(stats "$k" 3)
  read -r c _ _ < <(stats "$k" 5)
  rss=$(awk -v k="$k" '$1 == k && $4 > m { m = $4 } END { printf "%.1f", m / 1024 }' "$SAMPLES")
  MED[$k]=$m
  MEDS[$k]=$ms
  label=$k
  [[ $k == cp ]] && label="${CP_CMD[*]}"
  [[ $k == cowtree ]] && label="cowtree ${COW_CMD[*]:1}"
  say "$(printf '%-16s %10.3f %8.3f %8.3f %14.3f %8.3f %8.3f %7.2f %s' "$label" "$m" "$a" "$b" "$ms" "$as" "$bs" "$c" "$rss")"
done
say "rounds (s, wall; wall+sync): $(awk '{ printf "%s %.2f;%.2f  ", $1, $2 / 1e6, $3 / 1e6 }' "$SAMPLES")"
ratio=$(awk -v a="${MED[cp]}" -v b="${MED[cowtree]}" 'BEGIN { printf "%.2f", a / b }')
ratio_s=$(awk -v a="${MEDS[cp]}" -v b="${MEDS[cowtree]}" 'BEGIN { printf "%.2f", a / b }')
ok=$(awk -v r="$ratio" -v w="$WRONG" 'BEGIN { print (r >= 1.0 && w == "") ? "PASS" : "MISS" }')
say "$ok  $TITLE at least 1.0x ${CP_CMD[*]} (cp time / cowtree time): ${ratio}x wall, ${ratio_s}x wall+sync${WRONG:+ (WRONG:$WRONG)}"
[[ $FS == xfs ]] && say "extents shared in each tool's first copy (filefrag -v):$SHARED"
[[ -s "$WORK/cowtree.log" ]] && say "cowtree's report (first run): $(tail -3 "$WORK/cowtree.log" | tr '\n' ' ')"
say "results: $RESULTS"
