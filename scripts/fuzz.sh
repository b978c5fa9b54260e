#!/usr/bin/env bash
# Runs a cargo-fuzz target for a while: scripts/fuzz.sh [TARGET] [SECONDS]
# Installs cargo-fuzz if missing. The toolchain here is stable; RUSTC_BOOTSTRAP lets cargo-fuzz
# pass its -Z flags. The address sanitizer is on by default (use FUZZ_SANITIZER=none to skip).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=${1:-name_validator}
secs=${2:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# New inputs go to corpus/ (not committed); seeds/ holds the committed seed corpus.
mkdir -p "corpus/$target" "seeds/$target"
export RUSTC_BOOTSTRAP=1
exec cargo fuzz run --sanitizer "${FUZZ_SANITIZER:-address}" "$target" "corpus/$target" "seeds/$target" -- \
  -max_total_time="$secs" -print_final_stats=1
