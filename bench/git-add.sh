#!/usr/bin/env bash
# `cowtree git worktree add` against `git worktree add` on real source trees of every size an
# agent platform meets, with SRC freshly cloned and with SRC settled; and, on btrfs, from a
# subvolume SRC of the Linux tree against its floor.
#
#   sudo bench/git-add.sh
#   sudo env SIZES="100 1000" RUNS=3 FLOOR=0 bench/git-add.sh     # a quick run
#
# The trees: the first N files (in path order) of the Linux source tree Debian ships
# (linux-source-6.1, installed with apt-get when missing), for N in SIZES, and the whole tree
# (78,579 files) for "all"; each committed and packed (`git gc`) as a cloned repository is, then
# cloned into SRC on a fresh XFS loop mount. REPO_<N>=DIR replaces the tree of size N by a copy
# of the repository DIR (e.g. REPO_3000=/path/to/rust-lang/cargo).
#
# Part 1, XFS, for each size and state, RUNS rounds, the two tools alternating which goes first:
#   git       git -C SRC worktree add -q --detach DST
#   cowtree   cowtree git worktree add -q --detach --json DST   (run in SRC)
# "fresh": SRC cloned again before each round (files and index written in the same second, as
# after any clone; the clone is not timed); "settled": one SRC, cloned once, a second passed and
# `git status` run in it. Between rounds both worktrees are removed and the filesystem synced
# (not timed). Printed: median/min/max wall seconds of each, the ratio git/cowtree of the
# medians (above 1: cowtree faster), and cowtree's counts: reused_on_stat, reused_after_hash,
# from_objects, index_stat_entries.
#
# Part 2 (FLOOR=1, the default), btrfs: the whole tree cloned into a subvolume SRC, settled;
# RUNS rounds rotating six commands:
#   cowtree    cowtree git worktree add -q --detach DST (the snapshot way; checked)
#   snapshot   btrfs subvolume snapshot SRC DST (the snapshot alone)
#   status     git -C SRC status --porcelain --untracked-files=no (one lstat of every tracked
#              file against SRC's index: git's own proof that SRC is clean)
#   lstat      bench/stat-floor.c on SRC: one fstatat of every file, one thread, nothing else
#              (the kernel's share of the lstat pass; its wall time over the cores is the
#              pass's floor)
#   index      SRC's index (about 8 MB) written to a new file on the mount by `cat` (read and
#              write: cp would reflink it): writing DST's index
#   git        git worktree add -q --detach DST, in the first GIT_RUNS rounds only (slow: about
#              7-10 s), in the same rotation (so in turn before and after cowtree's)
# Before each timed command the
# subvolumes deleted so far are cleaned (`btrfs subvolume sync`) and the filesystem synced.
# Printed: each median; the floor, snapshot + lstat / cores + index (each timed alone), and
# the older floor snapshot + status; cowtree's ratio to each, and git's median over cowtree's.
#
# Part 3 (KINDS=1, the default), XFS: the repository kinds of Git 3.0 and of agent platforms, on
# the trees in KIND_TREES, each rebuilt as one commit of the same files (so that the SHA-1 and
# SHA-256 repositories hold the same tree), cloned into a settled SRC; RUNS rounds of git against
# cowtree, alternating, for each row:
#   sha1-files        the baseline: SHA-1 objects, files refs
#   reftable          SHA-1, cloned with --ref-format=reftable
#   sha256            SHA-256 objects, files refs
#   sha256-reftable   both (Git 3.0's defaults)
#   cone-10%          cowtree git worktree add --sparse DIRS from the full sha1-files SRC, against
#                     git's three commands (worktree add --no-checkout, sparse-checkout set
#                     --cone DIRS, checkout); DIRS: top-level directories holding about 10% of
#                     the files, chosen greedily, largest first
#   sparse-src-10%    SRC itself sparse on DIRS: git worktree add against cowtree (both sparse)
#   blobless          SRC a blobless partial clone (--filter=blob:none) of the sha1-files origin
#                     through file:// with uploadpack.allowFilter; the target is SRC's commit
# Printed: each row as in part 1, then each kind's cowtree median over the baseline's (target
# <= 1.1x), and the cone row's over the full worktree's (target <= 0.15x).
#
# Environment:
#   COWTREE=PATH    binary to measure (default: cargo build --release -p cowtree-cli)
#   SIZES="..."     tree sizes (default "100 1000 3000 10000 all")
#   KINDS=0         skip part 3
#   KIND_TREES="..." the trees of part 3 (default "all", and "cargo" when REPO_cargo is set)
#   STATES="..."    "fresh settled" (default both)
#   RUNS=N          rounds (default 9)
#   GIT_RUNS=N      rounds of git worktree add in part 2 (default 3)
#   FLOOR=0         skip part 2
#   LOOP_DIO=0      the loop devices through the page cache (default: direct I/O, as a disk)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH_NAME=bench/git-add
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_start bench/git-add "$@"
SIZES=${SIZES:-100 1000 3000 10000 all}
STATES=${STATES:-fresh settled}
RUNS=${RUNS:-9}
GIT_RUNS=${GIT_RUNS:-3}
FLOOR=${FLOOR:-1}
KINDS=${KINDS:-1}
KIND_TREES=${KIND_TREES:-all${REPO_cargo:+ cargo}}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$RUNS'"

# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh
TARBALL=/usr/src/linux-source-6.1.tar.xz
if [[ ! -f $TARBALL ]]; then
  note "installing linux-source-6.1 (the trees)"
  cowtree_apt_install linux-source-6.1 || die "could not install linux-source-6.1"
fi
bench_install mkfs.xfs xfsprogs || die "needs mkfs.xfs"
bench_install mkfs.btrfs btrfs-progs || die "needs mkfs.btrfs"
bench_install python3 python3 || die "needs python3 (the JSON counts)"

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

bench_results git-add
trap 'cowtree_mounts_down >&2 || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
COWTREE_XFS_SIZE=${COWTREE_XFS_SIZE:-24G} COWTREE_BTRFS_SIZE=${COWTREE_BTRFS_SIZE:-16G} \
  cowtree_mounts_up xfs btrfs >&2
X=${COWTREE_TEST_XFS:?no XFS mount}
B=${COWTREE_TEST_BTRFS:?no btrfs mount}
for m in "$X" "$B"; do
  dev=$(findmnt -n -v -o SOURCE --target "$m")
  if [[ ${LOOP_DIO:-1} == 1 ]]; then losetup --direct-io=on "$dev"; fi
  say "$BENCH_NAME: $(findmnt -n -o FSTYPE --target "$m") on $dev, direct I/O: $(cat "/sys/block/${dev#/dev/}/loop/dio")"
done
export HOME=$X/home XDG_CONFIG_HOME=$X/home/config XDG_STATE_HOME=$X/home/state \
  XDG_DATA_HOME=$X/home/data XDG_CACHE_HOME=$X/home/cache
mkdir -p "$XDG_CONFIG_HOME"
say "$BENCH_NAME: $($COWTREE --version), $(git --version), $(nproc) cores, $(date -u +%FT%TZ)"

# The Linux tree once, then one packed origin repository per size.
WORK=$X/work
mkdir -p "$WORK"
tar -xJf "$TARBALL" -C "$WORK"
LINUX=$(echo "$WORK"/linux-source-*)
(cd "$LINUX" && find . -type f -printf '%P\n' | LC_ALL=C sort) >"$WORK/all-files"
origin() { # origin N: the bare repository of size N
  local n=$1 o="$WORK/origin-$1.git" t="$WORK/tree-$1"
  [[ -d $o ]] && { echo "$o"; return; }
  local var="REPO_$n"
  if [[ -n ${!var:-} ]]; then
    git clone -q --bare "${!var}" "$o"
  else
    mkdir -p "$t"
    if [[ $n == all ]]; then cp -a "$LINUX/." "$t/"; else
      head -n "$n" "$WORK/all-files" | (cd "$LINUX" && tar -cf - -T -) | tar -xf - -C "$t"
    fi
    git -C "$t" init -q -b main
    git -C "$t" add -f -A
    git -C "$t" commit -qm "the tree"
    git clone -q --bare "$t" "$o"
    git -C "$o" gc -q --prune=now
    rm -rf "$t"
  fi
  echo "$o"
}

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# cow_in DIR ARGS...: cowtree run in DIR, as `git -C DIR` runs git: no subshell (whose fork
# the timing would count for cowtree alone), the shell's directory restored after.
cow_in() {
  local dir=$1 rc=0
  shift
  cd "$dir" || return
  "$COWTREE" "$@" || rc=$?
  cd "$OLDPWD" || return
  return "$rc"
}
fmt() { awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; }
stats() { # stats FILE: "median min max" in seconds
  local med lo hi
  med=$(median <"$1"); lo=$(sort -n "$1" | head -1); hi=$(sort -n "$1" | tail -1)
  echo "$(fmt "$med") $(fmt "$lo") $(fmt "$hi")"
}
counts() { # counts JSON-FILE: the reuse counts of the last run
  python3 - "$1" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
c = d["counts"]
keys = ("reused_on_stat", "reused_after_hash", "from_objects", "index_stat_entries")
print(", ".join(f"{k} {c[k]}" for k in keys) + f", method {d['method']}")
PY
}

say ""
say "Part 1: XFS, medians of $RUNS rounds (wall seconds: median min max)"
for n in $SIZES; do
  o=$(origin "$n")
  files=$(git -C "$o" ls-tree -r --name-only HEAD | wc -l)
  for state in $STATES; do
    d="$WORK/run-$n-$state"
    rm -rf "$d"
    mkdir -p "$d"
    : >"$d/git.ms"
    : >"$d/cowtree.ms"
    : >"$d/cowtree.json"
    src="$d/src"
    if [[ $state == settled ]]; then
      git clone -q "$o" "$src"
      sleep 1.1
      git -C "$src" status --porcelain >/dev/null
    fi
    for ((r = 0; r < RUNS; r++)); do
      if [[ $state == fresh ]]; then
        rm -rf "$src"
        git clone -q "$o" "$src"
      fi
      sync
      run_git() { local t; t=$(date +%s%N); git -C "$src" worktree add -q --detach "$d/g"; ms "$t" >>"$d/git.ms"; }
      run_cow() {
        local t; t=$(date +%s%N)
        cow_in "$src" git worktree add -q --detach --json "$d/c" >>"$d/cowtree.json"
        ms "$t" >>"$d/cowtree.ms"
      }
      if ((r % 2)); then run_cow; run_git; else run_git; run_cow; fi
      git -C "$src" worktree remove --force "$d/g"
      git -C "$src" worktree remove --force "$d/c"
      git -C "$src" worktree prune
    done
    read -r gm glo ghi <<<"$(stats "$d/git.ms")"
    read -r cm clo chi <<<"$(stats "$d/cowtree.ms")"
    ratio=$(awk -v g="$gm" -v c="$cm" 'BEGIN { printf "%.2f", g / c }')
    say "$(printf '%6s files %-8s git %s (%s-%s)  cowtree %s (%s-%s)  git/cowtree %sx' \
      "$files" "$state" "$gm" "$glo" "$ghi" "$cm" "$clo" "$chi" "$ratio")"
    say "                       cowtree: $(counts "$d/cowtree.json")"
    rm -rf "$d"
  done
done

if [[ $FLOOR == 1 ]]; then
  say ""
  say "Part 2: btrfs, the whole tree in a subvolume SRC, settled; medians of $RUNS rounds"
  o=$(origin all)
  src=$B/src
  btrfs subvolume create "$src" >/dev/null
  git clone -q "$o" "$src"
  sleep 1.1
  git -C "$src" status --porcelain >/dev/null
  # Before each timed command: the subvolumes deleted so far cleaned up (btrfs does it in the
  # background, and would share the CPU with the next command), the filesystem synced.
  settle() { btrfs subvolume sync "$B" >/dev/null 2>&1 || true; sync; }
  for t in cowtree snapshot status lstat index git; do : >"$B/$t.ms"; done
  : >"$B/cowtree.json"
  STAT_FLOOR=$B/stat-floor
  cc -O2 -o "$STAT_FLOOR" bench/stat-floor.c || die "needs a C compiler (bench/stat-floor.c)"
  # Each round runs every measurement once, in an order that rotates from round to round;
  # git's rounds (GIT_RUNS of them, the first rounds) take their turn in the same rotation.
  for ((r = 0; r < RUNS; r++)); do
    for k in 0 1 2 3 4 5; do
      case $(( (r + k) % 6 )) in
        0) settle; t=$(date +%s%N)
           cow_in "$src" git worktree add -q --detach --json "$B/c" >>"$B/cowtree.json"
           ms "$t" >>"$B/cowtree.ms"
           (cd "$src" && "$COWTREE" git worktree remove --force "$B/c"); git -C "$src" worktree prune ;;
        1) settle; t=$(date +%s%N); btrfs subvolume snapshot "$src" "$B/s" >/dev/null; ms "$t" >>"$B/snapshot.ms"
           btrfs subvolume delete "$B/s" >/dev/null ;;
        2) settle; t=$(date +%s%N); git -C "$src" status --porcelain --untracked-files=no >/dev/null; ms "$t" >>"$B/status.ms" ;;
        3) settle; "$STAT_FLOOR" "$src" 1 | tail -1 | sed -n 's/.*fstatat \([0-9.]*\) ms.*/\1/p' \
             | awk '{ printf "%d\n", $1 + 0.5 }' >>"$B/lstat.ms" ;;
        4) settle; t=$(date +%s%N); cat "$src/.git/index" >"$B/index.copy"; ms "$t" >>"$B/index.ms"
           rm -f "$B/index.copy" ;;
        5) ((r < GIT_RUNS)) || continue
           settle; t=$(date +%s%N); git -C "$src" worktree add -q --detach "$B/g"; ms "$t" >>"$B/git.ms"
           git -C "$src" worktree remove --force "$B/g"; git -C "$src" worktree prune ;;
      esac
    done
  done
  for t in cowtree snapshot status lstat index git; do
    read -r m lo hi <<<"$(stats "$B/$t.ms")"
    say "$(printf '%-10s %s (%s-%s)' "$t" "$m" "$lo" "$hi")"
    declare "MED_$t=$m"
  done
  say "cowtree: $(counts "$B/cowtree.json")"
  say "$(awk -v c="$MED_cowtree" -v s="$MED_snapshot" -v u="$MED_status" -v g="$MED_git" \
    -v l="$MED_lstat" -v i="$MED_index" -v n="$(nproc)" 'BEGIN {
    f = s + l / n + i
    printf "floor (snapshot + lstat / %d cores + index) %.3f s: cowtree %.2fx it\n", n, f, c / f
    printf "older floor (snapshot + status) %.3f s: cowtree %.2fx it (target <= 1.5x)\n", s + u, c / (s + u)
    printf "git %.1fx cowtree (target >= 50x: %s)", g / c, (g / c >= 50 ? "met" : "NOT met") }')"
fi
if [[ $KINDS == 1 ]]; then
  say ""
  say "Part 3: XFS, repository kinds, settled SRC; medians of $RUNS rounds (wall seconds: median min max)"
  kind_origin() { # kind_origin TREE OBJECT-FORMAT: one commit of TREE's files, packed, bare
    local o="$WORK/kind-$1-$2.git" t="$WORK/kind-tree-$1-$2"
    [[ -d $o ]] && { echo "$o"; return; }
    mkdir -p "$t"
    git -C "$(origin "$1")" archive HEAD | tar -xf - -C "$t"
    git -C "$t" init -q -b main --object-format="$2"
    git -C "$t" add -f -A
    git -C "$t" commit -qm "the tree"
    git clone -q --bare "$t" "$o"
    git -C "$o" gc -q --prune=now
    git -C "$o" config uploadpack.allowFilter true
    rm -rf "$t"
    echo "$o"
  }
  settled_clone() { # settled_clone DST ARGS...: a clone, a second, a git status
    local dst=$1; shift
    rm -rf "$dst"
    git clone -q "$@" "$dst"
    sleep 1.1
    git -C "$dst" status --porcelain >/dev/null
  }
  R=$WORK/row
  git_add() { git -C "$1" worktree add -q --detach "$R/g"; }
  cow_add() { cow_in "$1" git worktree add -q --detach --json "$R/c" >>"$R/cowtree.json"; }
  git_cone() {
    git -C "$1" worktree add -q --detach --no-checkout "$R/g"
    # shellcheck disable=SC2086
    git -C "$R/g" sparse-checkout set --cone $CONE
    git -C "$R/g" checkout -q
  }
  cow_cone() {
    cow_in "$1" git worktree add -q --detach --json --sparse "${CONE// /,}" "$R/c" >>"$R/cowtree.json"
  }
  timed() { local f=$1 t; shift; t=$(date +%s%N); "$@"; ms "$t" >>"$f"; }
  row() { # row LABEL SRC GIT-FN COWTREE-FN: prints the row, sets COW_MED and GIT_MED
    local label=$1 src=$2 gf=$3 cf=$4
    rm -rf "$R"; mkdir -p "$R"
    : >"$R/git.ms"; : >"$R/cowtree.ms"; : >"$R/cowtree.json"
    for ((r = 0; r < RUNS; r++)); do
      sync
      if ((r % 2)); then timed "$R/cowtree.ms" "$cf" "$src"; timed "$R/git.ms" "$gf" "$src"
      else timed "$R/git.ms" "$gf" "$src"; timed "$R/cowtree.ms" "$cf" "$src"; fi
      local gfiles cfiles
      gfiles=$(find "$R/g" -path "$R/g/.git" -prune -o -type f -print | wc -l)
      cfiles=$(find "$R/c" -path "$R/c/.git" -prune -o -type f -print | wc -l)
      [[ $gfiles == "$cfiles" ]] || die "$label: git wrote $gfiles files, cowtree $cfiles"
      git -C "$src" worktree remove --force "$R/g"
      git -C "$src" worktree remove --force "$R/c"
      git -C "$src" worktree prune
    done
    read -r GIT_MED glo ghi <<<"$(stats "$R/git.ms")"
    read -r COW_MED clo chi <<<"$(stats "$R/cowtree.ms")"
    say "$(printf '%-16s %6s files  git %s (%s-%s)  cowtree %s (%s-%s)  git/cowtree %sx' \
      "$label" "$cfiles" "$GIT_MED" "$glo" "$ghi" "$COW_MED" "$clo" "$chi" \
      "$(awk -v g="$GIT_MED" -v c="$COW_MED" 'BEGIN { printf "%.2f", g / c }')")"
    say "                 cowtree: $(counts "$R/cowtree.json")"
  }
  for tree in $KIND_TREES; do
    say "tree $tree:"
    o1=$(kind_origin "$tree" sha1)
    o256=$(kind_origin "$tree" sha256)
    src=$WORK/ksrc
    settled_clone "$src" "$o1"
    row sha1-files "$src" git_add cow_add
    base=$COW_MED
    for kind in reftable sha256 sha256-reftable; do
      case $kind in
        reftable) settled_clone "$src" --ref-format=reftable "$o1" ;;
        sha256) settled_clone "$src" "$o256" ;;
        sha256-reftable) settled_clone "$src" --ref-format=reftable "$o256" ;;
      esac
      row "$kind" "$src" git_add cow_add
      say "                 cowtree $kind / sha1-files: $(awk -v c="$COW_MED" -v b="$base" 'BEGIN { printf "%.3f", c / b }')x (target <= 1.1x)"
    done
    total=$(git -C "$o1" ls-tree -r --name-only HEAD | wc -l)
    CONE=$(git -C "$o1" ls-tree -r --name-only HEAD |
      awk -F/ 'NF > 1 { n[$1]++ } END { for (d in n) print d, n[d] }' | sort -k2,2nr |
      awk -v total="$total" 'BEGIN { budget = total / 10 }
        $2 <= budget { printf "%s%s", sep, $1; sep = " "; budget -= $2 }')
    [[ -n $CONE ]] || die "no directories for the cone of $tree"
    settled_clone "$src" "$o1"
    row cone-10% "$src" git_cone cow_cone
    say "                 cone: $CONE"
    say "                 cowtree cone / full worktree: $(awk -v c="$COW_MED" -v b="$base" 'BEGIN { printf "%.3f", c / b }')x (target <= 0.15x); git's three commands / cowtree: $(awk -v g="$GIT_MED" -v c="$COW_MED" 'BEGIN { printf "%.2f", g / c }')x"
    # shellcheck disable=SC2086
    git -C "$src" sparse-checkout set --cone $CONE
    sleep 1.1
    git -C "$src" status --porcelain >/dev/null
    row sparse-src-10% "$src" git_add cow_add
    settled_clone "$src" --filter=blob:none "file://$o1"
    row blobless "$src" git_add cow_add
    rm -rf "$src" "$R"
  done
fi
say ""
say "$BENCH_NAME: results in $RESULTS"
