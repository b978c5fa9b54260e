#!/usr/bin/env bash
# The Python module's tests, as scripts/test.sh runs them (after its build, beside the Rust
# test binaries): the module's wheel is built (scripts/wheel.sh dev: the dev profile, this
# target dir), installed into a fresh venv, and its pytest tests (crates/cowtree-py/tests) run
# there on the mounts test.sh made. Needs what test.sh exports: COWTREE_MOUNT_WORK and the
# COWTREE_TEST_* mount variables. Exit status: 0 when every test passed.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${COWTREE_MOUNT_WORK:?run by scripts/test.sh}"
started=$SECONDS
echo "test.sh: the Python module: building its wheel (scripts/wheel.sh dev)"
if ! whl=$(scripts/wheel.sh dev); then
  echo "test.sh: the Python module's wheel did not build" >&2
  exit 1
fi
TOOLS=${CARGO_TARGET_DIR:-$PWD/target}/wheel-tools
PYVENV="$COWTREE_MOUNT_WORK/pyvenv"
"$TOOLS/bin/uv" venv -q --python python3 "$PYVENV"
UV_CACHE_DIR=${UV_CACHE_DIR:-$TOOLS/uv-cache} "$TOOLS/bin/uv" pip install -q \
  --python "$PYVENV/bin/python" "$whl" "$(grep '^pytest==' crates/cowtree-py/build-requirements.txt)"
# The tests write only to the mounts; HOME and XDG_* point into a directory of their own in
# the run's directory (the Rust tests, running at the same time, have another).
pyhome="$COWTREE_MOUNT_WORK/pyhome"
mkdir -p "$pyhome"
status=0
(cd crates/cowtree-py/tests &&
  COWTREE_TEST_WHEEL="$whl" COWTREE_TEST_TOOLS_BIN="$TOOLS/bin" HOME="$pyhome" XDG_DATA_HOME="$pyhome/data" XDG_STATE_HOME="$pyhome/state" \
    XDG_CACHE_HOME="$pyhome/cache" XDG_CONFIG_HOME="$pyhome/config" \
    "$PYVENV/bin/python" -m pytest -q -p no:cacheprovider .) || status=1
echo "test.sh: the Python module: wheel, venv and tests took $((SECONDS - started)) s"
exit "$status"
