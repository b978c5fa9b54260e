#!/usr/bin/env bash
# Compares two cowtree binaries on the benchmark tree: clone, snapshot, checkout, status,
# switch and `git worktree add`, each binary in turn within every round, the order alternating between rounds, and
# prints the median seconds of each and the ratio NEW/OLD per operation (flagged above 1.05).
#
#   sudo bench/compare.sh OLD NEW            # e.g. a build of main and a build of a branch
#   sudo env RUNS=3 SCALE=0.25 bench/compare.sh OLD NEW   # a quicker, smaller run
#
# Mounts a fresh 4 GiB XFS (reflink=1) loop filesystem through scripts/mounts.sh, generates the
# tree of bench/gentree.py on it (as bench/run.sh does) and always unmounts it, detaches its loop
# device and removes its image, on failure or interrupt too. Each binary has its own stores and
# worktrees, prepared untimed: a store holding the tree (snapshot A) and the tree with 1% of its
# files changed (snapshot B), a clean worktree of A for status and one for switch (A<->B). For
# `git worktree add` the tree is also a git repository (one commit, its index settled), the
# same for both binaries: each run adds a detached worktree, then removes it and prunes.
#
# Environment:
#   RUNS=N        timed runs per binary and operation (default 5); the median is reported
#   SCALE=F       tree size factor for bench/gentree.py --scale (default 1: ~80k files)
#   SEED=N        tree seed (default 1)
#   LIMIT=R       ratio above which a line is flagged (default 1.05)
#   OPS="..."     only these operations (default: clone snapshot checkout status switch git-add);
#                 the preparation is the same
#   FS=xfs|btrfs|ext4  the filesystem the runs are on (default xfs; btrfs: a 4 GiB btrfs loop
#                 image, the tree in a plain directory; ext4: a 4 GiB ext4 loop image, where
#                 every file is copied)
#
# Method (that of bench/run.sh): between timed runs the destination is removed, the filesystem
# synced and XFS frozen and thawed (which waits for its background metadata writeback), untimed;
# the page cache stays warm. Timings on a shared machine are noisy: compare the ratio, and read
# the load average printed with it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "compare: $*" >&2; exit 1; }
note() { printf 'compare: %s\n' "$*" >&2; }
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
(($# == 2)) || die "usage: sudo bench/compare.sh OLD NEW (two cowtree binaries)"
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem"
[[ "$(uname -s)" == Linux ]] || die "Linux only"
declare -A BIN=()
for pair in "old=$1" "new=$2"; do
  b=${pair#*=}
  [[ -x "$b" ]] || die "${pair%%=*} binary $b is not an executable"
  BIN[${pair%%=*}]=$(realpath "$b")
done
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
SEED=${SEED:-1}
LIMIT=${LIMIT:-1.05}
FS=${FS:-xfs}
ALL_OPS=(clone snapshot checkout status switch git-add)
read -r -a OPS_LIST <<<"${OPS:-${ALL_OPS[*]}}"
((${#OPS_LIST[@]})) || die "OPS is empty"
declare -A SEEN_OP=()
for op in "${OPS_LIST[@]}"; do
  [[ " ${ALL_OPS[*]} " == *" $op "* ]] || die "unknown operation in OPS: $op (known: ${ALL_OPS[*]})"
  [[ -z "${SEEN_OP[$op]:-}" ]] || die "OPS names $op twice"
  SEEN_OP[$op]=1
done
want() { [[ " ${OPS_LIST[*]} " == *" $1 "* ]]; }
[[ $FS == xfs || $FS == btrfs || $FS == ext4 ]] || die "FS must be xfs, btrfs or ext4"
command -v git >/dev/null || die "needs git (the reference for git worktree add)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"

mkdir -p bench/out
RESULTS="$ROOT/bench/out/compare-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# --------------------------------------------------------------------------------- mounts
# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
XFS=""
cleanup() {
  local rc=$?
  cowtree_mounts_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cowtree_mounts_up xfs >&2
[[ -n "${COWTREE_TEST_XFS:-}" ]] || die "could not mount XFS (see above)"
XFS=$COWTREE_TEST_XFS
# The same runs on another filesystem: the variable keeps its name.
case $FS in
  # No reflinks: the store and the checkouts copy.
  ext4) _cowtree_mount_image ext4 4G mkfs.ext4 -q -F
    XFS=$COWTREE_LAST_MOUNT ;;
  btrfs) _cowtree_mount_image btrfs 4G mkfs.btrfs -q
    XFS=$COWTREE_LAST_MOUNT ;;
esac
export COWTREE_STORE="$XFS/no-store" # never the caller's own store; every call names one
SAMPLES="$XFS/samples"
LOGF="$XFS/cmd.log"
: >"$SAMPLES"

flush_fs() { # sync, then freeze and thaw XFS: the next run starts from a quiet disk
  local rc=0
  cowtree_quiesce "$XFS" || rc=$?
  ((rc != 2)) || die "could not thaw $XFS"
}
settle() {
  local p
  for p in "$@"; do [[ -e "$p" || -L "$p" ]] && rm -rf -- "$p"; done
  flush_fs
}
# timed KEY CMD...: one timed run, "KEY microseconds" appended to $SAMPLES; a failure is fatal
# (a ratio over runs that did different work would mean nothing).
timed() {
  local key=$1 t0 t1
  shift
  t0=$(date +%s%N)
  "$@" >"$LOGF" 2>&1 || { tail -5 "$LOGF" >&2; die "failed: $*"; }
  t1=$(date +%s%N)
  echo "$key $(((t1 - t0) / 1000))" >>"$SAMPLES"
}
median() { # median seconds of KEY
  awk -v k="$1" '$1 == k { print $2 / 1e6 }' "$SAMPLES" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR) printf "%.4f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
snapshot_id() { # the id from `cowtree snapshot --json` output
  python3 -c 'import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["id"])'
}
# change_files DIR PERCENT SALT: appends to an evenly spread, fixed set of regular files.
change_files() {
  python3 - "$@" <<'EOF'
import os, sys
root, pct, salt = sys.argv[1], float(sys.argv[2]), sys.argv[3]
files = []
for d, dirs, names in os.walk(root):
    dirs.sort()
    files += [os.path.join(d, n) for n in sorted(names) if os.path.isfile(os.path.join(d, n))
              and not os.path.islink(os.path.join(d, n))]
n = max(1, int(len(files) * pct / 100))
step = len(files) / n
for i in range(n):
    with open(files[int(i * step)], "ab") as f:
        f.write(b"\n# changed by bench %s %d\n" % (salt.encode(), i))
EOF
}

# ------------------------------------------------------------------------------ the trees
say "cowtree comparison $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine: $(uname -srm), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for k in old new; do
  say "$k: ${BIN[$k]} ($("${BIN[$k]}" --version 2>/dev/null || echo '?'); sha256 $(sha256sum "${BIN[$k]}" | cut -c1-16))"
done
say "settings: RUNS=$RUNS SCALE=$SCALE SEED=$SEED LIMIT=$LIMIT OPS=\"${OPS_LIST[*]}\"; $FS $XFS (4 GiB loop image$([[ $FS == xfs ]] && echo ', reflink=1')); warm page cache"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
SRC="$XFS/src"
note "generating the tree (bench/gentree.py --scale $SCALE --seed $SEED)"
TOTALS=$(python3 "$ROOT/bench/gentree.py" "$SRC" --scale "$SCALE" --seed "$SEED" --json)
say "tree: $TOTALS"
cp -a --reflink=auto "$SRC" "$XFS/src-b"
change_files "$XFS/src-b" 1 b
declare -A SNAP_A=() SNAP_B=()
for k in old new; do
  note "preparing $k's store and worktrees (untimed)"
  SNAP_A[$k]=$("${BIN[$k]}" --store "$XFS/store-$k" snapshot "$SRC" --json 2>/dev/null | snapshot_id)
  SNAP_B[$k]=$("${BIN[$k]}" --store "$XFS/store-$k" snapshot "$XFS/src-b" --json 2>/dev/null | snapshot_id)
  for wt in st sw; do
    "${BIN[$k]}" --store "$XFS/store-$k" checkout -q "${SNAP_A[$k]}" "$XFS/wt-$wt-$k" >/dev/null ||
      die "$k: checkout of the status/switch worktree failed"
  done
  "${BIN[$k]}" --store "$XFS/store-$k" status "$XFS/wt-st-$k" >/dev/null 2>&1 || true # warm
done
note "making the tree a git repository (untimed)"
REPO="$XFS/repo"
cp -a --reflink=auto "$SRC" "$REPO"
git -C "$REPO" init -q -b main
sleep 1.1 # no racily clean index entries: git status below settles the index
git -C "$REPO" add -A
git -C "$REPO" commit -qm bench
git -C "$REPO" status --porcelain >/dev/null
# git_add BIN DST: cowtree git worktree add, run in the repository.
git_add() { (cd "$REPO" && "$1" git worktree add --detach "$2" HEAD); }
settle_worktree() { # settle_worktree DST: removes it and prunes git's record of it
  rm -rf -- "$1"
  git -C "$REPO" worktree prune
  flush_fs
}
[[ "${SNAP_A[old]}" == "${SNAP_A[new]}" ]] ||
  note "the two binaries record the tree under different ids (${SNAP_A[old]} and ${SNAP_A[new]})"
flush_fs

# ---------------------------------------------------------------------------------- runs
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then order=(old new); else order=(new old); fi
  note "round $r/$RUNS: ${order[*]} (load $(cut -d' ' -f1 /proc/loadavg))"
  for k in "${order[@]}"; do
    b=${BIN[$k]}
    if want clone; then
      timed "clone-$k" "$b" clone "$SRC" "$XFS/clone-$k"
      settle "$XFS/clone-$k"
    fi
    if want snapshot; then
      timed "snapshot-$k" "$b" --store "$XFS/fresh-$k" snapshot "$SRC"
      settle "$XFS/fresh-$k"
    fi
    if want checkout; then
      timed "checkout-$k" "$b" --store "$XFS/store-$k" checkout -q "${SNAP_A[$k]}" "$XFS/co-$k"
      settle "$XFS/co-$k"
    fi
    if want status; then
      timed "status-$k" "$b" --store "$XFS/store-$k" status "$XFS/wt-st-$k"
    fi
    if want switch; then
      # Odd rounds switch to B; even ones back to A (each binary's worktree takes both ways).
      if ((r % 2)); then to=${SNAP_B[$k]}; else to=${SNAP_A[$k]}; fi
      timed "switch-$k" "$b" --store "$XFS/store-$k" switch "$to" "$XFS/wt-sw-$k"
      flush_fs
    fi
    if want git-add; then
      timed "git-add-$k" git_add "$b" "$XFS/gwt-$k"
      settle_worktree "$XFS/gwt-$k"
    fi
  done
done

# -------------------------------------------------------------------------------- result
say ""
say "== medians of $RUNS runs each (seconds), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "$(printf '%-10s %10s %10s %9s %s' operation old_s new_s new/old '')"
flagged=0
for op in "${OPS_LIST[@]}"; do
  o=$(median "$op-old")
  n=$(median "$op-new")
  ratio=$(awk -v o="$o" -v n="$n" 'BEGIN { printf "%.3f", n / o }')
  flag=$(awk -v r="$ratio" -v l="$LIMIT" 'BEGIN { print (r > l) ? "ABOVE " l : "" }')
  [[ -n "$flag" ]] && flagged=$((flagged + 1))
  say "$(printf '%-10s %10.4f %10.4f %9s %s' "$op" "$o" "$n" "$ratio" "$flag")"
done
say "$flagged operation(s) above $LIMIT; results: $RESULTS"
# Every run's seconds, in the order they ran, for a reader who wants more than the median.
{
  echo ""
  echo "== every run (operation-binary seconds), in order"
  awk '{ printf "%s %.4f\n", $1, $2 / 1e6 }' "$SAMPLES"
} >>"$RESULTS"
