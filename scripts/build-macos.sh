#!/usr/bin/env bash
# Builds and links the `cowtree` command (package cowtree-cli) for macOS on a Linux machine, as
# a real Mach-O executable, and checks what it was linked against. Nothing is run: there is no
# macOS here, so this proves the binary links (every symbol found, the right system libraries
# named), not that it works.
#
#   scripts/build-macos.sh                          # aarch64-apple-darwin (what CI builds)
#   scripts/build-macos.sh x86_64-apple-darwin      # or other macOS targets, in turn (CI
#                                                   # builds arm64 only: each target is a
#                                                   # whole second build)
#
# A script of its own, not a mode of scripts/check-macos.sh: that one type-checks the whole
# workspace with Debian's compiler and -Zbuild-std and compiles no C; this one needs a linker
# for Mach-O and a C compiler for the target, because ring's C and assembly (rustls, in
# object_store, needs it at run time) and blake3's NEON C are really compiled and linked here,
# with another toolchain and another target dir. Zig is both linker and compiler, and ships
# libSystem's link stubs, so no macOS SDK from Apple is needed; cargo-zigbuild drives it (it
# turns rustc's and the cc crate's Apple flags into zig's, and stubs libiconv). Both come from
# PyPI as prebuilt wheels, pinned, into a venv in the target dir. The standard library is
# rustup's prebuilt one for the target (`rustup target add`): no build-std needed.
#
# Apple frameworks: rustls-native-certs reads the keychain through security-framework, which
# links Security and CoreFoundation. Zig has no frameworks, so scripts/macos/Frameworks holds a
# link-time stand-in for each (a .tbd: install name and the symbols cowtree takes from it, as
# an SDK's are); dyld loads the real framework at run time. A dependency that starts using
# another of their symbols fails the link here with "undefined symbol: _Name": add the name to
# the .tbd of the framework that exports it.
#
# rustc warns that `xcrun` (to find MacOSX.sdk) is missing: expected, the SDK's part is played
# by zig and the stand-ins above.
#
# The dev profile (debug): a release build of the same tree costs about 2.5 times the compiler
# time, links against the same stand-ins, and proves nothing more about linking. The target dir is separate from the Linux one
# ($COWTREE_MACOS_BUILD_TARGET_DIR, default build-macos/ in the Linux one), with the tools in
# tools/ inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
targets=("$@")
((${#targets[@]})) || targets=(aarch64-apple-darwin)

ziglang_version=0.17.1
zigbuild_version=0.24.1

# shellcheck source=scripts/apt-need.sh
source scripts/apt-need.sh
cowtree_need_packages build-macos file llvm python3-venv
for t in "${targets[@]}"; do
  if ! rustup target list --installed | grep -qx "$t"; then
    echo "build-macos: rustup target add $t"
    rustup target add "$t" >/dev/null
  fi
done

export CARGO_TARGET_DIR="${COWTREE_MACOS_BUILD_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/build-macos}"
tools="$CARGO_TARGET_DIR/tools"
venv="$tools/venv"
have=$("$venv/bin/python" -m pip freeze 2>/dev/null |
  grep -cxF -e "ziglang==$ziglang_version" -e "cargo-zigbuild==$zigbuild_version" || true)
if [[ $have != 2 ]]; then
  echo "build-macos: installing ziglang $ziglang_version and cargo-zigbuild $zigbuild_version into $venv"
  mkdir -p "$tools"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "ziglang==$ziglang_version" "cargo-zigbuild==$zigbuild_version"
fi
# The zig binary itself, not whatever `zig` is on PATH; its caches and cargo-zigbuild's
# wrappers in the target dir, not in ~/.cache.
CARGO_ZIGBUILD_ZIG_PATH=$("$venv/bin/python" -c \
  'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
export CARGO_ZIGBUILD_ZIG_PATH
export CARGO_ZIGBUILD_CACHE_DIR="$tools/zigbuild-cache"
export ZIG_GLOBAL_CACHE_DIR="$tools/zig-cache" ZIG_LOCAL_CACHE_DIR="$tools/zig-cache"
# rustc's default for aarch64-apple-darwin (and so the oldest macOS on Apple silicon), said to
# zig too: it would otherwise mark the binary as needing its own default, macOS 15. An x86_64
# build says 11.0 as well (rustc's default there is 10.12; zig's oldest is not tried here).
export MACOSX_DEPLOYMENT_TARGET=11.0

echo "build-macos: $(rustc --version), zig $("$CARGO_ZIGBUILD_ZIG_PATH" version), $("$venv/bin/cargo-zigbuild" --version)"
for t in "${targets[@]}"; do
  # `cargo rustc`: the framework search path goes to the final link only, not to every crate.
  "$venv/bin/cargo-zigbuild" rustc -p cowtree-cli --bin cowtree --target "$t" -- \
    -L "framework=$PWD/scripts/macos/Frameworks"
  bin="$CARGO_TARGET_DIR/$t/debug/cowtree"
  arch=${t%%-*}
  [[ $arch == aarch64 ]] && arch=arm64
  kind=$(file -b "$bin")
  echo "build-macos: $bin: $kind"
  [[ $kind == "Mach-O 64-bit $arch executable"* ]] ||
    { echo "build-macos: not a Mach-O $arch executable" >&2; exit 1; }
  # Every library it names must be one macOS has: libSystem, libiconv (std's), the two
  # frameworks above.
  dylibs=$(llvm-objdump --macho --dylibs-used "$bin" | tail -n +2 | awk '{ print $1 }')
  echo "$dylibs" | sed 's/^/build-macos:   uses /'
  known='/usr/lib/(libSystem\.B|libiconv\.2|libcharset\.1)\.dylib'
  known+='|/System/Library/Frameworks/(Security|CoreFoundation)\.framework/Versions/A/\2'
  unexpected=$(echo "$dylibs" | grep -vxE "$known" || true)
  [[ -z $unexpected ]] || { echo "build-macos: unexpected libraries: $unexpected" >&2; exit 1; }
  minos=$(llvm-objdump --macho --private-headers "$bin" | awk '$1 == "minos" { m = $2 } END { print m }')
  echo "build-macos:   needs macOS $minos or newer"
  [[ $minos == "$MACOSX_DEPLOYMENT_TARGET" ]] ||
    { echo "build-macos: minos $minos, not $MACOSX_DEPLOYMENT_TARGET" >&2; exit 1; }
done
echo "build-macos: cowtree built and linked for ${targets[*]} (never run) in $((SECONDS - start)) s"
