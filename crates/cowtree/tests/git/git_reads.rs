//! What git reads of a worktree: its index, as `git ls-files --stage --debug` shows it (the
//! stat data the tests compare with the files' own `lstat`), and the files `git status` opens.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use cowtree_testutil::git;

/// One index entry as `git ls-files --stage --debug` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) stage: String,
    pub(crate) path: String,
    pub(crate) ctime: String,
    pub(crate) mtime: String,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) flags: String,
}

/// Every entry of the index of worktree `wt`, as `git ls-files --stage --debug` prints them.
pub(crate) fn index_entries(wt: &Path) -> Vec<IndexEntry> {
    let out = git(wt, &["ls-files", "--stage", "--debug"]);
    let mut lines = out.lines();
    let mut v = Vec::new();
    let field = |l: &str, k: &str| -> String {
        l.split(k)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    while let Some(head) = lines.next() {
        let (stage, path) = head.split_once('\t').unwrap();
        let ctime = lines
            .next()
            .unwrap()
            .trim()
            .strip_prefix("ctime: ")
            .unwrap();
        let mtime = lines
            .next()
            .unwrap()
            .trim()
            .strip_prefix("mtime: ")
            .unwrap();
        let devino = lines.next().unwrap();
        let uidgid = lines.next().unwrap();
        let sizeflags = lines.next().unwrap();
        v.push(IndexEntry {
            stage: stage.to_owned(),
            path: path.to_owned(),
            ctime: ctime.to_owned(),
            mtime: mtime.to_owned(),
            dev: field(devino, "dev: ").parse().unwrap(),
            ino: field(devino, "ino: ").parse().unwrap(),
            uid: field(uidgid, "uid: ").parse().unwrap(),
            gid: field(uidgid, "gid: ").parse().unwrap(),
            size: field(sizeflags, "size: ").parse().unwrap(),
            flags: field(sizeflags, "flags: "),
        });
    }
    v
}

/// The paths of worktree files `git status` opens, by strace (which scripts/mounts.sh
/// installs: a missing strace fails the test rather than skipping the check).
pub(crate) fn files_git_status_opens(wt: &Path) -> Vec<String> {
    let log = wt.parent().unwrap().join("strace.log");
    let st = cowtree_testutil::strace("open,openat,openat2", &log)
        .current_dir(wt)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .args(["git", "status", "--porcelain"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run strace (scripts/mounts.sh installs it)");
    assert!(st.success(), "strace git status failed");
    let text = fs::read_to_string(&log).unwrap();
    fs::remove_file(&log).unwrap();
    text.lines()
        .filter(|l| !l.contains("O_DIRECTORY") && !l.contains("ENOENT"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .filter(|p| !p.starts_with('/') || p.starts_with(wt.to_str().unwrap()))
        .filter(|p| !p.contains(".git") && !p.ends_with(".gitignore"))
        .collect()
}
