#!/usr/bin/env bash
# Builds the whole of cowtree for Windows (x86_64-pc-windows-gnu) on a Linux machine, lints it,
# and runs its Windows tests under Wine:
#
#   crate             what runs under Wine (tests/ files; unit tests of every crate too)
#   cowtree-fs        windows, windows_dir, windows_ops, windows_checkout: handles, the walk,
#                     names refused, rename/hardlink/times, transfer and place, hashing, staging
#   cowtree-link      windows: a std-made tree linked into a new destination, the refusals
#   cowtree-store     windows_store (a store made, opened, locked, listed, gc'd, verified and
#                     removed), windows_data (trees recorded and checked out)
#   cowtree-worktree  windows: status, switch, reset and snapshot of a checkout
#   cowtree-remote    windows: a push to a file:/// remote pulled into a second store
#   cowtree-space     windows: `du` of a std-made tree, `dedupe` refused in one line
#   cowtree-git       windows: the tree builder against git's own checkouts (autocrlf, eol,
#                     core.symlinks=false), made here by the Linux git and read through Z:
#   cowtree (command) windows: cowtree.exe as a user runs it (clone, snapshot, checkout,
#                     status, reset, switch, verify, gc, probe, the Linux-only refusals)
#   cowtree-py        built and linted here; `scripts/wheel.sh windows` builds its wheel
#
#   scripts/windows.sh          # installs what is missing (below), then builds, lints and tests
#
# What this proves and what it does not: Wine 8 has no ReFS, so the copy fallback, the
# refusals, a vanished source, the volume queries and the refused block-clone calls run; a
# successful block clone is compiled, not run. Wine 8 creates no symlinks and refuses
# FSCTL_SET_REPARSE_POINT: the symlink and junction tests print "NOT RUN". A volume flush
# (administrators only on Windows; Wine cannot) is left to the per-file flushes, which run.
# What has no meaning on Windows is refused in one line (btrfs subvolumes, the pool of spare
# worktrees, dedupe, owners and xattrs). Merges into an existing destination run (a
# replacement swapped through a third name: Windows has no atomic exchange). The unix test binaries (the bulk of the suites) are unix only.
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
# The libraries with their unit tests (--profile test) and their Windows test binaries; the
# crates' other test binaries are unix only.
cargo clippy -p cowtree-link -p cowtree-git -p cowtree-space --lib --tests --target "$target" -- -D warnings
cargo clippy -p cowtree-store --lib --test windows_store --test windows_data --profile test \
  --target "$target" -- -D warnings
cargo clippy -p cowtree-worktree -p cowtree-remote --all-targets --target "$target" -- -D warnings
cargo clippy -p cowtree-cli --bins --test windows --profile test --target "$target" -- -D warnings
cargo clippy -p cowtree-py --all-targets --target "$target" -- -D warnings
# --show-output: the calls Wine refused, and which tests could not run here ("NOT RUN").
cargo test -p cowtree-fs --target "$target" --lib --test windows --test windows_dir --test windows_ops --test windows_checkout -- --show-output
cargo test -p cowtree-link --target "$target" --lib --test windows -- --show-output
cargo test -p cowtree-store --target "$target" --lib --test windows_store --test windows_data -- --show-output
cargo test -p cowtree-worktree --target "$target" --lib --test windows -- --show-output
cargo test -p cowtree-remote --target "$target" --lib --test windows -- --show-output
cargo test -p cowtree-space --target "$target" --lib --test windows -- --show-output
git_fixture=$(mktemp -d)
crates/cowtree-git/tests/windows_fixture.sh "$git_fixture"
COWTREE_GIT_WINDOWS_FIXTURE=$git_fixture cargo test -p cowtree-git --target "$target" --lib --test windows -- --show-output
rm -rf "$git_fixture"
cargo test -p cowtree-cli --target "$target" --bins --test windows -- --show-output
wineserver -w
echo "windows: every crate built and linted, and its Windows tests run, for $target under Wine in $((SECONDS - start)) s"
