#!/usr/bin/env bash
# cowtree benchmarks: one command, real filesystems, medians over several runs.
#
#   sudo bench/run.sh [clone|checkout|btrfs|snapshot|status|all]...     (default: all)
#
# Mounts a fresh XFS (reflink=1) loop filesystem through scripts/mounts.sh (and always unmounts
# it), generates the synthetic tree of bench/gentree.py on it and on the host filesystem, and
# compares cowtree with cp, xcp, b3sum, git and the syscall floor (bench/clone-floor.c: open,
# create, FICLONE, close per file, one thread per core) in the same run. Each section prints a table
# (median/min/max seconds, time relative to the reference tool, files per second, peak RSS)
# and one PASS/MISS line per target of the issue it measures. Everything printed is also
# written to bench/out/results-<UTC date>.txt.
#
# Environment:
#   COWTREE=PATH     binary to measure (default: cargo build --release, target/release/cowtree)
#   RUNS=N           timed runs per tool (default 5); the median is reported
#   GIT_RUNS=N       timed runs of `git add -A` and `git worktree add` (default 1: each takes
#                    several times longer than everything else, and the targets leave wide margins)
#   HOST_RUNS=N      timed runs per tool of the clone on the host filesystem, where every tool
#                    writes all the data and the disk is slow (default: min(RUNS, 2); 0 skips it:
#                    bench/fallback.sh measures that case with a fresh filesystem per run)
#   REF_RUNS=N       timed runs of the fresh-snapshot reference for the incremental snapshot
#                    (default: min(RUNS, 2))
#   SCALE=F          tree size factor for bench/gentree.py --scale (default 1: ~80k files)
#   SEED=N           tree seed (default 1)
#   TREE=DIR         measure a copy of this tree instead of the generated one (e.g. the output
#                    of `cargo vendor`), its files' modes made 0644 or 0755 (what a snapshot
#                    records); SCALE and SEED are then unused
#   DROP_CACHES=1    sync and drop the page cache before every timed run (default: warm cache)
#   BENCH_HOST_DIR=D where the host-filesystem tree goes (default: beside the loop images)
#   HOST_SETTLE_S=N  seconds of quiet after fstrim before each host-filesystem clone (default 5)
#   XCP_INSTALL=1    `cargo install xcp` when xcp is missing (compiles for minutes; default off)
#   OLD=PATH         an older cowtree binary for the btrfs section's store rows: its per-file
#                    checkout is the reference for today's behaviour
#
# Method: between runs the destination is removed and the filesystem synced (XFS also frozen
# and thawed, which waits for its background metadata writeback), untimed; in the
# clone and snapshot sections the tools alternate within each round so that machine noise
# spreads over all of them (the checkouts run first, each into a new directory, since the first
# 10 also give the used-space figure). Wall time is taken around `/usr/bin/time -f %M`, which
# gives the peak RSS (of the largest process in a pipeline). The first output of each copying
# tool is compared with the source (names, types, sizes, modes, link targets), the worktree after
# the switches with the last target, and the files `cowtree status --json` lists as modified
# with the files changed; a tool that fails such a check is marked WRONG and misses its target.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "bench: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem: sudo bench/run.sh"
[[ "$(uname -s)" == Linux ]] || die "Linux only"

SECTIONS=("$@")
((${#SECTIONS[@]})) || SECTIONS=(all)
for s in "${SECTIONS[@]}"; do
  case $s in
    clone | checkout | btrfs | snapshot | status | all) ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown section '$s' (clone, checkout, btrfs, snapshot, status, all)" ;;
  esac
done
want() {
  local s
  for s in "${SECTIONS[@]}"; do [[ $s == all || $s == "$1" ]] && return 0; done
  return 1
}

RUNS=${RUNS:-5}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
GIT_RUNS=${GIT_RUNS:-1}
REF_RUNS=${REF_RUNS:-$((RUNS < 2 ? RUNS : 2))}
HOST_RUNS=${HOST_RUNS:-$((RUNS < 2 ? RUNS : 2))}
SCALE=${SCALE:-1}
SEED=${SEED:-1}
[[ $GIT_RUNS =~ ^[1-9][0-9]*$ ]] || die "GIT_RUNS must be a positive integer"
[[ $REF_RUNS =~ ^[1-9][0-9]*$ ]] || die "REF_RUNS must be a positive integer"
[[ $HOST_RUNS =~ ^[0-9]+$ ]] || die "HOST_RUNS must be a number"
if [[ -n "${TREE:-}" ]]; then
  [[ -d "$TREE" ]] || die "TREE=$TREE is not a directory"
  TREE=$(realpath "$TREE")
fi

mkdir -p bench/out
RESULTS="$ROOT/bench/out/results-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
note() { printf 'bench: %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------- tools
if [[ ! -x /usr/bin/time ]]; then
  note "installing the 'time' package for peak RSS"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi
if ! command -v b3sum >/dev/null; then
  note "installing b3sum, the snapshot section's reference"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq b3sum >/dev/null ||
    note "could not install b3sum: the snapshot section's reference will be missing"
fi
command -v cc >/dev/null || die "needs a C compiler (cc) for the floor probe bench/clone-floor.c"

find_cargo() {
  command -v cargo && return
  local h
  for h in "$HOME" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)"; do
    [[ -x "$h/.cargo/bin/cargo" ]] && { echo "$h/.cargo/bin/cargo"; return; }
  done
  return 1
}
as_user() {
  # Builds run as the user who called sudo, so target/ does not become root's.
  if [[ -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]]; then
    sudo -u "$SUDO_USER" -H env PATH="$PATH" "$@"
  else
    "$@"
  fi
}
if [[ -z "${COWTREE:-}" ]]; then
  CARGO=$(find_cargo) || die "cargo not found; set COWTREE=path/to/cowtree"
  note "building cowtree --release"
  as_user "$CARGO" build --release --quiet -p cowtree-cli
  COWTREE="$ROOT/target/release/cowtree"
fi
[[ -x "$COWTREE" ]] || die "COWTREE=$COWTREE is not an executable"
COWTREE=$(realpath "$COWTREE")
if ! command -v xcp >/dev/null && [[ "${XCP_INSTALL:-}" == 1 ]]; then
  CARGO=$(find_cargo) || die "XCP_INSTALL=1 but cargo not found"
  note "cargo install xcp (XCP_INSTALL=1)"
  as_user "$CARGO" install --quiet xcp || note "cargo install xcp failed; xcp skipped"
  PATH="$PATH:$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)/.cargo/bin"
fi
XCP=$(command -v xcp || true)
# The floor probe, built from bench/clone-floor.c into the work directory below.
FLOOR_C="$ROOT/bench/clone-floor.c"
THREADS=$(nproc)
has_cmd() { "$COWTREE" help "$1" >/dev/null 2>&1; }

# Git without the caller's configuration, so hooks, fsmonitor or a pager cannot skew it.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_PAGER=cat PAGER=cat
GIT=(git -c user.name=bench -c user.email=bench@cowtree.invalid -c gc.auto=0
  -c core.fsmonitor=false -c init.defaultBranch=main -c advice.detachedHead=false)

# --------------------------------------------------------------------------------- mounts
# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
WORK=""
BUSER=""
cleanup() {
  local rc=$?
  [[ -n "$BUSER" ]] && userdel "$BUSER" 2>/dev/null
  cowtree_mounts_down
  [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# 8 GiB (sparse): the tree, its store, the git repository and a full `git worktree add` copy
# of the tree are all on it at once, and 4 GiB ran out (ENOSPC in `git worktree add`).
COWTREE_XFS_SIZE=${COWTREE_XFS_SIZE:-8G} cowtree_mounts_up xfs >&2
[[ -n "${COWTREE_TEST_XFS:-}" ]] || die "could not mount XFS (see above)"
XFS=$COWTREE_TEST_XFS
WORK=$(mktemp -d "${BENCH_HOST_DIR:-$COWTREE_MOUNT_WORK}/bench-host.XXXXXX")
HOST=$WORK
export COWTREE_STORE="$XFS/store" # never the caller's own store
SAMPLES=$(mktemp "$WORK/samples.XXXXXX")
FLOOR="$WORK/clone-floor"
cc -O2 -pthread -o "$FLOOR" "$FLOOR_C" || die "could not build $FLOOR_C (needs a C compiler)"
SWFLOOR="$WORK/switch-floor"
cc -O2 -o "$SWFLOOR" "$ROOT/bench/switch-floor.c" || die "could not build bench/switch-floor.c (needs a C compiler)"
TIMEF="$WORK/time.out"
LOGF="$WORK/cmd.log"

# ------------------------------------------------------------------------------- helpers
drop_caches() {
  if [[ "${DROP_CACHES:-}" == 1 ]]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches
  fi
}
# flush_fs: sync, then freeze and thaw the XFS mount. sync writes data and forces the log, but
# XFS writes the metadata logged by a large step (cp -a or rm -rf of a whole tree) back in the
# background for seconds afterwards, on the same cores as the next timed run; a freeze waits
# for all of it. (The host filesystem is only synced: freezing / could hang the machine.)
FREEZE_NOTED=""
flush_fs() {
  if [[ -z "${XFS:-}" ]]; then
    sync
    return 0
  fi
  local rc=0
  cowtree_quiesce "$XFS" || rc=$?
  if ((rc == 2)); then
    die "could not thaw $XFS after freezing it"
  elif ((rc == 1)) && [[ -z "$FREEZE_NOTED" ]]; then
    FREEZE_NOTED=1
    note "fsfreeze -f $XFS failed: runs start after sync only (background writeback may remain)"
  fi
}
settle() { # remove leftovers and flush, so the next timed run starts from a quiet disk
  local p
  for p in "$@"; do [[ -e "$p" || -L "$p" ]] && rm -rf -- "$p"; done
  flush_fs
  drop_caches
}
# listing PATH: one line per entry (path, type, size for files, mode, link target), sorted;
# equal listings mean the same names, kinds, sizes, permission bits and symlink targets.
listing() {
  (cd "$1" && find . -mindepth 1 \( -type f -printf '%P f %s %m\n' \) -o \
    \( -type l -printf '%P l %l\n' \) -o \( -printf '%P %y %m\n' \)) | LC_ALL=C sort | md5sum | cut -d' ' -f1
}
declare -A SRC_LISTING=()
declare -A WRONG=()
check_copy() { # check_copy KEY SRC DST LABEL
  local want
  if [[ -z "${SRC_LISTING[$2]:-}" ]]; then SRC_LISTING[$2]=$(listing "$2"); fi
  want=${SRC_LISTING[$2]}
  if [[ "$(listing "$3")" != "$want" ]]; then
    WRONG[$1]=1
    note "WRONG: $4: $3 differs from $2 (names, kinds, sizes, modes or link targets)"
  fi
}

# timed KEY CMD...: one timed run; appends "KEY seconds rss_kib" to $SAMPLES.
# Returns the command's status; on failure prints the tail of its output.
timed() {
  local key=$1 t0 t1 rc=0 rss
  shift
  t0=$(date +%s%N)
  /usr/bin/time -f '%M %U %S' -o "$TIMEF" "$@" >"$LOGF" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if ((rc != 0)); then
    note "FAILED ($rc): $key: $*"
    tail -5 "$LOGF" | sed 's/^/    /' >&2
    echo "$key FAIL 0" >>"$SAMPLES"
    return "$rc"
  fi
  # peak RSS (KiB, of the largest process) and CPU seconds (user + system, of the command and
  # the children it waited for)
  read -r rss cpu < <(tail -1 "$TIMEF" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }')
  echo "$key $(((t1 - t0) / 1000)) $rss $cpu" >>"$SAMPLES"
}

# median KEY: median seconds of KEY's successful runs (empty when none)
median() {
  awk -v k="$1" '$1 == k && $2 != "FAIL" { print $2 / 1e6 }' "$SAMPLES" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR) printf "%.6f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
median_cpu() { # median CPU seconds of KEY's successful runs
  awk -v k="$1" '$1 == k && $2 != "FAIL" { print $4 + 0 }' "$SAMPLES" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR) printf "%.2f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
peak_mib() {
  awk -v k="$1" '$1 == k && $2 != "FAIL" && $3 > m { m = $3 } END { if (m) printf "%.1f\n", m / 1024 }' "$SAMPLES"
}

# table TITLE FILES REFKEY KEY=LABEL...: prints the section's table.
table() {
  local title=$1 files=$2 ref=$3
  shift 3
  local refmed
  refmed=$(median "$ref")
  say ""
  say "== $title (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  say "$(printf '%-40s %9s %9s %9s %8s %10s %9s %6s %s' tool median_s min_s max_s 'x ref' files/s rss_MiB cpu_s runs)"
  local kv key label
  for kv in "$@"; do
    key=${kv%%=*}
    label=${kv#*=}
    local line
    line=$(awk -v k="$key" -v files="$files" -v ref="${refmed:-}" -v label="$label" \
      -v wrong="${WRONG[$key]:-}" '
      $1 == k { if ($2 == "FAIL") { fail++; next } n++; s[n] = $2 / 1e6; c[n] = $4 + 0; if ($3 > rss) rss = $3 }
      END {
        if (!n) { printf "%-40s %9s %s\n", label, "-", (fail ? fail " failed" : "not run"); exit }
        for (i = 2; i <= n; i++) { v = s[i]; for (j = i - 1; j >= 1 && s[j] > v; j--) s[j + 1] = s[j]; s[j + 1] = v }
        med = (n % 2) ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
        for (i = 2; i <= n; i++) { v = c[i]; for (j = i - 1; j >= 1 && c[j] > v; j--) c[j + 1] = c[j]; c[j + 1] = v }
        cmed = (n % 2) ? c[(n + 1) / 2] : (c[n / 2] + c[n / 2 + 1]) / 2
        r = (ref != "" && ref > 0) ? sprintf("%.2f", med / ref) : "-"
        fps = (files > 0 && med > 0) ? sprintf("%.0f", files / med) : "-"
        printf "%-40s %9.3f %9.3f %9.3f %8s %10s %9.1f %6.2f %d%s%s\n", label, med, s[1], s[n], r, fps,
          rss / 1024, cmed, n, (fail ? " (" fail " failed)" : ""), (wrong ? " WRONG" : "")
      }' "$SAMPLES")
    say "$line"
  done
}

# verdict TEXT OK: one PASS/MISS line; OK is 1, 0, or empty (not measured)
verdict() {
  local text=$1 ok=$2
  case $ok in
    1) say "PASS  $text" ;;
    0) say "MISS  $text" ;;
    *) say "----  $text (not measured)" ;;
  esac
}
# cmp_le A B: prints 1 when A <= B, 0 otherwise, empty when either is empty
cmp_le() {
  if [[ -n "$1" && -n "$2" ]]; then awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? 1 : 0 }'; fi
}
# faster_by A B F KEY: 1 when A * F <= B (A at least F times faster), 0 when not or when KEY's
# output was WRONG, empty when A or B was not measured
faster_by() {
  if [[ -n "$1" && -n "$2" ]]; then
    if [[ -n "${WRONG[$4]:-}" ]]; then echo 0; else cmp_le "$(calc6 "$3 * $1")" "$2"; fi
  fi
}
calc6() { awk "BEGIN { printf \"%.9f\", $1 }"; } # for comparisons
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
fmt_or_dash() { [[ -n "$1" ]] && echo "$1" || echo "-"; }

# ------------------------------------------------------------------------------ the trees
say "cowtree benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine: $(uname -srm), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "cowtree: $COWTREE ($("$COWTREE" --version 2>/dev/null || echo 'no --version'); sha256 $(sha256sum "$COWTREE" | cut -c1-16)); harness: bench/run.sh at commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
say "tools: $(cp --version | head -1); $(git --version); $(b3sum --version 2>/dev/null || echo 'b3sum missing'); xcp: ${XCP:-not installed (skipped; XCP_INSTALL=1 builds it with cargo install)}"
say "settings: RUNS=$RUNS GIT_RUNS=$GIT_RUNS REF_RUNS=$REF_RUNS HOST_RUNS=$HOST_RUNS SCALE=$SCALE SEED=$SEED; page cache $([[ "${DROP_CACHES:-}" == 1 ]] && echo 'dropped before every timed run' || echo 'warm (not dropped)'); sync, and XFS frozen and thawed, between runs"
say "XFS: $XFS ($(stat -f -c %T "$XFS"), 4 GiB loop image, reflink=1); host: $HOST ($(stat -f -c %T "$HOST"))"
# A DAMON "pageout" scheme (some virtual machines run one) pages file data out of the page
# cache seconds after nobody reads it: a "warm" source is then partly cold for every tool.
for d in /sys/kernel/mm/damon/admin/kdamonds/*/; do
  [[ "$(cat "$d/state" 2>/dev/null)" == on ]] || continue
  say "note: DAMON kdamond $(basename "$d") is on (actions: $(cat "$d"/contexts/*/schemes/*/action 2>/dev/null | sort -u | tr '\n' ' ')): with 'pageout', cached file pages are evicted within seconds, so sources are partly cold whatever the page cache setting says"
done

gen() { # gen DEST: generate the tree (or copy $TREE), print its totals as JSON
  if [[ -z "${TREE:-}" ]]; then
    python3 "$ROOT/bench/gentree.py" "$1" --scale "$SCALE" --seed "$SEED" --json
    return
  fi
  cp -a "$TREE" "$1"
  # A snapshot records a file's executable bit, not its other mode bits: modes as a checkout
  # makes them, so that the checkouts compare equal to the source.
  find "$1" -type f -perm /111 -exec chmod 755 {} + -o -type f -exec chmod 644 {} +
  python3 - "$1" <<'PY'
import json, os, stat, sys
t = dict(files=0, dirs=0, empty_dirs=0, symlinks=0, bytes=0, largest=0)
for d, dirs, names in os.walk(sys.argv[1]):
    t["dirs"] += 1
    if not dirs and not names:
        t["empty_dirs"] += 1
    for n in dirs + names:
        st = os.lstat(os.path.join(d, n))
        if stat.S_ISLNK(st.st_mode):
            t["symlinks"] += 1
        elif stat.S_ISREG(st.st_mode):
            t["files"] += 1
            t["bytes"] += st.st_size
            t["largest"] = max(t["largest"], st.st_size)
print(json.dumps(t))
PY
}
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

note "generating the tree on XFS${TREE:+ (a copy of $TREE)}"
say "tree source: ${TREE:-bench/gentree.py --scale $SCALE --seed $SEED}"
TREE_JSON=$(gen "$XFS/src")
FILES=$(jget "$TREE_JSON" files)
BYTES=$(jget "$TREE_JSON" bytes)
say "tree: $(jget "$TREE_JSON" files) files, $(jget "$TREE_JSON" dirs) dirs ($(jget "$TREE_JSON" empty_dirs) empty), $(jget "$TREE_JSON" symlinks) symlinks, $BYTES bytes apparent ($(calc "$BYTES / 1048576") MiB, largest $(calc "$(jget "$TREE_JSON" largest) / 1048576") MiB); files/s below counts regular files"
SRC=$XFS/src
if want clone && has_cmd clone && ((HOST_RUNS > 0)); then
  note "generating the tree on the host filesystem"
  gen "$HOST/src" >/dev/null
fi
sync

# ------------------------------------------------------------------------------- clone
clone_section() { # clone_section FS RUNS SRC DSTBASE REFLABEL REFCMD...
  local fs=$1 runs=$2 src=$3 base=$4 reflabel=$5
  shift 5
  local ref=("$@") r
  local dst="$base/dst"
  # Before each timed run: the previous output removed, the filesystem flushed, and on the host
  # filesystem (which copies) the freed blocks discarded and the device left alone for a while:
  # without that, whichever tool runs first after a removal of the tree pays for it.
  prep() {
    settle "$dst"
    if [[ $fs == host ]]; then
      fstrim "$(stat -c %m "$HOST")" 2>/dev/null || true
      sleep "${HOST_SETTLE_S:-5}"
    fi
  }
  run_cowtree() {
    prep
    if timed "clone-$fs-cowtree" "$COWTREE" clone "$src" "$dst" && ((r == 1)); then
      cp "$LOGF" "$WORK/clone-$fs.log"
      check_copy "clone-$fs-cowtree" "$src" "$dst" "cowtree clone ($fs)"
    fi
  }
  run_ref() {
    prep
    if timed "clone-$fs-cp" "${ref[@]}" "$src" "$dst" && ((r == 1)); then
      check_copy "clone-$fs-cp" "$src" "$dst" "$reflabel ($fs)"
    fi
  }
  run_notimes() {
    prep
    timed "clone-$fs-notimes" "$COWTREE" clone --no-preserve-times "$src" "$dst" || true
  }
  run_floor() {
    prep
    timed "clone-$fs-floor" "$FLOOR" -j "$THREADS" "$src" "$dst" || true
  }
  # On a reflink filesystem also `clone --no-preserve-times` (what clone costs without keeping
  # `cp -a`'s times: one utimensat per entry, which the floor probe does not make) and the floor
  # probe. Every tool takes every position in turn: the order rotates from round to round.
  local tools=(run_cowtree run_ref)
  [[ $fs != host ]] && tools+=(run_notimes run_floor)
  [[ -n "$XCP" ]] && tools+=(run_xcp)
  run_xcp() {
    prep
    if timed "clone-$fs-xcp" "$XCP" -r "$src" "$dst" && ((r == 1)); then
      check_copy "clone-$fs-xcp" "$src" "$dst" "xcp -r ($fs)"
    fi
  }
  local n=${#tools[@]} i
  for ((r = 1; r <= runs; r++)); do
    note "clone/$fs: round $r/$runs"
    for ((i = 0; i < n; i++)); do
      "${tools[$(((r - 1 + i) % n))]}"
    done
  done
  settle "$dst"
  local rows=("clone-$fs-cowtree=cowtree clone" "clone-$fs-cp=$reflabel")
  [[ -n "$XCP" ]] && rows+=("clone-$fs-xcp=xcp -r")
  [[ $fs != host ]] && rows+=("clone-$fs-notimes=cowtree clone --no-preserve-times" "clone-$fs-floor=floor probe ($THREADS threads)")
  table "clone on $fs ($(stat -f -c %T "$src")): reference $reflabel" "$FILES" "clone-$fs-cp" "${rows[@]}"
  if [[ -s "$WORK/clone-$fs.log" ]]; then
    say "cowtree's report (first run): $(tail -3 "$WORK/clone-$fs.log" | tr '\n' ' ')"
  fi
}

if want clone; then
  if has_cmd clone; then
    clone_section xfs "$RUNS" "$SRC" "$XFS" "cp -a --reflink=always" cp -a --reflink=always
    a=$(median clone-xfs-cowtree)
    b=$(median clone-xfs-cp)
    m=$(peak_mib clone-xfs-cowtree)
    verdict "clone on XFS at least 2.0x faster than cp -a --reflink=always: $([[ -n $a && -n $b ]] && calc "$b / $a" || echo -)x" \
      "$(faster_by "$a" "$b" 2 clone-xfs-cowtree)"
    f=$(median clone-xfs-floor)
    verdict "clone on XFS at most 1.1x the floor probe: $([[ -n $a && -n $f ]] && calc "$a / $f" || echo -)x" \
      "$([[ -n $a && -n $f ]] && cmp_le "$a" "$(calc6 "1.1 * $f")")"
    nt=$(median clone-xfs-notimes)
    say "info  clone --no-preserve-times / floor probe: $([[ -n $nt && -n $f ]] && calc "$nt / $f" || echo -)x (keeping times costs one utimensat per entry, which the floor does not make)"
    verdict "clone peak RSS at most 64 MiB: $(fmt_or_dash "$m") MiB" "$(cmp_le "$m" 64)"
    if ((HOST_RUNS > 0)); then
      clone_section host "$HOST_RUNS" "$HOST/src" "$HOST" "cp -a" cp -a
      a=$(median clone-host-cowtree)
      b=$(median clone-host-cp)
      say "info  clone on the host filesystem (no reflink, both copy): cowtree/cp-a time ratio $([[ -n $a && -n $b ]] && calc "$a / $b" || echo -) (bench/fallback.sh measures this with a fresh filesystem per run)"
      m=$(peak_mib clone-host-cowtree)
      verdict "clone peak RSS at most 64 MiB (host): $(fmt_or_dash "$m") MiB" "$(cmp_le "$m" 64)"
    fi
  else
    say ""
    say "== clone: skipped: $COWTREE has no 'clone' command ('cowtree help clone' failed)"
  fi
fi
# The host tree stays until the end: removing it is left to the cleanup.

# ----------------------------------------------------------------- git repo of the same files
GITREPO=$XFS/gitrepo
git_fresh() { # a reflink copy of the tree with an empty repository in it (untimed)
  settle "$GITREPO"
  cp -a --reflink=always "$SRC" "$GITREPO"
  "${GIT[@]}" -C "$GITREPO" init -q
  sync
}
ensure_gitrepo() { # the tree committed once, untimed
  if [[ ! -d "$GITREPO/.git" ]] || ! "${GIT[@]}" -C "$GITREPO" rev-parse -q --verify HEAD >/dev/null; then
    note "committing the tree to a git repository (untimed)"
    [[ -d "$GITREPO/.git" ]] || git_fresh
    "${GIT[@]}" -C "$GITREPO" add -A
    "${GIT[@]}" -C "$GITREPO" commit -q -m tree
  fi
  "${GIT[@]}" -C "$GITREPO" status --porcelain >/dev/null # refresh the index's stat data
  sync
}

# ---------------------------------------------------------------------------- snapshot
SNAP_ID=""
snapshot_id() { # snapshot_id OUTPUT: the id from --json output (or the last word of human output)
  python3 -c '
import json, sys
t = sys.argv[1].strip()
# The JSON document is one line; other lines (on stderr, in a log of both) are notes.
for line in reversed(t.splitlines()):
    try:
        print(json.loads(line)["id"])
        break
    except Exception:
        pass
else:
    print(t.split()[-1] if t.split() else "")' "$1"
}
make_store_snapshot() { # the tree recorded in $XFS/store (untimed unless the section ran)
  [[ -n "$SNAP_ID" ]] && return
  note "recording the tree in $XFS/store (untimed)"
  SNAP_ID=$(snapshot_id "$("$COWTREE" --store "$XFS/store" snapshot "$SRC" --json)")
  [[ -n "$SNAP_ID" ]] || die "no snapshot id from cowtree snapshot"
  sync
}

if want snapshot; then
  if has_cmd snapshot; then
    for ((r = 1; r <= RUNS; r++)); do
      note "snapshot: round $r/$RUNS"
      # Every run records into an empty store; the last one fills the store that the checkout
      # and status sections use, so the tree is not recorded once more untimed.
      store="$XFS/store-fresh"
      ((r == RUNS)) && [[ ! -e "$XFS/store" ]] && store="$XFS/store"
      settle "$XFS/store-fresh"
      if timed snap-cowtree "$COWTREE" --store "$store" snapshot "$SRC" --json; then
        ((r == 1)) && say "cowtree's report (first run): $(tr '\n' ' ' <"$LOGF")"
        [[ $store == "$XFS/store" ]] && SNAP_ID=$(snapshot_id "$(cat "$LOGF")")
      fi
      settle
      # shellcheck disable=SC2016 # $1 is expanded by the inner shell
      timed snap-b3sum bash -c 'cd "$1" && find . -type f -print0 | xargs -0 b3sum >/dev/null' _ "$SRC" || true
      # The two parts a snapshot cannot skip (docs/architecture.md: clone each file into the store, then
      # hash the clone): making a clone of every file, and reading a fresh clone, whose pages
      # are not in the page cache, to hash it.
      if has_cmd clone; then
        settle "$XFS/floor"
        timed snap-floor-clone "$COWTREE" clone --quiet "$SRC" "$XFS/floor" || true
        timed snap-floor-read bash -c 'cd "$1" && find . -type f -print0 | xargs -0 b3sum >/dev/null' _ "$XFS/floor" || true
        settle "$XFS/floor"
      fi
    done
    # Re-recording the unchanged tree into the store that holds it, against b3sum.
    if [[ -n "$SNAP_ID" ]]; then
      for ((r = 1; r <= RUNS; r++)); do
        note "snapshot: unchanged tree again, round $r/$RUNS"
        settle
        timed snap-again "$COWTREE" --store "$XFS/store" snapshot "$SRC" --json || true
        settle
        # shellcheck disable=SC2016 # $1 is expanded by the inner shell
        timed snap-b3sum-again bash -c 'cd "$1" && find . -type f -print0 | xargs -0 b3sum >/dev/null' _ "$SRC" || true
      done
    fi
    for ((r = 1; r <= GIT_RUNS; r++)); do
      note "snapshot: git add -A round $r/$GIT_RUNS"
      git_fresh
      timed snap-git "${GIT[@]}" -C "$GITREPO" add -A || true
    done
    settle "$XFS/store-fresh"
    # The last git add -A leaves the index the checkout and status sections commit.
    table "snapshot of the tree into an empty store (XFS): reference b3sum over the same files" \
      "$FILES" snap-b3sum "snap-cowtree=cowtree snapshot" "snap-b3sum=find|xargs -0 b3sum" "snap-git=git add -A (fresh repo)" \
      "snap-floor-clone=part 1: cowtree clone of the tree" "snap-floor-read=part 2: b3sum of that fresh clone" \
      "snap-again=cowtree snapshot, unchanged tree again" "snap-b3sum-again=find|xargs -0 b3sum (beside it)"
    a=$(median snap-cowtree)
    b=$(median snap-b3sum)
    g=$(median snap-git)
    m=$(peak_mib snap-cowtree)
    [[ -n $a ]] && say "info  snapshot throughput: $(calc "$BYTES / $a / 1e9") GB/s of file data"
    fc=$(median snap-floor-clone)
    fr=$(median snap-floor-read)
    if [[ -n $fc && -n $fr && -n $b ]]; then
      say "info  a snapshot clones every file into the store and hashes the clone (docs/architecture.md); those two parts alone, measured separately: the clone $(calc "$fc") s ($(calc "$fc / $b")x b3sum), hashing the fresh clone $(calc "$fr") s; $(calc "$fc + $fr") s in sequence; together $(calc "$(median_cpu snap-floor-clone) + $(median_cpu snap-floor-read)") CPU-s (loop-device worker time not counted), so at least $(calc "($(median_cpu snap-floor-clone) + $(median_cpu snap-floor-read)) / $(nproc)") s on $(nproc) cores even if perfectly overlapped; 2x b3sum is $(calc "2 * $b") s"
    fi
    verdict "snapshot at most 1.1x (cowtree clone + b3sum): $([[ -n $a && -n $b && -n $fc ]] && calc "$a / ($fc + $b)" || echo -)x" \
      "$([[ -n $a && -n $b && -n $fc ]] && cmp_le "$a" "$(calc6 "1.1 * ($fc + $b)")")"
    verdict "snapshot at least 12x faster than git add -A: $([[ -n $a && -n $g ]] && calc "$g / $a" || echo -)x" \
      "$(faster_by "$a" "$g" 12 -)"
    a2=$(median snap-again)
    b2=$(median snap-b3sum-again)
    verdict "snapshot of the unchanged tree again at most 1.2x b3sum: $([[ -n $a2 && -n $b2 ]] && calc "$a2 / $b2" || echo -)x" \
      "$([[ -n $a2 && -n $b2 ]] && cmp_le "$a2" "$(calc6 "1.2 * $b2")")"
    verdict "snapshot peak RSS at most 128 MiB: $(fmt_or_dash "$m") MiB" "$(cmp_le "$m" 128)"
  else
    say ""
    say "== snapshot: skipped: $COWTREE has no 'snapshot' command"
  fi
fi

# ---------------------------------------------------------------------------- checkout
CHECKOUT_MED=""
if want checkout; then
  if has_cmd checkout && has_cmd snapshot; then
    make_store_snapshot
    ensure_gitrepo
    # cowtree, cp and the floor probe take every position in turn (the order rotates from round
    # to round), each into the same destination, removed and the filesystem quiesced before
    # every run, so that no tool runs on a fuller filesystem or a busier disk than another.
    co_cowtree() {
      settle "$XFS/co"
      if timed co-cowtree "$COWTREE" --store "$XFS/store" checkout "$SNAP_ID" "$XFS/co" && ((r == 1)); then
        say "cowtree's report (first run): $(tail -3 "$LOGF" | tr '\n' ' ')"
        check_copy co-cowtree "$SRC" "$XFS/co" "cowtree checkout"
      fi
    }
    co_cp() {
      settle "$XFS/co"
      timed co-cp cp -a --reflink=always "$SRC" "$XFS/co" || true
    }
    co_floor() {
      settle "$XFS/co"
      timed co-floor "$FLOOR" -j "$THREADS" "$SRC" "$XFS/co" || true
    }
    # The floor of a checkout that is durable when it is reported done (docs/store.md,
    # "Durability"): the same probe and one syncfs of the filesystem at the end.
    co_floor_durable() {
      settle "$XFS/co"
      timed co-floor-sync "$FLOOR" -j "$THREADS" -s "$SRC" "$XFS/co" || true
    }
    co_tools=(co_cowtree co_cp co_floor co_floor_durable)
    for ((r = 1; r <= RUNS; r++)); do
      note "checkout: round $r/$RUNS (cowtree, cp and the floor probe, rotating)"
      for ((i = 0; i < ${#co_tools[@]}; i++)); do
        "${co_tools[$(((r - 1 + i) % ${#co_tools[@]}))]}"
      done
    done
    settle "$XFS/co"
    for ((r = 1; r <= GIT_RUNS; r++)); do
      note "checkout: git worktree add round $r/$GIT_RUNS"
      settle "$XFS/co"
      "${GIT[@]}" -C "$GITREPO" worktree prune
      timed co-git "${GIT[@]}" -C "$GITREPO" worktree add -q --detach "$XFS/co" HEAD || true
    done
    settle "$XFS/co"
    "${GIT[@]}" -C "$GITREPO" worktree prune
    # The space figure: 10 more checkouts to co-1 ... co-10, kept (untimed for the ratios; their
    # peak RSS counts).
    sync
    used0=$(df -B1 --output=used "$XFS" | tail -1)
    ok=1
    for ((i = 1; i <= 10; i++)); do
      note "checkout: untimed checkout $i/10 for the space figure"
      timed co10-cowtree "$COWTREE" --store "$XFS/store" checkout "$SNAP_ID" "$XFS/co-$i" || ok=0
    done
    sync
    used1=$(df -B1 --output=used "$XFS" | tail -1)
    table "checkout of the snapshot (XFS, store on the same filesystem): reference cp -a --reflink=always" \
      "$FILES" co-cp "co-cowtree=cowtree checkout" "co-cp=cp -a --reflink=always" "co-git=git worktree add" \
      "co-floor=floor probe ($THREADS threads)" "co-floor-sync=floor probe + syncfs (durable)"
    CHECKOUT_MED=$(median co-cowtree)
    a=$CHECKOUT_MED
    b=$(median co-cp)
    g=$(median co-git)
    f=$(median co-floor)
    verdict "checkout at least 2.3x faster than cp -a --reflink=always: $([[ -n $a && -n $b ]] && calc "$b / $a" || echo -)x" \
      "$(faster_by "$a" "$b" 2.3 co-cowtree)"
    verdict "checkout at most 1.1x the floor probe: $([[ -n $a && -n $f ]] && calc "$a / $f" || echo -)x" \
      "$([[ -n $a && -n $f ]] && cmp_le "$a" "$(calc6 "1.1 * $f")")"
    verdict "checkout at least 5x faster than git worktree add: $([[ -n $a && -n $g ]] && calc "$g / $a" || echo -)x" \
      "$(faster_by "$a" "$g" 5 co-cowtree)"
    fs_=$(median co-floor-sync)
    say "info  checkout / (floor probe + syncfs): $([[ -n $a && -n $fs_ ]] && calc "$a / $fs_" || echo -)x; the syncfs a durable checkout cannot skip makes the floor $([[ -n $f && -n $fs_ ]] && calc "$fs_ / $f" || echo -)x the bare probe's time; cp -a --reflink=always / (floor probe + syncfs): $([[ -n $b && -n $fs_ ]] && calc "$b / $fs_" || echo -)x"

    delta=$((used1 - used0))
    inode_sz=$(xfs_info "$XFS" 2>/dev/null | sed -n 's/.*isize=\([0-9]*\).*/\1/p' | head -1 || true)
    say "info  10 checkouts: df used $used0 -> $used1 bytes: +$delta ($(calc "$delta / 1048576") MiB, $(calc "100 * $delta / $BYTES")% of the tree's apparent $BYTES bytes; $(calc "100 * $delta / $BYTES / 10")% per checkout; XFS inode size ${inode_sz:-?} B, so inodes alone take about $(calc "10 * ($FILES + $(jget "$TREE_JSON" dirs) + $(jget "$TREE_JSON" symlinks)) * ${inode_sz:-512} / 1048576") MiB)"
    verdict "10 checkouts add at most 5% of the tree's apparent size (total of the 10): $(calc "100 * $delta / $BYTES")%" \
      "$( ((ok)) && cmp_le "$delta" "$(calc6 "0.05 * $BYTES")")"
    m=$(awk '($1 == "co-cowtree" || $1 == "co10-cowtree") && $2 != "FAIL" && $3 > m { m = $3 } END { if (m) printf "%.1f\n", m / 1024 }' "$SAMPLES")
    verdict "checkout peak RSS at most 128 MiB: $(fmt_or_dash "$m") MiB" "$(cmp_le "$m" 128)"
    sync
    used0=$(df -B1 --output=used "$XFS" | tail -1)
    cp -a --reflink=always "$SRC" "$XFS/cp-space"
    sync
    used1=$(df -B1 --output=used "$XFS" | tail -1)
    delta=$((used1 - used0))
    say "info  for comparison, one cp -a --reflink=always copy adds $delta bytes ($(calc "100 * $delta / $BYTES")% of apparent)"
    settle "$XFS/cp-space"
  else
    say ""
    say "== checkout: skipped: $COWTREE lacks 'checkout' or 'snapshot'"
  fi
fi

# --------------------------------------------------------------- btrfs: the store's trees
# btrfs_store (called by the btrfs section, the tree recorded in $BTRFS/store as $B_ID): the rows
# of issue 31 for the store on btrfs (docs/store.md, "Tree subvolumes"). In each round, in
# rotating order: a checkout that builds the snapshot's tree subvolume (the tree deleted
# before, untimed), a checkout that only snapshots it, `btrfs subvolume snapshot` of the tree
# (the floor), and, with OLD=PATH, the old binary's per-file checkout; then `status` right
# after a checkout (its "hashed" count), `worktree rm` of a checkout against `rm -rf` of one, the
# space 10 checkouts take (df), the snapshot of a subvolume worktree into an empty store against
# that of the same files in a plain directory (read in place, as before), with their floors (a
# read-only snapshot of the worktree and b3sum of its files, b3sum in place), and `worktree rm` by an
# unprivileged user on this btrfs (mounted without user_subvol_rm_allowed: entry by entry).
# bt_json FIELD: FIELD of the JSON object the last timed command printed (its one line that
# starts with "{"; messages on stderr share the log).
bt_json() {
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        print(json.loads(line).get(sys.argv[2], ""))
        break' "$LOGF" "$1"
}
btrfs_store() {
  local ST="$BTRFS/store" TREEDIR="$BTRFS/store/trees/$B_ID" r i
  bt_drop_tree() { # the tree and what is kept beside it, with the reference tool (untimed)
    if [[ -d "$TREEDIR" ]]; then btrfs subvolume delete "$TREEDIR" >/dev/null; fi
    rm -f "$TREEDIR.stat" "$TREEDIR.counts"
  }
  bt_rm() { # removes a worktree (untimed), subvolume or not
    local p
    for p in "$@"; do
      [[ -e "$p" ]] || continue
      "$COWTREE" --store "$ST" worktree rm --force -q "$p" 2>/dev/null || rm -rf -- "$p"
    done
    flush_fs
  }
  bt_build() {
    bt_rm "$BTRFS/wt"; bt_drop_tree; flush_fs
    timed bs-build "$COWTREE" --store "$ST" checkout --json "$B_ID" "$BTRFS/wt" || true
    [[ "$(bt_json tree_built)" == True ]] || note "WRONG: the first checkout did not build the tree: $(head -c 300 "$LOGF")"
  }
  bt_tree() {
    bt_rm "$BTRFS/wt"
    [[ -d "$TREEDIR" ]] || "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/wt0" >/dev/null
    bt_rm "$BTRFS/wt0" "$BTRFS/wt"
    if timed bs-tree "$COWTREE" --store "$ST" checkout --json "$B_ID" "$BTRFS/wt"; then
      [[ "$(bt_json method)" == subvolume ]] || WRONG[bs-tree]=1
      if ((r == 1)); then
        check_copy bs-tree "$BTRFS/src" "$BTRFS/wt" "cowtree checkout from the tree (btrfs)"
      fi
    fi
  }
  bt_floor() {
    [[ -d "$TREEDIR" ]] || "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/wt0" >/dev/null
    bt_rm "$BTRFS/wt0" "$BTRFS/snap"
    timed bs-floor btrfs subvolume snapshot "$TREEDIR" "$BTRFS/snap" || true
    btrfs subvolume delete "$BTRFS/snap" >/dev/null 2>&1 || true
  }
  bt_old() {
    bt_rm "$BTRFS/wt"
    timed bs-old "$OLD" --store "$BTRFS/oldstore" checkout "$B_ID" "$BTRFS/wt" || true
    rm -rf -- "$BTRFS/wt"
    flush_fs
  }
  bt_cp() {
    settle "$BTRFS/co"
    if timed bs-cp cp -a --reflink=always "$BTRFS/src" "$BTRFS/co" && ((r == 1)); then
      check_copy bs-cp "$BTRFS/src" "$BTRFS/co" "cp -a --reflink=always (btrfs)"
    fi
    settle "$BTRFS/co"
  }
  if [[ -n "${OLD:-}" ]]; then
    note "btrfs store: recording the tree in a store for OLD (untimed)"
    "$OLD" --store "$BTRFS/oldstore" snapshot -q "$BTRFS/src" >/dev/null
  fi
  local steps=(bt_build bt_tree bt_floor bt_cp)
  [[ -n "${OLD:-}" ]] && steps+=(bt_old)
  for ((r = 1; r <= RUNS; r++)); do
    note "btrfs store: checkouts, round $r/$RUNS"
    local n=${#steps[@]} k
    for ((k = 0; k < n; k++)); do "${steps[$(((k + r) % n))]}"; done
  done
  bt_rm "$BTRFS/wt"
  local rows=("bs-tree=cowtree checkout (snapshot of the tree)" "bs-build=cowtree checkout (builds the tree first)"
    "bs-floor=btrfs subvolume snapshot of the tree" "bs-cp=cp -a --reflink=always")
  [[ -n "${OLD:-}" ]] && rows+=("bs-old=OLD cowtree checkout (per file)")
  table "checkout on btrfs from the store's tree subvolume: reference cp -a --reflink=always" \
    "$FILES" bs-cp "${rows[@]}"
  a=$(median bs-tree)
  b=$(median bs-cp)
  local f_ o_
  f_=$(median bs-floor)
  o_=$(median bs-old)
  say "info  checkout from the tree: $([[ -n $a && -n $b ]] && calc "$b / $a" || echo -)x faster than cp -a --reflink=always, $([[ -n $a && -n $o_ ]] && calc "$o_ / $a" || echo -)x faster than OLD's per-file checkout; $([[ -n $a && -n $f_ ]] && calc "$a / $f_" || echo -)x btrfs subvolume snapshot"
  verdict "checkout of a $FILES-file snapshot from its tree <= 0.05 s (500k files: <= 0.10 s, run with SCALE=6.25): ${a:--} s" \
    "$([[ -n "${WRONG[bs-tree]:-}" ]] && echo 0 || cmp_le "$a" "$(awk -v f="$FILES" 'BEGIN { print (f > 200000) ? 0.10 : 0.05 }')")"

  # status right after a checkout: what it hashed.
  "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/wt" >/dev/null
  for ((r = 1; r <= RUNS; r++)); do
    timed bs-status "$COWTREE" --store "$ST" status --json "$BTRFS/wt" || true
  done
  local hashed
  hashed=$(bt_json hashed)
  table "status right after a checkout from the tree" "$FILES" bs-status "bs-status=cowtree status"
  verdict "status right after that checkout hashes 0 files: hashed $hashed" "$([[ "$hashed" == 0 ]] && echo 1 || echo 0)"

  # worktree rm of a checkout (one ioctl, as root) against rm -rf of one.
  for ((r = 1; r <= RUNS; r++)); do
    note "btrfs store: worktree rm, round $r/$RUNS"
    bt_rm "$BTRFS/wt" "$BTRFS/rmrf"
    "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/wt" >/dev/null
    "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/rmrf" >/dev/null
    flush_fs
    if ((r % 2)); then
      timed bs-rm "$COWTREE" --store "$ST" worktree rm --force --json "$BTRFS/wt" || true
      flush_fs
      timed bs-rmrf rm -rf "$BTRFS/rmrf" || true
    else
      timed bs-rmrf rm -rf "$BTRFS/rmrf" || true
      flush_fs
      timed bs-rm "$COWTREE" --store "$ST" worktree rm --force --json "$BTRFS/wt" || true
    fi
  done
  table "worktree rm of a checkout (root): reference rm -rf of one" "$FILES" bs-rmrf \
    "bs-rm=cowtree worktree rm --force" "bs-rmrf=rm -rf"
  a=$(median bs-rm)
  verdict "worktree rm of a $FILES-file checkout <= 0.05 s where O(1) delete is permitted (root): ${a:--} s" "$(cmp_le "$a" 0.05)"

  # 10 checkouts: the space they take.
  bt_rm "$BTRFS/wt"
  sync
  local used0 used1 delta
  used0=$(df -B1 --output=used "$BTRFS" | tail -1)
  for i in $(seq 1 10); do "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/ten$i" >/dev/null; done
  sync
  used1=$(df -B1 --output=used "$BTRFS" | tail -1)
  delta=$((used1 - used0))
  say "info  10 checkouts from the tree add $delta bytes (df), $(calc "100 * $delta / $BYTES")% of the tree's apparent size ($BYTES bytes)"
  verdict "10 checkouts use <= 1% of the tree's apparent size: $(calc "100 * $delta / $BYTES")%" "$(cmp_le "$delta" "$(calc6 "$BYTES / 100")")"
  for i in $(seq 1 10); do bt_rm "$BTRFS/ten$i"; done

  # The snapshot of a subvolume worktree into an empty store (it reads a read-only snapshot of
  # it) against the snapshot of the same files in a plain directory ($BTRFS/src, read in place:
  # what every snapshot did before), alternating. (An older binary cannot be the reference: it
  # took the worktree's own device number for another filesystem and refused it.)
  "$COWTREE" --store "$ST" checkout -q "$B_ID" "$BTRFS/wt" >/dev/null
  bs_snap() { # bs_snap KEY DIR
    local es="$BTRFS/empty-store"
    if [[ -d "$es/trees" ]]; then
      find "$es/trees" -mindepth 1 -maxdepth 1 -type d -exec btrfs property set {} ro false \; -exec btrfs subvolume delete {} \; >/dev/null 2>&1 || true
    fi
    rm -rf -- "$es"
    flush_fs
    timed "$1" "$COWTREE" --store "$es" snapshot --json "$2" || true
  }
  # The floors of the two: reading every file once (b3sum), from a read-only snapshot taken
  # first (new inodes: their pages are not cached, whatever the worktree's are) and in place.
  bs_read() { # bs_read KEY DIR [snapshot-first]
    local ro="$BTRFS/ro-read"
    [[ -e "$ro" ]] && { btrfs subvolume delete "$ro" >/dev/null 2>&1 || rm -rf -- "$ro"; }
    flush_fs
    if [[ -n "${3:-}" ]]; then
      timed "$1" bash -c 'btrfs subvolume snapshot -r "$1" "$2" >/dev/null &&
        cd "$2" && find . -type f -print0 | xargs -0 b3sum >/dev/null' _ "$2" "$ro" || true
      [[ -e "$ro" ]] && { btrfs subvolume delete "$ro" >/dev/null 2>&1 || true; }
    else
      timed "$1" bash -c 'cd "$1" && find . -type f -print0 | xargs -0 b3sum >/dev/null' _ "$2" || true
    fi
  }
  for ((r = 1; r <= RUNS; r++)); do
    note "btrfs store: snapshot of a subvolume worktree, round $r/$RUNS"
    if ((r % 2)); then
      bs_snap bs-snap "$BTRFS/wt"; bs_snap bs-snap-dir "$BTRFS/src"
      bs_read bs-read-ro "$BTRFS/wt" snapshot-first; bs_read bs-read-dir "$BTRFS/src"
    else
      bs_read bs-read-dir "$BTRFS/src"; bs_read bs-read-ro "$BTRFS/wt" snapshot-first
      bs_snap bs-snap-dir "$BTRFS/src"; bs_snap bs-snap "$BTRFS/wt"
    fi
  done
  table "snapshot of a subvolume worktree into an empty store: reference the same files in a plain directory (read in place)" \
    "$FILES" bs-snap-dir "bs-snap=cowtree snapshot WORKTREE (read-only snapshot first)" \
    "bs-snap-dir=cowtree snapshot DIR (in place)" \
    "bs-read-ro=floor: btrfs subvolume snapshot -r WORKTREE, b3sum of it" \
    "bs-read-dir=floor: b3sum of DIR (in place)"
  a=$(median bs-snap)
  b=$(median bs-snap-dir)
  verdict "snapshot of a subvolume worktree into an empty store <= 1.0x that of the same tree read in place: $([[ -n $a && -n $b ]] && calc "$a / $b" || echo -)x" \
    "$(cmp_le "$a" "$b")"
  a=$(median bs-read-ro)
  b=$(median bs-read-dir)
  say "info  the floors' ratio (read every file from a read-only snapshot taken first / in place): $([[ -n $a && -n $b ]] && calc "$a / $b" || echo -)x"
  bt_rm "$BTRFS/wt"

  # worktree rm as an unprivileged user, on this btrfs (no user_subvol_rm_allowed): the tree
  # is removed entry by entry.
  if command -v useradd >/dev/null && command -v setpriv >/dev/null; then
    BUSER="cowtree-bench-$$"
    useradd -M -N -g nogroup -s /usr/sbin/nologin "$BUSER"
    local U="$BTRFS/user" uid
    uid=$(id -u "$BUSER")
    note "btrfs store: the tree for $BUSER (untimed)"
    mkdir "$U" && cp -a "$BTRFS/src" "$U/src" && chown -R "$uid:nogroup" "$U"
    local as_buser=(setpriv --reuid="$uid" --regid=nogroup --clear-groups -- env HOME="$U"
      XDG_DATA_HOME="$U/d" XDG_STATE_HOME="$U/s" XDG_CONFIG_HOME="$U/c")
    "${as_buser[@]}" "$COWTREE" --store "$U/store" snapshot -q --name v "$U/src" >/dev/null
    for ((r = 1; r <= RUNS; r++)); do
      note "btrfs store: worktree rm as $BUSER, round $r/$RUNS"
      "${as_buser[@]}" "$COWTREE" --store "$U/store" checkout -q v "$U/wt" >/dev/null
      flush_fs
      timed bs-rm-user "${as_buser[@]}" "$COWTREE" --store "$U/store" worktree rm --force --json "$U/wt" || true
      [[ "$(bt_json subvolume)" == removed-tree ]] || note "unexpected: $(head -c 200 "$LOGF")"
    done
    table "worktree rm of a checkout as an unprivileged user (no user_subvol_rm_allowed: entry by entry)" \
      "$FILES" bs-rm-user "bs-rm-user=cowtree worktree rm --force (user)"
    say "info  worktree rm as an unprivileged user without user_subvol_rm_allowed: $(fmt_or_dash "$(median bs-rm-user)") s (O(entries); root or user_subvol_rm_allowed: one ioctl)"
    userdel "$BUSER" 2>/dev/null || true
    BUSER=""
  fi
}

# ------------------------------------------------------------------------ btrfs checkout
# The tree on a fresh 4 GiB btrfs loop filesystem (the test mounts' btrfs is 1 GiB), recorded in
# a store there (untimed); then checkout, `cp -a --reflink=always` and the floor probe in
# alternating order, each into a directory removed and synced before the next run.
if want btrfs; then
  if has_cmd checkout && has_cmd snapshot; then
    _cowtree_mount_image btrfs-bench 4G mkfs.btrfs -q -f
    BTRFS=$COWTREE_LAST_MOUNT
    note "copying the tree to btrfs and recording it there (untimed)"
    cp -a "$SRC" "$BTRFS/src"
    B_ID=$(snapshot_id "$("$COWTREE" --store "$BTRFS/store" snapshot "$BTRFS/src" --json)")
    [[ -n "$B_ID" ]] || die "no snapshot id from cowtree snapshot on btrfs"
    sync
    b_co() {
      settle "$BTRFS/co"
      if timed bt-cowtree "$COWTREE" --store "$BTRFS/store" checkout "$B_ID" "$BTRFS/co" && ((r == 1)); then
        check_copy bt-cowtree "$BTRFS/src" "$BTRFS/co" "cowtree checkout (btrfs)"
      fi
    }
    b_cp() {
      settle "$BTRFS/co"
      if timed bt-cp cp -a --reflink=always "$BTRFS/src" "$BTRFS/co" && ((r == 1)); then
        check_copy bt-cp "$BTRFS/src" "$BTRFS/co" "cp -a --reflink=always (btrfs)"
      fi
    }
    for ((r = 1; r <= RUNS; r++)); do
      note "btrfs checkout: round $r/$RUNS"
      if ((r % 2)); then b_co; b_cp; else b_cp; b_co; fi
      settle "$BTRFS/co"
      timed bt-floor "$FLOOR" -j "$THREADS" "$BTRFS/src" "$BTRFS/co" || true
      settle "$BTRFS/co"
      timed bt-floor-sync "$FLOOR" -j "$THREADS" -s "$BTRFS/src" "$BTRFS/co" || true
    done
    settle "$BTRFS/co"
    table "checkout on btrfs (store on the same filesystem): reference cp -a --reflink=always" \
      "$FILES" bt-cp "bt-cowtree=cowtree checkout" "bt-cp=cp -a --reflink=always" \
      "bt-floor=floor probe ($THREADS threads)" "bt-floor-sync=floor probe + syncfs (durable)"
    a=$(median bt-cowtree)
    b=$(median bt-cp)
    f=$(median bt-floor)
    verdict "checkout on btrfs at least 2.3x faster than cp -a --reflink=always: $([[ -n $a && -n $b ]] && calc "$b / $a" || echo -)x" \
      "$(faster_by "$a" "$b" 2.3 bt-cowtree)"
    say "info  checkout on btrfs / floor probe: $([[ -n $a && -n $f ]] && calc "$a / $f" || echo -)x"
    fs_=$(median bt-floor-sync)
    say "info  checkout on btrfs / (floor probe + syncfs): $([[ -n $a && -n $fs_ ]] && calc "$a / $fs_" || echo -)x; cp -a --reflink=always / (floor probe + syncfs): $([[ -n $b && -n $fs_ ]] && calc "$b / $fs_" || echo -)x"
    btrfs_store
  else
    say ""
    say "== btrfs checkout: skipped: $COWTREE lacks 'checkout' or 'snapshot'"
  fi
fi

# -------------------------------------------------------------------------- status/switch
# change_files DIR PERCENT|COUNT SALT [LIST]: rewrites a fixed, evenly spread set of regular
# files (the same relative paths for the same arguments) with new bytes, keeping them
# non-empty; prints their count, and writes their paths relative to DIR to LIST if given.
change_files() {
  python3 - "$@" <<'EOF'
import os, sys
root, amount, salt = sys.argv[1], sys.argv[2], sys.argv[3]
listing = open(sys.argv[4], "w") if len(sys.argv) > 4 else None
files = []
for d, dirs, names in os.walk(root):
    dirs[:] = sorted(x for x in dirs if x != ".git")
    for n in sorted(names):
        p = os.path.join(d, n)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(p)
n = int(len(files) * float(amount[:-1]) / 100) if amount.endswith("%") else int(amount)
n = max(1, min(n, len(files)))
step = len(files) / n
for i in range(n):
    p = files[int(i * step)]
    with open(p, "ab") as f:
        f.write(b"\n# changed by bench %s %d\n" % (salt.encode(), i))
    if listing:
        listing.write(os.path.relpath(p, root) + "\n")
print(n)
EOF
}

if want status; then
  say ""
  say "== status, switch and incremental snapshot (XFS) against git"
  if ! has_cmd checkout || ! has_cmd snapshot; then
    say "skipped: $COWTREE lacks 'checkout' or 'snapshot'"
  else
    make_store_snapshot
    ensure_gitrepo
    if ! "$COWTREE" --store "$XFS/store" checkout "$SNAP_ID" "$XFS/wt-status" >"$LOGF" 2>&1; then
      say "status: skipped: cowtree checkout failed: $(tail -2 "$LOGF" | tr '\n' ' ')"
    elif has_cmd status; then
      "$COWTREE" --store "$XFS/store" status "$XFS/wt-status" >/dev/null 2>&1 || true # warm, like git's
      for ((r = 1; r <= RUNS; r++)); do
        timed st-clean-cowtree "$COWTREE" --store "$XFS/store" status "$XFS/wt-status" || true
        timed st-clean-git "${GIT[@]}" -C "$GITREPO" status || true
      done
      # New bytes in the same 100 files before every round: cowtree refreshes its stat cache
      # after reading changed files, so only the first status after a change has that work.
      for ((r = 1; r <= RUNS; r++)); do
        n=$(change_files "$XFS/wt-status" 100 "st$r")
        change_files "$GITREPO" 100 "st$r" >/dev/null
        flush_fs
        timed st-dirty-cowtree "$COWTREE" --store "$XFS/store" status "$XFS/wt-status" || true
        timed st-dirty-git "${GIT[@]}" -C "$GITREPO" status || true
      done
      # cowtree must have found the changed files (when its --json has a "modified" list).
      found=$("$COWTREE" --store "$XFS/store" status "$XFS/wt-status" --json 2>/dev/null |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["modified"]))' 2>/dev/null || true)
      if [[ -n "$found" && "$found" != "$n" ]]; then
        WRONG[st-dirty-cowtree]=1
        note "WRONG: cowtree status lists $found modified files, $n were changed"
      fi
      "${GIT[@]}" -C "$GITREPO" checkout -q -- . # back to the committed tree (untimed)
      table "status, clean worktree: reference git status" "$FILES" st-clean-git \
        "st-clean-cowtree=cowtree status" "st-clean-git=git status"
      a=$(median st-clean-cowtree)
      g=$(median st-clean-git)
      verdict "clean status at most 0.7x git status: $([[ -n $a && -n $g ]] && calc "$a / $g" || echo -)x" \
        "$([[ -n $a && -n $g ]] && cmp_le "$a" "$(calc6 "0.7 * $g")")"
      table "status after modifying $n files: reference git status" "$FILES" st-dirty-git \
        "st-dirty-cowtree=cowtree status" "st-dirty-git=git status"
      a=$(median st-dirty-cowtree)
      g=$(median st-dirty-git)
      verdict "status after modifying $n files at most 0.7x git status: $([[ -n $a && -n $g ]] && calc "$a / $g" || echo -)x" \
        "$(faster_by "$a" "$g" "$(calc6 "1 / 0.7")" st-dirty-cowtree)"
    else
      say "status: skipped: $COWTREE has no 'status' command"
    fi
    settle "$XFS/wt-status"

    if has_cmd switch; then
      # Snapshot B: the tree with 1% of its files changed.
      settle "$XFS/src-b"
      cp -a --reflink=always "$SRC" "$XFS/src-b"
      n=$(change_files "$XFS/src-b" 1% b "$WORK/switch-paths")
      SNAP_B=$(snapshot_id "$("$COWTREE" --store "$XFS/store" snapshot "$XFS/src-b" --json)")
      # The switch floor (bench/switch-floor.c) moves its own copy of the tree between the
      # same two states: per changed file open, create a temp, FICLONE, rename; one syncfs.
      settle "$XFS/wt-swfloor"
      cp -a --reflink=always "$SRC" "$XFS/wt-swfloor"
      sync
      "$COWTREE" --store "$XFS/store" checkout "$SNAP_ID" "$XFS/wt-switch" >/dev/null || note "checkout for switch failed"
      flush_fs
      for ((r = 1; r <= RUNS; r++)); do
        note "switch: round $r/$RUNS"
        if ((r % 2)); then to=$SNAP_B to_src=$XFS/src-b; else to=$SNAP_ID to_src=$SRC; fi
        # The order alternates in pairs of rounds (rounds 1 and 4: the switch first; 2 and 3:
        # the floor first), so that each direction of the switch gets both orders.
        if ((r % 4 == 2 || r % 4 == 3)); then
          timed sw-floor "$SWFLOOR" "$to_src" "$XFS/wt-swfloor" <"$WORK/switch-paths" || true
          flush_fs
        fi
        timed sw-cowtree "$COWTREE" --store "$XFS/store" switch "$to" "$XFS/wt-switch" || true
        # The status right after it must read no file (the switch's records are trusted).
        if timed sw-status "$COWTREE" --store "$XFS/store" status --json "$XFS/wt-switch"; then
          h=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["hashed"])' "$LOGF" 2>/dev/null || echo '?')
          [[ "$h" == 0 ]] || { WRONG[sw-status]=1; note "WRONG: status after switch round $r hashed $h files"; }
          SW_HASHED="${SW_HASHED:-}${SW_HASHED:+ }$h"
        fi
        flush_fs
        if ! ((r % 4 == 2 || r % 4 == 3)); then
          timed sw-floor "$SWFLOOR" "$to_src" "$XFS/wt-swfloor" <"$WORK/switch-paths" || true
          flush_fs
        fi
      done
      # The worktree must now hold the last target.
      if ((RUNS % 2)); then to="$XFS/src-b"; else to=$SRC; fi
      check_copy sw-cowtree "$to" "$XFS/wt-switch" "cowtree switch"
      # The probe's copy must hold the last target's bytes in every file it rewrote.
      while IFS= read -r p; do
        cmp -s "$to/$p" "$XFS/wt-swfloor/$p" || { WRONG[sw-floor]=1; note "WRONG: switch floor probe: $p differs from $to/$p"; break; }
      done <"$WORK/switch-paths"
      settle "$XFS/src-b" "$XFS/wt-swfloor"
      if [[ -z "$CHECKOUT_MED" ]]; then
        for ((r = 1; r <= RUNS; r++)); do
          settle "$XFS/co"
          timed sw-co-cowtree "$COWTREE" --store "$XFS/store" checkout "$SNAP_ID" "$XFS/co" || true
        done
        settle "$XFS/co"
        CHECKOUT_MED=$(median sw-co-cowtree)
        reflabel=sw-co-cowtree
      else
        reflabel=co-cowtree
      fi
      table "switch between snapshots differing in $n files (1%): reference full checkout" "$FILES" "$reflabel" \
        "sw-cowtree=cowtree switch (A<->B)" "sw-status=cowtree status right after each switch" \
        "sw-floor=floor probe: clone+rename changed files, syncfs" "$reflabel=cowtree checkout (full)"
      a=$(median sw-cowtree)
      fl=$(median sw-floor)
      [[ -n $a && -n $fl && -n $CHECKOUT_MED ]] &&
        say "info  switch $(calc "$a / $fl")x its floor probe; the floor alone is $(calc "100 * $fl / $CHECKOUT_MED")% of a checkout (5% is $(calc "$CHECKOUT_MED / 20") s)"
      verdict "switch at most 5% of a full checkout's time: $([[ -n $a && -n $CHECKOUT_MED ]] && calc "100 * $a / $CHECKOUT_MED" || echo -)%" \
        "$([[ -n $a && -n $CHECKOUT_MED ]] && faster_by "$a" "$CHECKOUT_MED" 20 sw-cowtree)"
      verdict "status right after each switch hashed no file: hashed ${SW_HASHED:--}" \
        "$([[ -n "${SW_HASHED:-}" ]] && { [[ -z "${WRONG[sw-status]:-}" ]] && echo 1 || echo 0; })"
    else
      say "switch: skipped: $COWTREE has no 'switch' command"
    fi
    settle "$XFS/wt-switch"

    # Incremental snapshot of a worktree whose 1% of files changed (new bytes before every
    # run), against a fresh snapshot of the same content as a plain directory into the same store.
    "$COWTREE" --store "$XFS/store" checkout "$SNAP_ID" "$XFS/wt-inc" >/dev/null || note "checkout for the incremental snapshot failed"
    flush_fs
    # Measured with the base kept, as before snapshots moved it by default (--keep-base).
    keep=()
    if "$COWTREE" help snapshot 2>/dev/null | grep -q -- '--keep-base'; then keep=(--keep-base); fi
    if [[ -d "$XFS/wt-inc" ]] && "$COWTREE" help snapshot 2>/dev/null | grep -q -- '--update-base\|--keep-base'; then
      for ((r = 1; r <= RUNS; r++)); do
        note "incremental snapshot: round $r/$RUNS"
        n=$(change_files "$XFS/wt-inc" 1% "inc$r")
        flush_fs
        timed inc-cowtree "$COWTREE" --store "$XFS/store" snapshot "${keep[@]}" "$XFS/wt-inc" --json || true
        if ((r <= REF_RUNS)); then
          settle "$XFS/plain"
          cp -a --reflink=always "$XFS/wt-inc" "$XFS/plain"
          flush_fs
          timed inc-fresh "$COWTREE" --store "$XFS/store" snapshot "$XFS/plain" --json || true
        fi
      done
      settle "$XFS/plain"
      table "snapshot after changing $n files (1%): reference a fresh snapshot of the same content" "$FILES" inc-fresh \
        "inc-cowtree=cowtree snapshot WORKTREE" "inc-fresh=cowtree snapshot COPY (no cache)"
      a=$(median inc-cowtree)
      b=$(median inc-fresh)
      verdict "incremental snapshot at most 10% of a fresh snapshot: $([[ -n $a && -n $b ]] && calc "100 * $a / $b" || echo -)%" \
        "$([[ -n $a && -n $b ]] && cmp_le "$a" "$(calc6 "0.1 * $b")")"
    else
      say "incremental snapshot: skipped: 'cowtree help snapshot' has neither --update-base nor --keep-base (an older binary)"
    fi
    settle "$XFS/wt-inc"
  fi
fi

say ""
say "== summary ($((SECONDS / 60)) min $((SECONDS % 60)) s)"
grep -E '^(PASS|MISS|----) ' "$RESULTS" | tee -a "$RESULTS" || say "(no targets measured)"
say "results: $RESULTS"
