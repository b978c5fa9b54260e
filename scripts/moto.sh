#!/usr/bin/env bash
# A second S3 server for the remote-store tests: moto's server (PyPI `moto[server]`), a Python
# implementation of S3 that enforces conditional writes (If-None-Match, If-Match) and lists
# consistently like SeaweedFS, but keeps everything in memory, signs nothing it does not have
# to, and accepts any credentials.
#
#   scripts/moto.sh start DIR    # installs moto[server]==5.2.5 into DIR/venv if missing,
#                                # starts it on a free loopback port, creates the bucket
#                                # "cowtree", prints "ENDPOINT PID"
#   scripts/moto.sh stop DIR     # stops it by its pid
#   scripts/moto.sh test         # the remote tests against it (used by .ci/run; mounts the
#                                # filesystems as scripts/test.sh does)
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5

start() {
  local dir=$1 port pid
  mkdir -p "$dir"
  if [[ ! -x "$dir/venv/bin/moto_server" ]]; then
    echo "moto.sh: installing moto[server]==$MOTO_VERSION from PyPI" >&2
    python3 -m venv "$dir/venv" >&2
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/pid"
  for _ in $(seq 100); do
    if "$dir/venv/bin/python" - "$port" 2>/dev/null <<'PY'; then
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                  aws_access_key_id="cowtreetest", aws_secret_access_key="cowtreetestsecret")
s3.create_bucket(Bucket="cowtree")
PY
      echo "http://127.0.0.1:$port $pid"
      return 0
    fi
    sleep 0.2
  done
  echo "moto.sh: the server did not start; its log:" >&2
  cat "$dir/log" >&2
  return 1
}

stop() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
}

run_tests() {
  # shellcheck source=scripts/mounts.sh
  source scripts/mounts.sh
  local started status=0
  MOTO_DIR=${CARGO_TARGET_DIR:-$PWD/target}/moto
  trap 'stop "$MOTO_DIR"; cowtree_mounts_down' EXIT
  cowtree_mounts_up
  started=$(start "$MOTO_DIR")
  export COWTREE_TEST_S3_ENDPOINT="${started%% *}" COWTREE_TEST_S3_BUCKET=cowtree
  export COWTREE_TEST_S3_KEY=cowtreetest COWTREE_TEST_S3_SECRET=cowtreetestsecret
  export COWTREE_TEST_S3_ANY_CREDENTIALS=1
  echo "moto.sh: COWTREE_TEST_S3_ENDPOINT=$COWTREE_TEST_S3_ENDPOINT (moto, pid ${started##* })"
  export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
  export HOME="$COWTREE_MOUNT_WORK/home"
  export XDG_DATA_HOME="$HOME/.local/share" XDG_STATE_HOME="$HOME/.local/state"
  export XDG_CONFIG_HOME="$HOME/.config" XDG_CACHE_HOME="$HOME/.cache"
  mkdir -p "$XDG_DATA_HOME" "$XDG_STATE_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"
  export COWTREE_TEST_SKIP_LOG="$COWTREE_MOUNT_WORK/skipped.log"
  : >"$COWTREE_TEST_SKIP_LOG"
  cargo test -p cowtree-cli --test remote --no-fail-fast || status=1
  cargo test -p cowtree-remote --tests --no-fail-fast || status=1
  # The tests that kill and restart a server of their own start SeaweedFS, which this run
  # does not name (COWTREE_TEST_SEAWEEDFS): they say so here.
  if [[ -s "$COWTREE_TEST_SKIP_LOG" ]]; then sort -u "$COWTREE_TEST_SKIP_LOG"; fi
  return "$status"
}

case "${1:-}" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  test) run_tests ;;
  *) echo "usage: scripts/moto.sh start DIR | stop DIR | test" >&2; exit 2 ;;
esac
