#!/usr/bin/env bash
# `cowtree clone --archive` (issue 68) against `cp -a --reflink=always`, which keeps the same
# (owners, set-ID bits, extended attributes, ACLs, hardlinks, special files), and against plain
# `cowtree clone`, which keeps none of that. The issue's targets: --archive at least 1.8x
# faster than cp, and at most 1.15x the time of the plain clone.
#
#   sudo bench/archive.sh                        # both trees, 5 runs each
#   sudo env RUNS=3 bench/archive.sh             # fewer runs
#   sudo env TREES=gen SCALE=0.25 bench/archive.sh  # the generated tree only, a quarter of it
#   sudo env COWTREE=target/release/cowtree bench/archive.sh  # a given binary
#
# Two trees, each on a fresh XFS loop filesystem (reflink=1; scripts/mounts.sh through
# bench/lib.sh, always unmounted):
#   gen     bench/gentree.py's tree, the one bench/run.sh clones (80,000 files, 702 MiB at
#           SCALE=1), made by root: one owner, no attributes, no hardlinks, no special files
#   rootfs  Debian bookworm minbase (scripts/rootfs.sh: debootstrap, built once and cached as a
#           tarball), unpacked with owners, modes, attributes and device nodes: 6,690 paths
#
# Each round runs the four tools once, into one destination removed (untimed) after each;
# the order rotates between rounds, so each tool takes every position. Before each timed run
# the filesystem is synced, frozen and thawed (bench_quiesce). The plain clone is
# `cowtree clone --skip-special` (the root filesystem's /dev holds device nodes, which a plain
# clone refuses; the generated tree has none, so there the flag changes nothing). The fourth is
# the floor probe `bench/clone-floor.c -a` with one thread per core: the system calls an
# archive copy cannot skip (open, create, FICLONE, and owner, attributes and times through the
# open descriptors), nothing else. In the first
# round the --archive clone is compared with the source field by field
# (scripts/rootfs_compare.py: owners, modes, times, attributes, ACLs, hardlinks) and the run
# fails if they differ.
#
# Environment:
#   RUNS=N        rounds per tree (default 5); medians are reported (of an even count, the
#                 lower middle one)
#   TREES="..."   gen, rootfs or both (default "gen rootfs")
#   SCALE=F       bench/gentree.py --scale (default 1)
#   CACHE=warm|cold  warm (default): the page cache as the previous run left it (the source
#                 read by the runs before); cold: caches dropped before every timed run
#   SIZE=S        the XFS image (sparse; default 6G)
#   LOOP_DIO=0    the loop device through the page cache (default direct I/O: bench/lib.sh)
#   COWTREE=BIN   the binary (default: cargo build --release)
#
# Prints per tree: median, min and max wall seconds, median CPU seconds (user + system), peak
# RSS and files per second per tool, then the two ratios of the medians, with PASS or MISS,
# and the same ratios of CPU seconds (for information: they move less with other load).
# Every run goes to bench/out/archive-<date>.txt as an `archive-run` line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_start archive "$@"
RUNS=${RUNS:-5}
TREES=${TREES:-gen rootfs}
SCALE=${SCALE:-1}
CACHE=${CACHE:-warm}
SIZE=${SIZE:-6G}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $CACHE == warm || $CACHE == cold ]] || die "CACHE must be warm or cold"
for t in $TREES; do [[ $t == gen || $t == rootfs ]] || die "TREES: $t is not gen or rootfs"; done
bench_install /usr/bin/time time || die "needs GNU time (/usr/bin/time)"
bench_install getfattr attr || die "needs getfattr (attr)"
bench_install getfacl acl || die "needs getfacl (acl)"
command -v cc >/dev/null || die "needs a C compiler (cc) for the floor probe bench/clone-floor.c"
# shellcheck source=bench/cowtree-bin.sh
source "$ROOT/bench/cowtree-bin.sh"
if [[ " $TREES " == *" rootfs "* ]]; then
  TARBALL=$(scripts/rootfs.sh tarball) || die "no root filesystem tarball (scripts/rootfs.sh tarball failed)"
fi

bench_results archive
say "archive: $(date -u +%FT%TZ), $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "archive: cowtree $COWTREE ($("$COWTREE" --version)), harness at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'); $(cp --version | head -1)"
say "archive: RUNS=$RUNS TREES=\"$TREES\" SCALE=$SCALE CACHE=$CACHE SIZE=$SIZE; the order of the four tools rotates between rounds"
bench_mount xfs "$SIZE"
W=$MNT/w
mkdir -p "$W"
FLOOR=$W/clone-floor
cc -O2 -pthread -o "$FLOOR" bench/clone-floor.c || die "could not build bench/clone-floor.c"

# timed TREE TOOL CMD...: one timed run; appends "archive-run TREE ROUND TOOL WALL CPU KIB".
timed() {
  local tree=$1 tool=$2
  shift 2
  bench_quiesce "$CACHE"
  # Wall time to the microsecond from the shell's clock (GNU time's %e has 10 ms steps, a
  # ninth of a root filesystem copy); the same fork of /usr/bin/time is in every tool's.
  local t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %U %S %M' -o "$W/time.out" "$@" >"$W/out.log" 2>&1 || {
    cat "$W/out.log" >&2
    die "failed: $*"
  }
  local t1=$EPOCHREALTIME
  local wall user sys kib
  read -r wall user sys kib <"$W/time.out"
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
  echo "archive-run $tree $r $tool $wall $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') $kib" >>"$RESULTS"
}

# col TREE TOOL N: column N (5 wall, 6 cpu, 7 KiB) of TOOL's runs on TREE.
col() { awk -v t="$1" -v o="$2" -v n="$3" '$1 == "archive-run" && $2 == t && $4 == o { print $n }' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

for tree in $TREES; do
  src=$MNT/$tree
  case $tree in
    gen) python3 bench/gentree.py "$src" --scale "$SCALE" --seed 1 --json >"$W/gen.json" ;;
    rootfs)
      mkdir "$src"
      tar --xattrs --xattrs-include='*' --acls --numeric-owner -xpf "$TARBALL" -C "$src"
      ;;
  esac
  files=$(find "$src" -type f | wc -l)
  paths=$(find "$src" | wc -l)
  say "archive: tree $tree: $paths paths, $files regular files, $(du -sh --apparent-size "$src" | cut -f1) apparent, $(find "$src" -type f -links +1 | wc -l) with several names, $(find "$src" \( -type c -o -type b -o -type p -o -type s \) | wc -l) special files, $(find "$src" -printf '%u:%g\n' | sort -u | wc -l) owner:group pairs"
  dst=$MNT/dst
  # Warm-up, untimed: the source's metadata and data read once, as every run after finds them.
  cp -a --reflink=always "$src" "$dst"
  rm -rf "$dst"
  tools=(archive cp plain floor)
  for ((r = 1; r <= RUNS; r++)); do
    note "$tree: round $r/$RUNS"
    for ((i = 0; i < 4; i++)); do
      tool=${tools[$(((r - 1 + i) % 4))]}
      case $tool in
        archive) timed "$tree" archive "$COWTREE" clone --archive "$src" "$dst"
          if ((r == 1)); then
            if grep -q 'not kept' "$W/out.log"; then cat "$W/out.log" >&2; die "clone --archive as root did not keep everything"; fi
            python3 scripts/rootfs_compare.py "$src" "$dst" >"$W/compare.log" || {
              cat "$W/compare.log" >&2
              die "$tree: cowtree clone --archive differs from the source (above)"
            }
            say "archive: $tree: $(tail -1 "$W/compare.log" | sed 's/^rootfs_compare: //')"
          fi ;;
        cp) timed "$tree" cp cp -a --reflink=always "$src" "$dst" ;;
        plain) timed "$tree" plain "$COWTREE" clone --skip-special "$src" "$dst" ;;
        # The floor of an archive copy: regular files, directories and symlinks only (a tree
        # with special files or hardlinks gets fewer calls than it needs: still a floor).
        floor) timed "$tree" floor "$FLOOR" -a -j "$(nproc)" "$src" "$dst" ;;
      esac
      rm -rf "$dst"
    done
  done
  say ""
  say "$(printf '%-7s %-36s %8s %8s %8s %7s %8s %10s' tree tool median_s min_s max_s cpu_s rss_MiB files/s)"
  declare -A med=() cpumed=()
  for tool in archive cp plain floor; do
    case $tool in
      archive) label="cowtree clone --archive" ;;
      cp) label="cp -a --reflink=always" ;;
      plain) label="cowtree clone --skip-special" ;;
      floor) label="floor: clone-floor -a -j $(nproc)" ;;
    esac
    m=$(col "$tree" $tool 5 | median)
    med[$tool]=$m
    lo=$(col "$tree" $tool 5 | sort -n | head -1)
    hi=$(col "$tree" $tool 5 | sort -n | tail -1)
    cpu=$(col "$tree" $tool 6 | median)
    cpumed[$tool]=$cpu
    rss=$(col "$tree" $tool 7 | median | awk '{ printf "%.1f", $1 / 1024 }')
    say "$(printf '%-7s %-36s %8s %8s %8s %7s %8s %10.0f' "$tree" "$label" "$m" "$lo" "$hi" "$cpu" "$rss" "$(awk -v f="$files" -v s="$m" 'BEGIN { print (s > 0) ? f / s : 0 }')")"
  done
  fast=$(ratio "${med[cp]}" "${med[archive]}")
  over=$(ratio "${med[archive]}" "${med[plain]}")
  say "archive: $tree: cp -a --reflink=always / clone --archive = ${fast}x (target >= 1.8x: $(awk -v x="$fast" 'BEGIN { print (x >= 1.8) ? "PASS" : "MISS" }'))"
  say "archive: $tree: clone --archive / plain clone = ${over}x (target <= 1.15x: $(awk -v x="$over" 'BEGIN { print (x <= 1.15) ? "PASS" : "MISS" }'))"
  # What the 1.8x target asks against what the syscall floor of an archive copy takes, on the
  # same cores: the target is within reach only if cp / 1.8 is above the floor.
  say "archive: $tree: the floor of an archive copy ${med[floor]} s: cp / floor = $(ratio "${med[cp]}" "${med[floor]}")x, clone --archive / floor = $(ratio "${med[archive]}" "${med[floor]}")x; the 1.8x target asks for $(awk -v c="${med[cp]}" 'BEGIN { printf "%.3f", c / 1.8 }') s"
  # CPU seconds move less with the machine's load than wall time (a shared machine): the same
  # ratios of CPU time, for information (the targets are of wall time).
  say "archive: $tree: CPU seconds (user + system): cp / clone --archive = $(ratio "${cpumed[cp]}" "${cpumed[archive]}")x, clone --archive / plain clone = $(ratio "${cpumed[archive]}" "${cpumed[plain]}")x (information)"
  say ""
  unset med cpumed
  rm -rf "$src"
done
say "archive: load after: $(cut -d' ' -f1-3 /proc/loadavg); results in $RESULTS"
