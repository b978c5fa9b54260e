#!/usr/bin/env bash
# A real root filesystem, Debian bookworm's minbase (debootstrap), built once and cached as a
# tarball, for `cowtree clone --archive` (issue 68) and bench/archive.sh.
#
#   scripts/rootfs.sh tarball   # the cached tarball (built when missing); prints its path
#   scripts/rootfs.sh test      # the test below (.ci/run runs it)
#
# The tarball is $COWTREE_ROOTFS_CACHE/debian-bookworm-minbase.tar (default: $TARGET/rootfs,
# $TARGET being $CARGO_TARGET_DIR or target/), made by `debootstrap --variant=minbase bookworm`
# from $COWTREE_DEBIAN_MIRROR (default http://deb.debian.org/debian) and kept with owners,
# modes, device nodes, extended attributes and ACLs (GNU tar --xattrs --acls). Building it
# takes a few minutes; debootstrap is installed with apt-get when missing. Where the mirror
# cannot be reached and there is no tarball yet, the test prints "skipped: ..." and exits 0;
# with COWTREE_TEST_REQUIRE_ROOTFS=1 (.ci/run) that fails instead, as not being root does.
#
# The test, as root, on a fresh loop-mounted XFS with reflink=1 (scripts/mounts.sh):
#  1. the tarball unpacked to SRC, with a few things Debian's tree lacks added (an access and
#     a default ACL, user.* and trusted.* attributes, a file capability, a FIFO, a socket,
#     a hardlinked pair across directories, a set-group-ID directory, a symlink of another
#     owner with a trusted.* attribute of its own);
#  2. `cowtree clone --archive SRC CLONE` and `cp -a --reflink=always SRC CP`, then every path
#     of the two compared field by field (scripts/rootfs_compare.py): type, mode, uid, gid, which
#     paths share an inode (the groups, not the numbers), nlink, rdev, size, mtime in ns,
#     symlink target, `getfattr -d -m - -h` and `getfacl -P` output; any difference fails, and
#     so does a CLONE that differs from SRC the same way;
#  3. a few of the largest files of CLONE share every extent (FIEMAP's shared flag through
#     `filefrag -v`), and a write to each leaves SRC's bytes as they were;
#  4. `chroot CLONE /bin/sh -c 'dpkg -l | wc -l; ls -l /usr/bin/passwd; id'` succeeds, and
#     /usr/bin/passwd is set-user-ID root in the clone;
#  6. (run before 5) SRC through the store and a directory remote: `snapshot --archive`,
#     `push`, `pull` into a second store, `checkout --archive`: every field as SRC's but times
#     (scripts/rootfs_compare.py --checkout), data shared, and the chroot of 4 works there;
#     `show --json` of it recorded again by `snapshot --from-json` gives the same id;
#  5. as an unprivileged user (made with `useradd -M -N`, removed after), `cowtree clone
#     --archive --json` of a small tree with root-owned files and a character device exits 0,
#     prints one "not kept" warning per kind, and the JSON's not_kept counts match the tree.
# Mounts, loop devices and the user are removed on exit, whatever happened.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${COWTREE_ROOTFS_CACHE:-$TARGET/rootfs}
MIRROR=${COWTREE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
TARBALL=$CACHE/debian-$SUITE-minbase.tar

note() { echo "rootfs: $*" >&2; }
die() { note "$*"; exit 1; }

# skip WHY: prints the skip line (and logs it for scripts/test.sh), or fails under
# COWTREE_TEST_REQUIRE_ROOTFS=1.
skip() {
  if [[ "${COWTREE_TEST_REQUIRE_ROOTFS:-}" == 1 ]]; then die "COWTREE_TEST_REQUIRE_ROOTFS=1, but: $*"; fi
  echo "skipped: scripts/rootfs.sh test: $*"
  if [[ -n "${COWTREE_TEST_SKIP_LOG:-}" ]]; then echo "skipped: scripts/rootfs.sh test: $*" >>"$COWTREE_TEST_SKIP_LOG"; fi
  exit 0
}

mirror_reachable() { # the mirror's host answers on its port within 20 s
  local hostport=${MIRROR#*://}
  hostport=${hostport%%/*}
  local host=${hostport%%:*} port=80
  [[ $hostport == *:* ]] && port=${hostport##*:}
  [[ $MIRROR == https://* && $hostport != *:* ]] && port=443
  timeout 20 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null
}

# Builds $TARBALL (returns 2 when the mirror cannot be reached, 1 on any other failure).
build_tarball() {
  [[ $EUID == 0 ]] || { note "building the root filesystem needs root"; return 1; }
  if ! command -v debootstrap >/dev/null; then
    note "installing debootstrap"
    # shellcheck source=scripts/mounts.sh
    source scripts/mounts.sh
    cowtree_apt_install debootstrap || { mirror_reachable || return 2; return 1; }
  fi
  mirror_reachable || { note "$MIRROR cannot be reached"; return 2; }
  mkdir -p "$CACHE"
  local dir
  dir=$(mktemp -d "$CACHE/build.XXXXXX")
  note "debootstrap --variant=minbase $SUITE into $dir (from $MIRROR; a few minutes, once)"
  local started=$SECONDS
  if ! debootstrap --variant=minbase "$SUITE" "$dir/root" "$MIRROR" >"$dir/debootstrap.log" 2>&1; then
    tail -20 "$dir/debootstrap.log" >&2
    # debootstrap mounts nothing it leaves behind on failure, but make sure before removing.
    umount -R "$dir/root/proc" "$dir/root/sys" 2>/dev/null || true
    rm -rf "$dir"
    mirror_reachable || return 2
    return 1
  fi
  # What debootstrap leaves that differs from run to run and means nothing to a copy.
  rm -rf "$dir/root/var/cache/apt/archives/"*.deb "$dir/root/debootstrap"
  tar --xattrs --xattrs-include='*' --acls --numeric-owner -cpf "$dir/root.tar" -C "$dir/root" .
  mv "$dir/root.tar" "$TARBALL"
  rm -rf "$dir"
  note "built $TARBALL ($(du -h "$TARBALL" | cut -f1)) in $((SECONDS - started)) s"
}

# Prints the tarball's path, building it when missing.
tarball() {
  if [[ ! -s $TARBALL ]]; then
    local rc=0
    build_tarball || rc=$?
    ((rc == 0)) || return "$rc"
  fi
  echo "$TARBALL"
}

TEST_USER=""
cleanup() {
  if [[ -n $TEST_USER ]]; then userdel "$TEST_USER" 2>/dev/null || note "could not remove the user $TEST_USER"; fi
  cowtree_mounts_down >&2 || true
}

# Everything SRC's Debian tree has few or none of, so that each field can differ.
add_extras() {
  local src=$1
  mkdir -p "$src/srv/extras/shared"
  setfacl -m u:1234:rwx,g:2345:rx "$src/srv/extras/shared"
  setfacl -d -m u:1234:rwx "$src/srv/extras/shared"
  printf 'acl\n' >"$src/srv/extras/shared/file"
  setfacl -m u:1235:r "$src/srv/extras/shared/file"
  printf 'attrs\n' >"$src/srv/extras/attrs"
  setfattr -n user.origin -v cache "$src/srv/extras/attrs"
  setfattr -n trusted.note -v root-only "$src/srv/extras/attrs"
  # cap_net_raw+ep, as iputils' ping carries it.
  cp -p "$src/usr/bin/true" "$src/srv/extras/ping-like"
  setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$src/srv/extras/ping-like"
  mkfifo -m 0620 "$src/srv/extras/fifo"
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$src/srv/extras/sock"
  mknod -m 0640 "$src/srv/extras/disk" b 7 200
  ln "$src/srv/extras/attrs" "$src/usr/local/attrs-too"
  mkdir -m 2775 "$src/srv/extras/setgid"
  # A symlink's own attribute (trusted.*: user.* cannot be set on a symlink), owned by another.
  ln -s attrs "$src/srv/extras/link"
  setfattr -h -n trusted.link-note -v own "$src/srv/extras/link"
  chown -h 1234:2345 "$src/srv/extras/link"
  chown -R 1234:2345 "$src/srv/extras/setgid" "$src/srv/extras/shared/file"
  touch -h -d '2001-02-03 04:05:06.123456789' "$src/srv/extras/attrs" "$src/srv/extras/fifo"
}

run_test() {
  [[ "$(uname -s)" == Linux ]] || skip "not Linux"
  [[ $EUID == 0 ]] || skip "not root (loop mounts, owners, device nodes, chroot)"
  local tb rc=0
  tb=$(tarball) || rc=$?
  ((rc != 2)) || skip "$MIRROR cannot be reached and there is no cached $TARBALL"
  ((rc == 0)) || die "could not build the root filesystem (above)"
  local cowtree=${COWTREE:-}
  if [[ -z $cowtree ]]; then
    note "building cowtree (cargo build -p cowtree-cli)"
    cargo build -q -p cowtree-cli --bin cowtree
    cowtree=$TARGET/debug/cowtree
  fi
  [[ -x $cowtree ]] || die "$cowtree is not an executable"
  # shellcheck source=scripts/mounts.sh
  source scripts/mounts.sh
  if ! command -v setfacl >/dev/null || ! command -v getfattr >/dev/null; then
    cowtree_apt_install acl attr || die "acl and attr are needed"
  fi
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  COWTREE_XFS_SIZE=4G cowtree_mounts_up xfs >&2
  local mnt=${COWTREE_TEST_XFS:-}
  [[ -n $mnt ]] || die "no XFS mount (scripts/mounts.sh)"
  local src=$mnt/src clone=$mnt/clone cpd=$mnt/cp started=$SECONDS
  # The binary, where the unprivileged user below may run it.
  install -m 0755 "$cowtree" "$mnt/cowtree"
  cowtree=$mnt/cowtree

  # 1. SRC.
  mkdir "$src"
  tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf "$tb" -C "$src"
  add_extras "$src"
  note "SRC: $(find "$src" | wc -l) paths, $(du -sh "$src" | cut -f1) (unpacked in $((SECONDS - started)) s)"

  # 2. The clone and cp's copy, every field compared.
  local t0=$SECONDS
  "$cowtree" clone --archive --json "$src" "$clone" >"$mnt/clone.json" 2>"$mnt/clone.err" ||
    { cat "$mnt/clone.err" >&2; die "cowtree clone --archive failed"; }
  note "cowtree clone --archive: $((SECONDS - t0)) s; $(tr -d '\n' <"$mnt/clone.json" | head -c 2000)"
  if [[ -s "$mnt/clone.err" ]]; then cat "$mnt/clone.err" >&2; die "cowtree clone --archive as root printed warnings"; fi
  python3 - "$mnt/clone.json" <<'PY' || die "the clone's report is not what a root filesystem's archive clone reports"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["method"] == "per-file", r
assert r["copied"] == 0 and r["cloned"] == r["files"] > 1000, r
assert r["not_kept"] == {"ownership": 0, "xattr": 0, "acl": 0, "links": 0, "special": 0}, r
assert r["hardlinks"] >= 1 and r["special_made"] >= 3, r
PY
  cp -a --reflink=always "$src" "$cpd"
  python3 scripts/rootfs_compare.py "$clone" "$cpd" "$src" >&2 ||
    die "cowtree clone --archive differs from cp -a --reflink=always (above)"
  (cd "$src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$mnt/src.sums"
  (cd "$clone" && sha256sum --quiet -c "$mnt/src.sums") >&2 || die "a file of the clone has other bytes than SRC's"

  # 3. Data shared: every extent of the largest files is shared (with SRC and cp's copy).
  local big f
  mapfile -t big < <(cd "$clone" && find . -type f -size +1M -printf '%s %P\n' | sort -rn | head -4 | cut -d' ' -f2-)
  ((${#big[@]} >= 3)) || die "fewer than 3 files over 1 MiB in the clone"
  for f in "${big[@]}"; do
    filefrag -v "$clone/$f" >"$mnt/filefrag.out"
    local extents shared
    extents=$(grep -cE '^ *[0-9]+:' "$mnt/filefrag.out" || true)
    shared=$(grep -E '^ *[0-9]+:' "$mnt/filefrag.out" | grep -c shared || true)
    ((extents > 0 && shared == extents)) || { cat "$mnt/filefrag.out" >&2; die "$f: $shared of $extents extents shared"; }
    note "$f: $(stat -c %s "$clone/$f") bytes, all $extents extent(s) shared"
  done

  # 4. The clone is a system that runs: a shell, dpkg's database, passwd set-user-ID root.
  local out
  out=$(chroot "$clone" /bin/sh -c 'dpkg -l | wc -l; ls -ln /usr/bin/passwd; id -u') ||
    die "chroot $clone /bin/sh failed: $out"
  note "chroot: $(tr '\n' '|' <<<"$out")"
  local lines
  lines=$(head -1 <<<"$out")
  ((lines > 50)) || die "dpkg -l in the clone listed $lines lines"
  grep -q '^-rwsr-xr-x 1 0 0 ' <<<"$out" || die "/usr/bin/passwd in the clone is not set-user-ID root: $out"

  # 3 again: a write to the clone's files leaves SRC alone (after the chroot: these are
  # libraries the shell may need).
  for f in "${big[@]}"; do
    printf 'written through the clone' | dd of="$clone/$f" bs=1 seek=4096 conv=notrunc status=none
    printf 'appended' >>"$clone/$f"
  done
  (cd "$src" && sha256sum --quiet -c "$mnt/src.sums") >&2 || die "a write to the clone changed SRC"
  for f in "${big[@]}"; do
    cmp -s "$src/$f" "$clone/$f" && die "$f: the write did not reach the clone"
  done
  note "writes to ${#big[@]} files of the clone left SRC's bytes as they were"

  # 6. Through the store and a remote: SRC recorded by `snapshot --archive`, pushed to a
  #    directory remote, pulled into a second store and checked out with `--archive` equals
  #    SRC in every field but times (a snapshot records none: docs/store.md), shares its data,
  #    and runs in a chroot. HOME and XDG_* in the mount: nothing of root's own is touched.
  local home=$mnt/home co=$mnt/checkout id
  mkdir -p "$home" "$mnt/remote"
  local -a as_home=(env HOME="$home" XDG_STATE_HOME="$home/state" XDG_DATA_HOME="$home/data" XDG_CONFIG_HOME="$home/config")
  t0=$SECONDS
  id=$("${as_home[@]}" "$cowtree" snapshot --archive --store "$mnt/store1" "$src") || die "snapshot --archive of SRC failed"
  local s
  for s in store1 store2; do
    "${as_home[@]}" "$cowtree" remote add --quiet --in-store --store "$mnt/$s" shared "file://$mnt/remote" ||
      die "remote add in $mnt/$s failed"
  done
  "${as_home[@]}" "$cowtree" push --quiet --store "$mnt/store1" --remote shared "$id" || die "push of $id failed"
  "${as_home[@]}" "$cowtree" pull --quiet --store "$mnt/store2" --remote shared "$id" || die "pull of $id failed"
  "${as_home[@]}" "$cowtree" checkout --archive --store "$mnt/store2" "$id" "$co" >&2 2>"$mnt/checkout.err" ||
    { cat "$mnt/checkout.err" >&2; die "checkout --archive of $id failed"; }
  if [[ -s "$mnt/checkout.err" ]]; then cat "$mnt/checkout.err" >&2; die "checkout --archive as root printed warnings"; fi
  note "snapshot --archive, push, pull, checkout --archive: $((SECONDS - t0)) s"
  # Its JSON form (docs/manifest.md, version 2) records the same snapshot again.
  local again
  "${as_home[@]}" "$cowtree" show --json --store "$mnt/store2" "$id" >"$mnt/snapshot.json" || die "show --json of $id failed"
  again=$("${as_home[@]}" "$cowtree" snapshot --from-json "$mnt/snapshot.json" --store "$mnt/store1") ||
    die "snapshot --from-json of $id's JSON failed"
  [[ $again == "$id" ]] || die "snapshot --from-json of $id's JSON recorded $again"
  note "show --json | snapshot --from-json: the same id ($(stat -c %s "$mnt/snapshot.json") bytes of JSON)"
  python3 scripts/rootfs_compare.py --checkout "$src" "$co" >&2 ||
    die "the checkout of SRC's snapshot, pushed and pulled, differs from SRC (above)"
  (cd "$co" && sha256sum --quiet -c "$mnt/src.sums") >&2 || die "a file of the checkout has other bytes than SRC's"
  filefrag -v "$co/${big[0]}" >"$mnt/filefrag.out"
  grep -qE '^ *[0-9]+:.*shared' "$mnt/filefrag.out" || { cat "$mnt/filefrag.out" >&2; die "${big[0]}: the checkout shares no extent with the store"; }
  out=$(chroot "$co" /bin/sh -c 'dpkg -l | wc -l; ls -ln /usr/bin/passwd') || die "chroot $co /bin/sh failed: $out"
  grep -q '^-rwsr-xr-x 1 0 0 ' <<<"$out" || die "/usr/bin/passwd in the checkout is not set-user-ID root: $out"
  note "the checkout of a pushed and pulled snapshot --archive runs in a chroot: $(tr '\n' '|' <<<"$out")"

  # 5. Unprivileged: what cannot be kept is said, counted, and is not an error.
  TEST_USER=cowtree-rfs-$$
  useradd -M -N -s /bin/sh "$TEST_USER"
  local uid gid small=$mnt/small work=$mnt/unpriv
  uid=$(id -u "$TEST_USER")
  gid=$(id -g "$TEST_USER")
  mkdir -p "$small/dir" "$work/home"
  chown "$uid:$gid" "$work" "$work/home"
  printf 'a\n' >"$small/dir/a"
  ln "$small/dir/a" "$small/b"
  printf 'c\n' >"$small/c"
  cp -p "$src/usr/bin/true" "$small/capable"
  setfattr -n user.kept -v yes "$small/c"
  ln -s c "$small/link"
  mknod -m 0600 "$small/null" c 1 3
  mkfifo -m 0644 "$small/fifo"
  chown -R -h 0:0 "$small"
  # After the chown, which drops a file capability. Only root may set one.
  setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$small/capable"
  # Every entry made (not the device node) is root's: none keeps its owner.
  local made
  made=$(find "$small" ! -type c ! -path "$small/b" | wc -l)
  setpriv --reuid="$uid" --regid="$gid" --clear-groups env HOME="$work/home" \
    XDG_STATE_HOME="$work/home/state" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config" \
    "$cowtree" clone --archive --json "$small" "$work/clone" >"$work/json" 2>"$work/err" ||
    { cat "$work/err" >&2; die "clone --archive as $TEST_USER exited non-zero"; }
  note "as $TEST_USER: $(tr -d '\n ' <"$work/json" | grep -o '"not_kept":{[^}]*}')"
  cat "$work/err" >&2
  python3 - "$made" "$work/err" "$work/json" <<'PY' || die "the unprivileged clone's report or warnings are wrong (above)"
import json, sys
made, err = int(sys.argv[1]), open(sys.argv[2]).read()
r = json.load(open(sys.argv[3]))
want = {"ownership": made, "xattr": 1, "acl": 0, "links": 0, "special": 1}
assert r["not_kept"] == want, (r["not_kept"], want)
assert r["hardlinks"] == 1 and r["special_made"] == 1, r
lines = [l for l in err.splitlines() if "not kept" in l]
assert len(lines) == 3, lines
assert any(l.startswith(f"cowtree: warning: ownership not kept for {made} entries") for l in lines), lines
assert any(l.startswith("cowtree: warning: extended attributes not kept for 1 entry") for l in lines), lines
assert any(l.startswith("cowtree: warning: 1 device node not kept") for l in lines), lines
PY
  [[ "$(stat -c %u "$work/clone/c")" == "$uid" && "$(getfattr --absolute-names --only-values -n user.kept "$work/clone/c")" == yes ]] ||
    die "the unprivileged clone's file c is not the user's with its user.kept attribute"
  [[ ! -e "$work/clone/null" && -p "$work/clone/fifo" ]] || die "the unprivileged clone made the device node, or not the FIFO"
  userdel "$TEST_USER"
  TEST_USER=""
  echo "rootfs: ok: cowtree clone --archive of Debian $SUITE minbase equals cp -a --reflink=always field by field, shares data, runs in a chroot; so does its snapshot --archive pushed, pulled and checked out; unprivileged, what it could not keep is counted and said ($((SECONDS - started)) s)"
}

case ${1:-} in
  tarball) tarball ;;
  test) run_test ;;
  *) die "usage: scripts/rootfs.sh tarball|test" ;;
esac
