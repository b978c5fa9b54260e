#!/usr/bin/env bash
# Makes the repositories tests/windows.rs builds worktrees from, with the real git binary,
# and git's own worktree of each as the reference (`git worktree add`), into DIR:
#
#   crates/cowtree-git/tests/windows_fixture.sh DIR
#
# DIR/<case>/repo is a repository whose configuration is the case's (Git for Windows'
# installer default `core.autocrlf=true` with `core.symlinks=false`; `core.autocrlf=input`;
# neither), DIR/<case>/ref the worktree git made of its HEAD. The Windows test (a .exe under
# Wine) reads them at DIR's Windows path (Z:\...); on Linux the test runs this script itself.
set -euo pipefail
dir=${1:?usage: windows_fixture.sh DIR}
mkdir -p "$dir"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'

src="$dir/source"
rm -rf "$src"
git init -q -b main "$src"
(
  cd "$src"
  printf 'one\ntwo\nthree\n' >text.txt
  printf 'already\r\ncrlf\r\n' >crlf.txt
  printf 'mixed\r\nlines\nhere\n' >mixed.txt
  printf 'no final newline' >nonl.txt
  printf 'bin\0ary\ndata\n' >bin.dat
  printf '#!/bin/sh\necho hi\n' >run.sh
  chmod +x run.sh
  printf 'int x; /* $Id$ */\n' >ident.c
  printf 'kept\nas lf\n' >lf.txt
  printf 'forced\ncrlf\n' >win.bat
  mkdir -p dir/sub 'sp ace'
  printf 'deep\nfile\n' >dir/sub/deep.txt
  printf 'caf\xc3\xa9\n' >'sp ace/caf'$'\xc3\xa9''.txt'
  : >empty.txt
  ln -s text.txt link
  ln -s dir/sub link-to-dir
  ln -s ../text.txt dir/up-link
  cat >.gitattributes <<'ATTR'
*.c ident
*.sh text eol=lf
lf.txt text eol=lf
*.bat text eol=crlf
*.dat binary
ATTR
  git add -A
  git commit -q -m fixture
)

# case: the configuration in the repository, then git's own worktree as the reference.
make_case() {
  local case=$1
  shift
  local repo="$dir/$case/repo"
  rm -rf "$dir/$case"
  mkdir -p "$dir/$case"
  git clone -q --no-checkout "$src" "$repo"
  # The committer named in the repository: cowtree's add then asks git for none (the
  # Windows test has no git.exe to ask).
  git -C "$repo" config user.name t
  git -C "$repo" config user.email t@t
  for kv in "$@"; do
    git -C "$repo" config "${kv%%=*}" "${kv#*=}"
  done
  git -C "$repo" checkout -q main
  git -C "$repo" worktree add -q --detach "$dir/$case/ref" main
}
make_case windows-default core.autocrlf=true core.symlinks=false
make_case autocrlf-input core.autocrlf=input core.symlinks=false
make_case plain core.autocrlf=false core.symlinks=false
make_case eol-crlf core.autocrlf=false core.eol=crlf core.symlinks=false

# Trees NTFS cannot hold as git names them: two names differing only in case, a reserved
# device name; and a symlink without core.symlinks=false. The Windows test expects cowtree
# to hand them to git (Git for Windows decides).
for bad in case aux symlink; do
  repo="$dir/names-$bad"
  rm -rf "$repo"
  git init -q -b main "$repo"
  git -C "$repo" config user.name t
  git -C "$repo" config user.email t@t
  if [[ $bad == case ]]; then
    printf 'upper\n' >"$repo/README"
    printf 'lower\n' >"$repo/readme"
  elif [[ $bad == aux ]]; then
    printf 'device\n' >"$repo/aux.txt"
  else
    # A symlink, core.symlinks not set: Git for Windows decides how to make it.
    ln -s ok.txt "$repo/link"
  fi
  printf 'fine\n' >"$repo/ok.txt"
  git -C "$repo" add -A
  git -C "$repo" commit -q -m names
done
echo "windows_fixture: $(git --version) made $(ls "$dir" | grep -vc source) repositories in $dir"
