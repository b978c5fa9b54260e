# shellcheck shell=bash
# What bench scripts share. Source it after setting ROOT (the repository root); then:
#   bench_start NAME "$@"  # die/note prefixed by NAME; -h/--help prints the script's header
#                        # comment and exits; refuses to run but as root on Linux
#   bench_results NAME   # RESULTS=bench/out/NAME-<UTC date>.txt, emptied; say() appends to it
#   bench_mount FS SIZE  # one fresh xfs or btrfs loop filesystem of SIZE (sparse) through
#                        # scripts/mounts.sh, unmounted on exit; sets MNT; keeps the binary's
#                        # own state (HOME, XDG_*) inside MNT/home; the loop device reads
#                        # and writes its image with direct I/O (LOOP_DIO=0: through the
#                        # page cache), so that the device behaves as a disk would; the
#                        # mode is written to RESULTS when bench_results ran before;
#                        # sets LOOP_DEV (the device's name, e.g. loop0)
#   bench_quiesce [cold]  # MNT synced, frozen and thawed; with "cold", then the page, dentry
#                        # and inode caches dropped
#   median               # the median of the numbers on stdin, one per line (with an even
#                        # count, the lower of the two middle ones)
#   bench_two_builds     # OLD and NEW, the two binaries a comparison alternates: required,
#                        # made absolute, checked to be executables
#   bench_real_trees     # REAL ("NAME=DIR ...", the trees bench/realpaths.py copies the
#                        # paths of) defaulted to /usr and, when they exist, the Rust
#                        # toolchains and crate sources under /root; REAL=none: empty
#   bench_install CMD PKG  # CMD on PATH, else PKG installed (scripts/mounts.sh's
#                        # cowtree_apt_install); returns 1 (with a note) when it cannot be,
#                        # so the caller says what goes missing
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

bench_real_trees() {
  if [[ -z ${REAL:-} ]]; then
    REAL="usr=/usr"
    if [[ -d /root/.rustup/toolchains ]]; then REAL+=" toolchains=/root/.rustup/toolchains"; fi
    if [[ -d /root/.cargo/registry/src ]]; then REAL+=" registry=/root/.cargo/registry/src"; fi
  fi
  if [[ $REAL == none ]]; then REAL=""; fi
}

bench_two_builds() {
  [[ -n ${OLD:-} && -n ${NEW:-} ]] || die "set OLD and NEW to the two binaries"
  OLD=$(realpath "$OLD")
  NEW=$(realpath "$NEW")
  local b
  for b in "$OLD" "$NEW"; do [[ -x $b ]] || die "$b is not an executable"; done
}
note() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }

bench_install() {
  command -v "$1" >/dev/null && return 0
  note "installing $2 (for $1)"
  cowtree_apt_install "$2" && command -v "$1" >/dev/null && return 0
  note "could not install $2: $1 is missing"
  return 1
}

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
  # With buffered I/O (the loop driver's default) every read of the device is also a read of
  # the image file through the page cache, whose readahead turns reads in the order the files
  # were written into fewer, larger reads of the disk below: from cold caches, a reader that
  # follows that order (find | cat) is favoured over one that does not, by more as the tree
  # grows. Direct I/O passes each request to the disk as it is, as a real device would see it.
  local dev dio msg
  case ${LOOP_DIO:-1} in
    0 | 1) ;;
    *) die "LOOP_DIO must be 0 or 1, not ${LOOP_DIO}" ;;
  esac
  dev=$(findmnt -n -v -o SOURCE --target "$MNT") || die "no device for $MNT"
  if [[ ${LOOP_DIO:-1} == 1 ]]; then
    losetup --direct-io=on "$dev" || die "losetup --direct-io=on $dev failed (LOOP_DIO=0 runs without)"
  fi
  LOOP_DEV=${dev#/dev/}
  dio=$(cat "/sys/block/$LOOP_DEV/loop/dio") || die "$dev: no loop/dio in sysfs"
  msg="$fs on $dev (image on $(findmnt -n -o FSTYPE --target "$COWTREE_MOUNT_WORK" || echo '?')), direct I/O to its image: $dio"
  if [[ -n ${RESULTS:-} ]]; then say "$BENCH_NAME: $msg"; else note "$msg"; fi
  export HOME=$MNT/home XDG_CONFIG_HOME=$MNT/home/config XDG_STATE_HOME=$MNT/home/state \
    XDG_DATA_HOME=$MNT/home/data XDG_CACHE_HOME=$MNT/home/cache
  mkdir -p "$XDG_CONFIG_HOME"
  unset COWTREE_STORE
}

bench_quiesce() {
  cowtree_quiesce "$MNT" || true
  if [[ ${1:-} == cold ]]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
