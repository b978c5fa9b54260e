#!/usr/bin/env bash
# Installing Python wheels into a fresh virtual environment on XFS: cowtree-link's Linker
# (crates/cowtree-link/examples/wheel_install.rs) against uv, in the same run, interleaved.
#
#   sudo bench/wheels.sh
#
# Fetches the wheels of PACKAGES (and their dependencies) from the package index with
# `pip download` into WHEEL_CACHE (kept between runs), installs uv with pip when missing,
# mounts a fresh XFS (reflink=1) loop filesystem through scripts/mounts.sh (and always unmounts
# it), unpacks every wheel on it (the package manager's cache), and warms uv's cache on it
# (untimed). Then, RUNS rounds, the tools alternating within each round, each into a new venv
# made by `uv venv` (untimed), each started on a quiet filesystem (synced, then frozen and thawed,
# which waits for the background writeback of the run before it):
#   - clone:    wheel_install (one Linker pass)         vs `uv pip install --offline --link-mode clone`
#   - hardlink: wheel_install --mode hardlink           vs `uv pip install --offline --link-mode hardlink`
#   - loop:     wheel_install --session-per-package (one Linker per wheel, as calling link_tree
#               per package does) vs the one pass
#   - python:   crates/cowtree-py/examples/wheel_install.py, the same install driven from Python
#               through the `cowtree` module (built --release, as the Rust example is; mapping
#               rules instead of a closure, RECORD lines from cowtree.record_lines over the
#               record kept in Rust, scripts rewritten in Python), clone and hardlink, vs
#               the Rust example (target: within 5%), in wall time and in CPU time, beside
#               the CPU the interpreter takes to start and import the example's modules alone
#               (the Python path's floor); also the module's import time and the size of the
#               wheel it came from
#   - floor:    bench/merge-floor.c, clone and hardlink modes, with as many threads as cores:
#               the kernel work alone of the same install (every file of every unpacked wheel
#               created and FICLONEd, or linkat'ed, into site-packages, directories made,
#               nothing else: no .data mapping, no RECORD), so that each target can be set
#               against what the kernel alone takes.
# Times are what each tool reports for the install (uv: "Installed N packages in ...";
# wheel_install: linking, shebangs, RECORD and INSTALLER; the floor: from its first open to its
# last worker's end); each tool's CPU time (user + system, of the whole process: for uv that
# includes resolving from the local wheels) and context switches (voluntary: it blocked;
# involuntary: it was preempted) are printed too, from GNU time. The first round's site-packages of
# both tools are compared (every file's bytes and executable bit, and each RECORD as a set of
# lines, leaving out INSTALLER, RECORD, REQUESTED and uv_cache.json, which differ by design,
# and the lines of bin/: the console-script launchers uv writes from entry_points.txt, which
# wheel_install does not generate, and scripts whose `#!python` line each tool points at its
# own venv).
# Prints medians, ratios, one PASS/MISS line per target and, per target, the most the Linker
# may take against what the floor takes; also written to bench/out/.
#
# Environment: RUNS (default 7), PACKAGES (default "ansible botocore scipy pandas sympy django
# matplotlib"), WHEEL_CACHE (default bench/out/wheels), PYTHON (default python3), SYSCALLS=1
# (then one more install per tool under `strace -f -c`, printed as system calls per file).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "wheels: $*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem"

RUNS=${RUNS:-7}
PACKAGES=${PACKAGES:-ansible botocore scipy pandas sympy django matplotlib}
WHEEL_CACHE=${WHEEL_CACHE:-$ROOT/bench/out/wheels}
PYTHON=${PYTHON:-python3}
mkdir -p "$ROOT/bench/out" "$WHEEL_CACHE"
OUT="$ROOT/bench/out/wheels-$(date -u +%Y%m%dT%H%M%SZ).txt"
exec > >(tee "$OUT") 2>&1

command -v uv >/dev/null || "$PYTHON" -m pip install -q uv
# shellcheck disable=SC2086
"$PYTHON" -m pip download -q -d "$WHEEL_CACHE" --only-binary=:all: $PACKAGES
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build -q --release -p cowtree-link --example wheel_install
EX="$TARGET/release/examples/wheel_install"
# The Python module, release profile, in a wheel of its own (the tools: scripts/wheel.sh's).
scripts/wheel.sh tools >/dev/null
rm -rf "$TARGET/wheels-bench"
mkdir -p crates/cowtree-py/build-data # (pyproject.toml's data directory, empty on a fresh clone)
"$TARGET/wheel-tools/bin/maturin" build -q --release -m crates/cowtree-py/Cargo.toml \
  -o "$TARGET/wheels-bench" >/dev/null
PYWHEEL=$(ls "$TARGET"/wheels-bench/cowtree-*.whl)
PYEX="$ROOT/crates/cowtree-py/examples/wheel_install.py"

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
trap 'cowtree_mounts_down' EXIT
cowtree_mounts_up xfs
X=$COWTREE_TEST_XFS
[[ -n "$X" ]] || die "no XFS mounted"

wheels=("$WHEEL_CACHE"/*.whl)
names=()
for w in "${wheels[@]}"; do names+=("$(basename "$w" | cut -d- -f1)"); done
mkdir -p "$X/unpacked"
"$PYTHON" - "$X/unpacked" "${wheels[@]}" <<'EOF'
import os, sys, zipfile
out = sys.argv[1]
for w in sys.argv[2:]:
    d = os.path.join(out, os.path.basename(w)[:-4])
    with zipfile.ZipFile(w) as z:
        for info in z.infolist():
            path = z.extract(info, d)
            mode = (info.external_attr >> 16) & 0o777
            if not info.is_dir():
                os.chmod(path, 0o755 if mode & 0o111 else 0o644)
EOF
export UV_CACHE_DIR="$X/uvcache"
# The interpreter that runs examples/wheel_install.py, with the module installed.
uv venv -q --python "$PYTHON" "$X/pyct"
# --compile-bytecode: the module's .pyc written at install, as pip does by default (uv does
# not), so that no run compiles cowtree/__init__.py again (PYTHONDONTWRITEBYTECODE may be set).
uv pip install -q --compile-bytecode --python "$X/pyct/bin/python" "$PYWHEEL"
PYCT="$X/pyct/bin/python"
FLOOR="$X/merge-floor"
cc -O2 -pthread -o "$FLOOR" bench/merge-floor.c
JOBS=$(nproc)

cmd() { # cmd TOOL VENV: sets CMD to TOOL's command line installing into VENV
  local site
  site=$(echo "$2"/lib/python3*/site-packages)
  case $1 in
    ct-clone) CMD=("$EX" "$2" "$X"/unpacked/*) ;;
    ct-hardlink) CMD=("$EX" --mode hardlink "$2" "$X"/unpacked/*) ;;
    ct-loop) CMD=("$EX" --session-per-package "$2" "$X"/unpacked/*) ;;
    py-clone) CMD=("$PYCT" "$PYEX" "$2" "$X"/unpacked/*) ;;
    py-hardlink) CMD=("$PYCT" "$PYEX" --mode hardlink "$2" "$X"/unpacked/*) ;;
    uv-clone | uv-hardlink)
      CMD=(uv pip install --offline --no-index --find-links "$WHEEL_CACHE" --link-mode "${1#uv-}"
        --python "$2/bin/python" "${names[@]}") ;;
    floor-clone | floor-hardlink) CMD=("$FLOOR" -j "$JOBS" -m "${1#floor-}" "$site" "$X"/unpacked/*) ;;
    *) die "unknown tool $1" ;;
  esac
}
uv venv -q --python "$PYTHON" "$X/warm"
cmd uv-clone "$X/warm"
"${CMD[@]}" >/dev/null 2>&1
rm -rf "$X/warm"
files=$(find "$X/unpacked" -type f | wc -l)
echo "wheels: ${#wheels[@]} wheels, $files files; load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"

# Milliseconds from a tool's own report.
ms_of() { # ms_of TOOL < output
  case $1 in
    uv-*) sed -nE 's/.*Installed [0-9]+ packages? in ([0-9.]+)(m?s).*/\1 \2/p' |
      awk '{print ($2=="s") ? $1*1000 : $1}' ;;
    ct-* | py-*) sed -nE 's/.* in ([0-9.]+) ms$/\1/p' ;;
    floor-*) sed -nE 's/^merge-floor: .*, ([0-9.]+) ms$/\1/p' ;;
  esac
}

[[ -x /usr/bin/time ]] || die "needs GNU time (/usr/bin/time: apt-get install time)"
declare -A T C V I
run_one() { # run_one TOOL ROUND -> appends ms to T[TOOL], CPU ms to C[TOOL], switches to V, I
  local tool=$1 r=$2 v="$X/v-$1-$2" ms out u s vol inv
  uv venv -q --python "$PYTHON" "$v"
  cmd "$tool" "$v"
  # A quiet filesystem (scripts/mounts.sh): no tool pays for the writeback of the one before.
  cowtree_quiesce "$X" || die "could not freeze and thaw $X"
  out=$(/usr/bin/time -f '%U %S %w %c' -o "$X/cpu" "${CMD[@]}" 2>&1) || die "$tool failed: $out"
  ms=$(ms_of "$tool" <<<"$out")
  [[ -n "$ms" ]] || die "$tool printed no time: $out"
  read -r u s vol inv <"$X/cpu"
  T[$tool]+="$ms "
  C[$tool]+="$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.0f", (u + s) * 1000}') "
  V[$tool]+="$vol "
  I[$tool]+="$inv "
}

compare() { # compare VENV_A VENV_B
  "$PYTHON" - "$1" "$2" <<'EOF'
import hashlib, os, sys
SKIP = {"INSTALLER", "RECORD", "REQUESTED", "uv_cache.json"}
# bin/: uv's console-script launchers (wheel_install writes none) and rewritten scripts.
LAUNCHER = "../../../bin/"
def scan(venv):
    site = [os.path.join(venv, "lib", d, "site-packages") for d in os.listdir(os.path.join(venv, "lib"))][0]
    files, records = {}, {}
    for dp, dns, fns in os.walk(site):
        for f in fns:
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, site)
            if f == "RECORD" and dp.endswith(".dist-info"):
                records[rel] = {l for l in open(p).read().splitlines()
                                if l.split(",")[0].rsplit("/", 1)[-1] not in SKIP
                                and not l.startswith(LAUNCHER)}
            if dp.endswith(".dist-info") and f in SKIP:
                continue
            st = os.lstat(p)
            data = os.readlink(p).encode() if os.path.islink(p) else open(p, "rb").read()
            files[rel] = (hashlib.sha256(data).hexdigest(), bool(st.st_mode & 0o111))
    return files, records
a, b = scan(sys.argv[1]), scan(sys.argv[2])
bad = [k for k in set(a[0]) | set(b[0]) if a[0].get(k) != b[0].get(k)]
badr = [k for k in set(a[1]) | set(b[1]) if a[1].get(k) != b[1].get(k)]
print(f"  {len(a[0])} files compared: {len(bad)} differ; {len(a[1])} RECORDs: {len(badr)} differ")
for k in sorted(bad)[:5]: print("   differs:", k, a[0].get(k), b[0].get(k))
for k in sorted(badr)[:3]: print("   RECORD differs:", k, sorted(a[1].get(k, set()) ^ b[1].get(k, set()))[:4])
sys.exit(1 if bad or badr else 0)
EOF
}

status=0
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then
    order=(ct-clone py-clone uv-clone floor-clone ct-hardlink py-hardlink uv-hardlink floor-hardlink ct-loop)
  else
    order=(floor-clone uv-clone py-clone ct-clone floor-hardlink uv-hardlink py-hardlink ct-hardlink ct-loop)
  fi
  for tool in "${order[@]}"; do run_one "$tool" "$r"; done
  if ((r == 1)); then
    echo "content, clone:"
    compare "$X/v-ct-clone-1" "$X/v-uv-clone-1" || status=1
    echo "content, hardlink:"
    compare "$X/v-ct-hardlink-1" "$X/v-uv-hardlink-1" || status=1
    echo "content, Python example against the Rust example (clone):"
    compare "$X/v-py-clone-1" "$X/v-ct-clone-1" || status=1
  fi
  rm -rf "$X"/v-*-"$r"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A M MC
echo "medians; vol, invol: the process's voluntary context switches (it blocked) and involuntary ones (it was preempted)"
printf '%-14s %9s   %-36s %7s   %-30s %6s %6s\n' tool median_ms "all runs (ms)" cpu_ms "all runs, CPU (ms)" vol invol
for tool in ct-clone py-clone uv-clone floor-clone ct-hardlink py-hardlink uv-hardlink floor-hardlink ct-loop; do
  M[$tool]=$(median <<<"${T[$tool]}")
  MC[$tool]=$(median <<<"${C[$tool]}")
  printf '%-14s %9.1f   %-36s %7.0f   %-30s %6.0f %6.0f\n' "$tool" "${M[$tool]}" "${T[$tool]}" \
    "${MC[$tool]}" "${C[$tool]}" "$(median <<<"${V[$tool]}")" "$(median <<<"${I[$tool]}")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v x="$1" -v t="$2" 'BEGIN {print (x >= t) ? "PASS" : "MISS"}'; }
r1=$(ratio "${M[uv-clone]}" "${M[ct-clone]}")
r2=$(ratio "${M[uv-hardlink]}" "${M[ct-hardlink]}")
r3=$(ratio "${M[ct-loop]}" "${M[ct-clone]}")
echo "$(verdict "$r1" 1.5) clone: uv / Linker = ${r1}x (target >= 1.5x)"
echo "$(verdict "$r2" 1.0) hardlink: uv / Linker = ${r2}x (target >= 1.0x)"
# What each target asks of the Linker, against what the kernel work alone costs.
floor_line() { # floor_line MODE FACTOR TARGET_TEXT
  local need
  need=$(awk -v u="${M[uv-$1]}" -v f="$2" 'BEGIN {printf "%.0f", u / f}')
  echo "$1: $3 needs the Linker <= $need ms; the floor alone takes ${M[floor-$1]} ms" \
    "($(ratio "${M[floor-$1]}" "$need") of that; CPU ${MC[floor-$1]} ms);" \
    "Linker / floor = $(ratio "${M[ct-$1]}" "${M[floor-$1]}")x, uv / floor = $(ratio "${M[uv-$1]}" "${M[floor-$1]}")x"
}
floor_line clone 1.5 "1.5x uv"
floor_line hardlink 1.0 "no slower than uv"
echo "one session per package / one pass = ${r3}x"
for m in clone hardlink; do
  r=$(ratio "${M[py-$m]}" "${M[ct-$m]}")
  echo "$(awk -v x="$r" 'BEGIN {print (x <= 1.05) ? "PASS" : "MISS"}') $m: Python example / Rust example = ${r}x (target <= 1.05x)"
done
# The Python path's own floor: the interpreter starting and importing what the example
# imports, with nothing done (CPU from getrusage, which the kernel keeps in nanoseconds).
starts=()
for _ in 1 2 3 4 5 6 7 8 9 10 11; do
  starts+=("$("$PYCT" -c 'import os, sys, threading, time, cowtree, resource
r = resource.getrusage(resource.RUSAGE_SELF)
print(f"{(r.ru_utime + r.ru_stime) * 1000:.1f}")')")
done
start=$(printf '%s\n' "${starts[@]}" | median)
for m in clone hardlink; do
  echo "CPU $m: Python example / Rust example = $(ratio "${MC[py-$m]}" "${MC[ct-$m]}")x" \
    "(${MC[py-$m]} / ${MC[ct-$m]} ms); the interpreter's start and imports alone: $start ms" \
    "(median of 11), $(awk -v s="$start" -v c="${MC[ct-$m]}" 'BEGIN {printf "%.1f", 100 * s / c}')% of the Rust example's CPU"
done
imports=()
for _ in 1 2 3 4 5 6 7 8 9 10 11; do
  imports+=("$("$PYCT" -X importtime -c 'import cowtree' 2>&1 | awk -F'|' '$3 ~ /^ cowtree$/ {gsub(/ /, "", $2); print $2}')")
done
echo "import cowtree: $(printf '%s\n' "${imports[@]}" | median) us (median of 11, python -X importtime, cumulative; release build)"
echo "wheel for the Python runs: $(basename "$PYWHEEL"), $(du -k "$PYWHEEL" | cut -f1) KiB (release module; its bin/cowtree is whatever scripts/wheel.sh last built)"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

# SYSCALLS=1: one more install per tool under `strace -f -c`; system calls per unpacked file.
if [[ "${SYSCALLS:-0}" == 1 ]]; then
  command -v strace >/dev/null || die "SYSCALLS=1 needs strace"
  traced=(ct-clone uv-clone floor-clone ct-hardlink uv-hardlink floor-hardlink)
  for tool in "${traced[@]}"; do
    v="$X/v-$tool-strace"
    uv venv -q --python "$PYTHON" "$v"
    cmd "$tool" "$v"
    sync
    strace -f -c -o "$X/strace-$tool" "${CMD[@]}" >/dev/null 2>&1 || die "$tool failed under strace"
    rm -rf "$v"
  done
  echo "system calls per unpacked file ($files files; strace -f -c; uv's are the whole process's):"
  "$PYTHON" - "$files" "${traced[@]/#/$X/strace-}" <<'EOF'
import os, sys
files = int(sys.argv[1])
tools, counts = [], []
for path in sys.argv[2:]:
    tools.append(os.path.basename(path)[len("strace-"):])
    c = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            c[f[-1]] = int(f[3])
    counts.append(c)
names = sorted({n for c in counts for n in c}, key=lambda n: -max(c.get(n, 0) for c in counts))
print(f"{'syscall':<16}" + "".join(f"{t:>15}" for t in tools))
for n in names:
    if max(c.get(n, 0) for c in counts) >= files / 100:
        print(f"{n:<16}" + "".join(f"{c.get(n, 0) / files:>15.2f}" for c in counts))
print(f"{'total':<16}" + "".join(f"{sum(c.values()) / files:>15.2f}" for c in counts))
EOF
fi
echo "written to $OUT"
exit "$status"
