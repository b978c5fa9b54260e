#!/usr/bin/env bash
# The tests that kill, interrupt or race cowtree at random points, run again with the machine
# busy: two CPU hogs per core beside them, so that timing windows which open only under load
# (a child process still between fork and exec when its parent is killed, a step that takes
# longer than the signal's delay) are exercised on every run, not found by users. .ci/run calls
# it after the full tier.
#
#   scripts/under-load.sh                 # every such test of the workspace, all their rounds
#   scripts/under-load.sh -p cowtree-cli  # extra arguments go to scripts/test.sh
#   HOGS_PER_CORE=3 scripts/under-load.sh
#
# The tests are selected by name (kill, interrupt, sigint: those that stop cowtree at random
# points, and their neighbours); each prints its seed,
# and a failure prints the command that replays it (COWTREE_TEST_SEED, cowtree-testutil's seed).
# The hogs start after the build (which they would only slow down) and are stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
per_core=${HOGS_PER_CORE:-2}
[[ $per_core =~ ^[0-9]+$ ]] || { echo "under-load.sh: HOGS_PER_CORE must be a number" >&2; exit 2; }

# Built first, without the hogs, as scripts/test.sh will ask for it.
scope=(--workspace --exclude cowtree-py)
for a in "$@"; do [[ "$a" == -p* || "$a" == --package* ]] && scope=(); done
cargo test "${scope[@]}" --all-targets --no-run "$@" >/dev/null 2>&1 ||
  cargo test "${scope[@]}" --all-targets --no-run "$@"

hogs=()
stop_hogs() {
  if ((${#hogs[@]})); then kill "${hogs[@]}" 2>/dev/null || true; wait "${hogs[@]}" 2>/dev/null || true; fi
  hogs=()
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
n=$(($(nproc) * per_core))
for _ in $(seq "$n"); do
  # A busy loop of the shell's own: no process of its own to reap, nothing it writes.
  (trap 'exit 0' TERM; while :; do :; done) &
  hogs+=($!)
done
echo "under-load.sh: $n CPU hogs running beside the tests ($per_core per core, pids ${hogs[*]})"
status=0
COWTREE_TEST_NO_PYTHON=1 scripts/test.sh "$@" -- kill interrupt sigint || status=$?
stop_hogs
echo "under-load.sh: done under load, exit $status"
exit "$status"
