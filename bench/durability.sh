#!/usr/bin/env bash
# What durability costs a snapshot: two cowtree binaries (e.g. a build before and after a
# change to the sync sequence) snapshot the bench tree into an empty store, alternating which
# goes first in each round, on a fresh XFS and a fresh btrfs loop filesystem.
#
#   sudo bench/durability.sh OLD_BINARY NEW_BINARY
#
# Environment: RUNS (default 5) rounds per filesystem; SCALE (default 1: the 80,000-file tree
# of bench/gentree.py) on XFS, BTRFS_SCALE (default 0.5: the test btrfs holds 1 GiB) on btrfs;
# FS (default "xfs btrfs").
# Between runs the store is removed and the filesystem synced and, on XFS, frozen and thawed
# (waits for background metadata writeback), untimed. Prints each run, then the medians and
# the ratio NEW/OLD per filesystem; also written to bench/out/durability-<UTC date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# == 2 ]] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
OLD=$(realpath "$1")
NEW=$(realpath "$2")
[[ "$(id -u)" == 0 ]] || { echo "durability.sh: needs root to mount loop filesystems" >&2; exit 1; }
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
BTRFS_SCALE=${BTRFS_SCALE:-0.5}
FS=${FS:-xfs btrfs}
mkdir -p bench/out
OUT=bench/out/durability-$(date -u +%Y%m%dT%H%M%SZ).txt
# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap 'cowtree_mounts_down' EXIT
# shellcheck disable=SC2086
cowtree_mounts_up $FS >/dev/null

say() { echo "$*" | tee -a "$OUT"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

say "durability.sh $(date -u +%FT%TZ): OLD=$OLD ($(sha256sum "$OLD" | cut -c1-16)) NEW=$NEW ($(sha256sum "$NEW" | cut -c1-16))"
say "RUNS=$RUNS SCALE=$SCALE BTRFS_SCALE=$BTRFS_SCALE load: $(cut -d' ' -f1-3 /proc/loadavg)"
for fs in $FS; do
  case $fs in
    xfs) mnt=$COWTREE_TEST_XFS scale=$SCALE ;;
    btrfs) mnt=$COWTREE_TEST_BTRFS scale=$BTRFS_SCALE ;;
    *) echo "unknown filesystem $fs" >&2; exit 2 ;;
  esac
  python3 bench/gentree.py --scale "$scale" "$mnt/tree" >/dev/null
  say "$fs: tree of $(find "$mnt/tree" -type f | wc -l) files, $(du -sh --apparent-size "$mnt/tree" | cut -f1)"
  settle() {
    rm -rf "$mnt/store"
    sync -f "$mnt"
    if [[ $fs == xfs ]]; then fsfreeze -f "$mnt" && fsfreeze -u "$mnt"; fi
  }
  one() { # BINARY -> seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$1" --store "$mnt/store" snapshot "$mnt/tree" >/dev/null 2>"$mnt/err" ||
      { cat "$mnt/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    settle
    echo "$t1 - $t0" | bc
  }
  settle
  : >"$mnt/old.t"
  : >"$mnt/new.t"
  for ((r = 0; r < RUNS; r++)); do
    if ((r % 2)); then
      n=$(one "$NEW"); o=$(one "$OLD")
    else
      o=$(one "$OLD"); n=$(one "$NEW")
    fi
    echo "$o" >>"$mnt/old.t"
    echo "$n" >>"$mnt/new.t"
    say "$fs round $r: old ${o}s new ${n}s"
  done
  mo=$(median <"$mnt/old.t")
  mn=$(median <"$mnt/new.t")
  say "$fs: median old ${mo}s new ${mn}s ratio new/old $(echo "scale=3; $mn / $mo" | bc)"
  rm -rf "$mnt/tree"
done
