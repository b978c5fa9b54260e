#!/usr/bin/env bash
# Makes everything a release publishes, and publishes nothing: the workspace's version bumped,
# CHANGELOG.md's section for it written from the git history (grouped by capability), the
# distribution wheels (scripts/wheel.sh release: x86_64 and aarch64; scripts/wheel.sh windows:
# win_amd64, cross-built and smoke-tested under Wine; each smoke-tested), every
# crate packaged (`cargo package`, then `cargo publish --dry-run`, in dependency order), SHA-256
# checksums of the artifacts, and smoke tests on them. Publishing is then by hand, with the
# commands it prints at the end.
#
#   scripts/release.sh VERSION            # in this checkout (it must be clean): bumps, writes
#                                         # CHANGELOG.md, commits nothing; artifacts in
#                                         # $TARGET/release-artifacts/VERSION/
#   scripts/release.sh --dry-run VERSION  # the same in a temporary copy of the checkout (its
#                                         # uncommitted changes too): the checkout is untouched
#   scripts/release.sh --ci [VERSION]     # --dry-run for CI, in about 3 minutes: no wheels
#                                         # (the dist build alone takes over 20 minutes here;
#                                         # scripts/wheel.sh ci builds and smoke-tests the dev
#                                         # wheel in the same run; --arch ARCH adds ARCH's
#                                         # release wheel), crates packaged without the verify
#                                         # build (the tests build the same sources); VERSION
#                                         # defaults to a patch bump
#   scripts/release.sh changelog VERSION  # print CHANGELOG.md's section for VERSION, only
#
#   --arch ARCH    build only ARCH's wheel (repeatable: x86_64, aarch64, windows; default all
#                  three)
#   --no-wheels    no wheels (the crates, checksums and the crates' smoke test only)
#
# The changelog section lists the commits since the last tag `vX.Y.Z` (all of them for the
# first release) under the capability their subject names (the words before its first colon:
# "cli clone: ...", "cowtree-git: ..."), see `capability` below; the merge commits are left out.
# $TARGET is $CARGO_TARGET_DIR or target/.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
die() { echo "release: $*" >&2; exit 1; }

# The crates in dependency order (each after the ones it depends on): how they are packaged
# and would be published. cowtree-py and cowtree-testutil are not published (publish = false).
CRATES=(cowtree-fs cowtree-link cowtree-store cowtree-space cowtree-worktree cowtree-remote
  cowtree-git cowtree-cli)

current_version() { awk -F'"' '/^version = / { print $2; exit }' "${1:-.}/Cargo.toml"; }

# capability SUBJECT: the CHANGELOG heading a commit belongs under, from its subject's words
# before the first colon (the part of the project it changed), first match wins.
capability() {
  local scope=${1%%:*}
  # No colon: the first word ("gc removes ...", "README ...").
  [[ "$scope" == "$1" ]] && scope=${1%% *}
  scope=" ${scope,,}"
  case "$scope" in
    *git*) echo "git worktree add" ;;
    *remote* | *push* | *pull* | *s3*) echo "Remote stores (push, pull)" ;;
    *subvol* | *btrfs*) echo "btrfs subvolumes" ;;
    *switch* | *reset* | *status* | *worktree*) echo "Worktrees (checkout, status, switch, reset)" ;;
    *clone* | *link* | *reflink* | *cowtree-fs* | *probe*) echo "Cloning trees (clone, probe, the Linker)" ;;
    *store* | *snapshot* | *checkout* | *gc* | *verify* | *manifest* | *ingest* | *rm* | *ls* | *tag*)
      echo "The store (snapshot, checkout, gc, verify, stores)" ;;
    *du* | *dedupe* | *space*) echo "Disk space (du, dedupe)" ;;
    *py* | *wheel* | *python*) echo "Python module and wheel" ;;
    *release* | *completion* | *man* | *install*) echo "Installing and releasing" ;;
    *hook*) echo "Agent tools (hooks)" ;;
    *bench* | *perf*) echo "Performance and benchmarks" ;;
    *doc* | *readme* | *security*) echo "Documentation" ;;
    " fs"* | *interchange* | *open*) echo "Cloning trees (clone, probe, the Linker)" ;;
    *cargo* | *merge* | *tidy* | *review* | *fmt*) echo "Maintenance" ;;
    *ci* | *test* | *fuzz* | *script* | *harden*) echo "Tests and CI" ;;
    *) echo "Other changes" ;;
  esac
}

# changelog VERSION: the section for VERSION (markdown) on stdout, from $ROOT's git history.
changelog() {
  local version=$1 since range
  since=$(git -C "$ROOT" describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
  range=${since:+$since..}HEAD
  local tmp
  tmp=$(mktemp)
  local hash subject
  while IFS=$'\t' read -r hash subject; do
    printf '%s\t%s\t%s\n' "$(capability "$subject")" "$hash" "$subject"
  done < <(git -C "$ROOT" log --no-merges --reverse --format='%h%x09%s' "$range") >"$tmp"
  echo "## $version ($(date -u +%Y-%m-%d))"
  echo
  if [[ -n "$since" ]]; then
    echo "Changes since $since, by capability (oldest first)."
  else
    echo "The first release: the history so far, by capability (oldest first)."
  fi
  local group
  while IFS= read -r group; do
    echo
    echo "### $group"
    echo
    awk -F'\t' -v g="$group" '$1 == g { print "- " $3 " (" $2 ")" }' "$tmp"
  done < <(cut -f1 "$tmp" | sort | uniq -c | sort -k1,1nr -k2 | sed -E 's/^ *[0-9]+ //' |
    grep -v -x -e "Other changes" -e Maintenance; grep -q -P '^Maintenance\t' "$tmp" && echo Maintenance
    grep -q -P '^Other changes\t' "$tmp" && echo "Other changes")
  rm -f "$tmp"
}

# bump DIR VERSION: the workspace's version, and the versions its crates require of each other.
bump() {
  local dir=$1 version=$2
  sed -i -E \
    -e '/^\[workspace\.package\]/,/^\[/ s/^version = "[^"]*"/version = "'"$version"'"/' \
    -e '/^cowtree-[a-z]+ = \{ path = / s/version = "[^"]*"/version = "'"$version"'"/' \
    "$dir/Cargo.toml"
  (cd "$dir" && cargo update --workspace --offline -q)
  [[ "$(current_version "$dir")" == "$version" ]] || die "the bump to $version did not take"
}

# write_changelog DIR VERSION: the new section at the top of DIR/CHANGELOG.md (below its title
# and introduction), replacing a section for the same VERSION.
write_changelog() {
  local dir=$1 version=$2 file=$1/CHANGELOG.md section
  # Through a file: the section of a first release (the whole history) is longer than one
  # argument may be (128 KiB on Linux: "Argument list too long").
  section=$(mktemp)
  changelog "$version" >"$section"
  [[ -f "$file" ]] || printf '# Changelog\n\nWhat changed in each release of cowtree, by capability.\n' >"$file"
  python3 - "$file" "$version" "$section" <<'EOF'
import re, sys
path, version, section_file = sys.argv[1:]
section = open(section_file).read()
text = open(path).read()
parts = re.split(r"(?m)^(?=## )", text)
head, sections = parts[0], [s for s in parts[1:] if not s.startswith(f"## {version} ")]
open(path, "w").write(head.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n\n" + "".join(sections))
EOF
  rm -f "$section"
}

# crates DIR OUT VERIFY: `cargo package` of every published crate into OUT (together: each
# one's workspace dependencies are not on crates.io yet, and cargo packages them against each
# other), each .crate's manifest checked to carry the version, then `cargo publish --dry-run`
# of them all.
crates() {
  local dir=$1 out=$2 verify=$3 version manifest
  version=$(current_version "$dir")
  local -a pkgs=() args=()
  for c in "${CRATES[@]}"; do pkgs+=(-p "$c"); done
  args=("${pkgs[@]}")
  [[ "$verify" == 1 ]] || args+=(--no-verify)
  # cargo verifies each crate against the others through a local registry of the new
  # .crates: it extracts them into $CARGO_HOME/registry/src/-<hash>/NAME-VERSION only where
  # that directory is missing, and takes a registry crate built before as fresh whatever its
  # code. What an earlier run at the same version left would stand in for this run's crates (a
  # rename made since then failed to resolve): those sources and these crates' builds go first.
  local c
  for c in "${CRATES[@]}"; do
    rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/"$c-$version"
  done
  if [[ "$verify" == 1 ]]; then (cd "$dir" && cargo clean -q "${pkgs[@]}"); fi
  (cd "$dir" && cargo package --allow-dirty "${args[@]}")
  for c in "${CRATES[@]}"; do
    local f=$CARGO_TARGET_DIR/package/$c-$version.crate
    [[ -f "$f" ]] || die "cargo package wrote no $f"
    # Read whole first: grep -q stopping early would make tar fail on a closed pipe.
    manifest=$(tar -xzOf "$f" "$c-$version/Cargo.toml")
    grep -q "^version = \"$version\"" <<<"$manifest" ||
      die "$f: its Cargo.toml is not version $version"
    cp "$f" "$out/"
  done
  echo "release: packaged ${#CRATES[@]} crates"
  # What cargo checks before an upload (no crate at this version in the crates.io index yet,
  # each crate resolved against the others as if they were published); its dry run stops
  # before the upload. Who owns a name is only known at the upload: the names were checked
  # free when chosen (README, "Which name is which").
  local log
  log=$(mktemp)
  if ! (cd "$dir" && cargo publish --dry-run --allow-dirty --no-verify "${pkgs[@]}") >"$log" 2>&1; then
    cat "$log" >&2
    die "cargo publish --dry-run failed (above)"
  fi
  rm -f "$log"
  echo "release: cargo publish --dry-run of the ${#CRATES[@]} crates passed"
}

# smoke_crates OUT: the command's crate, unpacked, names the binary `cowtree` at this version.
smoke_crates() {
  local out=$1 version=$2 work
  work=$(mktemp -d)
  tar -xzf "$out/cowtree-cli-$version.crate" -C "$work"
  grep -A2 '^\[\[bin\]\]' "$work/cowtree-cli-$version/Cargo.toml" | grep 'name = "cowtree"' >/dev/null ||
    die "cowtree-cli-$version.crate does not install a binary named cowtree"
  [[ -f "$work/cowtree-cli-$version/src/main.rs" ]] || die "cowtree-cli-$version.crate has no src/main.rs"
  rm -rf "$work"
  echo "release: smoke: cowtree-cli-$version.crate installs the cowtree binary"
}

# smoke_wheel WHEEL VERSION: beyond scripts/wheel.sh's smoke test, the wheel is this version.
smoke_wheel() {
  local whl=$1 version=$2
  [[ "$(basename "$whl")" == cowtree-"$version"-* ]] || die "$whl is not version $version"
  unzip -l "$whl" | grep "cowtree-$version.data/data/share/man/man1/cowtree.1" >/dev/null ||
    die "$whl carries no manual page"
}

mode=release arches=() wheels=1 verify=1 ci=0 version=""
while (($#)); do
  case $1 in
    --dry-run) mode=dry-run ;;
    --ci) mode=dry-run verify=0 ci=1 ;;
    --arch) arches+=("${2:?--arch needs ARCH}"); shift ;;
    --no-wheels) wheels=0 ;;
    changelog) changelog "${2:?usage: scripts/release.sh changelog VERSION}"; exit 0 ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [[ -z "$version" ]] || die "one VERSION only"; version=$1 ;;
  esac
  shift
done
if [[ -z "$version" && "$verify" == 0 ]]; then
  IFS=. read -r ma mi pa <<<"$(current_version)"
  version=$ma.$mi.$((pa + 1))
fi
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  die "VERSION must be MAJOR.MINOR.PATCH (with an optional -PRERELEASE), not '${version}'"
if ((ci && ${#arches[@]} == 0)); then wheels=0; fi
((${#arches[@]})) || arches=(x86_64 aarch64 windows)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
started=$SECONDS

if [[ "$mode" == release ]]; then
  [[ -z "$(git status --porcelain)" ]] || die "the checkout has uncommitted changes (or use --dry-run)"
  ! git rev-parse -q --verify "refs/tags/v$version" >/dev/null || die "tag v$version exists"
  dir=$ROOT
else
  # A copy of the checkout as it is (tracked files, with their uncommitted changes).
  dir=$(mktemp -d "${TMPDIR:-/tmp}/cowtree-release.XXXXXX")
  trap 'rm -rf "$dir"' EXIT
  git ls-files -z --cached --others --exclude-standard |
    tar -c --null --no-recursion --ignore-failed-read -T - -f - 2>/dev/null | tar -x -C "$dir"
  [[ -f "$dir/Cargo.toml" ]] || die "could not copy the checkout to $dir"
fi
out=$CARGO_TARGET_DIR/release-artifacts/$version
rm -rf "$out"
mkdir -p "$out"
echo "release: $version ($mode) in $dir; artifacts in $out"

echo "release: version $(current_version "$dir") -> $version"
bump "$dir" "$version"
write_changelog "$dir" "$version"
cp "$dir/CHANGELOG.md" "$out/CHANGELOG.md"
echo "release: CHANGELOG.md: $(grep -c '^- ' <(changelog "$version")) commits under $(grep -c '^### ' <(changelog "$version")) capabilities"

crates "$dir" "$out" "$verify"
smoke_crates "$out" "$version"

if ((wheels)); then
  linux=() windows=0
  for a in "${arches[@]}"; do
    case $a in
      windows) windows=1 ;;
      x86_64 | aarch64) linux+=("$a") ;;
      *) die "unknown --arch $a (x86_64, aarch64 or windows)" ;;
    esac
  done
  if ((${#linux[@]})); then
    "$dir/scripts/wheel.sh" release "${linux[@]}"
  fi
  for a in "${linux[@]}"; do
    whl=$(ls "$CARGO_TARGET_DIR"/wheels/cowtree-"$version"-*manylinux*"$a".whl)
    smoke_wheel "$whl" "$version"
    cp "$whl" "$out/"
  done
  if ((windows)); then
    # Cross-built from the bumped copy, checked and smoke-tested under Wine by wheel.sh; no
    # manual pages go into it.
    "$dir/scripts/wheel.sh" windows
    whl=$CARGO_TARGET_DIR/wheels/cowtree-$version-cp39-abi3-win_amd64.whl
    [[ -f "$whl" ]] || die "scripts/wheel.sh windows made no $whl"
    cp "$whl" "$out/"
  fi
fi

(cd "$out" && sha256sum -- *.crate *.whl CHANGELOG.md 2>/dev/null >SHA256SUMS || true)
(cd "$out" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS does not check"
echo "release: $out/SHA256SUMS:"
sed 's/^/  /' "$out/SHA256SUMS"
echo "release: done in $((SECONDS - started)) s; nothing was published."
if [[ "$mode" == release ]]; then
  cat <<EOF
To publish (by hand, after review):
  git commit -am "release $version" && git tag v$version
$(for c in "${CRATES[@]}"; do echo "  cargo publish -p $c"; done)
  uv publish $out/*.whl
EOF
fi
