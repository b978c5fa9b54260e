//! Every `git worktree add` option, run by `cowtree git worktree add` and by git itself with the
//! same arguments on two copies of one repository, on XFS, btrfs and ext4 (there every third
//! case in the README's run, all in the full tier): the same outcome
//! (both succeed or both refuse), and after a success the same HEAD, branches, upstreams, lock,
//! files, index and `git worktree list --porcelain`. A refusal leaves nothing: no directory,
//! no registration, no branch (git itself leaves a branch behind in some of them).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::bin;
use cowtree_testutil::git;
use cowtree_testutil::{Fs, git_cmd, scratch};

/// Waits until the wall clock is in a later second, so that files written before are not racy.
fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let s = now();
    while now() == s {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `root/template`: a repository `src` with branches `main` (checked out), `topic` and
/// `old`, a history of checkouts (`-` is `topic`), and two remotes: `origin` (branches
/// `main`, `remote-only`, `shared`) and `up` (`shared`), fetched.
fn make_template(root: &Path) -> PathBuf {
    let t = root.join("template");
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    for i in 0..12 {
        let p = src.join(format!("d{}/f{i}.txt", i % 3));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("file {i}\n").repeat(i + 1)).unwrap();
    }
    std::os::unix::fs::symlink("d0/f0.txt", src.join("link")).unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    git(&src, &["branch", "old"]);
    fs::write(src.join("d1/f1.txt"), "changed\n").unwrap();
    git(&src, &["commit", "-qam", "two"]);
    git(&src, &["branch", "topic", "HEAD~1"]);
    git(&src, &["checkout", "-q", "topic"]);
    git(&src, &["checkout", "-q", "main"]);
    for (remote, branches) in [
        ("origin", &["main", "remote-only", "shared"][..]),
        ("up", &["shared"][..]),
    ] {
        let bare = t.join(format!("{remote}.git"));
        git(&t, &["init", "-q", "--bare", bare.to_str().unwrap()]);
        for b in branches {
            git(
                &src,
                &[
                    "push",
                    "-q",
                    bare.to_str().unwrap(),
                    &format!("main:refs/heads/{b}"),
                ],
            );
        }
        git(&src, &["remote", "add", remote, bare.to_str().unwrap()]);
        git(&src, &["fetch", "-q", remote]);
    }
    next_second();
    git(&src, &["update-index", "-q", "--refresh"]);
    t
}

/// A copy of the template at `dir` (`cp -a`), with SRC's index refreshed for the copy's
/// inodes (so cowtree can trust it) and remotes pointing into the copy.
fn copy_template(template: &Path, dir: &Path) -> PathBuf {
    let out = std::process::Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(template)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = dir.join("src");
    for r in ["origin", "up"] {
        git(
            &src,
            &[
                "remote",
                "set-url",
                r,
                dir.join(format!("{r}.git")).to_str().unwrap(),
            ],
        );
    }
    git(&src, &["update-index", "-q", "--refresh"]);
    src
}

fn cowtree_add(src: &Path, args: &[&str]) -> Output {
    cowtree_testutil::git_env(bin().current_dir(src))
        .args(["git", "worktree", "add"])
        .args(args)
        .output()
        .expect("run cowtree")
}

fn git_add(src: &Path, args: &[&str]) -> Output {
    git_cmd(src)
        .args(["worktree", "add"])
        .args(args)
        .output()
        .expect("run git")
}

/// What a worktree add can change, with the copy's root replaced by `ROOT`.
#[derive(Debug, PartialEq, Eq)]
struct State {
    refs: String,
    branch_config: String,
    worktrees: String,
    admin: BTreeMap<String, String>,
    trees: BTreeMap<String, BTreeMap<String, String>>,
    statuses: BTreeMap<String, String>,
}

/// Every entry under `root` except `.git`: kind, executable bit, content or target.
fn files(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".git" {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let v = if m.file_type().is_symlink() {
                format!("l {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "d".into()
            } else {
                format!(
                    "f{} {}",
                    if m.mode() & 0o111 != 0 { "x" } else { "" },
                    String::from_utf8_lossy(&fs::read(&p).unwrap())
                )
            };
            out.insert(rel, v);
        }
    }
    out
}

fn state(root: &Path) -> State {
    let src = root.join("src");
    let mask = |s: String| s.replace(root.to_str().unwrap(), "ROOT");
    let refs = git(
        &src,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname) %(upstream)",
            "refs/heads",
        ],
    );
    let branch_config = git_cmd(&src)
        .args(["config", "--get-regexp", "^branch\\."])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    let worktrees = mask(git(&src, &["worktree", "list", "--porcelain"]));
    let mut admin = BTreeMap::new();
    let mut trees = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    if let Ok(list) = fs::read_dir(src.join(".git/worktrees")) {
        for e in list {
            let p = e.unwrap().path();
            let id = p.file_name().unwrap().to_string_lossy().into_owned();
            let mut names: Vec<String> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                // git's own bookkeeping of its `reset --hard` and reflogs: not the worktree.
                .filter(|n| !["logs", "refs", "ORIG_HEAD"].contains(&n.as_str()))
                .collect();
            names.sort();
            let locked = fs::read_to_string(p.join("locked")).ok();
            admin.insert(id, format!("{names:?} locked={locked:?}"));
        }
    }
    for line in worktrees.lines() {
        if let Some(path) = line.strip_prefix("worktree ROOT/")
            && path != "src"
        {
            let dir = root.join(path);
            if dir.exists() {
                trees.insert(path.to_owned(), files(&dir));
                statuses.insert(
                    path.to_owned(),
                    git(&dir, &["status", "--porcelain=v1", "--branch"]),
                );
            }
        }
    }
    State {
        refs,
        branch_config,
        worktrees,
        admin,
        trees,
        statuses,
    }
}

/// Names in `dir` that look like cowtree's staging.
fn staging_left(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".cowtree-staging.") {
                out.push(e.path().display().to_string());
            }
            if e.file_type().unwrap().is_dir() && name != ".git" && name != "objects" {
                stack.push(e.path());
            }
        }
    }
    out
}

/// A case: what to set up in both copies first, the arguments, and for a refusal a phrase
/// cowtree's message must contain.
struct Case {
    setup: fn(&Path),
    args: &'static [&'static str],
    refused: Option<&'static str>,
}

fn none(_: &Path) {}

/// A worktree at ../gone (branch gone) whose directory was deleted.
fn missing(root: &Path) {
    git(&root.join("src"), &["worktree", "add", "-q", "../gone"]);
    fs::remove_dir_all(root.join("gone")).unwrap();
}

/// The same, locked.
fn missing_locked(root: &Path) {
    missing(root);
    git(&root.join("src"), &["worktree", "lock", "../gone"]);
}

fn nonempty_dir(root: &Path) {
    fs::create_dir(root.join("full")).unwrap();
    fs::write(root.join("full/x"), "x").unwrap();
}

fn empty_dir(root: &Path) {
    fs::create_dir(root.join("empty")).unwrap();
}

const fn ok(args: &'static [&'static str]) -> Case {
    Case {
        setup: none,
        args,
        refused: None,
    }
}

const fn no(args: &'static [&'static str], phrase: &'static str) -> Case {
    Case {
        setup: none,
        args,
        refused: Some(phrase),
    }
}

const CASES: &[Case] = &[
    ok(&["../a"]),
    ok(&["-b", "new", "../b"]),
    ok(&["-b", "new", "../b", "topic"]),
    ok(&["-b", "new", "../b", "HEAD~1"]),
    no(
        &["-b", "main", "../b"],
        "a branch named 'main' already exists",
    ),
    ok(&["-B", "topic", "../b"]),
    ok(&["-B", "brand-new", "../b", "old"]),
    no(
        &["-B", "main", "../b"],
        "'main' is already used by worktree at",
    ),
    no(
        &["-B", "main", "-f", "../b"],
        "cannot force update the branch 'main'",
    ),
    ok(&["--detach", "../d"]),
    ok(&["-d", "../d", "topic"]),
    ok(&["../t", "topic"]),
    ok(&["../t", "-"]),
    no(&["../t", "main"], "'main' is already used by worktree at"),
    ok(&["-f", "../t", "main"]),
    ok(&["--force", "../t", "main"]),
    ok(&["../r", "remote-only"]),
    no(&["../s", "shared"], "invalid reference: shared"),
    ok(&["-b", "x", "../x", "origin/main"]),
    ok(&["--no-track", "-b", "x", "../x", "origin/main"]),
    ok(&["--track", "-b", "x", "../x", "origin/main"]),
    ok(&["--track", "../x"]),
    ok(&["--track", "-b", "x", "../x", "topic"]),
    ok(&["--track", "--no-track", "-b", "x", "../x", "origin/main"]),
    ok(&["--no-track", "--track", "-b", "x", "../x", "origin/main"]),
    no(
        &["--track", "../t", "topic"],
        "can only be used if a new branch is created",
    ),
    ok(&["--guess-remote", "../remote-only"]),
    ok(&["--no-guess-remote", "../remote-only"]),
    ok(&["--lock", "../l"]),
    ok(&["--lock", "--reason", "a reason", "../l"]),
    // Repeated options: the last one counts, as in git's option parser.
    ok(&["--lock", "--lock", "../l"]),
    ok(&["--lock", "--reason", "a", "--reason", "b", "../l"]),
    ok(&["-b", "x", "-b", "y", "../x"]),
    ok(&["-q", "-q", "--detach", "--detach", "../q"]),
    // A value that starts with '-' is the option's value.
    ok(&["--lock", "--reason", "-x", "../l"]),
    no(&["--reason", "r", "../l"], "--lock"),
    ok(&["--orphan", "../o"]),
    ok(&["--orphan", "-b", "orph", "../o"]),
    no(&["--orphan", "../o", "main"], "--orphan"),
    no(&["--orphan", "--no-checkout", "../o"], "--no-checkout"),
    no(
        &["--orphan", "-b", "topic", "../o"],
        "a branch named 'topic' already exists",
    ),
    ok(&["--no-checkout", "../n"]),
    ok(&["--checkout", "../n"]),
    ok(&["-q", "../q"]),
    ok(&["--quiet", "-b", "qq", "../q"]),
    ok(&["../deep/er/p"]),
    ok(&["-b", "deep2", "../deep/er/p", "topic"]),
    no(&["../m", "no-such-rev"], "invalid reference: no-such-rev"),
    no(&["--detach", "-b", "x", "../x"], "cannot be used together"),
    no(&["-b", "x", "-B", "y", "../x"], "cannot be used together"),
    Case {
        setup: nonempty_dir,
        args: &["../full"],
        refused: Some("already exists"),
    },
    Case {
        setup: empty_dir,
        args: &["../empty"],
        refused: None,
    },
    Case {
        setup: missing,
        args: &["../gone"],
        refused: Some("a missing but already registered worktree"),
    },
    Case {
        setup: missing,
        args: &["-f", "../gone"],
        refused: None,
    },
    Case {
        setup: missing_locked,
        args: &["-f", "../gone"],
        refused: Some("a missing but locked worktree"),
    },
    Case {
        setup: missing_locked,
        args: &["-f", "-f", "../gone"],
        refused: None,
    },
];

/// Runs `cases`; with `refusals` false, only those that succeed (a refusal happens before any
/// file is made, so the filesystem plays no part in it), and of those the ones `pick` takes
/// (by their index among the successful cases).
fn run_cases(fsys: Fs, cases: &[Case], refusals: bool, pick: impl Fn(usize) -> bool) {
    let Some(dir) = scratch(fsys) else { return };
    let template = make_template(dir.path());
    let mut successful = 0;
    for (i, case) in cases.iter().enumerate() {
        if case.refused.is_some() && !refusals {
            continue;
        }
        if case.refused.is_none() {
            successful += 1;
            if !pick(successful - 1) {
                continue;
            }
        }
        let g = dir.path().join(format!("g{i}"));
        let c = dir.path().join(format!("c{i}"));
        let gsrc = copy_template(&template, &g);
        let csrc = copy_template(&template, &c);
        (case.setup)(&g);
        (case.setup)(&c);
        let before = state(&c);
        let go = git_add(&gsrc, case.args);
        let co = cowtree_add(&csrc, case.args);
        let what = format!("{fsys:?} {:?}", case.args);
        let gerr = String::from_utf8_lossy(&go.stderr);
        let cerr = String::from_utf8_lossy(&co.stderr);
        assert_eq!(
            go.status.success(),
            co.status.success(),
            "{what}: git {} ({gerr}), cowtree {} ({cerr})",
            go.status,
            co.status
        );
        assert!(
            staging_left(&c).is_empty(),
            "{what}: {:?}",
            staging_left(&c)
        );
        match case.refused {
            None => {
                let (gs, cs) = (state(&g), state(&c));
                assert_eq!(gs, cs, "{what}: git's result and cowtree's differ\n{cerr}");
                assert!(
                    !cs.trees.is_empty() || case.args.contains(&"--no-checkout"),
                    "{what}"
                );
            }
            Some(phrase) => {
                assert!(cerr.contains(phrase), "{what}: {cerr:?} lacks {phrase:?}");
                // One message (git's own words; some take two lines, as git's do).
                assert_eq!(
                    cerr.lines().filter(|l| l.starts_with("cowtree: ")).count(),
                    1,
                    "{what}: {cerr}"
                );
                assert_eq!(
                    co.status.code(),
                    go.status.code(),
                    "{what}: git's exit status"
                );
                let after = state(&c);
                assert_eq!(before, after, "{what}: a refusal changed something");
            }
        }
        let _ = fs::remove_dir_all(&g);
        let _ = fs::remove_dir_all(&c);
    }
}

#[test]
fn every_option_matches_git_worktree_add_on_xfs() {
    run_cases(Fs::Xfs, CASES, true, |_| true);
}

/// The successful cases on a filesystem other than XFS, where only how files are made
/// differs: every one in the full tier (`COWTREE_TEST_FULL=1`, .ci/run), every third in the
/// README's run, starting at `third` (btrfs and ext4 take different thirds).
fn other_filesystem(fsys: Fs, third: usize) {
    let all = CASES.iter().filter(|c| c.refused.is_none()).count();
    let n = cowtree_testutil::fewer("cases", all as u64, all.div_ceil(3) as u64);
    let every = if n == all as u64 { 1 } else { 3 };
    run_cases(fsys, CASES, false, |k| k % every == third % every);
}

#[test]
fn every_option_matches_git_worktree_add_on_btrfs() {
    other_filesystem(Fs::Btrfs, 0);
}

#[test]
fn every_option_matches_git_worktree_add_on_ext4() {
    other_filesystem(Fs::NoCow, 1);
}
