# Sourced by the remote benchmarks (bench/remote.sh, bench/remote-gc.sh), from the repository's
# root with `note` defined: builds cowtree --release unless COWTREE names a binary, mounts a
# fresh XFS (scripts/mounts.sh) and starts a SeaweedFS S3 server on loopback
# (scripts/seaweedfs.sh), both stopped and removed on exit. Sets COWTREE (absolute), XFS (the
# mount), ENDPOINT (the server's URL), WEED_DIR, and the S3 credentials of the server.
# shellcheck source=bench/cowtree-bin.sh
source bench/cowtree-bin.sh

# shellcheck source=scripts/mounts.sh
source scripts/mounts.sh
WEED_DIR=$(mktemp -d /tmp/cowtree-bench-seaweedfs.XXXXXX)
cleanup() {
  scripts/seaweedfs.sh stop "$WEED_DIR" || true
  rm -rf "$WEED_DIR"
  cowtree_mounts_down
}
trap cleanup EXIT
cowtree_mounts_up xfs >/dev/null
XFS=${COWTREE_TEST_XFS:?XFS was not mounted}
started=$(scripts/seaweedfs.sh start "$WEED_DIR" $$)
ENDPOINT=${started%% *}
export AWS_ACCESS_KEY_ID=cowtreetest AWS_SECRET_ACCESS_KEY=cowtreetestsecret
