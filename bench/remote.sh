#!/usr/bin/env bash
# Remote stores: cowtree push / pull against `rclone copy`, to and from the same S3 server
# (SeaweedFS on loopback, scripts/seaweedfs.sh) in the same run.
#
#   sudo bench/remote.sh
#
# Mounts a fresh XFS (scripts/mounts.sh; always unmounted), generates the bench tree
# (bench/gentree.py) on it, records it in a store there, and times, alternating the order of
# the tools from run to run:
#   push      cowtree push of the snapshot to a fresh prefix    vs  rclone copy TREE s3:...
#   pull      cowtree pull into a fresh store + checkout         vs  rclone copy s3:... DIR
#   push 1%   cowtree push after 1% of the files changed (vs cowtree's own first push)
# and prints medians, ratios, peak RSS and requests per push, with one PASS/MISS line per
# target. Output is also written to bench/out/remote-<UTC date>.txt.
#
# Environment:
#   COWTREE=PATH   binary to measure (default: cargo build --release, target/release/cowtree)
#   RUNS=N         timed runs per tool (default 3)
#   SCALE=F        tree size factor for bench/gentree.py --scale (default 1: ~80k files)
#   SEED=N         tree seed (default 1)
#
# Load note: the machine may be shared; the ratios compare tools within the same run, in
# alternating order, and the load average is printed with the results.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench: $*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem: sudo bench/remote.sh"
RUNS=${RUNS:-3}
SCALE=${SCALE:-1}
SEED=${SEED:-1}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"

mkdir -p bench/out
RESULTS="$ROOT/bench/out/remote-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

if ! command -v rclone >/dev/null; then
  note "installing rclone (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
fi
[[ -x /usr/bin/time ]] || {
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
}
# shellcheck source=bench/s3-up.sh
source bench/s3-up.sh
# rclone's AWS SDK refuses any AWS_CA_BUNDLE with its own HTTP transport; the server is
# plain http on loopback, so no CA bundle is needed.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=SeaweedFS
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_BENCH_ENDPOINT=$ENDPOINT

SRC=$XFS/src
note "generating the tree (scale $SCALE)"
TREE=$(python3 bench/gentree.py "$SRC" --scale "$SCALE" --seed "$SEED" --json)
STORE_A=$XFS/store-a
"$COWTREE" --store "$STORE_A" snapshot "$SRC" --name bench >/dev/null
"$COWTREE" --store "$STORE_A" remote add --in-store origin "s3://cowtree/seed" --endpoint "$ENDPOINT"
"$COWTREE" --store "$STORE_A" push --quiet bench # the tree every cowtree pull reads

# timed KEY CMD...: appends "seconds rss_kib" to $WORK/KEY
WORK=$(mktemp -d "$XFS/work.XXXXXX")
timed() {
  local key=$1
  shift
  sync
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$@" >"$WORK/out" 2>"$WORK/err" ||
    { cat "$WORK/err" >&2; die "$key failed"; }
  cat "$WORK/t" >>"$WORK/$key"
}
median() { sort -n "$WORK/$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
peak() { awk 'BEGIN{m=0} {if ($2>m) m=$2} END {printf "%.0f", m/1024}' "$WORK/$1"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

push_cowtree() {
  "$COWTREE" --store "$STORE_A" remote rm --in-store origin
  "$COWTREE" --store "$STORE_A" remote add --in-store origin "s3://cowtree/run-$1" --endpoint "$ENDPOINT"
  timed push_cowtree "$COWTREE" --store "$STORE_A" push --json bench
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$WORK/out" >>"$WORK/requests"
}
push_rclone() { timed push_rclone rclone copy "$SRC" "bench:cowtree/rclone-$1"; }
pull_cowtree() {
  local b=$XFS/store-b-$1
  "$COWTREE" --store "$b" remote add --in-store origin "s3://cowtree/seed" --endpoint "$ENDPOINT"
  timed pull_cowtree sh -c "'$COWTREE' --store '$b' pull --quiet bench && \
    '$COWTREE' --store '$b' checkout bench '$XFS/co-$1' >/dev/null"
  rm -rf "$b" "$XFS/co-$1"
}
pull_rclone() {
  # What rclone uploaded in run 1 (each run pushes before it pulls).
  timed pull_rclone rclone copy bench:cowtree/rclone-1 "$XFS/rc-$1"
  rm -rf "$XFS/rc-$1"
}

for ((r = 1; r <= RUNS; r++)); do
  note "run $r of $RUNS"
  if ((r % 2)); then
    push_cowtree "$r"; push_rclone "$r"; pull_cowtree "$r"; pull_rclone "$r"
  else
    push_rclone "$r"; push_cowtree "$r"; pull_rclone "$r"; pull_cowtree "$r"
  fi
done

# 1% of the files changed, then pushed to the prefix of the last full push.
for ((r = 1; r <= RUNS; r++)); do
  # Each round changes the same 1% again, so every timed push has 1% of the files to send.
  python3 - "$SRC" "$r" <<'PY'
import os, sys
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(sys.argv[1]) for f in fs
               if not os.path.islink(os.path.join(d, f)))
for p in files[::100]:
    with open(p, "ab") as f:
        f.write(b"round %s\n" % sys.argv[2].encode())
PY
  "$COWTREE" --store "$STORE_A" snapshot "$SRC" --name bench >/dev/null
  timed push_1pct "$COWTREE" --store "$STORE_A" push --json bench
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["requests"], j["bytes_sent"], j["blobs_sent"])' "$WORK/out" >>"$WORK/requests_1pct"
done

say "# remote: cowtree $("$COWTREE" --version) vs $(rclone version | head -1), SeaweedFS $(weed version 2>/dev/null | awk '{print $3}')"
say "# tree: $TREE"
say "# runs: $RUNS; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
say ""
say "| what | cowtree median s | rclone median s | rclone/cowtree | cowtree peak RSS MiB | rclone peak RSS MiB |"
say "|---|---|---|---|---|---|"
for k in push pull; do
  c=$(median "${k}_cowtree"); g=$(median "${k}_rclone")
  say "| $k | $c | $g | $(ratio "$g" "$c")x | $(peak "${k}_cowtree") | $(peak "${k}_rclone") |"
done
p1=$(median push_1pct)
say "| push after 1% changed | $p1 | - | $(ratio "$p1" "$(median push_cowtree)") of the first push | $(peak push_1pct) | - |"
say ""
say "requests per full push: $(sort -n "$WORK/requests" | tr '\n' ' ')"
say "1% pushes (requests, bytes sent, blobs sent): $(tr '\n' ';' <"$WORK/requests_1pct")"
say "(pull = cowtree pull into a fresh store on the XFS + checkout; rclone copies files only:"
say " it skips symlinks and does not keep modes.)"
verdict() { if awk "BEGIN { exit !($2) }"; then say "PASS $1"; else say "MISS $1"; fi; }
verdict "push at least 3x faster than rclone" "$(median push_rclone) >= 3 * $(median push_cowtree)"
verdict "pull+checkout at least 3x faster than rclone" "$(median pull_rclone) >= 3 * $(median pull_cowtree)"
verdict "1% push at most 5% of the first push's time" "$p1 <= 0.05 * $(median push_cowtree)"
verdict "peak RSS at most 256 MiB" "$(peak push_cowtree) <= 256 && $(peak pull_cowtree) <= 256"
say "results: $RESULTS"
