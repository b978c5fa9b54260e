# shellcheck shell=bash
# What bench scripts share. Source it after setting ROOT (the repository root); then:
#   bench_start NAME "$@"  # die/note prefixed by NAME; -h/--help prints the script's header
#                        # comment and exits; refuses to run but as root on Linux
#   bench_results NAME   # RESULTS=bench/out/NAME-<UTC date>.txt, emptied; say() appends to it
#   bench_mount FS SIZE  # one fresh xfs or btrfs loop filesystem of SIZE (sparse) through
#                        # scripts/mounts.sh, unmounted on exit; sets MNT; keeps the binary's
#                        # own state (HOME, XDG_*) inside MNT/home
# (Other bench scripts still carry their own copy of this; they can move here one by one.)

# shellcheck source=scripts/mounts.sh
source "$ROOT/scripts/mounts.sh"

bench_start() {
  BENCH_NAME=$1
  shift
  if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
  fi
  [[ "$(id -u)" == 0 ]] || die "needs root (loop mounts; dropping caches)"
  [[ "$(uname -s)" == Linux ]] || die "Linux only"
}

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
note() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

bench_results() {
  mkdir -p "$ROOT/bench/out"
  RESULTS="$ROOT/bench/out/$1-$(date -u +%Y%m%dT%H%M%SZ).txt"
  : >"$RESULTS"
}

# say TEXT...: prints TEXT and appends it to RESULTS.
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

bench_mount() {
  local fs=$1 size=$2
  trap 'cowtree_mounts_down >&2 || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  case $fs in
    xfs) COWTREE_XFS_SIZE=$size cowtree_mounts_up xfs >&2; MNT=${COWTREE_TEST_XFS:-} ;;
    btrfs) COWTREE_BTRFS_SIZE=$size cowtree_mounts_up btrfs >&2; MNT=${COWTREE_TEST_BTRFS:-} ;;
    *) die "no such filesystem: $fs" ;;
  esac
  [[ -n $MNT ]] || die "no $fs mount"
  export HOME=$MNT/home XDG_CONFIG_HOME=$MNT/home/config XDG_STATE_HOME=$MNT/home/state \
    XDG_DATA_HOME=$MNT/home/data XDG_CACHE_HOME=$MNT/home/cache
  mkdir -p "$XDG_CONFIG_HOME"
  unset COWTREE_STORE
}
