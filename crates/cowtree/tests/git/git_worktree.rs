//! `cowtree git worktree add` against git itself, on real XFS and btrfs (and ext4 for the
//! copy fallback): the same tree as `git worktree add`, an index that lets `git status` read no
//! file, data shared with SRC, and git's own commands accepting the result.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::bin;
use crate::git_reads::{files_git_status_opens, index_entries};
use cowtree_fs::extents::extent_summary;
use cowtree_testutil::git;
use cowtree_testutil::{Fs, XorShift, git_cmd, pattern, scratch};

/// Runs `cowtree git worktree add ARGS` with SRC as the current directory.
fn add(src: &Path, args: &[&OsStr]) -> Output {
    cowtree_testutil::git_env(bin().current_dir(src))
        .args(["git", "worktree", "add"])
        .args(args)
        .output()
        .expect("run cowtree")
}

#[track_caller]
/// `cowtree git worktree add --detach DST` (human output), which must succeed; its stderr.
fn add_detached(src: &Path, dst: &Path) -> String {
    let out = add(src, &[os("--detach"), dst.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn add_ok(src: &Path, args: &[&OsStr]) -> serde_json::Value {
    let mut a: Vec<&OsStr> = vec![OsStr::new("--json")];
    a.extend_from_slice(args);
    let out = add(src, &a);
    assert!(
        out.status.success(),
        "cowtree git worktree add {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Waits until the wall clock is in a later second than now, so that files written before
/// are not racy for an index written after.
fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let s = now();
    while now() == s {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A repository at `root/src` with nested directories, an executable, symlinks, an empty
/// file and a 1 MiB file, committed; the index is written a second after the files, so no
/// entry is racy.
fn make_repo(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    for d in 0..5 {
        for f in 0..20 {
            let p = src.join(format!("d{d}/sub{}/f{f}.txt", f % 3));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, format!("file {d} {f}\n").repeat(f + 1)).unwrap();
        }
    }
    fs::write(src.join("big.bin"), pattern(1 << 20, 7)).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("d0/sub0/f0.txt", src.join("link")).unwrap();
    symlink("../nowhere", src.join("d1/dangling")).unwrap();
    fs::write(src.join(".gitignore"), b"node_modules/\n*.log\n/target/\n").unwrap();
    next_second();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "first"]);
    src
}

/// Every entry under `root` except `.git`: kind, executable bit and content.
fn tree(root: &Path) -> BTreeMap<PathBuf, (char, bool, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".git") {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let v = if m.file_type().is_symlink() {
                (
                    'l',
                    false,
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if m.is_dir() {
                stack.push(p.clone());
                ('d', false, Vec::new())
            } else {
                ('f', m.mode() & 0o111 != 0, fs::read(&p).unwrap())
            };
            out.insert(rel, v);
        }
    }
    out
}

/// Asserts that every entry of DST's index carries exactly DST's `lstat` data (`git ls-files
/// --debug` shows what git's index holds); returns the entries that are racy (a file written in
/// the index file's own second, as after git's own checkout): the only ones git may read.
#[track_caller]
fn assert_index_matches_lstat(dst: &Path) -> Vec<String> {
    let index_path = git(dst, &["rev-parse", "--git-path", "index"]);
    let index_mtime = fs::metadata(dst.join(index_path.trim())).unwrap().mtime();
    let mut n = 0;
    let mut racy = Vec::new();
    for e in index_entries(dst) {
        let path = e.path.as_str();
        let m = fs::symlink_metadata(dst.join(path)).unwrap();
        let want_ctime = format!("{}:{}", m.ctime(), m.ctime_nsec());
        let want_mtime = format!("{}:{}", m.mtime(), m.mtime_nsec());
        assert_eq!(e.ctime, want_ctime, "{path}: ctime");
        assert_eq!(e.mtime, want_mtime, "{path}: mtime");
        assert_eq!(e.ino, m.ino() & 0xffff_ffff, "{path}: inode");
        assert_eq!(e.size, m.len(), "{path}: size");
        if m.mtime() >= index_mtime {
            racy.push(e.path);
        }
        n += 1;
    }
    assert!(n > 0, "no entries in {}", dst.display());
    racy
}

#[track_caller]
fn assert_status_clean(dst: &Path) {
    assert_eq!(
        git(dst, &["status", "--porcelain"]),
        "",
        "{}",
        dst.display()
    );
}

#[test]
fn add_matches_git_worktree_add_and_git_status_reads_no_file() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = make_repo(dir.path());
        let dst = dir.path().join("dst");
        let r = add_ok(&src, &[dst.as_os_str(), os("--detach")]);
        assert_eq!(r["counts"]["entries"], 106, "{fsys:?}: {r}");
        // Every regular file is cloned; the two symlinks are made from objects.
        assert_eq!(r["counts"]["cloned"], 104, "{fsys:?}: {r}");
        assert_eq!(r["counts"]["copied"], 0, "{fsys:?}: {r}");
        assert_eq!(r["counts"]["index_stat_entries"], 106, "{fsys:?}: {r}");
        assert_eq!(r["fallback"], serde_json::Value::Null);

        let reference = dir.path().join("reference");
        git(
            &src,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                reference.to_str().unwrap(),
            ],
        );
        assert_eq!(tree(&dst), tree(&reference), "{fsys:?}");

        // SRC's files are older than its index: every one cloned keeps its time, so none is
        // racy, and git status reads no file.
        let racy = assert_index_matches_lstat(&dst);
        assert!(racy.is_empty(), "{fsys:?}: racy {racy:?}");
        let opened = files_git_status_opens(&dst);
        assert!(opened.is_empty(), "{fsys:?}: git status read {opened:?}");
        assert_status_clean(&dst);
        assert_eq!(
            git(&dst, &["rev-parse", "HEAD"]),
            git(&src, &["rev-parse", "HEAD"])
        );

        let list = git(&src, &["worktree", "list", "--porcelain"]);
        assert!(
            list.contains(&format!("worktree {}\n", dst.display())),
            "{list}"
        );
        git(&src, &["fsck", "--no-progress"]);

        // Data is shared with SRC, and a write in DST leaves SRC alone.
        let s = extent_summary(&dst.join("big.bin")).unwrap();
        assert!(s.fully_shared(), "{fsys:?}: {s:?}");
        let before = fs::read(src.join("big.bin")).unwrap();
        fs::write(dst.join("big.bin"), b"changed in dst").unwrap();
        fs::write(dst.join("d0/sub0/f0.txt"), b"changed too").unwrap();
        assert_eq!(fs::read(src.join("big.bin")).unwrap(), before);
        assert_eq!(fs::read(src.join("d0/sub0/f0.txt")).unwrap(), b"file 0 0\n");
        assert_status_clean(&src);

        // git removes it as one of its own (forced: it has changes now).
        git(
            &src,
            &["worktree", "remove", "--force", dst.to_str().unwrap()],
        );
        assert!(!dst.exists());
        let list = git(&src, &["worktree", "list", "--porcelain"]);
        assert!(
            !list.contains(&format!("worktree {}\n", dst.display())),
            "{list}"
        );
    }
}

#[test]
fn dirty_src_file_comes_from_objects_and_with_changes_carries_it() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = make_repo(dir.path());
        fs::write(src.join("d0/sub0/f0.txt"), b"uncommitted\n").unwrap();
        fs::remove_file(src.join("d2/sub1/f1.txt")).unwrap();
        let src_status = git(&src, &["status", "--porcelain"]);
        assert_eq!(src_status, " M d0/sub0/f0.txt\n D d2/sub1/f1.txt\n");

        let dst = dir.path().join("plain");
        let r = add_ok(&src, &[dst.as_os_str(), os("--detach")]);
        assert_eq!(r["counts"]["cloned"], 102, "{fsys:?}: {r}");
        assert_eq!(r["counts"]["from_objects"], 4, "{fsys:?}: {r}");
        assert_eq!(fs::read(dst.join("d0/sub0/f0.txt")).unwrap(), b"file 0 0\n");
        assert!(dst.join("d2/sub1/f1.txt").exists());
        let s = extent_summary(&dst.join("d0/sub0/f0.txt")).unwrap();
        assert_eq!(s.shared_bytes, 0, "{fsys:?}: {s:?}");
        assert_status_clean(&dst);
        assert_index_matches_lstat(&dst);

        let carried = dir.path().join("carried");
        let r = add_ok(
            &src,
            &[carried.as_os_str(), os("--detach"), os("--with-changes")],
        );
        assert_eq!(r["counts"]["carried"], 2, "{fsys:?}: {r}");
        assert_eq!(
            fs::read(carried.join("d0/sub0/f0.txt")).unwrap(),
            b"uncommitted\n"
        );
        assert!(!carried.join("d2/sub1/f1.txt").exists());
        assert_eq!(git(&carried, &["status", "--porcelain"]), src_status);
    }
}

/// `git status --porcelain=v2` without untracked entries (which are never carried), and the
/// untracked lines apart.
fn status_v2(dir: &Path) -> (String, Vec<String>) {
    let out = git(dir, &["status", "--porcelain=v2"]);
    let (untracked, tracked): (Vec<&str>, Vec<&str>) =
        out.lines().partition(|l| l.starts_with("? "));
    (
        tracked.join("\n"),
        untracked.into_iter().map(str::to_owned).collect(),
    )
}

/// SRC with every kind of uncommitted change git knows: unstaged, staged, staged then changed
/// again, added, added then changed, intent-to-add, deleted in the worktree only, `git rm`,
/// `git rm --cached`, a rename, mode changes staged and unstaged, a type change, a changed
/// symlink target, and an untracked file.
fn make_every_change(src: &Path) {
    let chmod = |p: &str, mode: u32| {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(mode)).unwrap()
    };
    fs::write(src.join("d0/sub0/f0.txt"), b"unstaged\n").unwrap();
    fs::write(src.join("d0/sub1/f1.txt"), b"staged\n").unwrap();
    fs::write(src.join("d0/sub2/f2.txt"), b"staged\n").unwrap();
    fs::write(src.join("new.txt"), b"added\n").unwrap();
    fs::write(src.join("d4/new2.txt"), b"added\n").unwrap();
    fs::write(src.join("ita.txt"), b"intent to add\n").unwrap();
    chmod("d1/sub1/f1.txt", 0o755);
    fs::remove_file(src.join("d1/dangling")).unwrap();
    symlink("../elsewhere", src.join("d1/dangling")).unwrap();
    git(
        src,
        &[
            "add",
            "d0/sub1/f1.txt",
            "d0/sub2/f2.txt",
            "new.txt",
            "d4/new2.txt",
            "d1/sub1/f1.txt",
            "d1/dangling",
        ],
    );
    git(src, &["add", "-N", "ita.txt"]);
    git(src, &["rm", "-q", "d3/sub0/f0.txt"]);
    git(src, &["rm", "-q", "--cached", "d3/sub0/f3.txt"]);
    git(src, &["mv", "d4/sub0/f0.txt", "moved.txt"]);
    fs::write(src.join("d0/sub2/f2.txt"), b"staged, then changed again\n").unwrap();
    fs::write(src.join("d4/new2.txt"), b"added, then changed\n").unwrap();
    fs::remove_file(src.join("d2/sub1/f1.txt")).unwrap();
    chmod("d1/sub0/f0.txt", 0o755);
    fs::remove_file(src.join("link")).unwrap();
    fs::write(src.join("link"), b"a file where a symlink was\n").unwrap();
    fs::write(src.join("untracked.txt"), b"never carried\n").unwrap();
}

#[test]
fn with_changes_gives_dst_the_status_and_diffs_of_src_for_every_kind_of_change() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = make_repo(dir.path());
        make_every_change(&src);
        let (src_status, src_untracked) = status_v2(&src);
        // Every kind above shows in SRC's status, so that DST's is compared on all of them.
        for want in [
            " .M N... 100644 100644 100644 ",
            " M. N... 100644 100644 100644 ",
            " MM N... 100644 100644 100644 ",
            " A. N... 000000 100644 100644 ",
            " AM N... 000000 100644 100644 ",
            " .A N... 000000 000000 100644 ",
            " .D N... 100644 100644 000000 ",
            " D. N... 100644 000000 000000 ",
            " M. N... 100644 100755 100755 ",
            " .M N... 100644 100644 100755 ",
            " M. N... 120000 120000 120000 ",
            " .T N... 120000 120000 100644 ",
        ] {
            assert!(src_status.contains(want), "{want:?} in\n{src_status}");
        }
        assert!(src_status.contains("\n2 R. "), "{src_status}");
        assert_eq!(src_untracked.len(), 2, "{src_untracked:?}");

        let dst = dir.path().join("dst");
        let r = add_ok(
            &src,
            &[dst.as_os_str(), os("--detach"), os("--with-changes")],
        );
        let (dst_status, dst_untracked) = status_v2(&dst);
        assert_eq!(dst_status, src_status, "{fsys:?}: {r}");
        assert_eq!(dst_untracked, Vec::<String>::new(), "{fsys:?}");
        for args in [&["diff"][..], &["diff", "--cached"], &["diff", "HEAD"]] {
            assert_eq!(git(&dst, args), git(&src, args), "{fsys:?}: git {args:?}");
        }
        assert_eq!(
            git(&dst, &["ls-files", "--stage"]),
            git(&src, &["ls-files", "--stage"]),
            "{fsys:?}"
        );
        git(&dst, &["fsck", "--no-progress"]);
        assert!(!dst.join("untracked.txt").exists());
        assert!(!dst.join("d3/sub0/f3.txt").exists());
        assert_eq!(
            fs::read(dst.join("d0/sub2/f2.txt")).unwrap(),
            b"staged, then changed again\n"
        );
        let mode = |p: &str| fs::metadata(dst.join(p)).unwrap().permissions().mode() & 0o111;
        assert_eq!(mode("d1/sub0/f0.txt"), 0o111);
        assert_eq!(mode("d1/sub1/f1.txt"), 0o111);
        assert!(
            r["counts"]["carried"].as_u64().unwrap() >= 6,
            "{fsys:?}: {r}"
        );

        if fsys == Fs::NoCow {
            assert_ne!(r["fallback"], serde_json::Value::Null, "{fsys:?}: {r}");
        } else {
            let s = extent_summary(&dst.join("big.bin")).unwrap();
            assert!(s.fully_shared(), "{fsys:?}: {s:?}");
        }
        // git reads no file but those SRC's index could not vouch for (changed ones).
        // The paths SRC's status names: the last field of each line, and a rename's origin.
        let changed: Vec<&str> = src_status
            .lines()
            .flat_map(|l| l.rsplit(' ').next().unwrap_or(l).split('\t'))
            .collect();
        for p in &files_git_status_opens(&dst) {
            let rel = p.strip_prefix(&format!("{}/", dst.display())).unwrap_or(p);
            assert!(changed.contains(&rel), "{fsys:?}: git status read {p}");
        }
        // A write in DST stays there.
        fs::write(dst.join("new.txt"), b"changed in dst\n").unwrap();
        assert_eq!(fs::read(src.join("new.txt")).unwrap(), b"added\n");
        git(
            &src,
            &["worktree", "remove", "--force", dst.to_str().unwrap()],
        );
        if fsys == Fs::NoCow {
            // Every tracked file dirty: each is carried, none cloned, and the copies are
            // still reported.
            for p in git(&src, &["ls-files"]).lines() {
                let p = src.join(p);
                if fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    let mut data = fs::read(&p).unwrap();
                    data.extend_from_slice(b"dirty\n");
                    fs::write(&p, data).unwrap();
                }
            }
            let all = dir.path().join("all-dirty");
            let out = add(
                &src,
                &[os("--detach"), os("--with-changes"), all.as_os_str()],
            );
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{err}");
            assert_eq!(err.matches("copied, not reflinked").count(), 1, "{err}");
            let summary = String::from_utf8_lossy(&out.stdout);
            assert!(summary.contains(" 0 cloned, 0 copied"), "{summary}");
            let (all_status, _) = status_v2(&all);
            assert_eq!(all_status, status_v2(&src).0);
        }
    }
}

#[test]
fn with_changes_onto_another_commit_or_over_a_conflict_is_refused_and_leaves_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    fs::write(src.join("d0/sub0/f0.txt"), b"second\n").unwrap();
    git(&src, &["commit", "-qam", "second"]);
    fs::write(src.join("d0/sub0/f1.txt"), b"uncommitted\n").unwrap();
    let dst = dir.path().join("dst");
    let out = add(
        &src,
        &[
            dst.as_os_str(),
            os("HEAD~1"),
            os("--detach"),
            os("--with-changes"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--with-changes carries SRC's changes only onto SRC's HEAD"),
        "{err}"
    );
    assert!(!dst.exists());
    // The same commit by another name is SRC's HEAD: accepted.
    let head = git(&src, &["rev-parse", "HEAD"]);
    let ok = dir.path().join("ok");
    add_ok(
        &src,
        &[
            ok.as_os_str(),
            os(head.trim()),
            os("--detach"),
            os("--with-changes"),
        ],
    );
    assert_eq!(status_v2(&ok).0, status_v2(&src).0);

    // A merge stopped on a conflict.
    git(&src, &["checkout", "-q", "-b", "other", "HEAD~1"]);
    fs::write(src.join("d0/sub0/f0.txt"), b"other\n").unwrap();
    git(&src, &["commit", "-qam", "other"]);
    let merged = git_cmd(&src)
        .args(["merge", "-q", "main"])
        .output()
        .unwrap();
    assert!(!merged.status.success());
    let out = add(
        &src,
        &[dst.as_os_str(), os("--detach"), os("--with-changes")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}: unresolved conflict",
            src.join("d0/sub0/f0.txt").display()
        )),
        "{err}"
    );
    assert!(!dst.exists());
}

#[test]
fn a_racy_src_entry_is_hashed_not_trusted_and_a_changed_one_comes_from_objects() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = make_repo(dir.path());
        // The index's mtime equal to one file's, to the nanosecond: the entry is racy (a
        // write after the index in the same clock tick would not show in its stat data), so
        // its stat data proves nothing; the file has its blob's size, so its copy is hashed.
        let f = src.join("d3/sub2/f2.txt");
        let m = fs::metadata(&f).unwrap();
        let index = src.join(".git/index");
        let set_index_mtime = |secs: i64, nsecs: i64| {
            let idx = fs::File::options().write(true).open(&index).unwrap();
            let t = std::time::UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32);
            idx.set_times(fs::FileTimes::new().set_modified(t)).unwrap();
        };
        set_index_mtime(m.mtime(), m.mtime_nsec());
        let dst = dir.path().join("dst");
        let r = add_ok(&src, &[dst.as_os_str(), os("--detach")]);
        let n = |k: &str| r["counts"][k].as_u64().unwrap();
        assert!(n("reused_after_hash") >= 1, "{fsys:?}: {r}");
        assert_eq!(n("hash_mismatches"), 0, "{fsys:?}: {r}");
        assert_eq!(
            n("reused_on_stat") + n("reused_after_hash"),
            104,
            "{fsys:?}: {r}"
        );
        assert_status_clean(&dst);

        // The same file changed behind git's back, to another content of the same size,
        // its mtime set back: its ctime moved, so the hash decides, and rejects it.
        fs::write(&f, "FILE 3 2\n".repeat(3)).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().len(), m.len());
        cowtree_testutil::tree::set_mtime(&f, m.mtime(), m.mtime_nsec());
        let dst = dir.path().join("dst2");
        let r = add_ok(&src, &[dst.as_os_str(), os("--detach")]);
        assert_eq!(r["counts"]["hash_mismatches"], 1, "{fsys:?}: {r}");
        assert_eq!(
            fs::read(dst.join("d3/sub2/f2.txt")).unwrap(),
            "file 3 2\n".repeat(3).as_bytes()
        );
        let s = extent_summary(&dst.join("d3/sub2/f2.txt")).unwrap();
        assert_eq!(s.shared_bytes, 0, "{fsys:?}: {s:?}");
        assert_status_clean(&dst);
    }
}

#[test]
fn branch_options_follow_git() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    let head = git(&src, &["rev-parse", "HEAD"]);

    // -b: a new branch at HEAD.
    let a = dir.path().join("a");
    let r = add_ok(&src, &[os("-b"), os("topic"), a.as_os_str()]);
    assert_eq!(r["branch"], "topic");
    assert_eq!(r["branch_created"], true);
    assert_eq!(git(&a, &["symbolic-ref", "HEAD"]), "refs/heads/topic\n");
    assert_eq!(git(&src, &["rev-parse", "topic"]), head);
    assert_status_clean(&a);

    // -b with an existing branch is refused, and nothing is left; the status is git's (its
    // `git branch` fails: 255).
    let b = dir.path().join("b");
    let out = add(&src, &[os("-b"), os("topic"), b.as_os_str()]);
    assert_eq!(out.status.code(), Some(255));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a branch named 'topic' already exists"),
        "{err}"
    );
    assert!(!b.exists());

    // No -b and no COMMIT-ISH: the branch named after DST, created from HEAD.
    let c = dir.path().join("c");
    let r = add_ok(&src, &[c.as_os_str()]);
    assert_eq!(r["branch"], "c");
    assert_eq!(git(&c, &["symbolic-ref", "HEAD"]), "refs/heads/c\n");

    // A COMMIT-ISH naming a branch checked out elsewhere is refused, as git refuses it (and
    // with its status).
    let d = dir.path().join("d");
    let out = add(&src, &[d.as_os_str(), os("topic")]);
    assert_eq!(out.status.code(), Some(128));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'topic' is already used by worktree at"),
        "{err}"
    );
    assert!(!d.exists());

    // --detach at a tag-like COMMIT-ISH.
    let e = dir.path().join("e");
    let r = add_ok(&src, &[os("--detach"), e.as_os_str(), os("HEAD")]);
    assert_eq!(r["detached"], true);
    assert_eq!(git(&e, &["rev-parse", "HEAD"]), head);
    let sym = git_cmd(&e)
        .args(["symbolic-ref", "-q", "HEAD"])
        .output()
        .unwrap();
    assert!(!sym.status.success(), "HEAD must be detached");

    // SRC may itself be a linked worktree: its own index and HEAD are the ones used.
    fs::write(a.join("d0/sub0/f0.txt"), b"dirty in a\n").unwrap();
    let f = dir.path().join("from-linked");
    let r = add_ok(&a, &[os("--detach"), f.as_os_str()]);
    assert_eq!(r["counts"]["cloned"], 103, "{r}");
    assert_eq!(fs::read(f.join("d0/sub0/f0.txt")).unwrap(), b"file 0 0\n");
    assert_status_clean(&f);
    git(&src, &["worktree", "remove", f.to_str().unwrap()]);

    let list = git(&src, &["worktree", "list"]);
    assert_eq!(list.lines().count(), 4, "{list}");
    git(&src, &["worktree", "prune"]);
    assert_eq!(git(&src, &["worktree", "list"]).lines().count(), 4);
}

#[test]
fn other_commit_takes_changed_files_from_objects_and_clones_the_rest() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = make_repo(dir.path());
        let first = git(&src, &["rev-parse", "HEAD"]).trim().to_owned();
        fs::write(src.join("d0/sub0/f0.txt"), b"second version\n").unwrap();
        fs::remove_file(src.join("d1/sub1/f1.txt")).unwrap();
        fs::write(src.join("new.txt"), b"new\n").unwrap();
        fs::set_permissions(
            src.join("d2/sub2/f2.txt"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        next_second();
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "second"]);

        let dst = dir.path().join("old");
        let r = add_ok(&src, &[os("--detach"), dst.as_os_str(), os(&first)]);
        // f0 differs, f1 is not in SRC's index: both from objects. f2 only changed mode: same
        // blob, cloned, and given the old mode.
        assert_eq!(r["counts"]["cloned"], 102, "{fsys:?}: {r}");
        assert_eq!(r["counts"]["from_objects"], 4, "{fsys:?}: {r}");
        let reference = dir.path().join("reference");
        git(
            &src,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                reference.to_str().unwrap(),
                &first,
            ],
        );
        assert_eq!(tree(&dst), tree(&reference), "{fsys:?}");
        assert!(!dst.join("new.txt").exists());
        assert_index_matches_lstat(&dst);
        assert_status_clean(&dst);
        let s = extent_summary(&dst.join("big.bin")).unwrap();
        assert!(s.fully_shared(), "{fsys:?}: {s:?}");
    }
}

#[test]
fn ignored_entries_are_cloned_without_nested_repositories_or_untracked_files() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = make_repo(dir.path());
        let nm = src.join("node_modules");
        fs::create_dir_all(nm.join("pkg/bin")).unwrap();
        fs::write(nm.join("pkg/index.js"), pattern(200_000, 3)).unwrap();
        fs::write(nm.join("pkg/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(nm.join("pkg/bin/tool"), fs::Permissions::from_mode(0o750)).unwrap();
        symlink("../pkg/bin/tool", nm.join("tool-link")).unwrap();
        // A nested repository and a nested linked worktree inside the ignored directory.
        fs::create_dir(nm.join("nested")).unwrap();
        git(&nm.join("nested"), &["init", "-q"]);
        fs::write(nm.join("nested/secret"), b"x").unwrap();
        git(
            &src,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                nm.join("wt").to_str().unwrap(),
            ],
        );
        fs::create_dir_all(src.join("target/debug")).unwrap();
        fs::write(src.join("target/debug/app"), pattern(300_000, 4)).unwrap();
        fs::write(src.join("d0/build.log"), b"log\n").unwrap();
        fs::write(src.join("untracked.txt"), b"not ignored\n").unwrap();
        fs::create_dir(src.join("untracked_dir")).unwrap();
        fs::write(
            src.join("untracked_dir/x.log"),
            b"ignored inside untracked\n",
        )
        .unwrap();
        fs::write(src.join("untracked_dir/y"), b"untracked\n").unwrap();

        let dst = dir.path().join("all");
        let r = add_ok(&src, &[os("--detach"), os("--ignored"), dst.as_os_str()]);
        assert_eq!(
            fs::read(dst.join("node_modules/pkg/index.js")).unwrap(),
            pattern(200_000, 3)
        );
        let m = fs::metadata(dst.join("node_modules/pkg/bin/tool")).unwrap();
        assert_eq!(m.mode() & 0o777, 0o750);
        assert_eq!(
            fs::metadata(src.join("node_modules/pkg/bin/tool"))
                .unwrap()
                .mtime_nsec(),
            m.mtime_nsec()
        );
        assert_eq!(
            fs::read_link(dst.join("node_modules/tool-link")).unwrap(),
            Path::new("../pkg/bin/tool")
        );
        assert!(!dst.join("node_modules/nested").exists());
        assert!(!dst.join("node_modules/wt").exists());
        assert!(dst.join("target/debug/app").exists());
        assert!(dst.join("d0/build.log").exists());
        assert!(dst.join("untracked_dir/x.log").exists());
        assert!(!dst.join("untracked_dir/y").exists());
        assert!(!dst.join("untracked.txt").exists());
        let nested = r["nested_repos_skipped"].as_array().unwrap();
        assert_eq!(nested.len(), 2, "{r}");
        let s = extent_summary(&dst.join("target/debug/app")).unwrap();
        assert!(s.fully_shared(), "{fsys:?}: {s:?}");
        assert_status_clean(&dst);
        assert_eq!(
            git(&dst, &["status", "--porcelain", "--ignored"])
                .lines()
                .count(),
            4,
            "node_modules/, target/, d0/build.log, untracked_dir/"
        );

        // With a pattern only the matching ignored entries come.
        let only = dir.path().join("only");
        add_ok(
            &src,
            &[os("--detach"), os("--ignored=target"), only.as_os_str()],
        );
        assert!(only.join("target/debug/app").exists());
        assert!(!only.join("node_modules").exists());
        assert!(!only.join("d0/build.log").exists());
    }
}

#[test]
fn submodule_is_left_as_an_empty_directory_with_a_message() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    let head = git(&src, &["rev-parse", "HEAD"]).trim().to_owned();
    git(
        &src,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{head},sub"),
        ],
    );
    git(&src, &["commit", "-qm", "submodule"]);
    let dst = dir.path().join("dst");
    let err = add_detached(&src, &dst);
    assert!(err.contains("submodule sub is not handled"), "{err}");
    assert_eq!(fs::read_dir(dst.join("sub")).unwrap().count(), 0);
    assert_status_clean(&dst);
}

#[test]
fn bad_input_is_refused_with_the_path_and_leaves_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let dst = dir.path().join("dst");
    let existing = src.join("d0");
    // cowtree's own refusal exits 1; those git makes too exit with git's status (128).
    let cases: Vec<(Vec<&OsStr>, String, i32)> = vec![
        (
            vec![os("--from"), plain.as_os_str(), dst.as_os_str()],
            format!("{}: not a git worktree", plain.display()),
            1,
        ),
        (
            vec![dst.as_os_str(), os("no-such-rev")],
            "invalid reference: no-such-rev".to_owned(),
            128,
        ),
        (
            vec![existing.as_os_str(), os("--detach")],
            format!("'{}' already exists", existing.display()),
            128,
        ),
    ];
    for (args, want, code) in cases {
        let out = add(&src, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("cowtree: ") && err.contains(&want),
            "{args:?}: {err}"
        );
        assert!(!dst.exists());
    }
    assert!(
        !src.join(".git/worktrees").exists()
            || fs::read_dir(src.join(".git/worktrees")).unwrap().count() == 0
    );
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().contains("cowtree-staging")),
        "{names:?}"
    );
}

#[test]
fn files_git_filters_on_checkout_are_written_through_the_filters_not_cloned() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    fs::write(src.join(".gitattributes"), "*.crlf eol=crlf\n*.id ident\n").unwrap();
    // Written by hand: SRC holds the blob's bytes, which a checkout would not write.
    fs::write(src.join("b.crlf"), "x\ny\n").unwrap();
    // `ident` without a keyword changes nothing.
    fs::write(src.join("a.id"), "no keyword\n").unwrap();
    next_second();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "filters"]);
    next_second();
    assert_status_clean(&src);
    let dst = dir.path().join("dst");
    let r = add_ok(&src, &[dst.as_os_str(), os("--detach")]);
    // The two files with filter attributes and the two symlinks; .gitattributes is cloned.
    assert_eq!(r["counts"]["from_objects"], 4, "{r}");
    let by_git = dir.path().join("by-git");
    git(
        &src,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            by_git.to_str().unwrap(),
        ],
    );
    assert_eq!(fs::read(by_git.join("b.crlf")).unwrap(), b"x\r\ny\r\n");
    assert_eq!(tree(&dst), tree(&by_git));
    assert_index_matches_lstat(&dst);
    assert_status_clean(&dst);

    // A keyword `ident` expands as git expands it (`$Id: <id> $`).
    fs::write(src.join("a.id"), "$Id$\n").unwrap();
    next_second();
    git(&src, &["commit", "-qam", "keyword"]);
    let dst2 = dir.path().join("dst2");
    add_ok(&src, &[dst2.as_os_str(), os("--detach")]);
    let by_git2 = dir.path().join("by-git2");
    git(
        &src,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            by_git2.to_str().unwrap(),
        ],
    );
    let id = git(&src, &["rev-parse", "HEAD:a.id"]);
    assert_eq!(
        fs::read_to_string(dst2.join("a.id")).unwrap(),
        format!("$Id: {} $\n", id.trim())
    );
    assert_eq!(tree(&dst2), tree(&by_git2));
    assert_status_clean(&dst2);
}

/// The index of `wt` as `git ls-files --stage -v -t --sparse` lists it (modes, ids, the
/// skip-worktree and assume-unchanged tags), with the sparse patterns git lists.
fn index_listing(wt: &Path) -> (String, String) {
    let patterns = cowtree_testutil::git_cmd(wt)
        .args(["sparse-checkout", "list"])
        .output()
        .unwrap();
    (
        git(wt, &["ls-files", "--stage", "-v", "-t", "--sparse"]),
        String::from_utf8_lossy(&patterns.stdout).into_owned(),
    )
}

/// A sparse SRC gives the sparse worktree `git worktree add` gives, made by cowtree: a
/// skip-worktree entry alone (no sparse checkout: a full worktree), cone patterns, a sparse
/// index, non-cone patterns; the files, the index's entries and flags, and the patterns git
/// lists are git's, and nothing outside the patterns is written.
#[test]
fn sparse_checkout_src_gives_the_sparse_worktree_git_gives() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    let mut n = 0;
    let mut same_as_git = |what: &str| {
        n += 1;
        let dst = dir.path().join(format!("dst{n}"));
        let r = add_ok(&src, &[dst.as_os_str(), os("--detach")]);
        assert_eq!(r["made_by"], "cowtree", "{what}: {r}");
        let by_git = dir.path().join(format!("by-git{n}"));
        git(
            &src,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                by_git.to_str().unwrap(),
            ],
        );
        assert_eq!(tree(&dst), tree(&by_git), "{what}");
        assert_eq!(index_listing(&dst), index_listing(&by_git), "{what}");
        assert_status_clean(&dst);
        git(&dst, &["fsck", "--no-progress"]);
        r
    };
    // A skip-worktree entry alone (as `git update-index --skip-worktree` leaves it).
    git(&src, &["update-index", "--skip-worktree", "d0/sub0/f0.txt"]);
    let r = same_as_git("a skip-worktree entry");
    assert_eq!(r["counts"]["skipped"], 0, "{r}");
    git(
        &src,
        &["update-index", "--no-skip-worktree", "d0/sub0/f0.txt"],
    );
    git(&src, &["sparse-checkout", "set", "--cone", "d1"]);
    assert!(!src.join("d0").exists(), "git made SRC sparse");
    let r = same_as_git("cone");
    assert!(r["counts"]["skipped"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["reason"], "sparse", "{r}");
    git(
        &src,
        &["sparse-checkout", "set", "--cone", "--sparse-index", "d1"],
    );
    same_as_git("cone, sparse index");
    git(
        &src,
        &["sparse-checkout", "set", "--no-cone", "/d0/sub0/", "*.bin"],
    );
    same_as_git("non-cone");
    // Back to a full checkout.
    git(&src, &["sparse-checkout", "disable"]);
    next_second();
    git(&src, &["status", "--porcelain"]);
    let r = same_as_git("disabled");
    assert_eq!(r["counts"]["skipped"], 0, "{r}");
}

#[test]
fn host_filesystem_copies_says_so_once_and_strict_refuses() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let src = make_repo(dir.path());
    let dst = dir.path().join("dst");
    let err = add_detached(&src, &dst);
    assert_eq!(err.matches("copied, not reflinked").count(), 1, "{err}");
    assert_status_clean(&dst);
    assert_index_matches_lstat(&dst);

    let strict = dir.path().join("strict");
    let out = add(&src, &[os("--detach"), os("--strict"), strict.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!strict.exists());
    let list = git(&src, &["worktree", "list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn kill_at_random_points_then_prune_and_rerun_gives_a_clean_worktree() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    // More files, so that a run lasts long enough to be killed inside.
    for i in 0..1500 {
        let p = src.join(format!("many/{}/{i}", i % 40));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("{i}\n")).unwrap();
    }
    next_second();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "many"]);
    let dst = dir.path().join("dst");
    let t = Instant::now();
    add_ok(&src, &[os("--detach"), dst.as_os_str()]);
    let full = t.elapsed().as_micros() as u64;
    git(&src, &["worktree", "remove", dst.to_str().unwrap()]);

    let mut rng = XorShift::from_clock("kill points");
    let mut killed = 0;
    // 12 rounds in the full tier, 6 in the README's run (`cowtree_testutil::rounds`).
    let rounds = cowtree_testutil::rounds(12, 6);
    for _ in 0..rounds {
        let mut child = bin()
            .current_dir(&src)
            .args(["git", "worktree", "add", "-q", "--detach"])
            .arg(&dst)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(full.max(1))));
        let _ = child.kill();
        let st = child.wait().unwrap();
        if st.code().is_none() {
            killed += 1;
        }
        git(&src, &["worktree", "prune"]);
        if dst.exists() {
            // The kill came after the rename: the worktree is complete (perhaps still marked
            // locked, which only the last step removes).
            assert_status_clean(&dst);
            git(
                &src,
                &["worktree", "remove", "-f", "-f", dst.to_str().unwrap()],
            );
            continue;
        }
        add_ok(&src, &[os("--detach"), dst.as_os_str()]);
        assert_status_clean(&dst);
        let list = git(&src, &["worktree", "list", "--porcelain"]);
        assert_eq!(list.matches("worktree ").count(), 2, "{list}");
        assert!(!list.contains("locked"), "{list}");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("cowtree-staging"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        git(&src, &["worktree", "remove", dst.to_str().unwrap()]);
    }
    println!("killed {killed} of {rounds} runs");
    git(&src, &["fsck", "--no-progress"]);
}

#[test]
fn dst_on_another_filesystem_copies_with_one_message() {
    let Some(a) = scratch(Fs::Xfs) else { return };
    let Some(b) = scratch(Fs::Xfs2) else { return };
    let src = make_repo(a.path());
    let dst = b.path().join("dst");
    let err = add_detached(&src, &dst);
    assert_eq!(err.matches("copied, not reflinked").count(), 1, "{err}");
    assert!(err.contains("different filesystems"), "{err}");
    assert_eq!(fs::read(dst.join("big.bin")).unwrap(), pattern(1 << 20, 7));
    assert_status_clean(&dst);
    assert_index_matches_lstat(&dst);
}

/// An untracked cache in SRC's index (without `core.untrackedCache` set) is SRC's own: git's
/// new worktree has none, and neither has cowtree's. (With `core.untrackedCache=true` git's
/// new index gets one: that worktree is made by git, see facts.rs.)
#[test]
fn untracked_cache_and_fsmonitor_data_are_not_carried_into_dst_index() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    git(&src, &["update-index", "--untracked-cache"]);
    git(&src, &["status", "--porcelain"]);
    let src_index = fs::read(src.join(".git/index")).unwrap();
    assert!(
        src_index.windows(4).any(|w| w == b"UNTR"),
        "SRC has an untracked cache"
    );
    let dst = dir.path().join("dst");
    let r = add_ok(&src, &[os("--detach"), dst.as_os_str()]);
    assert_eq!(r["made_by"], "cowtree", "{r}");
    let by_git = dir.path().join("by-git");
    git(
        &src,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            by_git.to_str().unwrap(),
        ],
    );
    let git_index = fs::read(src.join(".git/worktrees/by-git/index")).unwrap();
    assert!(!git_index.windows(4).any(|w| w == b"UNTR"), "git's has one");
    let admin = git(&dst, &["rev-parse", "--git-dir"]);
    let dst_index = fs::read(Path::new(admin.trim()).join("index")).unwrap();
    for ext in [b"UNTR", b"FSMN"] {
        assert!(
            !dst_index.windows(4).any(|w| w == ext),
            "{:?} in DST's index",
            ext
        );
    }
    // SRC's cache-tree is valid for HEAD, so DST's index keeps it (git status then need not
    // read HEAD's trees).
    assert!(
        dst_index.windows(4).any(|w| w == b"TREE"),
        "no cache-tree in DST's index"
    );
    assert_index_matches_lstat(&dst);
    assert_status_clean(&dst);
}

/// `cowtree git worktree remove` of a worktree that is a btrfs subvolume: deleted as a subvolume
/// when git would remove it, refused with git's own message when git refuses (changes without
/// -f, locked without -f -f), and git's registration removed as git removes it.
#[test]
fn remove_of_a_subvolume_worktree_deletes_the_subvolume_after_git_checks() {
    use cowtree_fs::dir::Dir;
    use cowtree_fs::subvolume::{self, At};
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    let src = make_repo(dir.path());
    let run = |args: &[&str]| {
        bin()
            .current_dir(&src)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
            .args(["git", "worktree", "remove"])
            .args(args)
            .output()
            .unwrap()
    };
    let parent = Dir::open(dir.path()).unwrap();
    let make = |name: &str| -> PathBuf {
        subvolume::create(At::new(&parent, dir.path()), OsStr::new(name)).unwrap();
        let p = dir.path().join(name);
        // git accepts an empty directory as DST.
        git(
            &src,
            &["worktree", "add", "-q", "--detach", p.to_str().unwrap()],
        );
        let d = Dir::open(&p).unwrap();
        assert!(subvolume::is_root(At::new(&d, &p)).unwrap());
        p
    };

    let clean = make("sub-clean");
    let out = run(&[clean.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!clean.exists());
    assert!(!git(&src, &["worktree", "list", "--porcelain"]).contains("sub-clean"));
    assert!(!src.join(".git/worktrees/sub-clean").exists());

    // Changes: git's refusal, and the subvolume stays; -f removes it.
    let dirty = make("sub-dirty");
    fs::write(dirty.join("d0/sub0/f0.txt"), "changed\n").unwrap();
    let out = run(&[dirty.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("contains modified or untracked files"),
        "{err}"
    );
    assert!(dirty.join("d0/sub0/f0.txt").exists());
    let out = run(&["-f", dirty.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dirty.exists());

    // Locked: refused with -f, removed with -f -f.
    let locked = make("sub-locked");
    git(&src, &["worktree", "lock", locked.to_str().unwrap()]);
    let out = run(&["-f", locked.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    assert!(locked.join(".git").exists());
    let out = run(&["-f", "-f", locked.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!locked.exists());
    git(&src, &["worktree", "prune"]);
    assert_eq!(git(&src, &["worktree", "list"]).lines().count(), 1);
    let fsck = git_cmd(&src).args(["fsck"]).output().unwrap();
    assert!(fsck.status.success());
}

/// The entries of `dst` that git does not track there (`git ls-files -o`, ignored ones
/// included, directories as `dir/`), sorted.
fn untracked_in(dst: &Path) -> Vec<String> {
    let out = git(
        dst,
        &[
            "ls-files",
            "--others",
            "--directory",
            "--no-empty-directory",
        ],
    );
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    v
}

/// `.worktreeinclude` (gitignore syntax) picks the ignored entries DST gets: nested and
/// anchored patterns, negations, `**`, a directory taken whole, a symlinked directory copied
/// as a symlink; never a tracked file (it comes from the commit) nor an untracked file git
/// does not ignore; `--ignored=PATTERN` adds, `--no-ignored` takes none.
#[test]
fn worktreeinclude_takes_the_ignored_entries_it_names_and_nothing_else() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    let write = |rel: &str, data: &[u8]| {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    write(
        ".gitignore",
        b".env*\n*.local.json\nsecrets/\nbuild/\nnode_modules/\n/linkdir\n/real/\n",
    );
    write(
        ".worktreeinclude",
        b"# what a new worktree needs\n.env*\n!.env.example\nconfig/*.local.json\n**/secrets/\nlinkdir\nbuild/\n!build/tmp/\ntodo.txt\n",
    );
    write("app.txt", b"tracked\n");
    // A tracked file the patterns match: it comes from the commit, not from SRC's copy.
    write("config/app.local.json", b"{\"committed\": true}\n");
    git(&src, &["add", "-A"]);
    git(&src, &["add", "-f", "config/app.local.json"]);
    git(&src, &["commit", "-qm", "one"]);
    fs::write(src.join("config/app.local.json"), b"{\"edited\": true}\n").unwrap();
    write(".env", b"TOKEN=1\n");
    fs::set_permissions(src.join(".env"), fs::Permissions::from_mode(0o600)).unwrap();
    write(".env.local", b"LOCAL=1\n");
    write(".env.example", b"TOKEN=\n");
    write("config/db.local.json", b"{}\n");
    write("web/config/x.local.json", b"{}\n");
    write("deep/a/secrets/key", b"k\n");
    write("node_modules/pkg/index.js", b"js\n");
    write("build/out.bin", &pattern(256 << 10, 3));
    write("build/tmp/x", b"x\n");
    write("real/inside.txt", b"i\n");
    symlink("real", src.join("linkdir")).unwrap();
    // Matches .worktreeinclude but git does not ignore it: never copied.
    write("todo.txt", b"not ignored\n");
    next_second();
    git(&src, &["update-index", "-q", "--refresh"]);

    let dst = dir.path().join("dst");
    let r = add_ok(&src, &[os("--detach"), dst.as_os_str()]);
    assert_eq!(
        untracked_in(&dst),
        [
            ".env",
            ".env.local",
            "build/",
            "config/db.local.json",
            "deep/",
            "linkdir"
        ],
        "{r}"
    );
    assert!(dst.join("deep/a/secrets/key").is_file());
    assert!(
        dst.join("build/tmp/x").is_file(),
        "a directory taken is taken whole"
    );
    assert_eq!(
        fs::read(dst.join("config/app.local.json")).unwrap(),
        b"{\"committed\": true}\n"
    );
    assert_eq!(
        fs::read_link(dst.join("linkdir")).unwrap(),
        Path::new("real"),
        "a symlinked directory stays a symlink"
    );
    let (s, d) = (
        fs::metadata(src.join(".env")).unwrap(),
        fs::metadata(dst.join(".env")).unwrap(),
    );
    assert_eq!(d.mode() & 0o7777, 0o600);
    assert_eq!((d.mtime(), d.mtime_nsec()), (s.mtime(), s.mtime_nsec()));
    let ext = extent_summary(&dst.join("build/out.bin")).unwrap();
    assert_eq!(ext.shared_bytes, 256 << 10, "reflinked: {ext:?}");
    assert_eq!(git(&dst, &["status", "--porcelain"]), "");

    // --ignored=PATTERN adds to it; --no-ignored takes nothing.
    let more = dir.path().join("more");
    add_ok(
        &src,
        &[
            os("--detach"),
            os("--ignored=node_modules"),
            more.as_os_str(),
        ],
    );
    assert!(more.join("node_modules/pkg/index.js").is_file());
    assert!(more.join(".env").is_file());
    let none = dir.path().join("none");
    add_ok(
        &src,
        &[os("--detach"), os("--no-ignored"), none.as_os_str()],
    );
    assert_eq!(untracked_in(&none), Vec::<String>::new());

    // Without the file, nothing ignored is taken.
    fs::remove_file(src.join(".worktreeinclude")).unwrap();
    git(&src, &["rm", "-q", "--cached", ".worktreeinclude"]);
    git(&src, &["commit", "-qm", "no include"]);
    let bare = dir.path().join("bare");
    add_ok(&src, &[os("--detach"), bare.as_os_str()]);
    assert_eq!(untracked_in(&bare), Vec::<String>::new());
}

/// A failing `post-checkout` hook: the worktree is made, and the command exits with the hook's
/// status as git does; with `--json` the one object on stdout is that error (kind `hook`,
/// `path` the worktree).
#[test]
fn a_failing_post_checkout_hook_exits_with_its_status_and_json_prints_one_error_object() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    let hook = src.join(".git/hooks/post-checkout");
    fs::create_dir_all(hook.parent().unwrap()).unwrap();
    fs::write(&hook, "#!/bin/sh\nexit 3\n").unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    let by_git = git_cmd(&src)
        .args(["worktree", "add", "-q", "--detach"])
        .arg(dir.path().join("by-git"))
        .output()
        .unwrap();
    assert_eq!(by_git.status.code(), Some(3), "git's own exit status");
    let dst = dir.path().join("wt");
    let out = add(&src, &[os("--json"), os("--detach"), dst.as_os_str()]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one object: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["error"]["kind"], "hook", "{v}");
    assert_eq!(v["exit"], 3, "{v}");
    assert_eq!(
        v["error"]["path"].as_str().map(Path::new),
        Some(dst.canonicalize().unwrap().as_path()),
        "{v}"
    );
    assert_eq!(
        git(&dst, &["status", "--porcelain"]),
        "",
        "the worktree stays"
    );
}

/// The `git worktree` commands git runs itself print one JSON object with `--json`: `list`
/// its worktrees (from git's porcelain listing), the others the command and its output.
#[test]
fn json_of_git_worktree_list_lock_and_remove_is_one_object_each() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    let dst = dir.path().join("wt");
    add_detached(&src, &dst);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = bin()
            .current_dir(&src)
            .arg("--json")
            .args(["git", "worktree"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        let s = String::from_utf8(out.stdout).unwrap();
        assert_eq!(s.lines().count(), 1, "{args:?}: one object: {s:?}");
        serde_json::from_str(&s).unwrap()
    };
    let v = json(&["lock", "--reason", "agent 7", dst.to_str().unwrap()]);
    assert_eq!(
        (&v["command"], &v["exit"]),
        (&"git worktree lock".into(), &0.into()),
        "{v}"
    );
    for args in [&["list"][..], &["list", "-v"], &["list", "--porcelain"]] {
        let v = json(args);
        let w = v["worktrees"].as_array().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(w.len(), 2, "{v}");
        assert_eq!(
            w[0]["path"].as_str().map(Path::new),
            Some(src.canonicalize().unwrap().as_path()),
            "{v}"
        );
        assert_eq!(w[0]["branch"], "refs/heads/main", "{v}");
        assert_eq!(w[0]["locked"], serde_json::Value::Null, "{v}");
        assert_eq!(
            (&w[1]["detached"], &w[1]["locked"], &w[1]["branch"]),
            (&true.into(), &"agent 7".into(), &serde_json::Value::Null),
            "{v}"
        );
        assert_eq!(
            w[1]["head"].as_str(),
            Some(git(&src, &["rev-parse", "HEAD"]).trim()),
            "{v}"
        );
    }
    json(&["unlock", dst.to_str().unwrap()]);
    let v = json(&["remove", dst.to_str().unwrap()]);
    assert_eq!(v["command"], "git worktree remove", "{v}");
    assert!(!dst.exists());
    assert_eq!(json(&["list"])["worktrees"].as_array().unwrap().len(), 1);
}

/// `--sparse DIR...` from a full SRC gives, in one step, what `git worktree add --no-checkout`,
/// `git sparse-checkout set --cone DIR...` and `git checkout` give (files, index and its flags,
/// patterns, config, the reflog), and writes nothing outside the cone: no file or directory
/// outside it is ever created (strace sees every creation).
#[test]
fn sparse_option_gives_gits_three_commands_result_and_writes_nothing_outside_the_cone() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = make_repo(dir.path());
    // Each copy of the repository gets one of the two ways (the first turns on
    // extensions.worktreeConfig in its repository, as git's `sparse-checkout set` does).
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    for r in [&ours, &theirs] {
        cowtree_testutil::tool("cp", &[OsStr::new("-a"), src.as_os_str(), r.as_os_str()]);
    }
    let dst = dir.path().join("dst");
    let log = dir.path().join("strace.log");
    let out = cowtree_testutil::git_env(
        Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=openat,mkdirat,mkdir,symlinkat,linkat,renameat2",
                "-o",
            ])
            .arg(&log)
            .arg(crate::common::BIN)
            .current_dir(&ours),
    )
    .args([
        "git",
        "worktree",
        "add",
        "--json",
        "-b",
        "task",
        "--sparse",
        "d1,d3/sub0",
    ])
    .arg(&dst)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["made_by"], "cowtree", "{r}");
    let by_git = dir.path().join("by-git");
    git(
        &theirs,
        &[
            "worktree",
            "add",
            "-q",
            "--no-checkout",
            "-b",
            "task",
            by_git.to_str().unwrap(),
        ],
    );
    git(
        &by_git,
        &["sparse-checkout", "set", "--cone", "d1", "d3/sub0"],
    );
    git(&by_git, &["checkout", "-q"]);
    assert_eq!(tree(&dst), tree(&by_git));
    assert!(dst.join("d1").is_dir() && !dst.join("d0").exists() && dst.join("big.bin").exists());
    assert_eq!(index_listing(&dst), index_listing(&by_git));
    for f in [
        "config",
        "worktrees/dst/config.worktree",
        "worktrees/dst/info/sparse-checkout",
    ] {
        let theirs_f = f.replace("worktrees/dst", "worktrees/by-git");
        assert_eq!(
            fs::read(ours.join(".git").join(f)).unwrap(),
            fs::read(theirs.join(".git").join(&theirs_f)).unwrap(),
            "{f}"
        );
    }
    let reflog = |wt: &Path| git(wt, &["reflog", "show", "--format=%gs", "HEAD"]);
    assert_eq!(reflog(&dst), reflog(&by_git));
    assert!(!ours.join(".git/worktrees/dst/ORIG_HEAD").exists());
    assert_status_clean(&dst);
    // Nothing outside the cone was ever created: no directory d0, d2 or d4, and sub1 and sub2
    // once each (in d1), not in d3. A file needs its directory first; those at the top are
    // all in the cone.
    let trace = fs::read_to_string(&log).unwrap();
    let made = |name: &str| {
        trace
            .lines()
            .filter(|l| l.contains("mkdir") && l.contains(&format!("\"{name}\"")))
            .count()
    };
    for (name, times) in [
        ("d0", 0),
        ("d2", 0),
        ("d4", 0),
        ("d1", 1),
        ("d3", 1),
        ("sub1", 1),
        ("sub2", 1),
    ] {
        assert_eq!(made(name), times, "directories {name} made:\n{trace}");
    }
    // A refused directory is git's refusal, before anything is made.
    let out = add(
        &ours,
        &[os("--sparse"), os("/d1"), dir.path().join("no").as_os_str()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no leading slash"));
    assert!(!dir.path().join("no").exists());
}

/// Git 3.0's formats, made by cowtree itself (not handed to git): reftable refs, SHA-256
/// objects, and both. For a new branch, a detached HEAD, an existing branch and -B of a
/// branch at another commit, the worktree is git's (files, index, HEAD, its reflog, ORIG_HEAD,
/// the branch's reflog, `git worktree list`), each made on its own copy of the repository;
/// a branch checked out elsewhere is refused as git refuses it.
#[test]
fn reftable_and_sha256_repositories_get_gits_worktree_from_cowtree() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    for (name, init) in [
        ("reftable", &["--ref-format=reftable"][..]),
        ("sha256", &["--object-format=sha256"][..]),
        (
            "git3",
            &["--ref-format=reftable", "--object-format=sha256"][..],
        ),
    ] {
        let base = dir.path().join(name);
        let src = base.join("src");
        fs::create_dir_all(&src).unwrap();
        let mut a = vec!["init", "-q", "-b", "main"];
        a.extend_from_slice(init);
        git(&src, &a);
        for i in 0..30 {
            let p = src.join(format!("d{}/f{i}", i % 4));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, format!("{i}\n")).unwrap();
        }
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "one"]);
        git(&src, &["branch", "side"]);
        fs::write(src.join("d0/f0"), "changed\n").unwrap();
        git(&src, &["commit", "-qam", "two"]);
        next_second();
        git(&src, &["status", "--porcelain"]);
        let cases: [(&str, &[&str], Option<&str>); 4] = [
            ("new", &["-b", "task"], None),
            ("detached", &["--detach"], None),
            ("existing", &[], Some("side")),
            ("reset", &["-B", "side2"], Some("HEAD~1")),
        ];
        for (case, opts, commit) in cases {
            let ours = base.join(format!("ours-{case}"));
            let theirs = base.join(format!("theirs-{case}"));
            for r in [&ours, &theirs] {
                cowtree_testutil::tool("cp", &[OsStr::new("-a"), src.as_os_str(), r.as_os_str()]);
            }
            let what = format!("{name}, {case}");
            let mut args: Vec<&OsStr> = opts.iter().map(OsStr::new).collect();
            let dst = base.join(format!("wt-{case}"));
            args.push(dst.as_os_str());
            args.extend(commit.map(OsStr::new));
            let r = add_ok(&ours, &args);
            assert_eq!(r["made_by"], "cowtree", "{what}: {r}");
            let by_git = base.join(format!("git-{case}"));
            let mut gargs = vec!["worktree", "add", "-q"];
            gargs.extend_from_slice(opts);
            gargs.push(by_git.to_str().unwrap());
            gargs.extend(commit);
            git(&theirs, &gargs);
            assert_eq!(tree(&dst), tree(&by_git), "{what}");
            assert_eq!(index_listing(&dst), index_listing(&by_git), "{what}");
            let look = |wt: &Path, repo: &Path| {
                let branch = git_cmd(wt)
                    .args(["symbolic-ref", "-q", "--short", "HEAD"])
                    .output()
                    .unwrap();
                let branch = String::from_utf8_lossy(&branch.stdout).trim().to_owned();
                let branch_log = if branch.is_empty() {
                    String::new()
                } else {
                    git(repo, &["reflog", "show", "--format=%H %gs", &branch])
                };
                (
                    git(wt, &["rev-parse", "HEAD", "ORIG_HEAD"]),
                    branch,
                    git(wt, &["reflog", "show", "--format=%H %gs", "HEAD"]),
                    branch_log,
                    git(repo, &["worktree", "list", "--porcelain"])
                        .lines()
                        .count(),
                )
            };
            assert_eq!(look(&dst, &ours), look(&by_git, &theirs), "{what}");
            assert_status_clean(&dst);
            git(&ours, &["fsck", "--no-progress"]);
        }
        // A branch checked out elsewhere: refused, as git refuses it, nothing left.
        let busy = base.join("busy");
        let out = add(&src, &[busy.as_os_str(), os("main")]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("'main' is already used by worktree"),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!busy.exists());
    }
}

/// A blobless clone checked out as `git clone` leaves it (its HEAD's blobs fetched), and a
/// worktree of the commit before, two of whose blobs are not local: the blobs fetched are
/// read, and the worktree is git's. gitoxide's object store, which had looked for them before
/// the fetch, often did not find the new pack (on this small repository, "An object with id
/// ... could not be found" in five runs of six); the repository is opened again after a
/// fetch. Six fresh clones on btrfs and six on the host's filesystem (it failed on both, and
/// passed on XFS).
#[test]
fn a_blobless_clone_checked_out_makes_a_worktree_of_an_older_commit_as_git_does() {
    let host = tempfile::tempdir().unwrap();
    blobless_older_commit(host.path());
    let Some(dir) = scratch(Fs::Btrfs) else {
        return;
    };
    blobless_older_commit(dir.path());
}

fn blobless_older_commit(root: &Path) {
    let server = root.join("server");
    fs::create_dir_all(server.join("src/deep/er")).unwrap();
    fs::create_dir_all(server.join("docs")).unwrap();
    git(&server, &["init", "-q", "-b", "main"]);
    git(&server, &["config", "uploadpack.allowFilter", "true"]);
    fs::write(server.join("crlf.txt"), "a\r\nb\n").unwrap();
    fs::write(server.join("src/lf.txt"), "x\ny\n").unwrap();
    fs::write(server.join(".gitattributes"), "*.txt text\n").unwrap();
    fs::write(server.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(server.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("src/lf.txt", server.join("link")).unwrap();
    for i in 1..=3 {
        fs::write(server.join(format!("src/deep/er/f{i}.c")), format!("{i}\n")).unwrap();
        fs::write(server.join(format!("docs/d{i}.md")), format!("d{i}\n")).unwrap();
    }
    git(&server, &["add", "-A"]);
    git(&server, &["commit", "-qm", "one"]);
    fs::write(server.join("src/lf.txt"), "x\ny\nmore\n").unwrap();
    fs::write(server.join("docs/new.md"), "new\n").unwrap();
    git(&server, &["rm", "-q", "docs/d1.md"]);
    git(&server, &["add", "-A"]);
    git(&server, &["commit", "-qm", "two"]);
    let url = format!("file://{}", server.display());
    for round in 0..6 {
        let clone = root.join(format!("clone{round}"));
        git(
            root,
            &[
                "clone",
                "-q",
                "--filter=blob:none",
                &url,
                clone.to_str().unwrap(),
            ],
        );
        let missing = git(
            &clone,
            &["rev-list", "--objects", "--missing=print", "HEAD~1"],
        );
        assert_eq!(
            missing.lines().filter(|l| l.starts_with('?')).count(),
            2,
            "{missing}"
        );
        let dst = root.join(format!("dst{round}"));
        let out = add(&clone, &[os("--detach"), dst.as_os_str(), os("HEAD~1")]);
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let by_git = root.join(format!("by-git{round}"));
        git(
            &clone,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                by_git.to_str().unwrap(),
                "HEAD~1",
            ],
        );
        assert_eq!(tree(&dst), tree(&by_git), "round {round}");
        assert_eq!(index_listing(&dst), index_listing(&by_git), "round {round}");
        assert_status_clean(&dst);
    }
}

/// A blobless clone (`--filter=blob:none`) whose target blobs are not local: cowtree fetches
/// them from the promisor remote in one batch, as git's checkout does, and the worktree is
/// git's (files, index); with the remote gone, the same failure as git's (exit 128, git's
/// message), and nothing left.
#[test]
fn a_blobless_clone_fetches_its_blobs_in_one_batch_and_fails_offline_as_git_does() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let server = make_repo(dir.path());
    git(&server, &["config", "uploadpack.allowFilter", "true"]);
    git(
        &server,
        &["config", "uploadpack.allowAnySHA1InWant", "true"],
    );
    let url = format!("file://{}", server.display());
    let clone = |name: &str| {
        let p = dir.path().join(name);
        git(
            dir.path(),
            &[
                "clone",
                "-q",
                "--filter=blob:none",
                "--no-checkout",
                &url,
                p.to_str().unwrap(),
            ],
        );
        p
    };
    let (ours, theirs, offline) = (clone("ours"), clone("theirs"), clone("offline"));
    let missing = |r: &Path| {
        git(r, &["rev-list", "--objects", "--missing=print", "HEAD"])
            .lines()
            .filter(|l| l.starts_with('?'))
            .count()
    };
    assert!(missing(&ours) > 50, "the clone has its blobs already");
    let dst = dir.path().join("dst");
    let log = dir.path().join("trace");
    let out = cowtree_testutil::git_env(bin().current_dir(&ours))
        .env("GIT_TRACE2_EVENT", &log)
        .args(["git", "worktree", "add", "--json", "--detach"])
        .arg(&dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["made_by"], "cowtree", "{r}");
    // One fetch, of every missing blob.
    let trace = fs::read_to_string(&log).unwrap();
    let fetches = trace
        .lines()
        .filter(|l| l.contains("\"event\":\"start\"") && l.contains("\"fetch\""))
        .count();
    assert_eq!(fetches, 1, "{trace}");
    assert_eq!(missing(&ours), 0);
    let by_git = dir.path().join("by-git");
    git(
        &theirs,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            by_git.to_str().unwrap(),
        ],
    );
    assert_eq!(tree(&dst), tree(&by_git));
    assert_eq!(index_listing(&dst), index_listing(&by_git));
    assert_status_clean(&dst);
    // Offline: the server is gone.
    fs::rename(&server, dir.path().join("away")).unwrap();
    let dst2 = dir.path().join("dst2");
    let out = add(&offline, &[os("--detach"), dst2.as_os_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128), "{err}");
    assert!(err.contains("from promisor remote"), "{err}");
    assert!(!dst2.exists());
    assert_eq!(
        git(&offline, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    let by_git2 = dir.path().join("by-git2");
    let theirs_out = git_cmd(&offline)
        .args([
            "worktree",
            "add",
            "-q",
            "--detach",
            by_git2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(theirs_out.status.code(), Some(128));
    assert!(String::from_utf8_lossy(&theirs_out.stderr).contains("from promisor remote"));
}
