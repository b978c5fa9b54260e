//! Repositories and arguments `git worktree add` itself must handle (docs/git.md, "Every
//! repository git can check out"): git makes the worktree, with the same arguments, and cowtree
//! still does what git does not (the ignored files `.worktreeinclude` names) or refuses, before
//! git runs, what git's worktree cannot honour. The repository kinds are in the conformance
//! runner (F, I, K, S, W cases); this is what only arguments can trigger.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::Output;

use crate::common::bin;
use cowtree_testutil::{Fs, git, scratch};

fn add(src: &Path, args: &[&OsStr]) -> Output {
    cowtree_testutil::git_env(bin().current_dir(src))
        .args(["git", "worktree", "add"])
        .args(args)
        .output()
        .expect("run cowtree")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A repository whose `.worktreeinclude` names its ignored `.env`.
fn repo(root: &Path) -> std::path::PathBuf {
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    fs::create_dir(src.join("d")).unwrap();
    fs::write(src.join("d/f"), "tracked\n").unwrap();
    fs::write(src.join(".gitignore"), ".env\n").unwrap();
    fs::write(src.join(".worktreeinclude"), ".env\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "one"]);
    fs::write(src.join(".env"), "SECRET=1\n").unwrap();
    src
}

/// Every name in `dir`, sorted.
fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

/// A destination whose name is not UTF-8: git's worktree id is its sanitizing of the raw
/// bytes, so `git worktree add` makes it; the ignored file `.worktreeinclude` names is cloned
/// in afterwards, and the report says who made it and why. `--with-changes` and `--strict`,
/// which git's worktree cannot honour, are refused before git runs, leaving nothing.
#[test]
fn a_destination_git_must_name_is_made_by_git_with_cowtrees_extras() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = repo(dir.path());
    let head = git(&src, &["rev-parse", "HEAD"]);
    let before = names(dir.path());
    let worktrees_before = git(&src, &["worktree", "list", "--porcelain"]);

    for (flag, code) in [("--with-changes", 1), ("--strict", 3)] {
        let dst = dir
            .path()
            .join(OsString::from_vec(b"refused-\xff".to_vec()));
        let out = add(&src, &[os(flag), os("-b"), os("x"), dst.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{flag}: {err}");
        assert!(err.contains(flag), "{flag}: the refusal names it: {err}");
        assert!(
            err.contains("not UTF-8"),
            "{flag}: and why git makes it: {err}"
        );
        assert_eq!(names(dir.path()), before, "{flag}: nothing made");
        assert_eq!(
            git(&src, &["worktree", "list", "--porcelain"]),
            worktrees_before,
            "{flag}: nothing registered"
        );
        let branches = git(&src, &["branch", "--list", "x"]);
        assert!(branches.trim().is_empty(), "{flag}: no branch: {branches}");
    }

    let dst = dir.path().join(OsString::from_vec(b"w-\xff\xfe".to_vec()));
    let out = add(&src, &[os("--json"), os("-b"), os("feat"), dst.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["made_by"], "git", "{r}");
    assert_eq!(r["method"], "git", "{r}");
    assert!(
        r["made_by_reason"]
            .as_str()
            .is_some_and(|s| s.contains("not UTF-8")),
        "{r}"
    );
    assert_eq!(r["branch"], "feat", "{r}");
    assert_eq!(r["commit"], head.trim(), "{r}");
    assert_eq!(git(&dst, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(&dst, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/feat"
    );
    assert_eq!(fs::read(dst.join("d/f")).unwrap(), b"tracked\n");
    assert_eq!(
        fs::read(dst.join(".env")).unwrap(),
        b"SECRET=1\n",
        ".worktreeinclude's file cloned after git made the worktree"
    );
    assert_eq!(git(&dst, &["status", "--porcelain", "--ignored=no"]), "");
    // Registered by git, under the raw bytes of the name.
    let list = git(&src, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 2, "{list}");
    let dot_git = fs::read(dst.join(".git")).unwrap();
    let admin = dot_git
        .strip_prefix(b"gitdir: ")
        .and_then(|p| p.strip_suffix(b"\n"))
        .expect("a .git file");
    let gitdir = fs::read(Path::new(OsStr::from_bytes(admin)).join("gitdir")).unwrap();
    assert_eq!(
        gitdir,
        [dst.join(".git").as_os_str().as_bytes(), b"\n"].concat(),
        "the registration points at the worktree"
    );
}

/// What the environment tells git to write, or the configuration `git -c` passes to what git
/// runs (which gitoxide does not read): git makes the worktree, and its index is git's (here a
/// version 4 index, which cowtree does not write).
#[test]
fn the_environment_git_obeys_hands_the_add_to_git() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = repo(dir.path());
    for (i, (var, value)) in [
        ("GIT_INDEX_VERSION", "4"),
        ("GIT_CONFIG_PARAMETERS", "'index.version'='4'"),
    ]
    .into_iter()
    .enumerate()
    {
        let dst = dir.path().join(format!("w{i}"));
        let out = cowtree_testutil::git_env(bin().current_dir(&src))
            .env(var, value)
            .args(["git", "worktree", "add", "--json", "--detach"])
            .arg(&dst)
            .output()
            .expect("run cowtree");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{var}: {err}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        assert_eq!(r["made_by"], "git", "{var}: {r}");
        assert!(
            r["made_by_reason"]
                .as_str()
                .is_some_and(|s| s.contains(var)),
            "{var}: {r}"
        );
        let admin = git(&dst, &["rev-parse", "--git-dir"]);
        let index = fs::read(Path::new(admin.trim()).join("index")).unwrap();
        assert_eq!(
            &index[..8],
            b"DIRC\0\0\0\x04",
            "{var}: git's version 4 index"
        );
        assert_eq!(git(&dst, &["status", "--porcelain", "--ignored=no"]), "");
    }
}

/// `--sparse` checks a tree out: with `--no-checkout`, `--orphan` or `--with-changes` it is
/// refused before anything is made, as git refuses options that do not go together.
#[test]
fn sparse_with_an_option_that_checks_nothing_out_is_refused() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = repo(dir.path());
    let before = names(dir.path());
    for other in ["--no-checkout", "--orphan", "--with-changes"] {
        let dst = dir.path().join("w");
        let out = add(&src, &[os("--sparse"), os("d"), os(other), dst.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128), "{other}: {err}");
        assert!(
            err.contains("--sparse") && err.contains(other),
            "{other}: {err}"
        );
        assert_eq!(names(dir.path()), before, "{other}: nothing made");
    }
}
