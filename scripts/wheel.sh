#!/usr/bin/env bash
# Builds the `cowtree` wheel (crates/cowtree-py/pyproject.toml): the `cowtree` command (the
# binary of crates/cowtree, installed into the environment's bin/ as it was built, with its
# manual pages and shell completions in the environment's share/) and the
# Python module `cowtree` (crates/cowtree-py, PyO3, abi3: one wheel for CPython 3.9 and later).
#
#   scripts/wheel.sh release [x86_64] [aarch64]  # distribution wheels (default: both), in
#                                                # $TARGET/wheels/, then each one smoke-tested
#   scripts/wheel.sh dev                         # a dev-profile wheel for this machine, from
#                                                # the test build's target dir; prints its path
#   scripts/wheel.sh smoke WHEEL                 # install WHEEL into a fresh venv and test it
#   scripts/wheel.sh ci                          # smoke the dev wheel scripts/test.sh built
#                                                # (else build it first): what .ci/run runs
#   scripts/wheel.sh tools [release]             # only the tools venv; prints its path
#
# The tools (maturin, auditwheel, uv, pipx, pytest, and for release builds zig and
# cargo-zigbuild; pinned in crates/cowtree-py/*-requirements.txt) come from PyPI into a venv this script makes,
# $TARGET/wheel-tools. $TARGET is $CARGO_TARGET_DIR or target/.
#
# Release wheels are built with the `dist` profile (Cargo.toml: release without line tables)
# and are manylinux_2_17 (manylinux2014): both the binary and the module are linked
# by zig against glibc 2.17's symbols (cargo-zigbuild's `<triple>.2.17`, maturin's --zig), and
# auditwheel checks the tag against the symbols they really need. aarch64 is built with
# Debian's rustc-web (the rustup toolchain here has no aarch64 standard library), which builds
# the standard library from source (-Zbuild-std, RUSTC_BOOTSTRAP=1, as scripts/check-macos.sh
# does), and smoke-tested under Debian's qemu-user.
#
# A dev wheel carries target/debug/cowtree with its debug sections removed (objcopy
# --strip-debug: about 50 MB instead of 104 MB; the code is the test build's own), and is tagged by
# what it needs of the glibc it was built against.
#
# The smoke test, from a fresh venv made by `uv venv` with the wheel installed by `uv pip
# install`: `cowtree --version`; the manual pages and shell completions in the venv's share/
# (which `man` finds there); on a fresh XFS (reflink=1) mount, `cowtree clone` of a tree
# (every file cloned, shown by FIEMAP's shared flag through `filefrag -v`), `cowtree snapshot`
# and `cowtree checkout` of it (the checkout's files equal to the source); `import cowtree`
# and one link_tree; `pip check`; then `pip uninstall` removes every file the wheel installed;
# and from the same wheel, `uvx --from WHEEL cowtree --version` and `pipx install WHEEL` (uv's
# and pipx's homes in a temporary directory). For an aarch64 wheel on an x86_64 machine, the
# binary is run under qemu-aarch64 (--version, a clone, a snapshot and a checkout; Debian's
# qemu-user and libc6-arm64-cross) and the module's architecture is checked; this machine's
# python cannot import it.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CRATE=crates/cowtree-py
DATA=$CRATE/build-data/scripts
TOOLS=$TARGET/wheel-tools
die() { echo "wheel: $*" >&2; exit 1; }

tools() { # tools [release]: the build tools (and with `release`, zig) in $TOOLS
  local req
  for req in build ${1:-}; do
    req=$CRATE/$req-requirements.txt
    cmp -s "$req" "$TOOLS/$(basename "$req")" 2>/dev/null && continue
    echo "wheel: installing $(basename "$req") into $TOOLS" >&2
    [[ -x "$TOOLS/bin/python" ]] || python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    cp "$req" "$TOOLS/"
  done
  export PATH="$TOOLS/bin:$PATH"
}

version() { awk -F'"' '/^version = / { print $2; exit }' Cargo.toml; }

# foreign ARCH: what runs ARCH's binaries here, from Debian where missing: qemu-user, and the
# target's C library (libc6-<arch>-cross, in /usr/ARCH-linux-gnu) for the dynamic loader.
foreign() {
  local arch=$1
  local cross=/usr/$arch-linux-gnu deb=libc6-${arch/aarch64/arm64}-cross
  local -a missing=()
  command -v "qemu-$arch" >/dev/null || missing+=(qemu-user)
  [[ -e "$cross/lib/ld-linux-$arch.so.1" ]] || missing+=("$deb")
  ((${#missing[@]})) || return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    die "could not install ${missing[*]} (to run $arch binaries)"
}

# share_files BINARY DIR: the shell completions and manual pages BINARY writes, laid out in DIR
# as under an environment's prefix (share/man/man1, bash-completion, zsh site-functions, fish
# vendor_completions.d). BINARY runs under qemu-user when it is for another architecture.
share_files() {
  local bin=$1 dir=$2 run=()
  if ! "$bin" --version >/dev/null 2>&1; then
    local arch
    arch=$(file -b "$bin" | grep -q aarch64 && echo aarch64 || echo x86_64)
    foreign "$arch"
    run=("qemu-$arch" -L "/usr/$arch-linux-gnu")
  fi
  rm -rf "$dir"
  mkdir -p "$dir/share/bash-completion/completions" "$dir/share/zsh/site-functions" \
    "$dir/share/fish/vendor_completions.d"
  "${run[@]}" "$bin" man --quiet --dir "$dir/share/man/man1"
  "${run[@]}" "$bin" completions bash >"$dir/share/bash-completion/completions/cowtree"
  "${run[@]}" "$bin" completions zsh >"$dir/share/zsh/site-functions/_cowtree"
  "${run[@]}" "$bin" completions fish >"$dir/share/fish/vendor_completions.d/cowtree.fish"
}

# package BINARY MATURIN_ARGS...: maturin builds the wheel with BINARY as its bin/cowtree, and
# the completions and manual pages it writes in the environment's share/. They go into
# pyproject.toml's data directory, which every build of this checkout shares (whatever its
# target dir): one build at a time holds it (flock), from the copy to the zip.
package() {
  local bin=$1
  shift
  mkdir -p "$DATA"
  (
    flock 9
    cp "$bin" "$DATA/cowtree.tmp"
    chmod 755 "$DATA/cowtree.tmp"
    mv "$DATA/cowtree.tmp" "$DATA/cowtree"
    share_files "$bin" "$CRATE/build-data/data"
    env "${env[@]}" maturin build "$@"
  ) 9>"$CRATE/.build-data.lock"
}

# dev: prints the wheel's path on stdout (everything else goes to stderr).
build_dev() {
  local -a env=()
  tools
  {
    # The binary the tests ran: built as scripts/test.sh builds it (a `cargo build -p cowtree-cli`
    # would resolve features apart from the tests and rebuild most dependencies), so that
    # after the whole workspace's tests this is a no-op (after `test.sh -p cowtree-py` it
    # builds the other test binaries, without running them).
    cargo test -q --workspace --exclude cowtree-py --all-targets --no-run
    objcopy --strip-debug "$TARGET/debug/cowtree" "$TARGET/cowtree-wheel-dev"
    rm -rf "$TARGET/wheels-dev"
    package "$TARGET/cowtree-wheel-dev" --profile dev -m "$CRATE/Cargo.toml" -o "$TARGET/wheels-dev"
  } >&2
  ls "$TARGET"/wheels-dev/cowtree-"$(version)"-*.whl
}

# Debian's rustc-web for a target rustup cannot give (as scripts/check-macos.sh installs it).
debian_rust() {
  local p missing=()
  for p in rustc-web cargo-web rust-web-src; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "wheel: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
  fi
}

build_release() { # build_release ARCH
  local arch=$1 triple=$1-unknown-linux-gnu
  local -a env=() zflags=()
  tools release
  if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
    debian_rust
    # Debian's cargo first in PATH; zig named outright, as /usr/bin/python3 has no ziglang.
    env=(CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
      PATH="/usr/bin:$PATH" CARGO_ZIGBUILD_ZIG_PATH="$TOOLS/bin/python-zig")
    zflags=(-Zbuild-std=std,panic_abort)
  fi
  echo "wheel: building the cowtree binary for $triple (glibc 2.17 symbols, zig)"
  env "${env[@]}" cargo-zigbuild zigbuild --profile dist -p cowtree-cli --target "$triple.2.17" "${zflags[@]}"
  echo "wheel: building the wheel for $triple"
  package "$TARGET/$triple/dist/cowtree" --profile dist --zig --compatibility manylinux2014 \
    --target "$triple" -m "$CRATE/Cargo.toml" -o "$TARGET/wheels" "${zflags[@]}"
  local whl
  whl=$(ls "$TARGET"/wheels/cowtree-"$(version)"-*manylinux*"$arch".whl)
  echo "wheel: $whl ($(du -h "$whl" | cut -f1))"
  # auditwheel: the tag must hold for the glibc symbols every ELF file in the wheel needs.
  auditwheel show "$whl" | tee "$TARGET/wheels/auditwheel-$arch.txt"
  grep -q "manylinux_2_17_$arch" "$TARGET/wheels/auditwheel-$arch.txt" ||
    die "$whl needs more than manylinux_2_17 (see above)"
}

smoke() { # smoke WHEEL
  local whl=$1 arch
  [[ -f "$whl" ]] || die "no wheel $whl"
  tools
  case $whl in
    *_x86_64.whl) arch=x86_64 ;;
    *_aarch64.whl) arch=aarch64 ;;
    *) die "$whl: not a Linux x86_64 or aarch64 wheel" ;;
  esac
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/cowtree-wheel.XXXXXX")
  # shellcheck source=scripts/mounts.sh
  source scripts/mounts.sh
  # shellcheck disable=SC2064
  trap "cowtree_mounts_down; rm -rf '$work'" EXIT
  cowtree_mounts_up xfs
  local x=${COWTREE_TEST_XFS:-}
  [[ -n "$x" ]] || die "no XFS mounted (needs root and loop devices): the smoke test clones on one"
  export HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CACHE_HOME="$work/home/cache"
  export XDG_CONFIG_HOME="$work/home/config" XDG_STATE_HOME="$work/home/state"
  # uv's cache stays the caller's (or the default one): nothing in it belongs to the test.
  export UV_CACHE_DIR=${UV_CACHE_DIR:-$TOOLS/uv-cache}
  mkdir -p "$HOME"
  # A tree to clone: two files and a symlink.
  mkdir -p "$x/src/pkg"
  head -c 1048576 /dev/urandom >"$x/src/pkg/data.bin"
  echo 'print("hi")' >"$x/src/pkg/main.py"
  ln -s pkg/main.py "$x/src/link"

  local venv=$work/venv ct platform=()
  # A wheel for another architecture: uv installs it as for that platform (files only).
  [[ "$arch" == "$(uname -m)" ]] || platform=(--python-platform "$arch-manylinux_2_17")
  uv venv -q --python python3 "$venv"
  uv pip install -q --python "$venv/bin/python" "${platform[@]}" "$whl"
  ct=$venv/bin/cowtree
  [[ -x "$ct" ]] || die "the wheel installed no $ct"
  local run=()
  if [[ "$arch" != "$(uname -m)" ]]; then
    foreign "$arch"
    run=("qemu-$arch" -L "/usr/$arch-linux-gnu")
  fi
  local version
  version=$("${run[@]}" "$ct" --version)
  echo "wheel: smoke: $version from $ct"
  cmp -s "$ct" <(unzip -p "$whl" "cowtree-$(version).data/scripts/cowtree") ||
    die "the installed cowtree differs from the wheel's"
  local f
  for f in share/man/man1/cowtree.1 share/man/man1/cowtree-stores-rm.1 \
    share/bash-completion/completions/cowtree share/zsh/site-functions/_cowtree \
    share/fish/vendor_completions.d/cowtree.fish; do
    [[ -s "$venv/$f" ]] || die "the wheel installed no $venv/$f"
  done
  if command -v man >/dev/null; then
    MANPATH="$venv/share/man" man -w cowtree-stores-rm >/dev/null ||
      die "man finds no cowtree-stores-rm in $venv/share/man"
  fi
  echo "wheel: smoke: manual pages and completions installed in $venv/share"
  "${run[@]}" "$ct" clone --json "$x/src" "$x/clone" >"$work/clone.json"
  python3 - "$work/clone.json" "${#run[@]}" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
emulated = sys.argv[2] != "0"
assert r["files"] == 2 and r["symlinks"] == 1, r
# Under qemu-user the FICLONE ioctl may not pass through: then the copy must be reported.
if not emulated:
    assert r["cloned"] == 2 and not r["fallbacks"], r
else:
    assert r["cloned"] + r["copied"] == 2 and (r["cloned"] == 2 or r["fallbacks"]), r
print(f"wheel: smoke: clone: {r['cloned']} cloned, {r['copied']} copied, fallbacks {[f['reason'] for f in r['fallbacks']]}")
EOF
  if ((${#run[@]} == 0)); then
    filefrag -v "$x/clone/pkg/data.bin" | grep -q shared ||
      die "the clone's data.bin shares no extent with the source (filefrag -v)"
  fi
  "${run[@]}" "$ct" snapshot --store "$x/store" --name v1 "$x/src" >/dev/null
  "${run[@]}" "$ct" checkout --store "$x/store" v1 "$x/wt" >/dev/null
  diff -r --no-dereference "$x/src" "$x/wt" || die "the checkout differs from the snapshot's source"
  echo "wheel: smoke: snapshot v1 and its checkout match the source"

  if ((${#run[@]} == 0)); then
    "$venv/bin/python" - "$x" <<'EOF'
import sys, cowtree
x = sys.argv[1]
r = cowtree.link_tree(f"{x}/src", f"{x}/pylinked")
assert r.cloned == 2 and r.fallbacks == [], r
print(f"wheel: smoke: import cowtree {cowtree.__version__}: link_tree cloned {r.cloned} files")
EOF
    uv pip install -q --python "$venv/bin/python" pip
    "$venv/bin/python" -m pip check
    "$venv/bin/python" -m pip uninstall -q -y cowtree
    [[ ! -e "$ct" ]] || die "pip uninstall left $ct"
    ! "$venv/bin/python" -c 'import cowtree' 2>/dev/null || die "pip uninstall left the module"
    echo "wheel: smoke: pip check passed; pip uninstall removed the command and the module"
    # uvx and pipx, each with its own homes under $work.
    UV_TOOL_DIR="$work/uv-tools" UV_TOOL_BIN_DIR="$work/uv-bin" \
      uvx -q --from "$whl" cowtree --version
    PIPX_HOME="$work/pipx" PIPX_BIN_DIR="$work/pipx-bin" PIPX_MAN_DIR="$work/pipx-man" \
      pipx install -q "$whl" >/dev/null
    "$work/pipx-bin/cowtree" --version
    echo "wheel: smoke: uvx --from and pipx install run the command"
  else
    # What this machine cannot import: the wheel's layout and the module's architecture.
    unzip -l "$whl" | grep -q 'cowtree/_cowtree.abi3.so' || die "no module in $whl"
    unzip -p "$whl" cowtree/_cowtree.abi3.so >"$work/mod.so"
    file -b "$work/mod.so" 2>/dev/null | grep -qi "aarch64\|arm aarch64" ||
      readelf -h "$work/mod.so" | grep -q AArch64 || die "the module in $whl is not $arch"
    echo "wheel: smoke: $arch module present (not importable on this machine)"
  fi
  echo "wheel: smoke passed: $whl"
}

case ${1:-} in
  tools) tools "${2:-}"; echo "$TOOLS" ;;
  dev) build_dev ;;
  smoke) smoke "${2:?usage: scripts/wheel.sh smoke WHEEL}" ;;
  ci)
    # The dev wheel scripts/test.sh built in this run, if it did (building it again would
    # recompile pyo3: cargo test and maturin give its build script different environments).
    whl=$(ls "$TARGET"/wheels-dev/cowtree-"$(version)"-*.whl 2>/dev/null || true)
    # Only if nothing it was built from changed since (the test binary, the module's files).
    if [[ -z "$whl" || "$TARGET/debug/cowtree" -nt "$whl" ||
      -n "$(find "$CRATE/src" "$CRATE/python" crates/cowtree-link/src -newer "$whl" -print -quit)" ]]; then
      whl=$(build_dev)
    fi
    smoke "$whl"
    ;;
  release)
    shift
    arches=("$@")
    ((${#arches[@]})) || arches=(x86_64 aarch64)
    for a in "${arches[@]}"; do build_release "$a"; done
    for a in "${arches[@]}"; do
      (smoke "$(ls "$TARGET"/wheels/cowtree-"$(version)"-*manylinux*"$a".whl)")
    done
    ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
