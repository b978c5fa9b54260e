#!/usr/bin/env bash
# The pool of spare worktrees (`cowtree git worktree pool`): what an agent waits for when a
# spare is ready, against `git worktree add` and against cowtree without a spare, on XFS, ext4
# and btrfs; what a refill costs; what 4 spares cost in disk; 8 claims at once from 4 spares.
#
#   sudo bench/pool.sh
#   sudo env RUNS=3 FSES=xfs bench/pool.sh          # a quick run
#
# The repository: the Linux source tree Debian ships (linux-source-6.1, 78,579 files), one
# commit, packed, cloned into a settled SRC (a second passed, `git status` run) on each
# filesystem's fresh loop mount (SRC a plain directory on btrfs, not a subvolume).
#
# Part 1, for each filesystem in FSES, RUNS rounds rotating which goes first:
#   git      git -C SRC worktree add -q --detach DST
#   per-file cowtree git worktree add -q --detach --per-file --json DST (no spare: today's way)
#   claim    cowtree git worktree add -q --detach --json DST, one spare ready (pool of 1, made
#            and settled before, not timed; the method must be "spare")
# After each claim the background refill is waited for (not timed: it runs while the agent
# works), and before each timed command the filesystem is quiesced (sync, freeze, thaw).
# Printed: median/min/max wall seconds, git/claim and per-file/claim ratios, the claim against
# its target (<= 0.10 s), and the refill: median wall seconds of `pool fill` making one spare;
# then the medians of the claim's own steps (COWTREE_TIMING: reading the spare's index, the
# lstat of its files and of its directories, writing DST's index) and the floor of its proof,
# one fstatat of every file of a spare timed by bench/stat-floor.c (one thread).
#
# Part 2 (XFS): disk. A pool of 4 spares filled; `cowtree du --json` of SRC alone and of SRC
# with the 4 spares and their index template: the unique physical bytes the spares add,
# against one checkout (the apparent bytes of SRC's tracked files); target <= 2%.
#
# Part 3 (XFS): 8 `cowtree git worktree add -b` at once from 4 spares; each worktree's files
# hashed (sha1sum of every tracked path) against a `git worktree add` of the same commit, and
# `git status` clean in each. Printed: how many claimed a spare, how many were made per file,
# and whether all 8 are git's.
#
# Part 4 (XFS, REPO_cargo set): a spare BEHIND commits behind the target on rust-lang/cargo's
# history (first parents: HEAD~BEHIND against HEAD), RUNS rounds alternating:
#   claim     cowtree git worktree add -q --detach --json DST HEAD, the pool's one spare at
#             HEAD~BEHIND (made and settled before, not timed): claimed and moved
#   checkout  git -C W checkout -q --detach HEAD in a settled worktree W at HEAD~BEHIND (put
#             back after, not timed): the time git takes between those commits
#   git       git worktree add -q --detach DST HEAD
# Printed: medians, the entries the claim kept, removed and wrote, and the claim against its
# target (<= 0.10 s + checkout).
#
# Environment:
#   COWTREE=PATH  binary to measure (default: cargo build --release -p cowtree-cli)
#   REPO_cargo=DIR  a clone of rust-lang/cargo (bare or not) for part 4; BEHIND=N (default 20)
#   RUNS=N        rounds of part 1 (default 9)
#   FSES="..."    filesystems of part 1 (default "xfs ext4 btrfs"; none: skip part 1)
#   DISK=0        skip part 2;  BURST=0  skip part 3
#   LOOP_DIO=0    the loop devices through the page cache (default: direct I/O, as a disk)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH_NAME=bench/pool
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start bench/pool "$@"
RUNS=${RUNS:-9}
FSES=${FSES:-xfs ext4 btrfs}
if [[ $FSES == none ]]; then FSES=""; fi
DISK=${DISK:-1}
BURST=${BURST:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$RUNS'"
# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh
TARBALL=/usr/src/linux-source-6.1.tar.xz
if [[ ! -f $TARBALL ]]; then
  note "installing linux-source-6.1 (the tree)"
  cowtree_apt_install linux-source-6.1 || die "could not install linux-source-6.1"
fi
bench_install mkfs.xfs xfsprogs || die "needs mkfs.xfs"
bench_install mkfs.btrfs btrfs-progs || die "needs mkfs.btrfs"
bench_install flock util-linux || die "needs flock"
bench_install python3 python3 || die "needs python3 (the JSON reports)"

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

bench_results pool
trap 'cowtree_mounts_down >&2 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
COWTREE_XFS_SIZE=${COWTREE_XFS_SIZE:-24G} COWTREE_BTRFS_SIZE=${COWTREE_BTRFS_SIZE:-16G} \
  COWTREE_EXT4_SIZE=${COWTREE_EXT4_SIZE:-16G} cowtree_mounts_up xfs btrfs ext4 >&2
declare -A MNT=([xfs]=${COWTREE_TEST_XFS:?no XFS} [btrfs]=${COWTREE_TEST_BTRFS:?no btrfs}
  [ext4]=${COWTREE_TEST_EXT4:?no ext4})
for m in "${MNT[@]}"; do
  dev=$(findmnt -n -v -o SOURCE --target "$m")
  if [[ ${LOOP_DIO:-1} == 1 ]]; then losetup --direct-io=on "$dev"; fi
done
X=${MNT[xfs]}
export HOME=$X/home XDG_CONFIG_HOME=$X/home/config XDG_STATE_HOME=$X/home/state \
  XDG_DATA_HOME=$X/home/data XDG_CACHE_HOME=$X/home/cache
mkdir -p "$XDG_CONFIG_HOME"
say "$BENCH_NAME: $($COWTREE --version), $(git --version), $(nproc) cores, $(date -u +%FT%TZ)"

WORK=$X/work
mkdir -p "$WORK/tree"
tar -xJf "$TARBALL" -C "$WORK/tree" --strip-components=1
git -C "$WORK/tree" init -q -b main
git -C "$WORK/tree" add -f -A
git -C "$WORK/tree" commit -qm "the tree"
ORIGIN=$WORK/origin.git
git clone -q --bare "$WORK/tree" "$ORIGIN"
git -C "$ORIGIN" gc -q --prune=now
rm -rf "$WORK/tree"
FILES=$(git -C "$ORIGIN" ls-tree -r --name-only HEAD | wc -l)
say "$BENCH_NAME: the Linux source tree, $FILES files"

STAT_FLOOR=$WORK/stat-floor
cc -O2 -o "$STAT_FLOOR" bench/stat-floor.c || die "needs a C compiler (bench/stat-floor.c)"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
fmt() { awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; }
stats() { # stats FILE: "median min max" in seconds
  local med lo hi
  med=$(median <"$1"); lo=$(sort -n "$1" | head -1); hi=$(sort -n "$1" | tail -1)
  echo "$(fmt "$med") $(fmt "$lo") $(fmt "$hi")"
}
method() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])["method"])' <"$1"; }
settled_src() { # settled_src DIR
  git clone -q "$ORIGIN" "$1"
  sleep 1.1
  git -C "$1" status --porcelain >/dev/null
}
wait_fill() { flock "$1/.git/cowtree/pool/fill.lock" true; }
moved() { # moved JSON-FILE: what the last claim kept, removed and wrote
  python3 - "$1" <<'PY'
import json, sys
c = json.loads(open(sys.argv[1]).read().splitlines()[-1])["counts"]
w = c["cloned"] + c["copied"] + c["from_objects"]
print(f"kept {c['kept']}, removed {c['removed']}, written {w} "
      f"({c['cloned']} cloned, {c['copied']} copied, {c['from_objects']} from objects)")
PY
}
quiet() { cowtree_quiesce "$1" || true; }

say ""
say "Part 1: a claim against git and per-file; medians of $RUNS rounds (wall seconds: median min max)"
for fs in ${FSES}; do
  m=${MNT[$fs]}
  d=$m/p1
  mkdir -p "$d"
  src=$d/src
  settled_src "$src"
  (cd "$src" && "$COWTREE" git worktree pool set 1 --no-fill >/dev/null)
  for t in git perfile claim fill; do : >"$d/$t.ms"; done
  : >"$d/claim.json"; : >"$d/claim.steps"
  quiet "$m"
  t=$(date +%s%N); (cd "$src" && "$COWTREE" git worktree pool fill 2>/dev/null >/dev/null); ms "$t" >>"$d/fill.ms"
  for ((r = 0; r < RUNS; r++)); do
    for k in 0 1 2; do
      case $(( (r + k) % 3 )) in
        0) quiet "$m"; t=$(date +%s%N); git -C "$src" worktree add -q --detach "$d/g"; ms "$t" >>"$d/git.ms" ;;
        1) quiet "$m"; t=$(date +%s%N)
           (cd "$src" && "$COWTREE" git worktree add -q --detach --per-file --json "$d/p" >/dev/null)
           ms "$t" >>"$d/perfile.ms" ;;
        2) quiet "$m"; t=$(date +%s%N)
           (cd "$src" && COWTREE_TIMING=1 "$COWTREE" git worktree add -q --detach --json "$d/c" >>"$d/claim.json" 2>>"$d/claim.steps")
           ms "$t" >>"$d/claim.ms"
           [[ $(method "$d/claim.json") == spare ]] || die "$fs round $r: no spare was claimed: $(tail -1 "$d/claim.json")"
           wait_fill "$src" ;;
      esac
    done
    for w in g p c; do git -C "$src" worktree remove --force "$d/$w"; done
    git -C "$src" worktree prune
    # One refill timed alone (the background one after the claim already made the spare).
    (cd "$src" && "$COWTREE" git worktree pool drain >/dev/null)
    quiet "$m"
    t=$(date +%s%N); (cd "$src" && "$COWTREE" git worktree pool fill 2>/dev/null >/dev/null); ms "$t" >>"$d/fill.ms"
  done
  for t in git perfile claim fill; do
    read -r med lo hi <<<"$(stats "$d/$t.ms")"
    declare "MED_$t=$med"
    declare "RANGE_$t=$lo-$hi"
  done
  say "$(printf '%-5s git %s (%s)  per-file %s (%s)  claim %s (%s)' "$fs" \
    "$MED_git" "$RANGE_git" "$MED_perfile" "$RANGE_perfile" "$MED_claim" "$RANGE_claim")"
  say "$(awk -v g="$MED_git" -v p="$MED_perfile" -v c="$MED_claim" -v f="$MED_fill" -v fs="$fs" 'BEGIN {
    printf "%-5s git/claim %.1fx, per-file/claim %.1fx; claim %.3f s (target <= 0.10 s: %s); refill of one spare %.3f s", fs, g / c, p / c, c, (c <= 0.10 ? "met" : "NOT met"), f }')"
  # Where a claim's time goes (its COWTREE_TIMING steps, medians), and the floor of its
  # proof: one fstatat of every file of a spare, by bench/stat-floor.c (one thread; the
  # claim's pass runs on every core).
  for step in "read the spare's index" "lstat the spare's files" "lstat its directories" "write the index"; do
    grep -o "$step [0-9.]* ms" "$d/claim.steps" | awk '{print $(NF-1)}' >"$d/step"
    say "$(printf '%-5s   claim step %-24s median %s ms' "$fs" "$step" "$(median <"$d/step")")"
  done
  spare=$(ls -d "$src"/.git/cowtree/pool/spares/*/ | head -1)
  say "$(printf '%-5s   floor: %s' "$fs" "$("$STAT_FLOOR" "$spare/tree" 3 | tail -1)") ($(nproc) cores)"
  (cd "$src" && "$COWTREE" git worktree pool set 0 >/dev/null)
  rm -rf "$d"
done

if [[ $DISK == 1 ]]; then
  say ""
  say "Part 2: XFS, the disk 4 spares add"
  d=$X/p2; mkdir -p "$d"; src=$d/src
  settled_src "$src"
  (cd "$src" && "$COWTREE" git worktree pool set 4 --no-fill >/dev/null && "$COWTREE" git worktree pool fill 2>/dev/null >/dev/null)
  sync
  du_unique() { "$COWTREE" du --json "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unique_physical"])'; }
  # SRC's own files without its .git (the pool lives there), then with the spares.
  mapfile -t tops < <(cd "$src" && ls -A | grep -vx .git | sed "s|^|$src/|")
  alone=$(du_unique "${tops[@]}")
  with=$(du_unique "${tops[@]}" "$src/.git/cowtree/pool/spares" "$src/.git/cowtree/pool/templates")
  checkout=$(git -C "$src" ls-files -z | (cd "$src" && xargs -0 stat -c %s) | awk '{s+=$1} END {print s}')
  say "$(awk -v a="$alone" -v w="$with" -v c="$checkout" 'BEGIN {
    printf "unique physical: SRC %.1f MiB, SRC + 4 spares %.1f MiB: the spares add %.2f MiB, %.2f%% of one checkout (%.1f MiB; target <= 2%%)", a/1048576, w/1048576, (w-a)/1048576, 100*(w-a)/c, c/1048576 }')"
  say "cowtree git worktree pool status:"
  (cd "$src" && "$COWTREE" git worktree pool status) | sed 's/^/  /' | tee -a "$RESULTS"
  (cd "$src" && "$COWTREE" git worktree pool set 0 >/dev/null)
  rm -rf "$d"
fi

if [[ $BURST == 1 ]]; then
  say ""
  say "Part 3: XFS, 8 claims at once from 4 spares"
  d=$X/p3; mkdir -p "$d"; src=$d/src
  settled_src "$src"
  (cd "$src" && "$COWTREE" git worktree pool set 4 --no-fill >/dev/null && "$COWTREE" git worktree pool fill 2>/dev/null >/dev/null)
  git -C "$src" worktree add -q --detach "$d/git"
  sums() { # every tracked path: its type, mode and bytes' hash (a symlink: its target)
    git -C "$1" ls-files -z | python3 -c '
import hashlib, os, stat, sys
root = sys.argv[1]
for p in sys.stdin.buffer.read().split(b"\0"):
    if not p:
        continue
    f = os.path.join(root.encode(), p)
    st = os.lstat(f)
    if stat.S_ISLNK(st.st_mode):
        d = b"link " + os.readlink(f)
    else:
        with open(f, "rb") as h:
            d = hashlib.sha1(h.read()).hexdigest().encode()
    sys.stdout.buffer.write(p + b" %o " % st.st_mode + d + b"\n")
' "$1"
  }
  sums "$d/git" >"$d/git.sums"
  t=$(date +%s%N)
  for i in 0 1 2 3 4 5 6 7; do
    (cd "$src" && "$COWTREE" git worktree add -q --json -b "b$i" "$d/w$i" >"$d/w$i.json") &
  done
  wait
  all=$(ms "$t")
  spare=0; perfile=0; same=0
  for i in 0 1 2 3 4 5 6 7; do
    case $(method "$d/w$i.json") in spare) spare=$((spare + 1)) ;; per-file) perfile=$((perfile + 1)) ;; esac
    if cmp -s <(sums "$d/w$i") "$d/git.sums" && [[ -z $(git -C "$d/w$i" status --porcelain) ]]; then same=$((same + 1)); fi
  done
  wait_fill "$src"
  say "8 adds in $(fmt "$all") s: $spare claimed a spare, $perfile made per file; $same of 8 hold git's bytes and are clean"
  (cd "$src" && "$COWTREE" git worktree pool set 0 >/dev/null)
  rm -rf "$d"
fi

if [[ -n ${REPO_cargo:-} ]]; then
  BEHIND=${BEHIND:-20}
  say ""
  say "Part 4: XFS, rust-lang/cargo, a spare $BEHIND commits behind the target; medians of $RUNS rounds"
  d=$X/p4; mkdir -p "$d"; src=$d/src
  git clone -q --no-local "$REPO_cargo" "$src"
  git -C "$src" checkout -q --detach HEAD
  sleep 1.1; git -C "$src" status --porcelain >/dev/null
  old=$(git -C "$src" rev-parse "HEAD~$BEHIND")
  changed=$(git -C "$src" diff --name-only "$old" HEAD | wc -l)
  say "cargo: $(git -C "$src" ls-files | wc -l) files; HEAD~$BEHIND -> HEAD changes $changed paths"
  git -C "$src" worktree add -q --detach "$d/w" "$old"
  sleep 1.1; git -C "$d/w" status --porcelain >/dev/null
  (cd "$src" && "$COWTREE" git worktree pool set 1 --no-fill >/dev/null)
  for t in claim checkout git fill; do : >"$d/$t.ms"; done
  : >"$d/claim.json"
  spare_behind() { # the pool's one spare at HEAD~BEHIND, made a second ago
    (cd "$src" && "$COWTREE" git worktree add -q --detach --no-ignored "$d/warm" "$old" >/dev/null)
    wait_fill "$src"
    git -C "$src" worktree remove --force "$d/warm"
    (cd "$src" && "$COWTREE" git worktree pool drain >/dev/null)
    quiet "$X"
    local t; t=$(date +%s%N); (cd "$src" && "$COWTREE" git worktree pool fill 2>/dev/null >/dev/null); ms "$t" >>"$d/fill.ms"
    sleep 1.1
  }
  for ((r = 0; r < RUNS; r++)); do
    spare_behind
    for k in 0 1 2; do
      case $(( (r + k) % 3 )) in
        0) quiet "$X"; t=$(date +%s%N)
           (cd "$src" && "$COWTREE" git worktree add -q --detach --json "$d/c" HEAD >>"$d/claim.json")
           ms "$t" >>"$d/claim.ms"
           [[ $(method "$d/claim.json") == spare ]] || die "round $r: no spare was claimed: $(tail -1 "$d/claim.json")"
           wait_fill "$src" ;;
        1) quiet "$X"; t=$(date +%s%N); git -C "$d/w" checkout -q --detach HEAD 2>/dev/null || git -C "$d/w" checkout -q --detach "$(git -C "$src" rev-parse HEAD)"
           ms "$t" >>"$d/checkout.ms"
           git -C "$d/w" checkout -q --detach "$old"; sleep 1.1; git -C "$d/w" status --porcelain >/dev/null ;;
        2) quiet "$X"; t=$(date +%s%N); git -C "$src" worktree add -q --detach "$d/g" HEAD; ms "$t" >>"$d/git.ms" ;;
      esac
    done
    git -C "$src" worktree remove --force "$d/c"
    git -C "$src" worktree remove --force "$d/g"
    git -C "$src" worktree prune
  done
  for t in claim checkout git fill; do
    read -r med lo hi <<<"$(stats "$d/$t.ms")"
    declare "MED_$t=$med"
    declare "RANGE_$t=$lo-$hi"
  done
  say "$(printf 'claim %s (%s)  git checkout %s (%s)  git worktree add %s (%s)  refill %s' \
    "$MED_claim" "$RANGE_claim" "$MED_checkout" "$RANGE_checkout" "$MED_git" "$RANGE_git" "$MED_fill")"
  say "claim: $(moved "$d/claim.json")"
  say "$(awk -v c="$MED_claim" -v k="$MED_checkout" 'BEGIN {
    printf "claim %.3f s against 0.10 s + checkout %.3f s = %.3f s: %s", c, k, 0.10 + k, (c <= 0.10 + k ? "met" : "NOT met") }')"
  (cd "$src" && "$COWTREE" git worktree pool set 0 >/dev/null)
  rm -rf "$d"
fi
