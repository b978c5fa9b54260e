#!/usr/bin/env bash
# Retention and gc on a remote, and partial pulls, against a SeaweedFS server on loopback
# (scripts/seaweedfs.sh), in one run.
#
#   sudo bench/remote-gc.sh
#
# Mounts a fresh XFS (scripts/mounts.sh; always unmounted), and:
#   history   a tree of FILES files (in 20 directories) changes 2% of its files a day for DAYS
#             days; each day is snapshotted and pushed. Then `remote forget --keep-last 7`
#             and `remote gc --grace 0s`: bytes on the remote before and after, against the
#             bytes the 7 kept snapshots need (target: within 10% of them), gc's time and
#             requests.
#   partial   `pull SNAP --path 'd00/**'` (5% of the files) into a fresh store vs a full
#             pull (target: <= 10% of the time), RUNS runs each, alternating, medians.
#   checkout  `checkout --pull SNAP DST` vs `pull SNAP` then `checkout SNAP DST`, RUNS runs
#             each, medians (checkout --pull writes each file as its blob arrives), and the
#             floor of such a checkout: max(pull, checkout) / their sum, from the same runs.
#             Also the writes the XFS's device completed during each (/proc/diskstats), and
#             the whole machine's busy CPU time (/proc/stat; the server's share from its
#             /proc/PID/stat): overlapping the two steps cannot make them take less than the
#             CPU time pull then checkout used, spread over every core, so that over pull
#             then checkout's own time is a second floor, the CPU floor (it counts the local
#             server's CPU, which a remote server would not take from the client).
# Output is also written to bench/out/remote-gc-<UTC date>.txt.
#
# Environment:
#   COWTREE=PATH   binary to measure (default: cargo build --release, target/release/cowtree)
#   RUNS=N         timed runs per variant (default 5)
#   FILES=N        files in the tree (default 20000)
#   DAYS=N         days of history (default 30)
#   SEED=N         tree seed (default 1)
#   TREE=DIR       pull DIR, a real tree, in place of the history's last day (the history and
#                  gc still run on the generated tree)
#   PART=GLOB      what the partial pull selects (default d00/**: 5% of the generated files;
#                  with TREE, pick one that selects about 5% of it)
#   RATE=R         limit loopback to R (tc's rate: 800mbit, 1gbit) for the pulls, as a network
#                  would: the download then is not bound by the CPU the local server, the pull
#                  and the checkout share (default: no limit)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "bench: $*" >&2; exit 1; }
note() { printf 'bench: %s\n' "$*" >&2; }
[[ "$(id -u)" == 0 ]] || die "needs root to mount the XFS loop filesystem: sudo bench/remote-gc.sh"
RUNS=${RUNS:-5}
PART=${PART:-d00/**}
if [[ -n "${TREE:-}" ]]; then [[ -d "$TREE" ]] || die "TREE=$TREE is not a directory"; fi
FILES=${FILES:-20000}
DAYS=${DAYS:-30}
SEED=${SEED:-1}

mkdir -p bench/out
RESULTS="$ROOT/bench/out/remote-gc-$(date -u +%Y%m%dT%H%M%SZ).txt"
: >"$RESULTS"
say() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# shellcheck source=bench/s3-up.sh
source bench/s3-up.sh
export XDG_CONFIG_HOME=$XFS/config

WORK=$(mktemp -d "$XFS/work.XXXXXX")
SRC=$XFS/src
STORE=$XFS/store-a
ct() { "$COWTREE" --store "$STORE" "$@"; }
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[k]
print(v)' "$@"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
# Writes completed by the XFS's loop device so far (/proc/diskstats, field 8).
writes() { awk -v d="$(basename "$(findmnt -no SOURCE "$XFS")")" '$3 == d {print $8}' /proc/diskstats; }
# The whole machine's busy CPU ticks so far: user, nice, system, irq, softirq, steal.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# The CPU ticks this benchmark's SeaweedFS server has used so far (utime + stime): its
# process (the pid scripts/seaweedfs.sh started) and any descendants, not other servers on
# the machine.
SERVER_PID=${started##* }
server_cpu() {
  local t=0 p todo=("$SERVER_PID") kids
  while ((${#todo[@]})); do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    mapfile -t kids < <(pgrep -P "$p" || true)
    todo+=("${kids[@]}")
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
CORES=$(nproc)
mib() { awk "BEGIN { printf \"%.1f MiB\", $1 / 1048576 }"; }

# The tree, day 0: FILES files of 1..64 KiB in 20 directories; each later day rewrites 2%.
day() {
  python3 - "$SRC" "$FILES" "$SEED" "$1" <<'PY'
import os, random, sys
root, n, seed, day = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed * 1000 + day)
pick = range(n) if day == 0 else rng.sample(range(n), max(1, n // 50))
for i in pick:
    d = os.path.join(root, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    size = rng.randint(1, 64 << 10)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(rng.randbytes(size))
PY
}

ct remote add origin "s3://cowtree/history" --endpoint "$ENDPOINT" >/dev/null
note "history: $DAYS days of $FILES files, 2% changing a day"
push_s=0
for ((d = 0; d < DAYS; d++)); do
  day "$d"
  id=$(ct snapshot "$SRC" --json | json id)
  t0=$(now)
  ct push --quiet "$id"
  push_s=$(awk "BEGIN {print $push_s + $(now) - $t0}")
  # Arrival order is by the server's clock (1 s resolution).
  sleep 1
done
before=$(ct remote gc origin --grace 0s --dry-run --json)
t0=$(now)
ct remote forget origin --keep-last 7 --json >"$WORK/forget"
forget_s=$(awk "BEGIN {print $(now) - $t0}")
t0=$(now)
ct remote gc origin --grace 0s --json >"$WORK/gc"
gc_s=$(awk "BEGIN {print $(now) - $t0}")
after=$(ct remote gc origin --grace 0s --dry-run --json)
b_before=$(json bytes_before <<<"$before")
b_after=$(json bytes_before <<<"$after")
needed=$(json bytes_needed <<<"$after")
say "== remote gc after forget --keep-last 7 ($DAYS days of $FILES files, 2%/day; load $(cut -d' ' -f1-3 /proc/loadavg))"
say "pushes: $DAYS in $(printf %.1f "$push_s") s"
say "remote before: $(mib "$b_before") in $(json objects_before <<<"$before") objects"
say "remote after:  $(mib "$b_after") in $(json objects_before <<<"$after") objects"
say "needed by the 7 kept snapshots: $(mib "$needed"); after/needed = $(ratio "$b_after" "$needed") (target <= 1.10)"
say "forget: $(printf %.2f "$forget_s") s, $(json requests <"$WORK/forget") requests, dropped $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["dropped"]))' "$WORK/forget")"
say "gc: $(printf %.2f "$gc_s") s, $(json requests <"$WORK/gc") requests ($(json sweep_requests <"$WORK/gc") for the sweep), deleted $(json objects_deleted <"$WORK/gc") objects ($(mib "$(json bytes_deleted <"$WORK/gc")")), repacked $(json packs_repacked <"$WORK/gc") packs into $(json packs_written <"$WORK/gc") (read $(mib "$(json repack_bytes_read <"$WORK/gc")"), wrote $(mib "$(json repack_bytes_written <"$WORK/gc")"))"

# Partial vs full pull, and checkout --pull vs pull then checkout, of the last day.
pulled=$SRC
if [[ -n "${TREE:-}" ]]; then
  # On the XFS, as the generated tree is (untimed): the store then shares its data.
  pulled=$XFS/tree
  cp -a "$TREE" "$pulled"
fi
last=$(ct snapshot "$pulled" --name last --json)
ct push --quiet last
sync -f "$XFS"
if [[ -n "${RATE:-}" ]]; then
  command -v tc >/dev/null || die "RATE needs tc (Debian: iproute2)"
  tc qdisc add dev lo root tbf rate "$RATE" burst 2mb latency 100ms || die "tc refused RATE=$RATE"
  trap 'tc qdisc del dev lo root 2>/dev/null || true; cleanup' EXIT
  say "== loopback limited to $RATE for the pulls (tc tbf)"
fi
for ((r = 1; r <= RUNS; r++)); do
  for v in $( ((r % 2)) && echo "full part copull pullco" || echo "part full pullco copull"); do
    s=$XFS/s-$v-$r
    dst=$XFS/co-$v-$r
    w0=$(writes)
    # The server's count first: the processes it starts (pgrep, awk) then fall outside the
    # busy time below (and the writes count's inside neither).
    c0=$(server_cpu)
    b0=$(busy)
    t0=$(now)
    case $v in
      full) "$COWTREE" --store "$s" pull --quiet last ;;
      part) "$COWTREE" --store "$s" pull --json last --path "$PART" >"$WORK/part.json" ;;
      copull) "$COWTREE" --store "$s" checkout --pull last "$dst" >/dev/null 2>&1 ;;
      pullco)
        "$COWTREE" --store "$s" pull --quiet last
        t1=$(now)
        "$COWTREE" --store "$s" checkout last "$dst" >/dev/null
        # The floor of a checkout that writes while it downloads: the longer of the two steps
        # over their sum (written after the run's own time is taken).
        floor="p = $t1 - $t0; c = $(now) - $t1; print (p > c ? p : c) / (p + c)"
        ;;
    esac
    tend=$(now)
    b=$(($(busy) - b0))
    t=$(awk "BEGIN {print $tend - $t0}")
    c=$(($(server_cpu) - c0))
    echo "$t" >>"$WORK/$v"
    echo $(($(writes) - w0)) >>"$WORK/$v.writes"
    if [[ $v == copull || $v == pullco ]]; then
      # Busy CPU seconds (whole machine, then the server's), and their share of every core's
      # time (for pull then checkout, that share is the CPU floor).
      awk "BEGIN {print $b / $HZ}" >>"$WORK/$v.busy"
      awk "BEGIN {print $c / $HZ}" >>"$WORK/$v.server"
      awk "BEGIN {print $b / $HZ / $CORES / $t}" >>"$WORK/$v.use"
    fi
    if [[ $v == pullco ]]; then awk "BEGIN {$floor}" >>"$WORK/floor"; fi
    rm -rf "$s" "$dst"
    # Untimed: the next variant starts with nothing of this one's left to write back (a
    # pull's syncfs would otherwise pay for this removal).
    sync -f "$XFS"
  done
done
full=$(median <"$WORK/full")
part=$(median <"$WORK/part")
copull=$(median <"$WORK/copull")
pullco=$(median <"$WORK/pullco")
say "== pulls of the last day, medians of $RUNS"
say "pulled: ${TREE:-the last day} ($(json files <<<"$last") files, $(mib "$(json bytes <<<"$last")")); the part $PART: $(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["parts"][0]; print(p["files"], "files,", round(p["bytes"] / 1048576, 1), "MiB")' "$WORK/part.json")"
say "full pull: $full s; partial pull of $PART: $part s; partial/full = $(ratio "$part" "$full") (target <= 0.10)"
say "partial pull read $(mib "$(json bytes_fetched <"$WORK/part.json")") from the remote for $(mib "$(json bytes_received <"$WORK/part.json")") of blobs, in $(json requests <"$WORK/part.json") requests (last run)"
say "checkout --pull: $copull s; pull then checkout: $pullco s; ratio = $(ratio "$copull" "$pullco") (target <= 0.80)"
say "writes to the device: checkout --pull $(median <"$WORK/copull.writes"), pull then checkout $(median <"$WORK/pullco.writes") (medians of $RUNS)"
say "floor of checkout --pull here: max(pull, checkout) / (pull + checkout) = $(printf %.2f "$(median <"$WORK/floor")") (median of $RUNS)"
say "busy CPU, whole machine ($CORES cores; any other load counts too): checkout --pull $(printf %.2f "$(median <"$WORK/copull.busy")") s ($(printf %.0f "$(median <"$WORK/copull.use" | awk '{print $1 * 100}')")% of all cores' time), pull then checkout $(printf %.2f "$(median <"$WORK/pullco.busy")") s; of it the server's: $(printf %.2f "$(median <"$WORK/copull.server")") s and $(printf %.2f "$(median <"$WORK/pullco.server")") s (medians of $RUNS)"
say "CPU floor of checkout --pull here: pull then checkout's busy CPU / $CORES cores / its time = $(printf %.2f "$(median <"$WORK/pullco.use")") (median of $RUNS)"
note "results in $RESULTS"
