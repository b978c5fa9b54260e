#!/bin/bash
# scripts/agent-flows.sh COWTREE [BTRFS_DIR]: the flows of an agent platform, run by hand
# (not in CI): the Claude Code hook (WorktreeCreate payload on stdin) and
# `cowtree git worktree add --detach DST HEAD~1` in a reftable, a SHA-256, a Git 3.0 (both), a
# sparse, a blobless-clone, an autocrlf+detached, a core.ignoreStat, a linked worktree with
# extensions.worktreeConfig, a dirty SRC (changed, staged, untracked), a pooled Git 3.0
# repository, a repository used with no committer identity configured (logs/HEAD compared
# too), one at a path with a space and non-ASCII letters holding a submodule, with
# feature.manyFiles (index version 4), and a Git 3.0 repository where earlier adds were killed (kill -9 at spread
# points) with `cowtree gc` running beside the flow (and nothing of the killed runs left after
# it), and with BTRFS_DIR (a btrfs mount) a subvolume SRC; each worktree compared with
# `git worktree add` of the same commit: contents, types and modes, `ls-files -s` and `-t`,
# HEAD, status. Prints one line per flow and the count; a scratch directory under /tmp.
set -u
C=$(realpath "${1:?cowtree binary}"); BT=${2:-}
W=$(mktemp -d /tmp/flows.XXXX); pass=0; fail=0
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$W"/home
export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@x
mkdir -p "$HOME"
fill() { # fill DIR: two commits of a small tree
  mkdir -p "$1/src/deep/er" "$1/docs"
  printf 'a\r\nb\n' >"$1/crlf.txt"; printf 'x\ny\n' >"$1/src/lf.txt"; echo '*.txt text' >"$1/.gitattributes"
  printf '#!/bin/sh\necho hi\n' >"$1/run.sh"; chmod +x "$1/run.sh"; ln -s src/lf.txt "$1/link"
  for i in 1 2 3; do echo "$i" >"$1/src/deep/er/f$i.c"; echo "d$i" >"$1/docs/d$i.md"; done
  git -C "$1" add -A && git -C "$1" commit -qm one
  echo more >>"$1/src/lf.txt"; echo new >"$1/docs/new.md"; git -C "$1" rm -q docs/d1.md
  git -C "$1" add -A && git -C "$1" commit -qm two
}
shape() { (cd "$1" && find . -path ./.git -prune -o -printf '%P %y %m %l\n' | LC_ALL=C sort) }
same() { # same LABEL GITWT COWWT
  local l=$1 g=$2 c=$3 why=""
  [[ -d $c ]] || why="no worktree"
  [[ -z $why ]] && { diff -r --no-dereference -x .git "$g" "$c" >/dev/null || why="contents differ"; }
  [[ -z $why && "$(shape "$g")" != "$(shape "$c")" ]] && why="modes/types differ"
  [[ -z $why && "$(git -C "$g" ls-files -s)" != "$(git -C "$c" ls-files -s)" ]] && why="index differs"
  [[ -z $why && "$(git -C "$g" ls-files -t)" != "$(git -C "$c" ls-files -t)" ]] && why="skip-worktree differs"
  [[ -z $why && "$(git -C "$g" rev-parse HEAD)" != "$(git -C "$c" rev-parse HEAD)" ]] && why="HEAD differs"
  [[ -z $why && "$(git -C "$g" status --porcelain)" != "$(git -C "$c" status --porcelain)" ]] && why="status differs: $(git -C "$c" status --porcelain | head -3)"
  [[ -z $why && -n "$(git -C "$c" status --porcelain)" ]] && why="not clean"
  if [[ -z $why ]]; then pass=$((pass+1)); echo "ok   $l"; else fail=$((fail+1)); echo "FAIL $l: $why"; fi
}
flow() { # flow LABEL REPO (a worktree): the hook, and add --detach HEAD~1, each against git
  local l=$1 r=$2 out
  out=$(cd "$r" && printf '{"hook_event_name":"WorktreeCreate","cwd":"%s","name":"h-%s"}' "$r" "$l" | "$C" hook claude-code worktree-create 2>"$W"/err)
  if [[ -z $out || ! -d $out ]]; then fail=$((fail+1)); echo "FAIL $l hook: no path ($(tail -2 "$W"/err))"; else
    git -C "$r" worktree add -q --detach "$W/g-h-$l" "$(git -C "$out" rev-parse HEAD)" 2>/dev/null
    same "$l hook" "$W/g-h-$l" "$out"; fi
  (cd "$r" && "$C" git worktree add -q --detach "$W/c-$l" HEAD~1 2>"$W"/err) || echo "  cowtree add said: $(tail -2 "$W"/err)"
  git -C "$r" worktree add -q --detach "$W/g-$l" HEAD~1
  same "$l add HEAD~1" "$W/g-$l" "$W/c-$l"
}
killed() { # killed REPO: adds to one DST killed with SIGKILL at spread points; gc beside the flow
  local d p
  for d in 0.002 0.01 0.02 0.04 0.08; do
    (cd "$1" && exec "$C" git worktree add -q --detach "$W/k-killed") 2>/dev/null &
    p=$!; sleep "$d"; kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  (for _ in 1 2 3 4 5 6; do "$C" gc >/dev/null 2>&1; done) &
  GC=$!
}
leftovers() { # leftovers REPO: after a last gc, nothing half-made of the killed runs
  wait "$GC"; (cd "$1" && "$C" gc >/dev/null 2>&1)
  local why=""
  if [[ -d $W/k-killed ]]; then
    [[ -z $(git -C "$W/k-killed" status --porcelain) ]] || why="a killed run's worktree is not clean"
  elif git -C "$1" worktree list --porcelain | grep -q k-killed; then
    why="a killed run's registration is left"
  fi
  compgen -G "$W/.k-killed.cowtree-staging*" >/dev/null && why="${why:+$why; }a staging directory is left"
  if [[ -z $why ]]; then pass=$((pass+1)); echo "ok   killed: nothing half-made left"
  else fail=$((fail+1)); echo "FAIL killed: $why"; fi
}
noident() { # noident REPO: add with no committer identity configured (a fresh container or CI
  # runner): the worktree and the identity logs/HEAD is signed with (git's guess) as git's
  local r=$1 why="" g c
  (unset GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL EMAIL
   cd "$r" && "$C" git worktree add -q --detach "$W/c-noident" HEAD~1 &&
     git worktree add -q --detach "$W/g-noident" HEAD~1) 2>"$W"/err
  same "no-identity add HEAD~1" "$W/g-noident" "$W/c-noident"
  sig() { sed 's/> [0-9]* [-+][0-9]*/>/' "$(git -C "$1" rev-parse --absolute-git-dir)/logs/HEAD" 2>/dev/null; }
  g=$(sig "$W/g-noident"); c=$(sig "$W/c-noident")
  [[ -n $g ]] || why="git wrote no logs/HEAD"
  [[ -z $why && $g != "$c" ]] && why="logs/HEAD differs: git '$g', cowtree '$c'"
  if [[ -z $why ]]; then pass=$((pass+1)); echo "ok   no-identity logs/HEAD: $(head -1 <<<"$g" | cut -d' ' -f3-)"
  else fail=$((fail+1)); echo "FAIL no-identity: $why"; fi
}
R="$W"/r
git init -q -b main --ref-format=reftable "$R-reftable" && fill "$R-reftable" && flow reftable "$R-reftable"
git init -q -b main --object-format=sha256 "$R-sha256" && fill "$R-sha256" && flow sha256 "$R-sha256"
git init -q -b main --object-format=sha256 --ref-format=reftable "$R-git3" && fill "$R-git3" && flow git3 "$R-git3"
git init -q -b main "$R-o" && fill "$R-o" && git -C "$R-o" config uploadpack.allowFilter true
git clone -q --no-checkout "$R-o" "$R-sparse" && git -C "$R-sparse" sparse-checkout set --cone src && git -C "$R-sparse" checkout -q main && flow sparse "$R-sparse"
git clone -q --filter=blob:none "file://$R-o" "$R-blobless" && flow blobless "$R-blobless"
git clone -q -c core.autocrlf=true "$R-o" "$R-crlf" && git -C "$R-crlf" checkout -q --detach HEAD && flow autocrlf-detached "$R-crlf"
git clone -q -c core.ignoreStat=true "$R-o" "$R-ignorestat" && flow ignorestat "$R-ignorestat"
git clone -q "$R-o" "$R-main" && git -C "$R-main" config extensions.worktreeConfig true && git -C "$R-main" worktree add -q "$R-linked" -b lk && flow linked-worktreeconfig "$R-linked"
git clone -q "$R-o" "$R-dirty" && echo changed >>"$R-dirty"/src/lf.txt && echo staged >>"$R-dirty"/docs/d2.md && git -C "$R-dirty" add docs/d2.md && echo new >"$R-dirty"/untracked.txt && flow dirty-src "$R-dirty"
git init -q -b main --object-format=sha256 --ref-format=reftable "$R-pool" && fill "$R-pool" && (cd "$R-pool" && "$C" git worktree pool set 2 >/dev/null 2>&1 && "$C" git worktree pool fill 2>&1 | tail -1) && flow pool-git3 "$R-pool" && (cd "$R-pool" && "$C" git worktree pool status 2>&1 | head -1)
git clone -q "$R-o" "$R-noident" && noident "$R-noident"
# A repository at a path with a space and non-ASCII letters, with a submodule (a gitlink that
# `git worktree add` leaves as an empty directory) and feature.manyFiles (index version 4 and
# the untracked cache).
U="$W/r sub-modulé"
git init -q -b main "$U" && fill "$U" && git -C "$U" config feature.manyFiles true &&
  git -C "$U" -c protocol.file.allow=always submodule add -q "$R-o" vendor/lib &&
  git -C "$U" commit -qm submodule && echo three >>"$U/src/lf.txt" && git -C "$U" commit -qam three &&
  git -C "$U" update-index --index-version 4 && flow submodule-manyfiles "$U"
git init -q -b main --object-format=sha256 --ref-format=reftable "$R-killed" && fill "$R-killed" && killed "$R-killed" && flow killed-gc "$R-killed" && leftovers "$R-killed"
if [[ -n $BT ]]; then
  S="$BT/flows-r"
  btrfs subvolume create "$S" >/dev/null
  (cd "$S" && git init -q -b main && git fetch -q "$R-o" main && git reset -q --hard FETCH_HEAD)
  sleep 1.1 && git -C "$S" status -s >/dev/null
  WS=$W; W=$BT/flows-w; mkdir -p "$W"; flow subvolume "$S"; W=$WS
  for d in "$BT"/flows-w/* "$S"/.claude/worktrees/*; do
    [[ -e $d ]] && { btrfs subvolume delete "$d" >/dev/null 2>&1 || rm -rf "$d"; }
  done
  rm -rf "$BT/flows-w"; btrfs subvolume delete "$S" >/dev/null
fi
echo "flows: $pass passed, $fail failed ($W)"
[[ $fail == 0 ]]
