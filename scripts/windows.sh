#!/usr/bin/env bash
# Builds cowtree-fs, cowtree-link and cowtree-store for Windows (x86_64-pc-windows-gnu) on a
# Linux machine, lints them, and runs their Windows tests under Wine: cowtree-fs's unit tests and
# tests/windows*.rs (windows, windows_dir, windows_ops, windows_checkout), cowtree-link's unit
# tests and tests/windows.rs (a std-made tree linked into a new destination, and the refusals),
# cowtree-store's unit tests, tests/windows_store.rs (a store made, opened, locked, listed, gc'd,
# verified and removed) and tests/windows_data.rs (trees recorded and checked out).
#
#   scripts/windows.sh          # installs what is missing (below), then builds, lints and tests
#
# What this proves and what it does not: Wine 8 has no ReFS, so the copy fallback, the
# refusals (an existing destination, names Windows cannot hold, a directory as the source), a
# vanished source, the volume queries and the refused block-clone calls run; a successful
# block clone is compiled, not run. The directory handles and the walk run (tests/windows_dir.rs);
# the symlink tests and the junction test print "NOT RUN" (Wine 8 creates no symlinks and
# refuses FSCTL_SET_REPARSE_POINT). Reading and hashing by handle, process stamps and staging
# directories with their share-mode lock run (tests/windows_checkout.rs). cowtree-link's engine
# links a tree by the copy fallback (no block clone under Wine); merges into an existing
# destination and the unix-only options are refused there. cowtree-store's lock is LockFileEx
# (shared and exclusive, as flock) and runs; its tree subvolumes are refused (Windows has none),
# and a volume flush, which Wine cannot do, is left to the per-file flushes. Only cowtree-fs,
# cowtree-link and cowtree-store build for Windows so far (issue 67).
#
# Needs: rustup's x86_64-pc-windows-gnu target, mingw-w64 (the linker) and Wine (Debian's
# wine and wine64; its command is `wine`). The Wine prefix lives in the target dir
# ($COWTREE_WINDOWS_TARGET_DIR, default windows/ in the Linux one), never in ~/.wine.
#
# Wine 8.0 lacks bcryptprimitives.dll, which every Rust .exe imports (std's ProcessPrng):
# scripts/windows/bcryptprimitives.c, a stand-in built here with mingw-w64, goes into the
# prefix's system32. It is for running the tests only and is never shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
target=x86_64-pc-windows-gnu
start=$SECONDS

# shellcheck source=scripts/apt-need.sh
source scripts/apt-need.sh
cowtree_need_packages windows mingw-w64 wine wine64
if ! rustup target list --installed | grep -qx "$target"; then
  echo "windows: rustup target add $target"
  rustup target add "$target" >/dev/null
fi

export CARGO_TARGET_DIR="${COWTREE_WINDOWS_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/windows}"
export WINEPREFIX="$CARGO_TARGET_DIR/wine-prefix" WINEDEBUG=-all WINEARCH=win64
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
mkdir -p "$CARGO_TARGET_DIR"
if [[ ! -d "$WINEPREFIX/drive_c/windows/system32" ]]; then
  echo "windows: making the Wine prefix $WINEPREFIX"
  # wineboot complains that wine32 is missing (it is not needed: 64-bit tests only).
  wineboot --init >/dev/null 2>&1 || true
  wineserver -w
  [[ -d "$WINEPREFIX/drive_c/windows/system32" ]] ||
    { echo "windows: wineboot made no prefix at $WINEPREFIX" >&2; exit 1; }
fi
shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if [[ ! -f "$shim" || scripts/windows/bcryptprimitives.c -nt "$shim" ]]; then
  x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" scripts/windows/bcryptprimitives.c -ladvapi32
fi

echo "windows: $(rustc --version), $(wine --version 2>/dev/null)"
cargo clippy -p cowtree-fs --all-targets --target "$target" -- -D warnings
# cowtree-link's library and tests (its example and its test binary link_tests are unix only).
cargo clippy -p cowtree-link --lib --tests --target "$target" -- -D warnings
# cowtree-store's library with its unit tests (--profile test) and its Windows tests; its other
# test binaries are unix only.
cargo clippy -p cowtree-store --lib --test windows_store --test windows_data --profile test \
  --target "$target" -- -D warnings
# --show-output: the calls Wine refused, and which tests could not run here ("NOT RUN").
cargo test -p cowtree-fs --target "$target" --lib --test windows --test windows_dir --test windows_ops --test windows_checkout -- --show-output
cargo test -p cowtree-link --target "$target" --lib --test windows -- --show-output
cargo test -p cowtree-store --target "$target" --lib --test windows_store --test windows_data -- --show-output
# cowtree-worktree and cowtree-remote: their libraries and tests/windows.rs (status, switch,
# reset and snapshot of a checkout; a push to a file:/// remote pulled into a second store).
# Their test binaries worktree_tests and remote_tests are unix only (cfg(unix)).
cargo clippy -p cowtree-worktree -p cowtree-remote --all-targets --target "$target" -- -D warnings
cargo test -p cowtree-worktree --target "$target" --lib --test windows -- --show-output
cargo test -p cowtree-remote --target "$target" --lib --test windows -- --show-output
wineserver -w
echo "windows: cowtree-fs, cowtree-link and cowtree-store built, linted and tested for $target under Wine in $((SECONDS - start)) s"
