//! Eight `cowtree git worktree add` at once from one SRC while `git status` and `git commit`
//! run in SRC: each add succeeds with a worktree `git status` finds clean, or fails with one
//! line and leaves nothing; no `index.lock` is left; and cowtree (with the `git branch` it
//! runs) never opens SRC's index or object database for writing (seen with strace). Per file
//! on XFS, and by snapshot from a SRC that is a btrfs subvolume.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::BIN;
use cowtree_testutil::git;
use cowtree_testutil::{Fs, git_cmd, scratch};

#[test]
fn eight_adds_at_once_beside_git_status_and_commit_succeed_or_fail_cleanly() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    eight_adds(dir.path(), &src, "per-file");
}

#[test]
fn eight_snapshot_adds_at_once_beside_git_status_and_commit_succeed_or_fail_cleanly() {
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let d = cowtree_fs::dir::Dir::open(dir.path()).unwrap();
    cowtree_fs::subvolume::create(
        cowtree_fs::subvolume::At::new(&d, dir.path()),
        std::ffi::OsStr::new("src"),
    )
    .unwrap();
    eight_adds(dir.path(), &dir.path().join("src"), "subvolume");
}

/// The test in `root`, SRC at `src` (an empty directory); each add that succeeds must report
/// `method`.
fn eight_adds(root: &Path, src: &Path, method: &str) {
    let src = src.to_path_buf();
    git(&src, &["init", "-q", "-b", "main"]);
    for i in 0..600 {
        let p = src.join(format!("d{}/f{i}.txt", i % 20));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("{i}\n").repeat(20)).unwrap();
    }
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "base"]);
    // Packed, as a cloned repository is: the snapshot way removes SRC's `.git` from DST.
    git(&src, &["gc", "-q"]);
    std::thread::sleep(Duration::from_millis(1100));
    git(&src, &["update-index", "-q", "--refresh"]);
    let gitdir = src.join(".git");

    // git in SRC meanwhile: status (which refreshes the index under index.lock) and commits
    // of changed files.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (stop, src) = (stop.clone(), src.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let _ = git_cmd(&src).args(["status", "--porcelain"]).output();
                fs::write(
                    src.join(format!("d{}/f{}.txt", n % 20, n % 600)),
                    format!("edit {n}\n"),
                )
                .unwrap();
                let _ = git_cmd(&src)
                    .args(["commit", "-qam", &format!("edit {n}")])
                    .output();
                n += 1;
            }
            n
        })
    };

    let children: Vec<(PathBuf, PathBuf, std::process::Child)> = (0..8)
        .map(|i| {
            let dst = root.join(format!("wt{i}"));
            let trace = root.join(format!("trace{i}"));
            let mut c =
                cowtree_testutil::strace("openat,open,creat,rename,renameat,renameat2", &trace);
            c.arg(BIN).args(["git", "worktree", "add", "-q", "--json"]);
            if method == "subvolume" {
                // Whatever the loose objects the commits meanwhile add to SRC's `.git`.
                c.arg("--subvolume");
            }
            if i % 2 == 0 {
                c.args(["-b", &format!("c{i}")]);
            } else {
                c.arg("--detach");
            }
            let child = c
                .arg(&dst)
                .current_dir(&src)
                .env_remove("COWTREE_STORE")
                .env("HOME", root.join("home"))
                .env("XDG_STATE_HOME", root.join("state"))
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (dst, trace, child)
        })
        .collect();
    let mut ok = 0;
    let mut failed = Vec::new();
    for (i, (dst, trace, child)) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            ok += 1;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["method"], method, "add {i}: {v}");
            assert_eq!(
                git(&dst, &["status", "--porcelain"]),
                "",
                "add {i}: the new worktree is not clean"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "add {i}: {err}");
            assert_eq!(err.lines().count(), 1, "add {i}: {err}");
            assert!(
                String::from_utf8_lossy(&out.stdout).starts_with("{\"error\""),
                "add {i}: {err}"
            );
            assert!(err.starts_with("cowtree: "), "add {i}: {err}");
            assert!(!dst.exists(), "add {i} failed but left {}", dst.display());
            failed.push(err);
        }
        // Nothing cowtree or its `git branch` ran opened SRC's index or objects for writing.
        let text = fs::read_to_string(&trace).unwrap();
        for line in text.lines() {
            let writes = line.contains("O_WRONLY")
                || line.contains("O_RDWR")
                || line.contains("O_CREAT")
                || line.starts_with("rename")
                || line.contains(" rename");
            let index = format!("\"{}/index", gitdir.display());
            let objects = format!("\"{}/objects/", gitdir.display());
            assert!(
                !(writes && (line.contains(&index) || line.contains(&objects))),
                "add {i} wrote to SRC's index or objects: {line}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(ok > 0, "no add succeeded: {failed:?}");
    let commits = busy.join().unwrap();
    assert!(commits > 0, "git commit never ran");
    assert!(!gitdir.join("index.lock").exists(), "index.lock left");
    let names: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".cowtree-staging.")),
        "{names:?}"
    );
    let list = git(&src, &["worktree", "list", "--porcelain"]);
    assert_eq!(
        list.lines().filter(|l| l.starts_with("worktree ")).count(),
        1 + ok,
        "{list}"
    );
    assert!(!list.contains("locked"), "{list}");
    let fsck = git_cmd(&src)
        .args(["fsck", "--no-progress"])
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    eprintln!(
        "8 adds beside {commits} commits: {ok} succeeded, {} failed: {failed:?}",
        failed.len()
    );
}
