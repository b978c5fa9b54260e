#!/usr/bin/env bash
# Type-checks (and lints) the whole workspace for macOS (aarch64-apple-darwin) on a Linux
# machine. Nothing is linked or run: this proves the macOS side of cowtree_fs::sys and every
# crate above it compile, not that they work. scripts/build-macos.sh links the `cowtree`
# command for macOS (with zig, ring's C really compiled); this one covers every crate of the
# workspace (the Python module and the libraries alone too) and their lints, which that does not.
#
#   scripts/check-macos.sh          # installs the toolchain below if missing, then checks
#
# The toolchain is Debian's (rustc-web, cargo-web, rust-web-src, rust-web-clippy): a compiler
# with its standard library's source, so `-Zbuild-std` can build std for a target that has no
# prebuilt one here (RUSTC_BOOTSTRAP=1 unlocks the flag on a stable compiler). The target dir is
# separate from the Linux one ($COWTREE_MACOS_TARGET_DIR, default check-macos/ in the Linux one).
#
# C code in dependencies is not compiled for the target (there is no macOS SDK here):
# CARGO_FEATURE_PURE=1 gives blake3's pure-Rust build, and ring's build script (C and assembly,
# only linked, never needed to type-check) is replaced by an empty `links` override.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# shellcheck source=scripts/apt-need.sh
source scripts/apt-need.sh
pkgs=(rustc-web cargo-web rust-web-src rust-web-clippy)
cowtree_need_packages check-macos "${pkgs[@]}"

# The workspace's rust-version is the oldest compiler it builds with. A machine whose package
# lists are stale installs an older rustc-web from them (1.85 where 1.96 was current): refresh
# the lists and upgrade when the installed one is older than the workspace needs.
need=$(awk -F'"' '/^rust-version/ { print $2; exit }' Cargo.toml)
have=$(/usr/bin/rustc --version | awk '{ print $2 }')
if [[ -n "$need" && "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]]; then
  echo "check-macos: rustc-web $have is older than the workspace's rust-version $need; upgrading"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# ring's `links` key carries its version (ring_core_0_17_14_); take it from Cargo.lock.
ring_version=$(awk '$0 == "name = \"ring\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
config=()
if [[ -n "$ring_version" ]]; then
  config=(--config "target.aarch64-apple-darwin.ring_core_${ring_version//./_}_.rustc-link-lib=[]")
fi

export CARGO_TARGET_DIR="${COWTREE_MACOS_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/check-macos}"
# Debian's tools, not rustup's: cargo-clippy runs $CARGO, and clippy-driver and rustc must be
# the same release.
export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1 CARGO_FEATURE_PURE=1
echo "check-macos: $(/usr/bin/rustc --version), $(/usr/bin/clippy-driver --version)"
# clippy runs the compiler's full type check, then the lints (as in .ci/run for Linux).
# unnecessary_cast is allowed here only: `stat` fields differ in type between the platforms
# (st_mtime_nsec is i64 on macOS, not on Linux), so a cast one needs is "unnecessary" on the other.
/usr/bin/cargo-clippy clippy -Zbuild-std=std,panic_abort --target aarch64-apple-darwin \
  --workspace "${config[@]}" -- -D warnings -A clippy::unnecessary_cast
echo "check-macos: the workspace type-checks for aarch64-apple-darwin with no warnings"
