#!/usr/bin/env bash
# cowtree du / dedupe benchmark, self-contained: one command, one XFS loop mount.
#
#   sudo bench/space.sh
#
# On a fresh XFS (reflink=1) loop filesystem (made with scripts/mounts.sh, always unmounted):
#  1. generates the synthetic tree (bench/gentree.py when present: ~80,000 files in ~5,000
#     directories; otherwise a smaller built-in generator, said so in the output),
#  2. makes COPIES reflink clones (cp -a --reflink=always) and COPIES plain copies
#     (cp -a --reflink=never),
#  3. du: `cowtree du` against `du -s` over the clones and over the copies (warm cache,
#     alternating, median of RUNS runs); unique physical bytes relative to one tree
#     (targets: ~1x over the clones, ~COPIES x over the copies, time <= 2x `du -s`),
#  4. dedupe: `cowtree dedupe` of the plain copies, then on fresh plain copies
#     `duperemove -dr` (installed with apt-get when missing); time, and bytes reclaimed as
#     measured by `cowtree du` unique physical before/after and by df (target: at least as
#     much reclaimed as duperemove, in less time).
# Prints a summary table and PASS/MISS per target; also writes bench/out/space-<UTC>.txt.
#
# Environment (scale options for a quicker run):
#   COWTREE=PATH   binary (default: cargo build --release, target/release/cowtree)
#   SCALE=F        gentree --scale (default 1); SEED=N (default 1)
#   COPIES=N       clones and copies (default 10)
#   RUNS=N         timed du runs per tool (default 5)
#   MIN_SIZE=B     cowtree dedupe --min-size (default: cowtree's default, 65536)
#   NO_DEDUPE=1    skip the dedupe section; NO_DUPEREMOVE=1 skip only duperemove
#   NO_DU=1        skip the du section (and the clones)
#   GENTREE=PATH   tree generator (default bench/gentree.py)
#   IMG_SIZE=S     loop image size (default: computed from the tree size)
#   DEDUPE_RUNS=N  dedupe runs per tool, each on fresh copies (default 1: copies are slow)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "space: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem: sudo bench/space.sh"
[[ "$(uname -s)" == Linux ]] || die "Linux only"
case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

SCALE=${SCALE:-1}
SEED=${SEED:-1}
COPIES=${COPIES:-10}
RUNS=${RUNS:-5}
DEDUPE_RUNS=${DEDUPE_RUNS:-1}
for v in COPIES RUNS DEDUPE_RUNS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done

mkdir -p bench/out
RESULTS="$ROOT/bench/out/space-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { echo "$*" | tee -a "$RESULTS"; }

if [[ -z "${COWTREE:-}" ]]; then
  cargo build --release -q -p cowtree-cli
  COWTREE="$ROOT/target/release/cowtree"
fi
[[ -x "$COWTREE" ]] || die "no cowtree binary at $COWTREE"

if [[ "${NO_DEDUPE:-}" != 1 && "${NO_DUPEREMOVE:-}" != 1 ]] && ! command -v duperemove >/dev/null; then
  echo "space: installing duperemove" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq duperemove >/dev/null ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq duperemove >/dev/null; } ||
    die "cannot install duperemove (set NO_DUPEREMOVE=1 to skip it)"
fi

# ----------------------------------------------------------------------------- mount
# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
cleanup() { cowtree_mounts_down; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cowtree_can_mount >&2 || die "cannot mount loop filesystems here"
cowtree_ensure_tools >&2

# The image is sparse, so it may be generous: about 1.2 GiB per tree at SCALE=1 (80k files of
# ~6 KiB on average plus the large files), room for the copies twice and the clones' metadata.
GEN="${GENTREE:-$ROOT/bench/gentree.py}"
if [[ -z "${IMG_SIZE:-}" ]]; then
  tree_mib=$(python3 -c "import math; s=float('$SCALE'); print(int(1200*s)+64)")
  IMG_SIZE="$(((2 * COPIES + 4) * tree_mib + 2048))M"
fi
base="${COWTREE_TEST_TMPDIR:-${TMPDIR:-/tmp}}"
# shellcheck disable=SC2034 # read by the functions of scripts/mounts.sh
COWTREE_MOUNT_WORK=$(mktemp -d "$base/cowtree-mounts.XXXXXX")
_cowtree_mount_image space "$IMG_SIZE" mkfs.xfs -q -m reflink=1
MNT=$COWTREE_LAST_MOUNT
say "space: XFS (reflink=1) loop mount $MNT, image $IMG_SIZE (sparse)"

# ----------------------------------------------------------------------------- tree
SRC="$MNT/src"
if [[ -f "$GEN" ]]; then
  say "space: generating the synthetic tree with bench/gentree.py --scale $SCALE --seed $SEED"
  python3 "$GEN" "$SRC" --scale "$SCALE" --seed "$SEED" --json | tee -a "$RESULTS"
else
  # bench/gentree.py is not on this branch: a minimal stand-in with the same shape
  # (files x dirs, log-normal sizes around 3 KiB, a few large files, unique contents).
  say "space: bench/gentree.py missing: using the built-in minimal generator (scale $SCALE)"
  python3 - "$SRC" "$SCALE" "$SEED" <<'PY' | tee -a "$RESULTS"
import os, random, sys
dest, scale, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
nfiles, ndirs = int(80000 * scale), max(1, int(5000 * scale))
dirs = [dest]
os.makedirs(dest)
for i in range(1, ndirs):
    d = os.path.join(rng.choice(dirs), f"d{i}")
    os.mkdir(d)
    dirs.append(d)
total = 0
for i in range(nfiles):
    size = min(int(rng.lognormvariate(8.0, 1.2)), 1 << 20)
    if i < max(1, int(8 * scale)):
        size = int((3 + rng.random() * 60) * scale * (1 << 20))
    head = f"file {i}\n".encode()
    data = head + rng.randbytes(max(0, size - len(head)))
    with open(os.path.join(rng.choice(dirs), f"f{i}.dat"), "wb") as f:
        f.write(data)
    total += len(data)
print(f'{{"files": {nfiles}, "dirs": {ndirs}, "bytes": {total}}}')
PY
fi
sync

CLONES=() PLAINS=()
t0=$(date +%s.%N)
if [[ "${NO_DU:-}" != 1 ]]; then
  for ((i = 1; i <= COPIES; i++)); do
    cp -a --reflink=always "$SRC" "$MNT/clone$i"
    CLONES+=("$MNT/clone$i")
  done
fi
t1=$(date +%s.%N)
make_copies() { # PREFIX: COPIES plain copies named PREFIX1.., paths in PLAINS
  PLAINS=()
  local i
  for ((i = 1; i <= COPIES; i++)); do
    cp -a --reflink=never "$SRC" "$MNT/$1$i"
    PLAINS+=("$MNT/$1$i")
  done
  sync
}
make_copies copy
t2=$(date +%s.%N)
say "space: $COPIES clones in $(printf %.1f "$(echo "$t1 - $t0" | bc)") s, $COPIES plain copies in $(printf %.1f "$(echo "$t2 - $t1" | bc)") s"

# ----------------------------------------------------------------------------- helpers
# timed OUTFILE CMD...: runs CMD, stdout to OUTFILE; prints "seconds peak_rss_kib".
timed() {
  local out=$1
  shift
  local tf
  tf=$(mktemp)
  local s e
  s=$(date +%s.%N)
  /usr/bin/time -f %M -o "$tf" "$@" >"$out" 2>>"$RESULTS.stderr" || { rm -f "$tf"; return 1; }
  e=$(date +%s.%N)
  echo "$(echo "$e - $s" | bc) $(tail -n1 "$tf")"
  rm -f "$tf"
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print ""; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
jget() { python3 -c "import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print('' if v is None else v)" "$1" "$2"; }
unique_of() { # PATHS...: cowtree du unique physical bytes
  local f
  f=$(mktemp)
  "$COWTREE" du --json "$@" >"$f"
  jget "$f" unique_physical
  rm -f "$f"
}
free_bytes() { sync; python3 -c "import os,sys; s=os.statvfs(sys.argv[1]); print(s.f_bfree * s.f_frsize)" "$MNT"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
gib() { python3 -c "import sys; print(f'{int(sys.argv[1])/2**30:.2f} GiB')" "$1"; }

ONE=$(unique_of "$SRC")
say "space: one tree: unique physical $(gib "$ONE") ($ONE bytes)"
ROWS=()
VERDICTS=()
verdict() { VERDICTS+=("$(printf '%-5s %s' "$1" "$2")"); }

# ----------------------------------------------------------------------------- du
du_section() { # LABEL EXPECT_X PATHS...
  local label=$1 expect=$2
  shift 2
  local out tdu=() tct=() rss_ct=0 r
  out=$(mktemp)
  # Warm-up, untimed: the first walk reads the metadata into the cache.
  du -s "$@" >/dev/null
  "$COWTREE" du --json "$@" >/dev/null
  for ((r = 1; r <= RUNS; r++)); do
    read -r s _ < <(timed /dev/null du -s "$@")
    tdu+=("$s")
    read -r s m < <(timed "$out" "$COWTREE" du --json "$@")
    tct+=("$s")
    ((m > rss_ct)) && rss_ct=$m
  done
  local mdu mct uniq x
  mdu=$(printf '%s\n' "${tdu[@]}" | median)
  mct=$(printf '%s\n' "${tct[@]}" | median)
  uniq=$(jget "$out" unique_physical)
  x=$(ratio "$uniq" "$ONE")
  ROWS+=("$(printf '%-22s %-22s %9.3f %8s %12s  %s' "$label" "du -s" "$mdu" "1.00" "-" "")")
  ROWS+=("$(printf '%-22s %-22s %9.3f %8s %12s  %s' "$label" "cowtree du" "$mct" "$(ratio "$mct" "$mdu")" "$((rss_ct / 1024)) MiB" "unique physical $(gib "$uniq") = ${x}x one tree; allocated $(gib "$(jget "$out" allocated)")")")
  python3 -c "import sys; x,e=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if abs(x-e)/e < 0.05 else 1)" "$x" "$expect" &&
    verdict PASS "$label: unique physical ${x}x one tree (target ~${expect}x)" ||
    verdict MISS "$label: unique physical ${x}x one tree (target ~${expect}x)"
  local tr
  tr=$(ratio "$mct" "$mdu")
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 2.0 else 1)" "$tr" &&
    verdict PASS "$label: cowtree du took ${tr}x the time of du -s (target <= 2x)" ||
    verdict MISS "$label: cowtree du took ${tr}x the time of du -s (target <= 2x)"
  rm -f "$out"
}
if [[ "${NO_DU:-}" != 1 ]]; then
  say "space: du section ($RUNS runs each, warm cache, alternating)"
  du_section "du $COPIES clones" 1 "${CLONES[@]}"
  du_section "du $COPIES copies" "$COPIES" "${PLAINS[@]}"
fi

# ----------------------------------------------------------------------------- dedupe
if [[ "${NO_DEDUPE:-}" != 1 ]]; then
  # The clones are not needed any more; they would only slow the copies down.
  ((${#CLONES[@]} == 0)) || rm -rf "${CLONES[@]}"
  declare -A DT DR DF
  min_args=()
  [[ -n "${MIN_SIZE:-}" ]] && min_args=(--min-size "$MIN_SIZE")
  run_dedupe() { # TOOL ROUND: dedupe PLAINS with TOOL; appends time, reclaimed, df freed
    local tool=$1 round=$2 before after f0 f1 s m out
    before=$(unique_of "${PLAINS[@]}")
    f0=$(free_bytes)
    out=$(mktemp)
    case $tool in
      cowtree) read -r s m < <(timed "$out" "$COWTREE" dedupe --json "${min_args[@]}" "${PLAINS[@]}") ;;
      duperemove) read -r s m < <(timed "$out" duperemove -dr -q "${PLAINS[@]}") ;;
    esac
    after=$(unique_of "${PLAINS[@]}")
    f1=$(free_bytes)
    if [[ $tool == cowtree ]]; then
      say "space: cowtree dedupe round $round: files_deduped $(jget "$out" files_deduped), skipped $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['skipped']))" "$out"), its own reclaimed figure $(jget "$out" reclaimed)"
    fi
    DT[$tool]+="$s "
    DR[$tool]+="$((before - after)) "
    DF[$tool]+="$((f1 - f0)) "
    DM[$tool]=$m
    rm -f "$out"
  }
  declare -A DM
  tools=(cowtree)
  [[ "${NO_DUPEREMOVE:-}" != 1 ]] && tools+=(duperemove)
  say "space: dedupe section ($DEDUPE_RUNS round(s), fresh plain copies for each tool)"
  for ((r = 1; r <= DEDUPE_RUNS; r++)); do
    for tool in "${tools[@]}"; do
      if [[ $r != 1 || $tool != cowtree ]]; then
        rm -rf "${PLAINS[@]}"
        sync
        make_copies "fresh$r-$tool-"
      fi
      say "space: $tool round $r on $COPIES plain copies (unique physical $(gib "$(unique_of "${PLAINS[@]}")"))"
      run_dedupe "$tool" "$r"
    done
  done
  for tool in "${tools[@]}"; do
    t=$(printf '%s\n' ${DT[$tool]} | median)
    rec=$(printf '%s\n' ${DR[$tool]} | median)
    dff=$(printf '%s\n' ${DF[$tool]} | median)
    eval "med_t_$tool=$t med_r_$tool=${rec%.*}"
    ROWS+=("$(printf '%-22s %-22s %9.3f %8s %12s  %s' "dedupe $COPIES copies" "$([[ $tool == cowtree ]] && echo "cowtree dedupe${MIN_SIZE:+ --min-size $MIN_SIZE}" || echo "duperemove -dr")" "$t" "" "$((DM[$tool] / 1024)) MiB" "reclaimed $(gib "${rec%.*}") (du unique physical), df freed $(gib "${dff%.*}")")")
  done
  if [[ " ${tools[*]} " == *" duperemove "* ]]; then
    # shellcheck disable=SC2154
    {
      ((med_r_cowtree >= med_r_duperemove)) &&
        verdict PASS "dedupe: cowtree reclaimed $(gib "$med_r_cowtree") vs duperemove $(gib "$med_r_duperemove") (target: at least as much)" ||
        verdict MISS "dedupe: cowtree reclaimed $(gib "$med_r_cowtree") vs duperemove $(gib "$med_r_duperemove") (target: at least as much)"
      python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$med_t_cowtree" "$med_t_duperemove" &&
        verdict PASS "dedupe: cowtree took $(ratio "$med_t_cowtree" "$med_t_duperemove")x duperemove's time (target < 1x)" ||
        verdict MISS "dedupe: cowtree took $(ratio "$med_t_cowtree" "$med_t_duperemove")x duperemove's time (target < 1x)"
    }
  fi
fi

# ----------------------------------------------------------------------------- summary
say ""
say "== summary (XFS loop mount; SCALE=$SCALE COPIES=$COPIES RUNS=$RUNS; machine shared, figures noisy)"
say "$(printf '%-22s %-22s %9s %8s %12s  %s' case tool median_s 'x ref' peak_rss notes)"
for row in "${ROWS[@]}"; do say "$row"; done
say ""
for v in "${VERDICTS[@]}"; do say "$v"; done
say "space: results written to $RESULTS"
