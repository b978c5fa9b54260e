#!/usr/bin/env bash
# Whole trees on btrfs (docs/subvolumes.md): the rows of issue 31's table that copy or delete
# a subvolume, against the tools a user would pick instead, as root and as an unprivileged user.
#
#   sudo bench/subvol.sh                      # all sections
#   sudo bench/subvol.sh clone delete         # some of them
#   sudo env RUNS=3 SCALE=0.1 bench/subvol.sh # a quick, small run
#
# Sections:
#   clone   `cowtree clone SRC DST` of a subvolume root holding the bench tree (one snapshot),
#           against `cp -a --reflink=always SRC DST` and the per-file clone of the same tree
#           (`cowtree clone --per-file`); as root, and as an unprivileged user who owns the tree.
#   delete  `cowtree subvolume delete` of such a copy against `rm -rf` of one: as root; as an
#           unprivileged user on a btrfs mounted without user_subvol_rm_allowed (where cowtree
#           removes the files, as rm does) and on one mounted with it (one ioctl).
# (Other sections, e.g. checkouts from a store's tree subvolume, add rows the same way.)
#
# Mounts two fresh btrfs loop filesystems through scripts/mounts.sh (`btrfs` without and
# `btrfs_user_rm` with user_subvol_rm_allowed; COWTREE_BTRFS_SIZE, default 8G, sparse) and always
# unmounts them; adds a throwaway user (useradd -M) and always removes it. The tree is
# bench/gentree.py's (seed 1, scale 1: about 80,000 files, 702 MiB) in a subvolume made with
# `btrfs subvolume create` (the reference tool; cowtree itself never runs btrfs-progs).
#
# Environment:
#   COWTREE=PATH  binary to measure (default: cargo build --release, target/release/cowtree)
#   RUNS=N        timed runs per tool (default 5); the median is reported
#   SCALE=F       tree size factor for bench/gentree.py --scale (default 1)
#   SEED=N        tree seed (default 1)
#
# Method: in each round every tool runs once, the order rotating from round to round; between
# runs the copy is removed (untimed) and the filesystem synced and frozen/thawed
# (scripts/mounts.sh cowtree_quiesce); the page cache stays warm. The first copy of each tool
# is compared with the source (names, types, sizes, modes, link targets). Wall time is taken by
# the shell around the command. Results are also written to bench/out/subvol-<UTC date>.txt.
# On a shared machine figures are loaded: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "subvol: $*" >&2; exit 1; }
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "needs root to mount btrfs and add a user: sudo bench/subvol.sh"
[[ "$(uname -s)" == Linux ]] || die "Linux only"
SECTIONS=("$@")
((${#SECTIONS[@]})) || SECTIONS=(clone delete)
for s in "${SECTIONS[@]}"; do
  case $s in clone | delete) ;; *) die "unknown section '$s' (clone, delete)" ;; esac
done
RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
SEED=${SEED:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
for tool in btrfs setpriv useradd userdel python3; do
  command -v "$tool" >/dev/null || die "$tool is needed"
done

# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh

mkdir -p bench/out
RESULTS="$ROOT/bench/out/subvol-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
BUSER=""
cleanup() {
  local rc=$?
  [[ -n "$BUSER" ]] && userdel "$BUSER" 2>/dev/null
  cowtree_mounts_down
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
COWTREE_BTRFS_SIZE=${COWTREE_BTRFS_SIZE:-8G} cowtree_mounts_up btrfs btrfs_user_rm >&2
[[ -n "${COWTREE_TEST_BTRFS:-}" && -n "${COWTREE_TEST_BTRFS_USER_RM:-}" ]] ||
  die "could not mount btrfs (see above)"
A=$COWTREE_TEST_BTRFS
B=$COWTREE_TEST_BTRFS_USER_RM
export HOME="$A/home" XDG_STATE_HOME="$A/home/state" XDG_DATA_HOME="$A/home/data"
mkdir -p "$HOME"

BUSER="cowtree-bench-$$"
useradd -M -N -g 65534 -s /usr/sbin/nologin "$BUSER"
BUID=$(id -u "$BUSER")
as_user() { setpriv --reuid="$BUID" --regid=65534 --clear-groups -- "$@"; }
chown "$BUID:65534" "$HOME"

say "subvol: $("$COWTREE" --version 2>/dev/null || echo cowtree), $(uname -r), $(nproc) cores"
say "subvol: load before: $(uptime)"

# A subvolume holding the bench tree at $1/src, owned by the user, so both identities may
# snapshot it (root may snapshot anything).
make_source() {
  local m=$1
  btrfs subvolume create "$m/src" >/dev/null
  python3 bench/gentree.py "$m/src" --scale "$SCALE" --seed "$SEED" >&2
  chown -hR "$BUID:65534" "$m/src"
  chown "$BUID:65534" "$m"
  sync
}

# Runs "$@" and prints its wall time in seconds; fails the bench when it fails.
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null 2>"$A/cmd.err" || { cat "$A/cmd.err" >&2; die "failed: $*"; }
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
}

declare -A SAMPLES=()
add() { SAMPLES[$1]="${SAMPLES[$1]:-} $2"; }
median() {
  printf '%s\n' ${SAMPLES[$1]} | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit; printf "%.4f %.4f %.4f %d\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR], NR }'
}
# row LABEL KEY REFKEY: median, min, max, and the ratio to REFKEY's median.
row() {
  local med min max n ref ratio
  read -r med min max n <<<"$(median "$2")"
  ref=$(median "$3" | cut -d' ' -f1)
  ratio=$(awk -v a="$med" -v b="$ref" 'BEGIN { printf "%.3f", a / b }')
  say "$(printf '%-58s %9s %9s %9s %9s %5s' "$1" "$med" "$min" "$max" "${ratio}x" "$n")"
}
header() {
  say ""
  say "$1"
  say "$(printf '%-58s %9s %9s %9s %9s %5s' tool median_s min_s max_s 'x ref' runs)"
}

# Same names, types, sizes, modes and link targets (what the first copy of each tool is held to).
listing() { (cd "$1" && find . -printf '%p %y %s %m %l\n' | LC_ALL=C sort); }
check_copy() {
  diff <(listing "$1") <(listing "$2") >/dev/null || die "$2 differs from $1"
}

# Removes a copy, untimed, whatever it is (a subvolume goes with its subvolume).
drop() {
  local p=$1
  [[ -e "$p" ]] || return 0
  if [[ "$(stat -c %i "$p")" == 256 ]]; then
    btrfs property set -ts "$p" ro false >/dev/null 2>&1 || true
    btrfs subvolume delete "$p" >/dev/null
  else
    rm -rf "$p"
  fi
}
settle() { cowtree_quiesce "$1" || true; }

# clone_round WHO MOUNT ROUND: one run of each tool, the order rotated by ROUND.
clone_round() {
  local who=$1 m=$2 r=$3 run
  local tools=(cowtree cp per-file)
  local n=${#tools[@]} i t dst
  for ((i = 0; i < n; i++)); do
    t=${tools[$(((i + r) % n))]}
    dst="$m/dst-$who-$t"
    drop "$dst"
    settle "$m"
    if [[ $who == root ]]; then run=(); else run=(as_user); fi
    case $t in
      cowtree) add "clone-$who-$t" "$(timed "${run[@]}" "$COWTREE" clone "$m/src" "$dst")" ;;
      cp) add "clone-$who-$t" "$(timed "${run[@]}" cp -a --reflink=always "$m/src" "$dst")" ;;
      per-file) add "clone-$who-$t" "$(timed "${run[@]}" "$COWTREE" clone --per-file "$m/src" "$dst")" ;;
    esac
    if ((r == 0)); then check_copy "$m/src" "$dst"; fi
  done
  for t in "${tools[@]}"; do drop "$m/dst-$who-$t"; done
}

section_clone() {
  local who r
  for who in root user; do
    for ((r = 0; r < RUNS; r++)); do clone_round "$who" "$A" "$r"; done
  done
  # The method cowtree chose, once (the rows below are of that method).
  local json
  json=$(as_user "$COWTREE" clone --json "$A/src" "$A/dst-check")
  say ""
  say "clone: cowtree's --json for the subvolume root: $(grep -o '"method":"[^"]*"' <<<"$json")"
  drop "$A/dst-check"
  for who in root user; do
    header "clone of a subvolume root ($(find "$A/src" | wc -l) entries), as $who"
    row "cowtree clone (one snapshot)" "clone-$who-cowtree" "clone-$who-cp"
    row "cp -a --reflink=always" "clone-$who-cp" "clone-$who-cp"
    row "cowtree clone --per-file" "clone-$who-per-file" "clone-$who-cp"
  done
}

# delete_round WHO MOUNT KEY ROUND: a snapshot of the source deleted by each tool.
delete_round() {
  local who=$1 m=$2 key=$3 r=$4 run
  local tools=(cowtree rm)
  local n=${#tools[@]} i t dst
  if [[ $who == root ]]; then run=(); else run=(as_user); fi
  for ((i = 0; i < n; i++)); do
    t=${tools[$(((i + r) % n))]}
    dst="$m/del-$t"
    drop "$dst"
    "${run[@]}" "$COWTREE" clone "$m/src" "$dst" >/dev/null
    settle "$m"
    case $t in
      cowtree) add "delete-$key-$t" "$(timed "${run[@]}" "$COWTREE" subvolume delete "$dst")" ;;
      rm) add "delete-$key-$t" "$(timed "${run[@]}" rm -rf "$dst")" ;;
    esac
    [[ ! -e "$dst" ]] || die "$dst is still there after $t"
  done
}

section_delete() {
  local r
  [[ -d "$B/src" ]] || make_source "$B"
  for ((r = 0; r < RUNS; r++)); do
    delete_round root "$A" root "$r"
    delete_round user "$A" user "$r"
    delete_round user "$B" user-rm "$r"
  done
  local how
  how=$(as_user "$COWTREE" clone "$A/src" "$A/del-check" >/dev/null &&
    as_user "$COWTREE" subvolume delete --json "$A/del-check")
  say ""
  say "delete: as the user without user_subvol_rm_allowed, cowtree says: $how"
  header "delete of a copy of the subvolume ($(find "$A/src" | wc -l) entries)"
  row "root: cowtree subvolume delete (one ioctl)" delete-root-cowtree delete-root-rm
  row "root: rm -rf" delete-root-rm delete-root-rm
  row "user, no user_subvol_rm_allowed: cowtree subvolume delete" delete-user-cowtree delete-user-rm
  row "user, no user_subvol_rm_allowed: rm -rf" delete-user-rm delete-user-rm
  row "user, user_subvol_rm_allowed: cowtree subvolume delete" delete-user-rm-cowtree delete-user-rm-rm
  row "user, user_subvol_rm_allowed: rm -rf" delete-user-rm-rm delete-user-rm-rm
}

make_source "$A"
for s in "${SECTIONS[@]}"; do "section_$s"; done
say ""
say "subvol: load after: $(uptime)"
say "subvol: results in $RESULTS"
