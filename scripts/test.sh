#!/usr/bin/env bash
# The project's one test command: mounts real filesystems (as root on Linux), runs every test
# of the workspace against them, and always unmounts. Extra arguments go to `cargo test`.
#
#   scripts/test.sh                      # all tests
#   scripts/test.sh -p cowtree-fs        # one crate
#   COWTREE_TEST_NO_MOUNT=1 scripts/test.sh   # no mounts: tests that need one print "skipped"
#   COWTREE_TEST_REQUIRE_FS=1 scripts/test.sh # a missing filesystem fails the run (CI)
#   COWTREE_TEST_HEAVY=1 scripts/test.sh      # also the slow sizes (clone of 1,000,000 files)
#   COWTREE_TEST_NO_S3=1 scripts/test.sh      # no S3 server: the remote tests print "skipped"
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh

COWTREE_WEED_DIR=""
trap 'if [[ -n "$COWTREE_WEED_DIR" ]]; then scripts/seaweedfs.sh stop "$COWTREE_WEED_DIR"; rm -rf "$COWTREE_WEED_DIR"; fi; cowtree_mounts_down' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cowtree_mounts_up
for v in XFS XFS2 BTRFS BTRFS_USER_RM SMALL TMPFS NOCOW; do
  var="COWTREE_TEST_$v"
  echo "test.sh: $var=${!var:-(not mounted)}"
done
if [[ "${COWTREE_TEST_REQUIRE_FS:-}" == 1 ]]; then
  for v in XFS XFS2 BTRFS BTRFS_USER_RM SMALL TMPFS NOCOW; do
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
status=0
cargo test --workspace --all-targets "$@" || status=$?
if [[ -s "$COWTREE_TEST_SKIP_LOG" ]]; then
  sort -u "$COWTREE_TEST_SKIP_LOG"
  echo "test.sh: $(sort -u "$COWTREE_TEST_SKIP_LOG" | wc -l) skip line(s) above: those checks did not run"
fi
exit "$status"
