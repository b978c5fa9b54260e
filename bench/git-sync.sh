#!/usr/bin/env bash
# What `cowtree git worktree add --sync` costs: the same add with and without --sync, and
# `git worktree add` (which syncs nothing) as the reference, on fresh XFS and btrfs loop mounts.
#
#   sudo bench/git-sync.sh
#
# Three tools, in another order each round (rounds are a multiple of 3; each tool runs once in
# each position per 3 rounds):
#   cowtree        cowtree git worktree add -q --detach DST
#   cowtree-sync   cowtree git worktree add -q --detach --sync DST
#   git            git worktree add -q --detach DST
# Before each run the filesystem is synced and frozen and thawed, so no run pays for the
# previous one's writeback. Printed per filesystem: median/min/max wall seconds, the ratio of
# each to `git`, and what --sync adds (median difference and ratio).
#
# Environment:
#   COWTREE=PATH   binary to measure (default: cargo build --release -p cowtree-cli)
#   RUNS=N         rounds (default 6, rounded up to a multiple of 3)
#   SCALE=F        bench/gentree.py --scale (default 0.25: about 20,000 tracked files)
#   FILESYSTEMS    default "xfs btrfs" (8 GiB sparse images; COWTREE_XFS_SIZE, BTRFS_SIZE)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/git-sync: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the loop filesystems"
RUNS=${RUNS:-6}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$RUNS'"
if ((RUNS % 3)); then
  RUNS=$((RUNS + 3 - RUNS % 3))
  echo "bench/git-sync: RUNS rounded up to $RUNS"
fi
SCALE=${SCALE:-0.25}
FILESYSTEMS=${FILESYSTEMS:-xfs btrfs}

# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap 'cowtree_mounts_down' EXIT
# Big enough for the repository, its objects and git's full checkout of it (the test mounts'
# btrfs of 1 GiB is not).
export COWTREE_XFS_SIZE=${COWTREE_XFS_SIZE:-8G}
COWTREE_TEST_TMPDIR=${COWTREE_TEST_TMPDIR:-/tmp} cowtree_mounts_up xfs
if [[ " $FILESYSTEMS " == *" btrfs "* ]]; then
  _cowtree_mount_image btrfs-big "${BTRFS_SIZE:-8G}" mkfs.btrfs -q
  COWTREE_TEST_BTRFS=$COWTREE_LAST_MOUNT
fi
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export XDG_STATE_HOME="$COWTREE_MOUNT_WORK/state"

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
minmax() { sort -g | awk 'NR==1{mn=$1} {mx=$1} END {printf "%s %s\n", mn, mx}'; }
echo "bench/git-sync: load before: $(cut -d' ' -f1-3 /proc/loadavg)"

for fs in $FILESYSTEMS; do
  case $fs in
    xfs) M=${COWTREE_TEST_XFS:?} ;;
    btrfs) M=${COWTREE_TEST_BTRFS:?} ;;
    *) die "unknown filesystem $fs" ;;
  esac
  SRC="$M/repo"
  python3 bench/gentree.py "$SRC" --scale "$SCALE" --seed 1 >/dev/null
  git -C "$SRC" init -q -b main
  sleep 1.1
  git -C "$SRC" add -A
  git -C "$SRC" commit -qm bench
  git -C "$SRC" status --porcelain >/dev/null
  echo "bench/git-sync: $fs: $(git -C "$SRC" ls-files | wc -l) tracked files"
  declare -A T=()
  tools=(cowtree cowtree-sync git)
  for ((r = 0; r < RUNS; r++)); do
    for ((k = 0; k < 3; k++)); do
      tool=${tools[$(((r + k) % 3))]}
      dst="$M/wt-$tool"
      sync
      fsfreeze -f "$M" 2>/dev/null && fsfreeze -u "$M" 2>/dev/null || true
      case $tool in
        cowtree) cmd=("$COWTREE" git worktree add -q --from "$SRC" --detach "$dst") ;;
        cowtree-sync) cmd=("$COWTREE" git worktree add -q --from "$SRC" --detach --sync "$dst") ;;
        git) cmd=(git -C "$SRC" worktree add -q --detach "$dst") ;;
      esac
      /usr/bin/time -f '%e' -o "$M/time.out" "${cmd[@]}" >/dev/null
      T[$tool]+="$(cat "$M/time.out") "
      git -C "$SRC" worktree remove --force "$dst"
    done
  done
  git_med=$(echo "${T[git]}" | tr ' ' '\n' | grep . | median)
  for tool in "${tools[@]}"; do
    med=$(echo "${T[$tool]}" | tr ' ' '\n' | grep . | median)
    read -r mn mx < <(echo "${T[$tool]}" | tr ' ' '\n' | grep . | minmax)
    printf "bench/git-sync: %-6s %-13s median %6.3f s (min %.3f, max %.3f), %.2fx git's\n" \
      "$fs" "$tool" "$med" "$mn" "$mx" "$(echo "$med / $git_med" | bc -l)"
  done
  plain=$(echo "${T[cowtree]}" | tr ' ' '\n' | grep . | median)
  synced=$(echo "${T[cowtree-sync]}" | tr ' ' '\n' | grep . | median)
  printf "bench/git-sync: %-6s --sync adds %.3f s (%.2fx the add without it), %d rounds\n" \
    "$fs" "$(echo "$synced - $plain" | bc -l)" "$(echo "$synced / $plain" | bc -l)" "$RUNS"
  rm -rf "$SRC"
done
echo "bench/git-sync: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
