# shellcheck shell=bash
# Real filesystems for tests and benchmarks. Source this file, then:
#   cowtree_mounts_up [xfs xfs2 btrfs btrfs_user_rm small tmpfs ext4]  # exports COWTREE_TEST_*
#   cowtree_mounts_down                             # unmounts, detaches loops, removes images
#   cowtree_quiesce MNT                             # sync, then freeze and thaw MNT
# Each call makes a fresh directory, so concurrent runs never share a mount or an image.
# COWTREE_XFS_SIZE sets the size of the main XFS image (default 4G; the images are sparse),
# COWTREE_BTRFS_SIZE that of each btrfs image (default 1G), COWTREE_EXT4_SIZE that of the ext4
# image (default 256M).
# Mounting needs root, Linux and /dev/loop-control; otherwise (or with COWTREE_TEST_NO_MOUNT=1)
# nothing is mounted and only COWTREE_TEST_NOCOW is exported.

COWTREE_MOUNT_WORK=""
COWTREE_MOUNT_POINTS=()
COWTREE_LOOP_DEVS=()
_COWTREE_FREEZING=""

cowtree_can_mount() {
  [[ "${COWTREE_TEST_NO_MOUNT:-}" != 1 ]] || { echo "mounts: COWTREE_TEST_NO_MOUNT=1"; return 1; }
  [[ "$(uname -s)" == Linux ]] || { echo "mounts: not Linux"; return 1; }
  [[ "$(id -u)" == 0 ]] || { echo "mounts: not root"; return 1; }
  [[ -e /dev/loop-control ]] || { echo "mounts: no /dev/loop-control"; return 1; }
  return 0
}

cowtree_ensure_tools() {
  local need=()
  command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
  command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
  command -v filefrag >/dev/null || need+=(e2fsprogs)
  command -v strace >/dev/null || need+=(strace)
  [[ -x /usr/bin/time ]] || need+=(time) # a child's own peak RSS (crates/cowtree/tests/scale.rs)
  if ((${#need[@]})); then
    echo "mounts: installing ${need[*]}"
    cowtree_apt_install "${need[@]}"
  fi
}

# cowtree_apt_install PKG...: the packages installed with apt-get (its errors on stderr);
# returns non-zero when they could not be.
cowtree_apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "mounts: cannot install $*: no apt-get" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# _cowtree_mount_image NAME SIZE MKFS... : sparse image, loop device, mount (with the options
# in _COWTREE_MOUNT_OPTS, if any); sets COWTREE_LAST_MOUNT (not echoed: a command substitution
# would lose the bookkeeping arrays).
_COWTREE_MOUNT_OPTS=""
_cowtree_mount_image() {
  local name=$1 size=$2
  shift 2
  local img="$COWTREE_MOUNT_WORK/$name.img" mnt="$COWTREE_MOUNT_WORK/$name"
  truncate -s "$size" "$img"
  # TEST_DIR/TEST_DEV/QA_CHECK_FS let mkfs.xfs make filesystems under 300 MB (the small one).
  TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 "$@" "$img" >/dev/null
  local dev
  dev=$(losetup -f --show "$img")
  COWTREE_LOOP_DEVS+=("$dev")
  mkdir -p "$mnt"
  if [[ -n "$_COWTREE_MOUNT_OPTS" ]]; then
    mount -o "$_COWTREE_MOUNT_OPTS" "$dev" "$mnt"
  else
    mount "$dev" "$mnt"
  fi
  COWTREE_MOUNT_POINTS+=("$mnt")
  COWTREE_LAST_MOUNT="$mnt"
}

cowtree_mounts_up() {
  local want=("$@")
  ((${#want[@]})) || want=(xfs xfs2 btrfs btrfs_user_rm small tmpfs ext4)
  local base="${COWTREE_TEST_TMPDIR:-${TMPDIR:-/tmp}}"
  COWTREE_MOUNT_WORK=$(mktemp -d "$base/cowtree-mounts.XXXXXX")
  # Searchable by all: tests also run as an unprivileged user (cowtree-testutil's user).
  chmod 755 "$COWTREE_MOUNT_WORK"
  mkdir -p "$COWTREE_MOUNT_WORK/nocow"
  export COWTREE_TEST_NOCOW="$COWTREE_MOUNT_WORK/nocow"
  cowtree_can_mount || return 0
  cowtree_ensure_tools
  local fs mnt
  COWTREE_LAST_MOUNT=""
  for fs in "${want[@]}"; do
    case $fs in
      xfs) _cowtree_mount_image xfs "${COWTREE_XFS_SIZE:-4G}" mkfs.xfs -q -m reflink=1
        export COWTREE_TEST_XFS="$COWTREE_LAST_MOUNT" ;;
      xfs2) _cowtree_mount_image xfs2 1G mkfs.xfs -q -m reflink=1
        export COWTREE_TEST_XFS2="$COWTREE_LAST_MOUNT" ;;
      btrfs) _cowtree_mount_image btrfs "${COWTREE_BTRFS_SIZE:-1G}" mkfs.btrfs -q
        export COWTREE_TEST_BTRFS="$COWTREE_LAST_MOUNT" ;;
      # A second btrfs, where unprivileged users may delete subvolumes in O(1) (the option
      # belongs to the filesystem: a second mount of the first one could not differ).
      btrfs_user_rm) _COWTREE_MOUNT_OPTS=user_subvol_rm_allowed
        _cowtree_mount_image btrfs_user_rm "${COWTREE_BTRFS_SIZE:-1G}" mkfs.btrfs -q
        _COWTREE_MOUNT_OPTS=""
        export COWTREE_TEST_BTRFS_USER_RM="$COWTREE_LAST_MOUNT" ;;
      small) _cowtree_mount_image small 64M mkfs.xfs -q -m reflink=1
        export COWTREE_TEST_SMALL="$COWTREE_LAST_MOUNT" ;;
      # ext4 cannot reflink: the fallback to copying, on a filesystem users have.
      ext4) _cowtree_mount_image ext4 "${COWTREE_EXT4_SIZE:-256M}" mkfs.ext4 -q -F
        export COWTREE_TEST_EXT4="$COWTREE_LAST_MOUNT" ;;
      tmpfs) mnt="$COWTREE_MOUNT_WORK/tmpfs"; mkdir -p "$mnt"
        mount -t tmpfs -o size=512m tmpfs "$mnt"
        COWTREE_MOUNT_POINTS+=("$mnt")
        export COWTREE_TEST_TMPFS="$mnt" ;;
      *) echo "mounts: unknown filesystem $fs" >&2; return 1 ;;
    esac
  done
}

# Before a timed run: sync, then freeze and thaw MNT. A sync forces the log, but XFS goes on
# writing back the metadata of the run before (tens of thousands of new inodes) for seconds, on
# the cores the next run needs; a freeze waits for all of it. Returns 0 when MNT was frozen and
# thawed, 1 when it could not be frozen (synced only: background writeback may remain), 2 when
# it could not be thawed (cowtree_mounts_down tries again before it unmounts).
cowtree_quiesce() {
  local mnt=$1
  sync
  _COWTREE_FREEZING=$mnt
  if ! fsfreeze -f "$mnt" 2>/dev/null; then
    _COWTREE_FREEZING=""
    return 1
  fi
  if ! fsfreeze -u "$mnt"; then
    echo "mounts: could not thaw $mnt" >&2
    return 2
  fi
  _COWTREE_FREEZING=""
}

cowtree_mounts_down() {
  local mnt dev i
  # Interrupted while a filesystem was frozen: thaw it, or its unmount would block.
  if [[ -n "$_COWTREE_FREEZING" ]]; then
    fsfreeze -u "$_COWTREE_FREEZING" 2>/dev/null || true
    _COWTREE_FREEZING=""
  fi
  for ((i = ${#COWTREE_MOUNT_POINTS[@]} - 1; i >= 0; i--)); do
    mnt=${COWTREE_MOUNT_POINTS[$i]}
    # A test may leave immutable files behind; clear that so the unmount is not blocked.
    chattr -R -i "$mnt" 2>/dev/null || true
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || echo "mounts: could not unmount $mnt" >&2
  done
  for dev in "${COWTREE_LOOP_DEVS[@]}"; do
    losetup -d "$dev" 2>/dev/null || true
  done
  COWTREE_MOUNT_POINTS=()
  COWTREE_LOOP_DEVS=()
  if [[ -n "$COWTREE_MOUNT_WORK" && -d "$COWTREE_MOUNT_WORK" ]]; then
    chattr -R -i "$COWTREE_MOUNT_WORK/nocow" 2>/dev/null || true
    rm -rf "$COWTREE_MOUNT_WORK"
  fi
  COWTREE_MOUNT_WORK=""
}
