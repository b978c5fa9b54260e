#!/usr/bin/env bash
# Counts the work two cowtree binaries do for the same commands, where a timing would be noise:
# the user-space instructions of every thread (valgrind's callgrind; repeatable whatever else
# the machine runs) and the system calls (strace -c -f), for clone, snapshot (into a fresh
# store), checkout, status and switch (to the tree with one file in a hundred changed, and
# back, uncounted) of bench/gentree.py's tree on a fresh XFS (reflink=1) loop mount.
# Each binary has its own store and worktree; each count runs ROUNDS times, the binaries in
# turn, the order alternating between rounds. A checkout and a switch are counted by their system calls only: this valgrind cannot run openat2.
#
#   sudo bench/work-count.sh OLD NEW                 # e.g. a build of main and one of a branch
#   sudo env SCALE=0.1 ROUNDS=2 bench/work-count.sh OLD NEW
#
#   sudo env TREE=DIR bench/work-count.sh OLD NEW    # a copy of a real tree instead
#
# Environment: SCALE (default 0.1: 8,000 files), SEED (1), ROUNDS (2), TREE (a directory copied
# in place of the generated tree).
# Needs valgrind, strace, xfsprogs; root (the loop mount).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/work-count.sh OLD NEW} new=${2:?usage: bench/work-count.sh OLD NEW}
SCALE=${SCALE:-0.1} SEED=${SEED:-1} ROUNDS=${ROUNDS:-2}
for t in valgrind strace mkfs.xfs; do
  command -v $t >/dev/null || { echo "work-count: $t is missing" >&2; exit 1; }
done
work=$(mktemp -d /tmp/cowtree-work-count.XXXXXX)
m=$work/xfs
cleanup() {
  mountpoint -q "$m" && umount "$m"
  rm -rf "$work"
}
trap cleanup EXIT
truncate -s 3G "$work/xfs.img"
mkfs.xfs -q -m reflink=1 "$work/xfs.img"
mkdir -p "$m"
mount -o loop "$work/xfs.img" "$m"
if [[ -n "${TREE:-}" ]]; then
  mkdir -p "$m/src"
  cp -a "$TREE/." "$m/src/"
  echo "work-count: tree $TREE: $(find "$m/src" -type f | wc -l) files, $(du -sh "$m/src" | cut -f1)"
else
  python3 bench/gentree.py "$m/src" --scale "$SCALE" --seed "$SEED" --json >"$work/tree.json"
  echo "work-count: tree $(cat "$work/tree.json")"
fi
# The tree with one file in a hundred changed (as bench/compare.sh's snapshot B), for switch.
cp -a --reflink=always "$m/src" "$m/src-b"
find "$m/src-b" -type f | sort | awk 'NR % 100 == 0' | while IFS= read -r f; do
  printf 'changed\n' >>"$f"
done

ir() { # the instructions of every thread of one run
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    awk '/Collected :/ {print $4}'
}
sc() { # the system calls of one run, its children's too
  strace -f -c -o "$work/sc" "$@" >/dev/null 2>&1
  awk '$NF == "total" {print $4}' "$work/sc"
}
undo() { # name op: what one run of op made, removed
  case $2 in
    clone) rm -rf "$m/c-$1" ;;
    snapshot) rm -rf "$m/st2-$1" ;;
    checkout) rm -rf "$m/w2-$1" ;;
    switch) "$bin_of_undo" --store "$m/st-$1" switch -q a "$m/w-$1" >/dev/null ;;
  esac
}
count() { # name bin
  local name=$1 bin=$2 op i s
  if [[ ! -d $m/st-$name ]]; then
    "$bin" --store "$m/st-$name" snapshot -q --name a "$m/src" >/dev/null
    "$bin" --store "$m/st-$name" checkout -q a "$m/w-$name" >/dev/null
    "$bin" --store "$m/st-$name" snapshot -q --name b "$m/src-b" >/dev/null
  fi
  bin_of_undo=$bin
  for op in clone snapshot checkout status switch; do
    local cmd=()
    case $op in
      clone) cmd=("$bin" clone -q "$m/src" "$m/c-$name") ;;
      snapshot) cmd=("$bin" --store "$m/st2-$name" snapshot -q "$m/src") ;;
      checkout) cmd=("$bin" --store "$m/st-$name" checkout -q a "$m/w2-$name") ;;
      status) cmd=("$bin" status -C "$m/w-$name") ;;
      switch) cmd=("$bin" --store "$m/st-$name" switch -q b "$m/w-$name") ;;
    esac
    if [[ $op == checkout || $op == switch ]]; then
      i="-"
    else
      i=$(ir "${cmd[@]}")
      undo "$name" "$op"
    fi
    s=$(sc "${cmd[@]}")
    undo "$name" "$op"
    printf '%-9s %-4s instructions %12s  syscalls %8s\n' "$op" "$name" "$i" "$s"
  done
}
for ((r = 1; r <= ROUNDS; r++)); do
  # The order alternates between rounds.
  if ((r % 2)); then
    echo "work-count: round $r of $ROUNDS: old, new"
    count old "$old"
    count new "$new"
  else
    echo "work-count: round $r of $ROUNDS: new, old"
    count new "$new"
    count old "$old"
  fi
done
