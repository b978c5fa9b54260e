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
# made by `uv venv` (untimed):
#   - clone:    wheel_install (one Linker pass)         vs `uv pip install --offline --link-mode clone`
#   - hardlink: wheel_install --mode hardlink           vs `uv pip install --offline --link-mode hardlink`
#   - loop:     wheel_install --session-per-package (one Linker per wheel, as calling link_tree
#               per package does) vs the one pass
# Times are what each tool reports for the install (uv: "Installed N packages in ...";
# wheel_install: linking, shebangs, RECORD and INSTALLER); each tool's CPU time (user + system,
# of the whole process: for uv that includes resolving from the local wheels) is printed too,
# as it depends less on what else the machine runs. The first round's site-packages of
# both tools are compared (every file's bytes and executable bit, and each RECORD as a set of
# lines, leaving out INSTALLER, RECORD, REQUESTED and uv_cache.json, which differ by design,
# and the lines of bin/: the console-script launchers uv writes from entry_points.txt, which
# wheel_install does not generate, and scripts whose `#!python` line each tool points at its
# own venv).
# Prints medians, ratios and one PASS/MISS line per target; also written to bench/out/.
#
# Environment: RUNS (default 7), PACKAGES (default "ansible botocore scipy pandas sympy django
# matplotlib"), WHEEL_CACHE (default bench/out/wheels), PYTHON (default python3).
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
uvpip() { # uvpip VENV MODE
  uv pip install --offline --no-index --find-links "$WHEEL_CACHE" --link-mode "$2" \
    --python "$1/bin/python" "${names[@]}" 2>&1
}
uv venv -q --python "$PYTHON" "$X/warm"
uvpip "$X/warm" clone >/dev/null
rm -rf "$X/warm"
files=$(find "$X/unpacked" -type f | wc -l)
echo "wheels: ${#wheels[@]} wheels, $files files; load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"

# Milliseconds from a tool's own report.
ms_uv() { sed -nE 's/.*Installed [0-9]+ packages? in ([0-9.]+)(m?s).*/\1 \2/p' | awk '{print ($2=="s") ? $1*1000 : $1}'; }
ms_ct() { sed -nE 's/.* in ([0-9.]+) ms$/\1/p'; }

declare -A T C
TIMEFORMAT='%U %S'
run_one() { # run_one TOOL ROUND -> appends ms to T[TOOL], CPU ms to C[TOOL]
  local tool=$1 r=$2 v="$X/v-$1-$2" ms out cpu
  uv venv -q --python "$PYTHON" "$v"
  sync
  { time case $tool in
    ct-clone) out=$("$EX" "$v" "$X"/unpacked/*); ms=$(ms_ct <<<"$out") ;;
    ct-hardlink) out=$("$EX" --mode hardlink "$v" "$X"/unpacked/*); ms=$(ms_ct <<<"$out") ;;
    ct-loop) out=$("$EX" --session-per-package "$v" "$X"/unpacked/*); ms=$(ms_ct <<<"$out") ;;
    uv-clone) out=$(uvpip "$v" clone); ms=$(ms_uv <<<"$out") ;;
    uv-hardlink) out=$(uvpip "$v" hardlink); ms=$(ms_uv <<<"$out") ;;
  esac; } 2>"$X/cpu"
  [[ -n "$ms" ]] || die "$tool printed no time: $out"
  cpu=$(tail -n1 "$X/cpu" | awk '{printf "%.0f", ($1 + $2) * 1000}')
  T[$tool]+="$ms "
  C[$tool]+="$cpu "
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
  if ((r % 2)); then order=(ct-clone uv-clone ct-hardlink uv-hardlink ct-loop); else order=(uv-clone ct-clone uv-hardlink ct-hardlink ct-loop); fi
  for tool in "${order[@]}"; do run_one "$tool" "$r"; done
  if ((r == 1)); then
    echo "content, clone:"
    compare "$X/v-ct-clone-1" "$X/v-uv-clone-1" || status=1
    echo "content, hardlink:"
    compare "$X/v-ct-hardlink-1" "$X/v-uv-hardlink-1" || status=1
  fi
  rm -rf "$X"/v-*-"$r"
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A M
printf '%-12s %10s   %-40s %8s   %s\n' tool median_ms "all runs (ms)" cpu_ms "all runs, CPU (ms)"
for tool in ct-clone uv-clone ct-hardlink uv-hardlink ct-loop; do
  M[$tool]=$(median <<<"${T[$tool]}")
  printf '%-12s %10.1f   %-40s %8.0f   %s\n' "$tool" "${M[$tool]}" "${T[$tool]}" \
    "$(median <<<"${C[$tool]}")" "${C[$tool]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v x="$1" -v t="$2" 'BEGIN {print (x >= t) ? "PASS" : "MISS"}'; }
r1=$(ratio "${M[uv-clone]}" "${M[ct-clone]}")
r2=$(ratio "${M[uv-hardlink]}" "${M[ct-hardlink]}")
r3=$(ratio "${M[ct-loop]}" "${M[ct-clone]}")
echo "$(verdict "$r1" 1.5) clone: uv / Linker = ${r1}x (target >= 1.5x)"
echo "$(verdict "$r2" 1.0) hardlink: uv / Linker = ${r2}x (target >= 1.0x)"
echo "one session per package / one pass = ${r3}x"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "written to $OUT"
exit "$status"
