#!/usr/bin/env bash
# `cowtree git worktree add --ignored` from a main worktree that is a btrfs subvolume (one
# snapshot made into the new worktree, docs/git.md "By snapshot"), against what a user does
# without cowtree, on a fresh btrfs loop mount.
#
#   sudo bench/git-subvolume.sh
#   sudo env RUNS=3 SCALE=0.05 NODE_FILES=2000 bench/git-subvolume.sh   # a quick, small run
#
# The repository: the tree of bench/gentree.py (committed, then packed with `git gc` as a
# cloned repository is) in a subvolume made with `btrfs subvolume create` (the reference tool;
# cowtree itself never runs btrfs-progs), plus an ignored node_modules/ of NODE_FILES small
# files and an ignored target/ of 4 files of 32 MiB. Three tools, the order rotating each round:
#   snapshot   cowtree git worktree add --detach --ignored DST   (the cost rule chooses; the
#              bench checks it chose the snapshot)
#   per-file   cowtree git worktree add --detach --ignored --per-file DST
#   git+cp     git worktree add --detach DST, then cp -a --reflink=always of node_modules/ and
#              target/ into it
# and two floors, also in the rotation:
#   snap-only  btrfs subvolume snapshot SRC DST: the snapshot alone, nothing else
#   status-uno git -C SRC status --porcelain --untracked-files=no: one lstat of every tracked
#              file against SRC's index, the least that proves which SRC files are clean (an
#              index in DST that git trusts at once needs that proof; docs/git.md)
# Printed: median/min/max wall seconds of each and its ratio to git+cp and to per-file (the cost
# rule must never choose a snapshot slower than per-file); the first `git status` in the
# snapshot's worktree (wall, and the worktree files it opens, strace: the target is 0); the new
# worktree compared with SRC (diff -r but .git). Between runs the worktree is removed (untimed)
# and the filesystem synced; the page cache stays warm.
#
# Environment:
#   COWTREE=PATH   binary to measure (default: cargo build --release -p cowtree-cli)
#   RUNS=N         rounds (default 6: each tool twice in each position)
#   SCALE=F        bench/gentree.py --scale (default 0.5: about 40,000 tracked files)
#   TREE=DIR       track a copy of DIR instead of the generated tree (a real one, e.g. the
#                  output of `cargo vendor`); node_modules/ and target/ are added as above
#   NODE_FILES=N   files in node_modules/ (default 20000)
#   PACK=0         leave the repository's objects loose (as after committing the tree locally):
#                  the cost rule may then choose per file; the bench prints its choice, and the
#                  snapshot tool takes the snapshot anyway (--subvolume), to show whether the
#                  rule chose the faster way
#   HOOK=CMD       run CMD (a shell command) once the repository is ready, before the rounds,
#                  with SRC (the repository) and M (the mount) exported; e.g. to time other tools
#                  on the same repository
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/git-subvolume: $*" >&2; exit 1; }
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
[[ "$(id -u)" == 0 ]] || die "needs root to mount the btrfs loop filesystem"
[[ "$(uname -s)" == Linux ]] || die "Linux only"
RUNS=${RUNS:-6}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$RUNS'"
SCALE=${SCALE:-0.5}
NODE_FILES=${NODE_FILES:-20000}
PACK=${PACK:-1}
for tool in btrfs strace python3 git; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap 'cowtree_mounts_down' EXIT
COWTREE_BTRFS_SIZE=${COWTREE_BTRFS_SIZE:-8G} COWTREE_TEST_TMPDIR=${COWTREE_TEST_TMPDIR:-/tmp} \
  cowtree_mounts_up btrfs >&2
M=${COWTREE_TEST_BTRFS:?no btrfs mount}
export HOME="$M/home" XDG_STATE_HOME="$M/home/state" XDG_DATA_HOME="$M/home/data"
export XDG_CONFIG_HOME="$M/home/config" XDG_CACHE_HOME="$M/home/cache"
mkdir -p "$HOME"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
minmax() { sort -g | awk 'NR==1{mn=$1} {mx=$1} END {printf "%s %s\n", mn, mx}'; }

SRC="$M/repo"
if [[ -n "${TREE:-}" ]]; then
  [[ -d "$TREE" ]] || die "TREE=$TREE is not a directory"
  echo "bench/git-subvolume: the repository tracks a copy of $TREE ($NODE_FILES node_modules files), in a subvolume of $M"
  btrfs subvolume create "$SRC" >/dev/null
  cp -a "$TREE/." "$SRC/"
  [[ ! -e "$SRC/node_modules" && ! -e "$SRC/target" ]] || die "TREE=$TREE has a node_modules/ or target/ of its own"
else
  echo "bench/git-subvolume: generating the repository (scale $SCALE, $NODE_FILES node_modules files) in a subvolume of $M"
  btrfs subvolume create "$SRC" >/dev/null
  python3 bench/gentree.py "$SRC" --scale "$SCALE" --seed 1 >/dev/null
fi
python3 bench/genignored.py "$SRC" "$NODE_FILES"
printf 'node_modules/\n/target/\n' >"$SRC/.gitignore"
git -C "$SRC" init -q -b main
# No automatic gc in the background: the bench packs (or not) itself.
git -C "$SRC" config gc.auto 0
git -C "$SRC" add -A
git -C "$SRC" commit -qm bench
if [[ $PACK == 1 ]]; then git -C "$SRC" gc -q; fi
sleep 1.1
git -C "$SRC" status --porcelain >/dev/null
TRACKED=$(git -C "$SRC" ls-files | wc -l)
NODE=$(find "$SRC/node_modules" -type f | wc -l)
TARGET_BYTES=$(du -s --apparent-size -B1 "$SRC/target" | cut -f1)
GIT_ENTRIES=$(find "$SRC/.git" | wc -l)
echo "bench/git-subvolume: $TRACKED tracked files, $NODE ignored files in node_modules/, $TARGET_BYTES bytes in target/, $GIT_ENTRIES entries in .git"
if [[ -n "${HOOK:-}" ]]; then
  export SRC M COWTREE
  sh -c "$HOOK"
fi
echo "bench/git-subvolume: load before: $(cut -d' ' -f1-3 /proc/loadavg)"

settle() { sync; }
cleanup_wt() {
  git -C "$SRC" worktree remove --force "$1" 2>/dev/null || true
  if [[ -e "$1" ]]; then "$COWTREE" subvolume delete "$1" >/dev/null 2>&1 || rm -rf "$1"; fi
  git -C "$SRC" worktree prune
}

# timed CMD...: runs CMD (its stdout to $M/out.json); sets WALL. Fails as CMD failed.
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >"$M/out.json" 2>"$M/err.out" || { cat "$M/err.out" >&2; die "failed: $*"; }
  t1=$(date +%s%N)
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
}
method_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["method"])' "$M/out.json"; }
declare -A T
status_snap=()
run_tool() {
  local tool=$1 dst="$M/wt-$1"
  settle
  case $tool in
    snapshot)
      timed "$COWTREE" --json git worktree add --from "$SRC" --detach --ignored ${FORCE[@]+"${FORCE[@]}"} "$dst"
      [[ $(method_of) == subvolume ]] || die "the cost rule did not choose the snapshot: $(cat "$M/out.json")"
      settle
      local t0 t1
      t0=$(date +%s%N)
      git -C "$dst" status --porcelain >"$M/status.out"
      t1=$(date +%s%N)
      [[ -s "$M/status.out" ]] && die "git status in the snapshot's worktree is not clean: $(head "$M/status.out")"
      status_snap+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')")
      ;;
    per-file)
      timed "$COWTREE" --json git worktree add --from "$SRC" --detach --ignored --per-file "$dst"
      [[ $(method_of) == per-file ]] || die "--per-file did not run per file"
      ;;
    snap-only)
      timed btrfs subvolume snapshot "$SRC" "$dst"
      ;;
    status-uno)
      timed git -C "$SRC" status --porcelain --untracked-files=no
      [[ -s "$M/out.json" ]] && die "SRC is not clean: $(head -3 "$M/out.json")"
      ;;
    git+cp)
      timed sh -c 'git -C "$1" worktree add -q --detach "$2" &&
        cp -a --reflink=always "$1/node_modules" "$1/target" "$2/"' sh "$SRC" "$dst"
      ;;
  esac
  T[$tool]+="$WALL "
  if [[ $tool == snap-only ]]; then
    "$COWTREE" subvolume delete -q "$dst" >/dev/null
  elif [[ $tool != status-uno ]]; then
    cleanup_wt "$dst"
  fi
}

FORCE=()
if [[ $PACK != 1 ]]; then
  "$COWTREE" --json git worktree add --from "$SRC" --detach --ignored "$M/wt-choice" >"$M/out.json"
  echo "bench/git-subvolume: loose objects: the cost rule chose $(method_of) ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason_description"])' "$M/out.json")); the snapshot tool takes it anyway (--subvolume)"
  cleanup_wt "$M/wt-choice"
  FORCE=(--subvolume)
fi
tools=(snapshot per-file git+cp snap-only status-uno)
NT=${#tools[@]}
for ((r = 0; r < RUNS; r++)); do
  order=()
  for ((i = 0; i < NT; i++)); do order+=("${tools[(r + i) % NT]}"); done
  if ((r % 2)); then
    rev=()
    for ((i = NT - 1; i >= 0; i--)); do rev+=("${order[i]}"); done
    order=("${rev[@]}")
  fi
  for tool in "${order[@]}"; do run_tool "$tool"; done
  echo "bench/git-subvolume: round $((r + 1)) done (${order[*]})"
done

# One more snapshot worktree: what the first status opens, and the tree against SRC's.
settle
"$COWTREE" git worktree add -q --from "$SRC" --detach --ignored ${FORCE[@]+"${FORCE[@]}"} "$M/wt-check"
settle
strace -f -qq -e trace=open,openat,openat2 -o "$M/strace.log" git -C "$M/wt-check" status --porcelain >"$M/status.out"
READS=$(grep -v -e O_DIRECTORY -e ENOENT -e '\.git' -e '"/' "$M/strace.log" | grep -c 'open' || true)
if [[ $READS != 0 ]]; then
  echo "bench/git-subvolume: the first git status opened:"
  grep -v -e O_DIRECTORY -e ENOENT -e '\.git' -e '"/' "$M/strace.log" | grep 'open' | head -5
  "$COWTREE" --json git worktree add --from "$SRC" --detach --ignored ${FORCE[@]+"${FORCE[@]}"} "$M/wt-check2" >"$M/out.json"
  echo "bench/git-subvolume: another add said: $(cat "$M/out.json")"
  git -C "$M/wt-check2" ls-files --debug | grep -B1 -A5 -F "$(grep -v -e O_DIRECTORY -e ENOENT -e '\.git' -e '"/' "$M/strace.log" | grep 'open' | head -1 | cut -d'"' -f2)" | head -8
  cleanup_wt "$M/wt-check2"
fi
[[ -s "$M/status.out" ]] && die "git status in the new worktree is not clean: $(head "$M/status.out")"
while IFS= read -r line; do
  if [[ $line =~ ^Only\ in\ ([^:]*):\ (.*)$ && ${BASH_REMATCH[1]} == "$SRC"* ]]; then
    p="${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
    [[ -d $p && -z $(find "$p" ! -type d -print -quit) ]] && continue
  fi
  die "worktree differs from SRC: $line"
done < <(diff -r --no-dereference -x .git "$SRC" "$M/wt-check" || true)
cleanup_wt "$M/wt-check"

echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); $RUNS rounds, tools rotating"
echo "tree: $TRACKED tracked files, $NODE ignored node_modules files, $TARGET_BYTES bytes in target/"
printf '%-10s %9s %9s %9s %10s %11s\n' tool "wall med" min max "vs git+cp" "vs per-file"
med_of() { echo "$1" | tr ' ' '\n' | grep . | median; }
ref=$(med_of "${T[git+cp]}")
pf=$(med_of "${T[per-file]}")
for tool in "${tools[@]}"; do
  med=$(med_of "${T[$tool]}")
  read -r mn mx < <(echo "${T[$tool]}" | tr ' ' '\n' | grep . | minmax)
  printf '%-10s %9.3f %9.3f %9.3f %9.4fx %10.3fx\n' "$tool" "$med" "$mn" "$mx" \
    "$(echo "$med / $ref" | bc -l)" "$(echo "$med / $pf" | bc -l)"
done
sn=$(med_of "${T[snapshot]}")
echo "first git status in the snapshot's worktree: median $(printf '%s\n' "${status_snap[@]}" | median) s; worktree files it opened (strace): $READS"
verdict() { if [[ $1 == 1 ]]; then echo "PASS: $2"; else echo "MISS: $2"; fi; }
so=$(med_of "${T[snap-only]}")
su=$(med_of "${T[status-uno]}")
echo "floors: the snapshot alone $so s; proving SRC's tracked files clean (git status -uno) $su s; together $(echo "$so + $su" | bc -l | xargs printf %.3f) s, $(printf %.1f "$(echo "$ref / ($so + $su)" | bc -l)")x faster than git+cp: the most a result git trusts at once can be; cowtree's snapshot is $(printf %.2f "$(echo "$sn / ($so + $su)" | bc -l)")x that"
verdict "$(echo "$ref >= 100 * $sn" | bc)" "snapshot at least 100x faster than git worktree add + cp -a --reflink ($(printf %.1f "$(echo "$ref / $sn" | bc -l)")x)"
verdict "$(echo "$sn <= $pf" | bc)" "the snapshot the cost rule chose is no slower than per-file ($(printf %.2f "$(echo "$pf / $sn" | bc -l)")x faster)"
verdict "$([[ $READS == 0 ]] && echo 1 || echo 0)" "first git status in DST opens no worktree file"
