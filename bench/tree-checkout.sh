#!/usr/bin/env bash
# Checkout from a store's tree subvolume on btrfs (docs/subvolumes.md) for a generated tree of
# FILES files (issue 31's row "checkout of an 80k-file snapshot <= 0.05 s, and <= 2x that for
# 500k files"): the first checkout (which builds the tree), then RUNS checkouts from the tree
# against `btrfs subvolume snapshot` of the tree (the floor: the same one ioctl, nothing else),
# alternating, and the first `status` of one of them (its `hashed` must be 0).
#
#   sudo bench/tree-checkout.sh                   # 500,000 files
#   sudo env FILES=80000 RUNS=3 bench/tree-checkout.sh
#
# Mounts a fresh btrfs loop filesystem through scripts/mounts.sh (COWTREE_BTRFS_SIZE, default
# 24G, sparse) and always unmounts it. The tree is bench/gentree.py's with FILES files in FILES/16
# directories, no large files, median file 0.25 KiB (bench/scale.sh's trees). Wall time is taken
# by the shell around each command, after a `sync`; the page cache stays warm.
#
# Environment: COWTREE=PATH (default: cargo build --release, target/release/cowtree), FILES=N
# (default 500000), RUNS=N (default 5). Results also go to bench/out/tree-checkout-<UTC>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "tree-checkout: $*" >&2; exit 1; }
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "needs root to mount btrfs: sudo bench/tree-checkout.sh"
FILES=${FILES:-500000}
RUNS=${RUNS:-5}
[[ $RUNS =~ ^[1-9][0-9]*$ && $FILES =~ ^[1-9][0-9]*$ ]] || die "FILES and RUNS must be positive integers"
for tool in btrfs python3 bc /usr/bin/time; do command -v "$tool" >/dev/null || die "$tool is needed"; done
# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh
C=$COWTREE

mkdir -p bench/out
RESULTS="$ROOT/bench/out/tree-checkout-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap cowtree_mounts_down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
COWTREE_BTRFS_SIZE=${COWTREE_BTRFS_SIZE:-24G} cowtree_mounts_up btrfs >&2
B=${COWTREE_TEST_BTRFS:-}
[[ -n "$B" ]] || die "could not mount btrfs (see above)"
export HOME="$B/home" XDG_STATE_HOME="$B/home/state" XDG_DATA_HOME="$B/home/data" XDG_CONFIG_HOME="$B/home/config"
mkdir -p "$HOME"

say "tree-checkout: $(date -u +%FT%TZ), $C ($("$C" --version)), $FILES files, $RUNS runs"
say "tree-checkout: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/gentree.py "$B/src" --files "$FILES" --dirs $((FILES / 16)) --large 0 --median 0.25 |
  tee -a "$RESULTS" >&2
ID=$("$C" --store "$B/store" --json snapshot "$B/src" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# secs CMD...: wall seconds of CMD (output discarded), after a sync.
secs() {
  local s e
  sync
  s=$(date +%s.%N)
  # (set -e does not reach into the command substitution this runs in.)
  "$@" >/dev/null || { echo "tree-checkout: failed: $*" >&2; exit 1; }
  e=$(date +%s.%N)
  echo "$e - $s" | bc
}
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

t=$(secs "$C" --store "$B/store" -q checkout "$ID" "$B/first")
say "first checkout (builds the tree): $t s"
TREE="$B/store/trees/$ID"
[[ -d "$TREE" ]] || die "no tree subvolume at $TREE after the first checkout"
co=() fl=()
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then
    t=$(secs "$C" --store "$B/store" -q checkout "$ID" "$B/wt$r")
    co+=("$t")
    t=$(secs btrfs subvolume snapshot "$TREE" "$B/snap$r")
    fl+=("$t")
  else
    t=$(secs btrfs subvolume snapshot "$TREE" "$B/snap$r")
    fl+=("$t")
    t=$(secs "$C" --store "$B/store" -q checkout "$ID" "$B/wt$r")
    co+=("$t")
  fi
done
say "checkout from the tree: median $(median "${co[@]}") s (runs: ${co[*]})"
say "floor, btrfs subvolume snapshot of the tree: median $(median "${fl[@]}") s (runs: ${fl[*]})"
/usr/bin/time -f %e -o "$B/status.t" "$C" --store "$B/store" --json status "$B/wt1" >"$B/status.json"
say "first status of a checkout: $(cat "$B/status.t") s, hashed $(python3 -c 'import json, sys; print(json.load(sys.stdin)["hashed"])' <"$B/status.json") files"
say "tree-checkout: load after: $(cut -d' ' -f1-3 /proc/loadavg)"
