#!/usr/bin/env bash
# The project's one test command: mounts real filesystems (as root on Linux), runs every test
# of the workspace against them, and always unmounts. Extra arguments go to `cargo test` (those
# after `--` to the test binaries); the binaries run two at a time (scripts/test_lanes.py).
#
#   scripts/test.sh                      # all tests
#   scripts/test.sh -p cowtree-fs        # one crate
#   COWTREE_TEST_NO_MOUNT=1 scripts/test.sh   # no mounts: tests that need one print "skipped"
#   COWTREE_TEST_REQUIRE_FS=1 scripts/test.sh # a missing filesystem fails the run (CI)
#   COWTREE_TEST_FULL=1 scripts/test.sh       # also the heavy tier .ci/run runs (the 200,000-file
#                                             # memory bounds, the million-entry manifest, every
#                                             # power-loss round, every round of the tests that
#                                             # kill or race at random points: testutil::rounds)
#   COWTREE_TEST_ROUNDS=N scripts/test.sh     # N rounds of each of those randomized tests
#   COWTREE_TEST_HEAVY=1 scripts/test.sh      # also the slow sizes (clone of 1,000,000 files)
#   COWTREE_TEST_NO_S3=1 scripts/test.sh      # no S3 server: the remote tests print "skipped"
#   COWTREE_TEST_NO_PYTHON=1 scripts/test.sh  # not the Python module's tests (below)
#   COWTREE_TEST_LANES=1 scripts/test.sh      # one test binary at a time (default: two)
#
# After the build, the Python module (crates/cowtree-py) is tested as users get it, beside the
# test binaries (scripts/test_python.sh): its wheel is built (scripts/wheel.sh dev: the dev
# profile, this target dir), installed into a fresh venv, and its pytest tests
# (crates/cowtree-py/tests) run there on the same mounts; its output follows theirs. That
# happens for the whole workspace, or with `-p cowtree-py`; not for other crates alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh

COWTREE_WEED_DIR=""
py_pid=""
stop_python() { # the Python tests, if still running (their own session: setsid below)
  if [[ -n "$py_pid" ]]; then
    kill -TERM -- "-$py_pid" 2>/dev/null || true
    wait "$py_pid" 2>/dev/null || true
    py_pid=""
  fi
}
trap 'stop_python; if [[ -n "$COWTREE_WEED_DIR" ]]; then scripts/seaweedfs.sh kill "$COWTREE_WEED_DIR" || true; rm -rf "$COWTREE_WEED_DIR"; fi; cowtree_mounts_down' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The shells whose completion scripts the tests load, and man for the manual pages
# (crates/cowtree/tests/cli/completions_man.rs), from Debian where they are missing.
if [[ $EUID == 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  for t in bash:bash zsh:zsh fish:fish man:man-db groff:groff-base; do
    command -v "${t%%:*}" >/dev/null || missing+=("${t#*:}")
  done
  [[ -e /usr/share/bash-completion/bash_completion ]] || missing+=(bash-completion)
  if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
  fi
fi

cowtree_mounts_up
for v in XFS XFS2 BTRFS BTRFS_USER_RM SMALL TMPFS EXT4 NOCOW; do
  var="COWTREE_TEST_$v"
  echo "test.sh: $var=${!var:-(not mounted)}"
done
if [[ "${COWTREE_TEST_REQUIRE_FS:-}" == 1 ]]; then
  for v in XFS XFS2 BTRFS BTRFS_USER_RM SMALL TMPFS EXT4 NOCOW; do
    var="COWTREE_TEST_$v"
    [[ -n "${!var:-}" ]] || { echo "test.sh: COWTREE_TEST_REQUIRE_FS=1 but $var is missing" >&2; exit 1; }
  done
fi
# The remote-store tests talk to a real S3 server (SeaweedFS) on loopback; see scripts/seaweedfs.sh.
if [[ "${COWTREE_TEST_NO_S3:-}" != 1 ]]; then
  COWTREE_WEED_DIR=$(mktemp -d /tmp/cowtree-seaweedfs.XXXXXX)
  started=$(scripts/seaweedfs.sh start "$COWTREE_WEED_DIR" $$)
  export COWTREE_TEST_S3_ENDPOINT="${started%% *}" COWTREE_TEST_S3_BUCKET=cowtree
  export COWTREE_TEST_S3_KEY=cowtreetest COWTREE_TEST_S3_SECRET=cowtreetestsecret
  export COWTREE_TEST_SEAWEEDFS="$PWD/scripts/seaweedfs.sh"
  echo "test.sh: COWTREE_TEST_S3_ENDPOINT=$COWTREE_TEST_S3_ENDPOINT (SeaweedFS, pid $(cat "$COWTREE_WEED_DIR/pid"))"
fi
export COWTREE_TEST_SKIP_LOG="$COWTREE_MOUNT_WORK/skipped.log"
: >"$COWTREE_TEST_SKIP_LOG"

# Tests never touch the real per-user directories (the list of known stores, the default store,
# remotes, run records): every process of the run gets a fresh HOME and XDG directories (cargo
# and rustup keep theirs), and the real ones are compared before and after the run: a change
# fails the run, naming what changed.
real_home=$HOME
real_dirs=("${XDG_STATE_HOME:-$real_home/.local/state}/cowtree"
  "${XDG_DATA_HOME:-$real_home/.local/share}/cowtree"
  "${XDG_CONFIG_HOME:-$real_home/.config}/cowtree")
fingerprint() { # every entry under the real directories, with size and mtime
  local d
  for d in "${real_dirs[@]}"; do
    if [[ -e "$d" ]]; then find "$d" -printf '%p %s %T@\n' 2>/dev/null | LC_ALL=C sort; else echo "$d absent"; fi
  done
}
fingerprint >"$COWTREE_MOUNT_WORK/real-before"
export CARGO_HOME="${CARGO_HOME:-$real_home/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$real_home/.rustup}"
export HOME="$COWTREE_MOUNT_WORK/home"
export XDG_DATA_HOME="$HOME/.local/share" XDG_STATE_HOME="$HOME/.local/state"
export XDG_CONFIG_HOME="$HOME/.config" XDG_CACHE_HOME="$HOME/.cache"
mkdir -p "$XDG_DATA_HOME" "$XDG_STATE_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"

# The Python module's tests: only for the whole workspace or `-p cowtree-py`.
python_tests=1
if [[ "${COWTREE_TEST_NO_PYTHON:-}" == 1 ]]; then
  python_tests=0
elif (($#)); then
  python_tests=0
  prev=""
  for a in "$@"; do
    [[ "$a" == --package=cowtree-py || "$a" == -pcowtree-py || "$a" == -p=cowtree-py ]] && python_tests=1
    [[ ("$prev" == -p || "$prev" == --package) && "$a" == cowtree-py ]] && python_tests=1
    prev=$a
  done
fi
status=0
cargo_started=$SECONDS
# The whole workspace unless packages are named (cargo lets --workspace win over -p), but for
# the Python module: it has no Rust tests, and scripts/test_python.sh builds it with maturin,
# which must compile pyo3 again anyway (maturin gives pyo3's build script another
# environment); leaving it out saved its pyo3 build here, about 22 s of CPU (cargo --timings).
scope=(--workspace --exclude cowtree-py)
cargo_args=()
test_args=()
seen_dashes=0
for a in "$@"; do
  if ((seen_dashes)); then test_args+=("$a"); continue; fi
  [[ "$a" == -- ]] && { seen_dashes=1; continue; } # what follows goes to the test binaries
  [[ "$a" == -p* || "$a" == --package* ]] && scope=()
  cargo_args+=("$a")
done
# Built by cargo, then run COWTREE_TEST_LANES binaries at a time (default 2) by
# scripts/test_lanes.py, heaviest first: cargo runs one binary after another, leaving part of
# the cores idle while a binary waits on disks, servers or child processes. On 2 cores that
# cut the test binaries from 523 to 451 s (fresh clones, 2026-11-27). Later, with the Python
# tests beside them, three lanes took 435 s against 449 s for two, and four test threads in
# each binary (RUST_TEST_THREADS=4) 391 against 374 s: one run each, in a fixed order, so
# neither difference is shown to be more than noise. On 2026-11-28, three lanes took the whole
# fresh-clone run to 11:46 against 10:50 with two (the same commit, one run each). Their
# output is cargo's.
lanes=${COWTREE_TEST_LANES:-2}
[[ $lanes =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: COWTREE_TEST_LANES must be a positive integer" >&2; exit 2; }
# cargo's own messages and the compiler's (to stderr) go to the log too.
log="$COWTREE_MOUNT_WORK/cargo-test.log"
if { cargo test "${scope[@]}" --all-targets --no-fail-fast --no-run --message-format=json-render-diagnostics \
  ${cargo_args[@]+"${cargo_args[@]}"} >"$COWTREE_MOUNT_WORK/build.json"; } 2>&1 | tee "$log"; then
  echo "test.sh: built in $((SECONDS - cargo_started)) s; running the test binaries, $lanes at a time"
  if ((python_tests)); then
    echo "test.sh: the Python module's tests run beside them (scripts/test_python.sh); their output follows"
    COWTREE_MOUNT_WORK=$COWTREE_MOUNT_WORK setsid scripts/test_python.sh >"$COWTREE_MOUNT_WORK/python.log" 2>&1 &
    py_pid=$!
  fi
  python3 scripts/test_lanes.py --lanes "$lanes" --json "$COWTREE_MOUNT_WORK/build.json" --root "$PWD" \
    --logs "$COWTREE_MOUNT_WORK/test-logs" -- ${test_args[@]+"${test_args[@]}"} 2>&1 | tee -a "$log" || status=$?
else
  echo "test.sh: the build failed (above); no Rust test ran" >&2
  status=101
  if ((python_tests)); then COWTREE_MOUNT_WORK=$COWTREE_MOUNT_WORK scripts/test_python.sh || status=1; fi
fi
# The time each test binary took (wall, and CPU with what it started: scripts/test_lanes.py),
# slowest first, and the whole of the build and the test binaries.
echo "test.sh: time per test binary, slowest first (build and tests took $((SECONDS - cargo_started)) s in all):"
awk '/^test_lanes: [^ ]+: (ok|FAILED)/ {
       name = $2; sub(/:$/, "", name); wall = cpu = 0
       if (match($0, /[0-9.]+ s of wall time/)) wall = substr($0, RSTART, RLENGTH) + 0
       if (match($0, /[0-9.]+ s of CPU/)) cpu = substr($0, RSTART, RLENGTH) + 0
       sum += cpu; printf "%9.1f s wall %9.1f s CPU  %s\n", wall, cpu, name | "sort -rn" }
     END { close("sort -rn"); if (sum) printf "%25.1f s CPU  all of them\n", sum }' \
  "$COWTREE_MOUNT_WORK/cargo-test.log"

if [[ -n "$py_pid" ]]; then
  py_status=0
  wait "$py_pid" || py_status=$?
  py_pid=""
  cat "$COWTREE_MOUNT_WORK/python.log"
  ((py_status == 0)) || status=1
fi
fingerprint >"$COWTREE_MOUNT_WORK/real-after"
if ! diff -q "$COWTREE_MOUNT_WORK/real-before" "$COWTREE_MOUNT_WORK/real-after" >/dev/null; then
  echo "test.sh: the run changed the real per-user directories (${real_dirs[*]}); a test wrote outside its own HOME:" >&2
  diff "$COWTREE_MOUNT_WORK/real-before" "$COWTREE_MOUNT_WORK/real-after" | head -20 >&2
  status=1
fi
if [[ -s "$COWTREE_TEST_SKIP_LOG" ]]; then
  sort -u "$COWTREE_TEST_SKIP_LOG"
  skipped=$(sort -u "$COWTREE_TEST_SKIP_LOG" | grep -vc '^fewer ' || true)
  fewer=$(sort -u "$COWTREE_TEST_SKIP_LOG" | grep -c '^fewer ' || true)
  ((skipped == 0)) || echo "test.sh: $skipped skip line(s) above: those checks did not run"
  ((fewer == 0)) || echo "test.sh: $fewer test(s) above ran fewer rounds, files or cases (the full tier runs them all)"
fi
exit "$status"
