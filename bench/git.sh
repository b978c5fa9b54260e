#!/usr/bin/env bash
# `cowtree git worktree add --ignored` against `git worktree add`, on a fresh XFS loop mount.
#
#   sudo bench/git.sh
#
# The repository: the tree of bench/gentree.py (committed) plus an ignored node_modules/ of
# 20,000 small files and an ignored target/ of a few large files. Four tools, in another order
# each round (a balanced Latin square over 4 rounds: each tool runs once in each position and
# right after each other tool once):
#   cowtree      cowtree git worktree add --detach --ignored DST
#   git          git worktree add --detach DST                         (tracked files only)
#   git+cp       git worktree add --detach DST, then cp -a --reflink=always of the ignored dirs
#   floor        bench/clone-floor.c -j $(nproc) -x .git SRC DST: the syscall floor of a reflinked
#                copy of exactly the files cowtree makes (tracked and ignored; open, create,
#                FICLONE, close per file, no mode, times, index or git registration)
# Printed: median/min/max wall seconds and the ratio to `git`, and the median CPU seconds (user +
# system, which a loaded machine disturbs far less than wall time); cowtree against the floor,
# and what the 4x target asks against what the floor alone takes; the first `git status` in cowtree's
# worktree against `git status` in SRC (median of the rounds, the two in alternating order), with the
# number of tracked files that first status opened (strace); the disk space (df) taken by one
# cowtree worktree against the repository's apparent size. One PASS/MISS line per target.
#
# Environment:
#   COWTREE=PATH   binary to measure (default: cargo build --release -p cowtree-cli)
#   RUNS=N         rounds (default 4; rounded up to a multiple of 4, so that the orders balance)
#   SCALE=F        bench/gentree.py --scale (default 0.5: about 40,000 tracked files; the 4 GiB
#                  loop filesystem must hold SRC, its objects and one full git checkout)
#   NODE_FILES=N   files in node_modules/ (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench/git: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem"
RUNS=${RUNS:-4}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, not '$RUNS'"
if ((RUNS % 4)); then
  echo "bench/git: RUNS=$RUNS rounded up to $((RUNS + 4 - RUNS % 4)), so that each tool runs in each position as often"
  RUNS=$((RUNS + 4 - RUNS % 4))
fi
SCALE=${SCALE:-0.5}
NODE_FILES=${NODE_FILES:-20000}
command -v strace >/dev/null || die "needs strace (apt-get install strace)"
command -v cc >/dev/null || die "needs a C compiler (cc) for the floor probe bench/clone-floor.c"

# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap 'cowtree_mounts_down' EXIT
COWTREE_TEST_TMPDIR=${COWTREE_TEST_TMPDIR:-/tmp} cowtree_mounts_up xfs
M=${COWTREE_TEST_XFS:?no XFS mount}
FLOOR="$COWTREE_MOUNT_WORK/clone-floor"
cc -O2 -pthread -o "$FLOOR" bench/clone-floor.c || die "could not build bench/clone-floor.c"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

# The median; of an even count, the mean of the two middle values.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
minmax() { sort -g | awk 'NR==1{mn=$1} {mx=$1} END {printf "%s %s\n", mn, mx}'; }

SRC="$M/repo"
echo "bench/git: generating the repository (scale $SCALE) on $M"
python3 bench/gentree.py "$SRC" --scale "$SCALE" --seed 1 >/dev/null
python3 bench/genignored.py "$SRC" "$NODE_FILES"
printf 'node_modules/\n/target/\n' >"$SRC/.gitignore"
git -C "$SRC" init -q -b main
sleep 1.1
git -C "$SRC" add -A
git -C "$SRC" commit -qm bench
git -C "$SRC" status --porcelain >/dev/null
TRACKED=$(git -C "$SRC" ls-files | wc -l)
APPARENT=$(du -s --apparent-size -B1 --exclude=.git "$SRC" | cut -f1)
echo "bench/git: $TRACKED tracked files, $(du -s --apparent-size -B1 "$SRC/node_modules" | cut -f1) bytes in node_modules, apparent size of the worktree $APPARENT bytes"
echo "bench/git: load before: $(cut -d' ' -f1-3 /proc/loadavg)"

settle() { sync; xfs_freeze -f "$M" 2>/dev/null && xfs_freeze -u "$M" 2>/dev/null || true; }
cleanup_wt() { git -C "$SRC" worktree remove --force "$1" 2>/dev/null || rm -rf "$1"; git -C "$SRC" worktree prune; }

# timed CMD...: runs CMD; sets WALL and CPU (user + system seconds, children included). Fails
# as CMD failed.
timed() {
  /usr/bin/time -f '%e %U %S' -o "$M/time.out" "$@" || return
  read -r WALL u s <"$M/time.out"
  CPU=$(echo "$u + $s" | bc)
}
declare -A T C
status_src=() status_dst=() cpu_src=() cpu_dst=()
run_tool() {
  local tool=$1 dst="$M/wt-$1"
  settle
  case $tool in
    cowtree) timed "$COWTREE" git worktree add -q --from "$SRC" --detach --ignored "$dst" ;;
    git) timed git -C "$SRC" worktree add -q --detach "$dst" ;;
    git+cp) timed sh -c 'git -C "$1" worktree add -q --detach "$2" &&
      cp -a --reflink=always "$1/node_modules" "$1/target" "$2/"' sh "$SRC" "$dst" ;;
    floor)
      if ! timed "$FLOOR" -j "$(nproc)" -x .git "$SRC" "$dst" 2>"$M/floor.out"; then
        cat "$M/floor.out" >&2
        die "the floor probe bench/clone-floor.c failed (its output above)"
      fi
      ;;
  esac
  T[$tool]+="$WALL "
  C[$tool]+="$CPU "
  if [[ $tool == cowtree ]]; then
    settle
    # The first git status in the new worktree and git status in SRC, in alternating order
    # (whichever runs second finds the first one's reads of the shared objects cached).
    if ((ROUND % 2 == 0)); then
      timed git -C "$dst" status --porcelain >/dev/null
      status_dst+=("$WALL"); cpu_dst+=("$CPU")
      timed git -C "$SRC" status --porcelain >/dev/null
      status_src+=("$WALL"); cpu_src+=("$CPU")
    else
      timed git -C "$SRC" status --porcelain >/dev/null
      status_src+=("$WALL"); cpu_src+=("$CPU")
      timed git -C "$dst" status --porcelain >/dev/null
      status_dst+=("$WALL"); cpu_dst+=("$CPU")
    fi
  fi
  cleanup_wt "$dst"
}

for ((r = 0; r < RUNS; r++)); do
  ROUND=$r
  case $((r % 4)) in
    0) order=(cowtree git floor git+cp) ;;
    1) order=(git git+cp cowtree floor) ;;
    2) order=(git+cp floor git cowtree) ;;
    3) order=(floor cowtree git+cp git) ;;
  esac
  for tool in "${order[@]}"; do run_tool "$tool"; done
  echo "bench/git: round $((r + 1)) done"
done

# One more cowtree worktree: correctness, files read by the first status, disk space.
settle
used0=$(df -B1 --output=used "$M" | tail -1)
"$COWTREE" git worktree add -q --from "$SRC" --detach --ignored "$M/wt-check"
settle
used1=$(df -B1 --output=used "$M" | tail -1)
strace -f -qq -e trace=open,openat -o "$M/strace.log" git -C "$M/wt-check" status --porcelain >"$M/status.out"
READS=$(grep -v -e O_DIRECTORY -e ENOENT -e '\.git' -e '"/' "$M/strace.log" | grep -c 'openat(' || true)
[[ -s "$M/status.out" ]] && die "git status in the new worktree is not clean: $(head "$M/status.out")"
# The worktree must equal SRC except for directories holding no file (git tracks none).
while IFS= read -r line; do
  if [[ $line =~ ^Only\ in\ ([^:]*):\ (.*)$ && ${BASH_REMATCH[1]} == "$SRC"* ]]; then
    p="${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
    [[ -d $p && -z $(find "$p" ! -type d -print -quit) ]] && continue
  fi
  die "worktree differs from SRC: $line"
done < <(diff -r --no-dereference -x .git "$SRC" "$M/wt-check" || true)

echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); $RUNS rounds, tools alternating"
printf '%-10s %9s %9s %9s %8s %9s %8s\n' tool "wall med" min max "vs git" "cpu med" "vs git"
med_of() { echo "$1" | tr ' ' '\n' | grep . | median; }
git_med=$(med_of "${T[git]}")
git_cpu=$(med_of "${C[git]}")
for tool in cowtree git git+cp floor; do
  med=$(med_of "${T[$tool]}")
  cpu=$(med_of "${C[$tool]}")
  read -r mn mx < <(echo "${T[$tool]}" | tr ' ' '\n' | grep . | minmax)
  printf '%-10s %9.3f %9.3f %9.3f %7.2fx %9.3f %7.2fx\n' "$tool" "$med" "$mn" "$mx" \
    "$(echo "$med / $git_med" | bc -l)" "$cpu" "$(echo "$cpu / $git_cpu" | bc -l)"
done
ct_med=$(med_of "${T[cowtree]}")
ct_cpu=$(med_of "${C[cowtree]}")
fl_med=$(med_of "${T[floor]}")
fl_cpu=$(med_of "${C[floor]}")
echo "floor probe: $(sed -n 's/^clone-floor: //p' "$M/floor.out"); cowtree against it: $(printf %.2f "$(echo "$ct_med / $fl_med" | bc -l)")x wall, $(printf %.2f "$(echo "$ct_cpu / $fl_cpu" | bc -l)")x cpu"
echo "the 4x target needs cowtree <= $(printf %.3f "$(echo "$git_med / 4" | bc -l)") s wall; the floor probe alone takes $(printf %.3f "$fl_med") s ($(printf %.2f "$(echo "$fl_med / $git_med" | bc -l)")x git, $(printf %.2f "$(echo "4 * $fl_med / $git_med" | bc -l)")x the target)"
sd=$(printf '%s\n' "${status_dst[@]}" | median)
ss=$(printf '%s\n' "${status_src[@]}" | median)
cd_=$(printf '%s\n' "${cpu_dst[@]}" | median)
cs=$(printf '%s\n' "${cpu_src[@]}" | median)
echo "first git status in the cowtree worktree: median $sd s wall, $cd_ s cpu; git status in SRC: median $ss s wall, $cs s cpu; ratio $(printf %.2f "$(echo "$sd / $ss" | bc -l)") wall, $(printf %.2f "$(echo "$cd_ / $cs" | bc -l)") cpu"
echo "tracked files opened by that first git status (strace): $READS"
echo "disk used by one cowtree worktree (df): $((used1 - used0)) bytes = $(printf %.2f "$(echo "100 * ($used1 - $used0) / $APPARENT" | bc -l)")% of the apparent size ($APPARENT bytes)"
speed=$(echo "$git_med / $(med_of "${T[cowtree]}")" | bc -l)
verdict() { if [[ $1 == 1 ]]; then echo "PASS: $2"; else echo "MISS: $2"; fi; }
verdict "$(echo "$speed >= 4" | bc)" "cowtree --ignored at least 4x faster than git worktree add ($(printf %.2f "$speed")x; the floor probe alone: $(printf %.2f "$(echo "$git_med / $fl_med" | bc -l)")x)"
verdict "$(echo "$sd <= 1.3 * $ss" | bc)" "first git status in DST at most 1.3x SRC's"
verdict "$([[ $READS == 0 ]] && echo 1 || echo 0)" "first git status in DST reads no tracked file"
verdict "$(echo "($used1 - $used0) <= 0.10 * $APPARENT" | bc)" "DST uses at most 10% of the apparent size"
