//! Which worktree lends its files to `cowtree git worktree add` (any worktree of the
//! repository, a bare repository's too), and the registration it leaves beside the new
//! worktree, each against `git worktree add` on real XFS (and btrfs).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::bin;
use cowtree_fs::extents::extent_summary;
use cowtree_testutil::{Fs, scratch};
use serde_json::Value;

/// Bare repositories are used here where found by discovery: allowed on the command line's
/// level (`GIT_CONFIG_COUNT`), which git and gitoxide read as protected configuration, so that
/// the Git 3.0 profile's `safe.bareRepository = explicit` does not refuse them.
fn allow_bare(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.bareRepository")
        .env("GIT_CONFIG_VALUE_0", "all")
}

/// git in `dir` (a bare repository or a worktree), bare repositories allowed.
#[track_caller]
fn git(dir: &Path, args: &[&str]) -> String {
    let out = allow_bare(&mut cowtree_testutil::git_cmd(dir))
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cowtree(dir: &Path, args: &[&str]) -> Output {
    allow_bare(&mut bin())
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .args(["git", "worktree", "add", "--json"])
        .args(args)
        .output()
        .expect("run cowtree")
}

#[track_caller]
fn add_ok(dir: &Path, args: &[&str]) -> Value {
    let out = cowtree(dir, args);
    assert!(
        out.status.success(),
        "cowtree git worktree add {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn count(r: &Value, k: &str) -> u64 {
    r["counts"][k]
        .as_u64()
        .unwrap_or_else(|| panic!("{k} in {r}"))
}

/// Waits until the wall clock is in a later second, so that files written before are not
/// racy for an index written after.
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

/// [`make_repo`] and a bare clone of it, `ROOT/bare.git`.
fn make_repo_and_bare(root: &Path) -> (PathBuf, PathBuf) {
    let r = make_repo(root);
    let bare = root.join("bare.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            r.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    (r, bare)
}

/// A repository `r` in `root` with two branches: `main` (60 files) and `other` (the first 40
/// changed, a 1 MiB file added); `main` checked out.
fn make_repo(root: &Path) -> PathBuf {
    let r = root.join("r");
    fs::create_dir(&r).unwrap();
    git(&r, &["init", "-q", "-b", "main"]);
    for i in 0..60 {
        fs::write(r.join(format!("f{i:02}")), format!("file {i}\n")).unwrap();
    }
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "one"]);
    git(&r, &["checkout", "-q", "-b", "other"]);
    for i in 0..40 {
        fs::write(r.join(format!("f{i:02}")), format!("other {i}\n")).unwrap();
    }
    fs::write(r.join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "two"]);
    git(&r, &["checkout", "-q", "main"]);
    r
}

/// Every tracked path of `wt` with its bytes (symlinks: their target) and permission bits.
pub(crate) fn tracked(wt: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    git(wt, &["ls-files", "-z"])
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let path = wt.join(p);
            let m = fs::symlink_metadata(&path).unwrap();
            let data = if m.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                fs::read(&path).unwrap()
            };
            (p.to_owned(), (data, m.permissions().mode()))
        })
        .collect()
}

#[track_caller]
fn assert_same_as_git(by_git: &Path, ours: &Path) {
    assert_eq!(tracked(by_git), tracked(ours), "{}", ours.display());
    assert_eq!(
        git(ours, &["status", "--porcelain"]),
        "",
        "{}",
        ours.display()
    );
    assert_eq!(
        git(ours, &["rev-parse", "HEAD"]),
        git(by_git, &["rev-parse", "HEAD"])
    );
}

#[test]
fn a_sibling_worktree_nearer_the_target_lends_its_files_and_from_keeps_the_current_one() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let r = make_repo(dir.path());
        let sib = dir.path().join("sib");
        git(
            &r,
            &["worktree", "add", "-q", sib.to_str().unwrap(), "other"],
        );
        next_second();
        git(&sib, &["status", "-s"]);
        git(&r, &["status", "-s"]);

        // Run in the main worktree (at main), for `other`: the sibling at `other` holds all of
        // it, the main worktree 20 files of 61.
        let a = dir.path().join("a");
        let ra = add_ok(&r, &["--detach", a.to_str().unwrap(), "other"]);
        let sib_real = sib.canonicalize().unwrap();
        assert_eq!(ra["source"], sib_real.to_str().unwrap(), "{fsys:?}: {ra}");
        assert_eq!(count(&ra, "from_objects"), 0, "{fsys:?}: {ra}");
        assert_eq!(count(&ra, "cloned"), 61, "{fsys:?}: {ra}");
        let s = extent_summary(&a.join("big.bin")).unwrap();
        assert!(s.fully_shared(), "{fsys:?}: {s:?}");

        // --from keeps the current worktree, whatever the others hold.
        let b = dir.path().join("b");
        let rb = add_ok(
            &r,
            &[
                "--from",
                r.to_str().unwrap(),
                "--detach",
                b.to_str().unwrap(),
                "other",
            ],
        );
        let r_real = r.canonicalize().unwrap();
        assert_eq!(rb["source"], r_real.to_str().unwrap(), "{fsys:?}: {rb}");
        assert_eq!(count(&rb, "cloned"), 20, "{fsys:?}: {rb}");
        assert_eq!(count(&rb, "from_objects"), 41, "{fsys:?}: {rb}");

        // The current worktree is kept when it holds the target whole, even if a sibling does.
        let c = dir.path().join("c");
        let rc = add_ok(&r, &["--detach", c.to_str().unwrap(), "main"]);
        assert_eq!(rc["source"], r_real.to_str().unwrap(), "{fsys:?}: {rc}");

        let g = dir.path().join("g");
        git(
            &r,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                g.to_str().unwrap(),
                "other",
            ],
        );
        assert_same_as_git(&g, &a);
        assert_same_as_git(&g, &b);
    }
}

#[test]
fn a_bare_repository_lends_the_files_of_its_worktree_nearest_the_target() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (_, bare) = make_repo_and_bare(dir.path());
    let w_main = dir.path().join("w-main");
    let w_other = dir.path().join("w-other");
    git(
        &bare,
        &["worktree", "add", "-q", w_main.to_str().unwrap(), "main"],
    );
    git(
        &bare,
        &["worktree", "add", "-q", w_other.to_str().unwrap(), "other"],
    );
    next_second();
    git(&w_main, &["status", "-s"]);
    git(&w_other, &["status", "-s"]);

    // From the bare repository itself, and from inside another worktree's directory.
    for (n, (cwd, target)) in [(&bare, "other"), (&w_main, "other"), (&bare, "main")]
        .into_iter()
        .enumerate()
    {
        let ours = dir.path().join(format!("ours{n}"));
        let r = add_ok(
            cwd,
            &["-b", &format!("b{n}"), ours.to_str().unwrap(), target],
        );
        // A worktree whose index holds the target whole lends the files: w-main or w-other,
        // or one made earlier in this loop at the same commit.
        let source = PathBuf::from(r["source"].as_str().expect("a source"));
        assert_eq!(
            git(&source, &["rev-parse", "HEAD"]),
            git(&bare, &["rev-parse", target]),
            "{r}"
        );
        assert_ne!(source, bare.canonicalize().unwrap(), "{r}");
        assert_eq!(count(&r, "from_objects"), 0, "{r}");
        let by_git = dir.path().join(format!("git{n}"));
        git(
            cwd,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("g{n}"),
                by_git.to_str().unwrap(),
                target,
            ],
        );
        assert_same_as_git(&by_git, &ours);
    }
}

#[test]
fn a_bare_repository_without_worktrees_writes_every_file_from_objects() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (_, bare) = make_repo_and_bare(dir.path());
    let ours = dir.path().join("ours");
    let rep = add_ok(&bare, &[ours.to_str().unwrap(), "main"]);
    assert_eq!(rep["source"], Value::Null, "{rep}");
    assert_eq!(rep["reason"], "no-source", "{rep}");
    assert_eq!(count(&rep, "from_objects"), 60, "{rep}");
    // `main` is the bare repository's HEAD, which no worktree has checked out: git takes it.
    assert_eq!(rep["branch"], "main", "{rep}");
    git(&bare, &["worktree", "remove", ours.to_str().unwrap()]);
    let by_git = dir.path().join("by-git");
    git(
        &bare,
        &["worktree", "add", "-q", by_git.to_str().unwrap(), "main"],
    );
    let ours = dir.path().join("ours2");
    let out = cowtree(&bare, &["--detach", ours.to_str().unwrap(), "main"]);
    assert!(out.status.success(), "{out:?}");
    assert_same_as_git(&by_git, &ours);
    // --with-changes has no changes to carry in a bare repository.
    let none = dir.path().join("none");
    let out = cowtree(
        &bare,
        &["--with-changes", "--detach", none.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!none.exists());
}

/// What a registration directory holds, with `logs/HEAD` reduced to (old, new, message) per
/// line (the identity and time differ between two runs).
fn registration(admin: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(admin).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let v = match name.as_str() {
            "gitdir" | "index" => String::from("(present)"),
            "logs" => fs::read_to_string(p.join("HEAD"))
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    let (head, msg) = l.split_once('\t').unwrap_or((l, ""));
                    let mut w = head.split(' ');
                    format!("{} {} [{msg}]", w.next().unwrap(), w.next().unwrap())
                })
                .collect::<Vec<_>>()
                .join("\n"),
            "refs" => format!("dir with {} entries", fs::read_dir(&p).unwrap().count()),
            _ => fs::read_to_string(&p).unwrap_or_else(|_| "(not text)".into()),
        };
        out.insert(name, v);
    }
    out
}

#[test]
fn the_registration_holds_what_git_worktree_add_leaves() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (r, bare) = make_repo_and_bare(dir.path());
    let cases: &[(&Path, &[&str])] = &[
        (&r, &["-b", "N"]),
        (&r, &["--detach"]),
        (&r, &["--no-checkout", "-b", "N"]),
        (&r, &["--orphan"]),
        (&bare, &["-b", "N"]),
        (&bare, &["--detach"]),
    ];
    for (n, (repo, args)) in cases.iter().enumerate() {
        let name = |who: &str| format!("{who}{n}");
        let with = |who: &str, path: &Path| -> Vec<String> {
            let mut v: Vec<String> = args
                .iter()
                .map(|a| {
                    if *a == "N" {
                        format!("{who}-branch{n}")
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            v.push(path.to_str().unwrap().to_owned());
            v
        };
        let g = dir.path().join(name("g"));
        let gargs = with("g", &g);
        let mut cmd = vec!["worktree", "add", "-q"];
        cmd.extend(gargs.iter().map(String::as_str));
        git(repo, &cmd);
        let c = dir.path().join(name("c"));
        let cargs = with("c", &c);
        let cargs: Vec<&str> = cargs.iter().map(String::as_str).collect();
        add_ok(repo, &cargs);
        let common = if *repo == bare {
            bare.clone()
        } else {
            r.join(".git")
        };
        let (mut ga, mut ca) = (
            registration(&common.join("worktrees").join(name("g"))),
            registration(&common.join("worktrees").join(name("c"))),
        );
        // HEAD names each one's own branch.
        for m in [&mut ga, &mut ca] {
            if let Some(h) = m.get_mut("HEAD") {
                *h = h.replace("g-branch", "X").replace("c-branch", "X");
                *h = h.replace(&format!("refs/heads/{}", name("g")), "refs/heads/X");
                *h = h.replace(&format!("refs/heads/{}", name("c")), "refs/heads/X");
            }
        }
        assert_eq!(ga, ca, "{args:?} in {}", repo.display());
    }
}

/// With no identity configured (a fresh container, a CI runner, an agent's sandbox), git
/// still writes `logs/HEAD`, signed with the name and `user@host` it guesses
/// (`root <root@host.(none)>`); cowtree writes the same line, not none.
#[test]
fn with_no_identity_configured_logs_head_is_signed_as_git_signs_it() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let (r, _) = make_repo_and_bare(dir.path());
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    let unsigned = |c: &mut std::process::Command| {
        c.current_dir(&r)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config());
        for v in [
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
            "EMAIL",
        ] {
            c.env_remove(v);
        }
    };
    let mut g = std::process::Command::new("git");
    unsigned(&mut g);
    let gd = dir.path().join("g");
    let out = g
        .args(["worktree", "add", "-q", "--detach"])
        .arg(&gd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut c = bin();
    unsigned(&mut c);
    let cd = dir.path().join("c");
    let out = c
        .args(["git", "worktree", "add", "-q", "--detach"])
        .arg(&cd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Each HEAD reflog entry's identity and message, as git reads them (from logs/HEAD, or
    // the reftable stack under Git 3.0's defaults); the times differ between two runs.
    let log = |wt: &Path| -> Vec<String> {
        let out = cowtree_testutil::git_cmd(wt)
            .args(["log", "-g", "--format=%gn <%ge> [%gs]", "HEAD"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (by_git, ours) = (log(&gd), log(&cd));
    assert!(!by_git.is_empty() && by_git[0].contains('<'), "{by_git:?}");
    assert_eq!(by_git, ours);
}
