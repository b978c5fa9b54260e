//! The conformance runner: `cowtree git worktree add` (and `cowtree hook claude-code
//! worktree-create`) against `git worktree add`, one case at a time, on the same repository.
//!
//! The contract (DESIGN.md, "git worktrees"): the worktree cowtree makes is exactly the one
//! `git worktree add` makes with the same arguments, configuration and repository, or cowtree
//! lets git make it. Each case ([`cases`]) is a recipe of real git commands (mostly from git's
//! own t1091, t1092 and t2400-t2407), a directory to run in and the arguments of the add. For
//! each case the runner:
//!
//! 1. builds the recipe in a fresh directory (`state`) on XFS (the tests skip without it, as
//!    the others do), under a fixed environment: `GIT_CONFIG_NOSYSTEM=1`, `GIT_CONFIG_GLOBAL`
//!    a file the runner writes (the profile, below), fixed author, committer and dates,
//!    `LC_ALL=C`, `TZ=UTC`, `HOME` and `XDG_*` in the scratch directory, and nothing else of
//!    the caller's (no `COWTREE_STORE`, no `GIT_TEST_*`, no `GIT_DIR`, ...);
//! 2. copies it (`cp -a`) to `A` and `B`, points the copies' own absolute paths (gitfiles,
//!    `gitdir`, configuration) at themselves, and refreshes the index where the add runs (as a
//!    user's index is: fresh), the same way in both;
//! 3. runs `git worktree add ARGS` in `A` and `cowtree git worktree add ARGS` in `B` from the
//!    same directory, and compares, with each copy's root written `<COPY>`:
//!    - the exit status; after a refusal, git's message (its last `fatal:`/`error:` line and
//!      the lines continuing it) must appear in cowtree's stderr; nothing else of stderr;
//!    - after a refusal: every name left in the copy (what was made, what was kept), the refs,
//!      every branch's reflog, `git worktree list --porcelain`, the repository's config; where
//!      git leaves what it made on the way to its refusal and cowtree by design leaves nothing
//!      ([`cases::Case::git_leaves`]), those of cowtree's copy against a copy nothing ran in;
//!    - after a success, in this order (the first that differs is the one reported, the
//!      others by name): the new worktree's tree (names, types, modes, bytes, symlink
//!      targets, the `.git` file), `git rev-parse HEAD` and `git symbolic-ref -q HEAD` there,
//!      its HEAD's reflog (`%H %gs`), `git ls-files --stage -v -t --sparse`,
//!      `git sparse-checkout list`, the registration directory (every name in it, the bytes
//!      of each small file: `HEAD`, `ORIG_HEAD`, `commondir`, `gitdir`, `locked`,
//!      `config.worktree`, `info/sparse-checkout`, the reftable stubs), `git for-each-ref`,
//!      every branch's reflog, the repository's config, `git worktree list --porcelain`,
//!      `git status --porcelain` in the new worktree and where the add ran (stdout: its
//!      warnings depend on the clock), `git fsck` in the new worktree, every name in the copy
//!      (no stray staging directory, lock or file), then the index file itself: version,
//!      extensions in order, checksum, the cache tree (every directory's entry count and
//!      tree id; git reads its subtrees in any order, so their order is not compared), and
//!      `git ls-files --debug` without the times, device and inode. The index is read
//!      before any `git status` (which may rewrite it). A reftable repository's refs are
//!      compared through git only (its table names are random). cowtree's own cache
//!      (`$GIT_COMMON_DIR/cowtree`, docs/git.md) and object stores (lazy fetches, packs) are
//!      not compared.
//! 4. where the hook applies (the add ran in a worktree, the case succeeds and sets no
//!    environment of its own; once per recipe in a group), runs `cowtree hook claude-code
//!    worktree-create` with a payload `{"name": "hooked", "cwd": ...}` (no base: Claude Code
//!    sends none; its user settings say `"baseRef": "head"`, so the branch starts at HEAD) in
//!    a third copy, and `git worktree add -b hooked <top>/.claude/worktrees/hooked` in a
//!    fourth, and compares them the same way, and the path the hook printed.
//!
//! Every case runs under two global configurations, the profiles: `default` (only
//! `init.defaultBranch=main`) and `git3`, the defaults Git 3.0 announces
//! (`init.defaultObjectFormat=sha256`, `init.defaultRefFormat=reftable`,
//! `init.defaultBranch=main`, `safe.bareRepository=explicit`): every repository a recipe
//! makes with `git init` is then SHA-256 and reftable (a clone keeps its source's hash), and a
//! bare repository is found only through `--git-dir`/`GIT_DIR`.
//!
//! Running it (root: scripts/test.sh mounts XFS):
//!
//! ```text
//! COWTREE_TEST_NO_S3=1 COWTREE_TEST_NO_PYTHON=1 scripts/test.sh -- conformance_
//! ```
//!
//! Environment:
//! - `COWTREE_TEST_GIT_PROFILE=default|git3|both` (default `both`): the profiles to run;
//! - `COWTREE_TEST_CONFORMANCE_CASE=TEXT`: only the cases whose name contains TEXT;
//! - `COWTREE_TEST_CONFORMANCE_REPORT=FILE`: each case's line is appended to FILE too (the
//!   test harness shows a passing test's output only with `--nocapture`);
//! - `COWTREE_TEST_CONFORMANCE_KEEP=1`: keep the scratch directories and print where;
//! - `COWTREE_TEST_CONFORMANCE_SELF=1`: run git on both sides (the runner's own check: every
//!   case must come out `same`);
//! - `COWTREE_TEST_CONFORMANCE_LIST=FILE`: `conformance_case_table_is_well_formed` writes the
//!   case table there as Markdown.
//!
//! Each group is one test: it runs all its cases, prints one line per case
//! (`conformance: PROFILE CASE: same`, `differs: FIRST DIFFERENCE [also: ...]`,
//! `skipped: needs git >= X`) and fails at the end with one message naming every case that
//! differed and its first difference. A case whose recipe fails, or where git itself does not
//! do what the case says it does (another git version), is `broken`, and fails the group too.
//! With `COWTREE_TEST_CONFORMANCE_KEEP=1`, `obs-A.txt` and `obs-B.txt` (`obs-C.txt`,
//! `obs-D.txt` for the hook) in a case's directory hold everything compared.

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod index;
mod observe;
mod runner;

use cases::GROUPS;

fn group(name: &str) {
    let cases = GROUPS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no group {name}"));
    runner::run_group(name, cases);
}

#[test]
fn conformance_case_table_is_well_formed() {
    runner::check_table(GROUPS);
}

#[test]
fn conformance_t2400_args() {
    group("t2400_args");
}

#[test]
fn conformance_t2400_orphan_dwim() {
    group("t2400_orphan_dwim");
}

#[test]
fn conformance_t2400_remotes() {
    group("t2400_remotes");
}

#[test]
fn conformance_bare() {
    group("bare");
}

#[test]
fn conformance_post_checkout_hook() {
    group("post_checkout_hook");
}

#[test]
fn conformance_t2401_t2407() {
    group("t2401_t2407");
}

#[test]
fn conformance_sparse() {
    group("sparse");
}

#[test]
fn conformance_t1092() {
    group("t1092");
}

#[test]
fn conformance_formats() {
    group("formats");
}

#[test]
fn conformance_index_config() {
    group("index_config");
}

#[test]
fn conformance_partial_clone() {
    group("partial_clone");
}

#[test]
fn conformance_submodules() {
    group("submodules");
}

#[test]
fn conformance_worktree_config() {
    group("worktree_config");
}
