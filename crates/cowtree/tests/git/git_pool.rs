//! The pool of spare worktrees (`cowtree git worktree pool`): a claimed spare is the worktree
//! `git worktree add` makes (tree, modes, index, HEAD, status that opens no file), its data
//! shared with SRC on XFS and btrfs (FIEMAP) and a write to it leaving SRC alone; a spare
//! touched in any way since it was made is removed, not used; one of another commit,
//! configuration or filesystem is not used and the report says why; eight claims at once from
//! four spares get four spares and four trees made the normal way, all eight git's; the refill
//! after a claim makes the pool whole again; a fill that meets a full disk stops and leaves the
//! pool smaller. Interrupts and `kill -9` of claims: `git_interrupt`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::BIN;
use crate::git_donors::tracked;
use crate::git_reads::files_git_status_opens;
use cowtree_fs::extents::extent_summary;
use cowtree_testutil::git;
use cowtree_testutil::{Fs, scratch};

/// The binary with HOME and the XDG directories under `root`, git's configuration isolated.
fn cowtree(root: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("COWTREE_STORE")
        .env("HOME", root.join("home"))
        .env("XDG_STATE_HOME", root.join("state"))
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CONFIG_HOME", root.join("config"));
    cowtree_testutil::git_env(&mut c);
    c
}

#[track_caller]
fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cowtree git worktree pool ARGS` in `src`.
#[track_caller]
fn pool(root: &Path, src: &Path, args: &[&str]) -> String {
    let out = cowtree(root)
        .current_dir(src)
        .args(["git", "worktree", "pool"])
        .args(args)
        .output()
        .unwrap();
    ok(out, &format!("pool {args:?}"))
}

/// `cowtree --json git worktree add ARGS` in `src`: its report.
#[track_caller]
fn add(root: &Path, src: &Path, args: &[&str]) -> serde_json::Value {
    let out = cowtree(root)
        .current_dir(src)
        .args(["--json", "git", "worktree", "add"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_str(&ok(out, &format!("add {args:?}"))).unwrap()
}

/// Waits until no fill of `src`'s pool runs (the background refill holds its lock).
fn wait_for_fill(src: &Path) {
    let lock = src.join(".git/cowtree/pool/fill.lock");
    if lock.exists() {
        let st = Command::new("flock")
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// The spares' ids.
fn spares(src: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(src.join(".git/cowtree/pool/spares"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A repository at `root/src`: 120 files in nested directories, an executable, a symlink, an
/// empty file, a 1 MiB file; a second commit; `target/` ignored and named by
/// `.worktreeinclude`; its index refreshed a second after the files were written.
fn make_repo(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    for i in 0..120 {
        let p = src.join(format!("d{}/s{}/f{i}.txt", i % 6, i % 4));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("file {i}\n").repeat(1 + i % 40)).unwrap();
    }
    fs::write(src.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("d1/s1/f1.txt", src.join("link")).unwrap();
    fs::write(src.join("empty"), "").unwrap();
    fs::write(src.join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    fs::write(src.join(".gitignore"), "target/\n").unwrap();
    fs::write(src.join(".worktreeinclude"), "target/\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    fs::write(src.join("d0/s0/f0.txt"), "changed\n").unwrap();
    git(&src, &["commit", "-qam", "two"]);
    fs::create_dir_all(src.join("target")).unwrap();
    fs::write(src.join("target/out"), "built\n").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    git(&src, &["update-index", "-q", "--refresh"]);
    src
}

/// `git worktree add -q --detach DST` in `src`: git's worktree, to compare with.
fn git_detached(src: &Path, dst: &Path) {
    git(
        src,
        &["worktree", "add", "-q", "--detach", dst.to_str().unwrap()],
    );
}

/// `git worktree add -q -b BRANCH DST` in `src`: git's worktree on a new branch.
fn git_branch(src: &Path, branch: &str, dst: &Path) {
    git(
        src,
        &["worktree", "add", "-q", "-b", branch, dst.to_str().unwrap()],
    );
}

/// Every name under `dir` but `.git`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_name() == ".git" {
                continue;
            }
            out.push(
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// `ours` is the worktree git made at `theirs` (with `target/` brought besides): the same
/// tracked bytes and modes, the same names, index entries, HEAD; clean; and `git status`
/// there opens no tracked file (its index trusts every entry).
#[track_caller]
fn assert_git_made(theirs: &Path, ours: &Path) {
    let what = ours.display();
    assert_eq!(tracked(theirs), tracked(ours), "{what}");
    let mut expect = names(theirs);
    expect.extend(["target".to_owned(), "target/out".to_owned()]);
    expect.sort();
    assert_eq!(names(ours), expect, "{what}");
    assert_eq!(
        git(ours, &["ls-files", "--stage"]),
        git(theirs, &["ls-files", "--stage"]),
        "{what}"
    );
    assert_eq!(
        git(ours, &["rev-parse", "HEAD"]),
        git(theirs, &["rev-parse", "HEAD"])
    );
    assert_eq!(git(ours, &["status", "--porcelain"]), "", "{what}");
    assert_eq!(
        files_git_status_opens(ours),
        Vec::<String>::new(),
        "{what}: git status read files the index should trust"
    );
    assert_eq!(fs::read(ours.join("target/out")).unwrap(), b"built\n");
}

#[test]
fn a_claimed_spare_is_the_worktree_git_makes_and_the_refill_makes_the_pool_whole() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let root = dir.path();
        let src = make_repo(root);
        let said = pool(root, &src, &["set", "2", "--no-fill"]);
        assert!(said.contains("pool of 2 spares"), "{said}");
        pool(root, &src, &["fill"]);
        let before = spares(&src);
        assert_eq!(before.len(), 2, "{fsys:?}: {before:?}");
        let status: serde_json::Value =
            serde_json::from_str(&pool(root, &src, &["status", "--json"])).unwrap();
        assert_eq!(status["size"], 2, "{status}");
        assert_eq!(status["spares"].as_array().unwrap().len(), 2, "{status}");

        let theirs = root.join("theirs");
        git_branch(&src, "g1", &theirs);
        let ours = root.join("ours");
        let r = add(root, &src, &["-b", "c1", ours.to_str().unwrap()]);
        assert_eq!(r["method"], "spare", "{fsys:?}: {r}");
        assert_eq!(r["pool"], serde_json::Value::Null, "{r}");
        assert_git_made(&theirs, &ours);
        assert_eq!(
            git(&ours, &["symbolic-ref", "HEAD"]).trim(),
            "refs/heads/c1"
        );
        // Registered as git registers: listed with its branch, nothing for prune to do.
        let list = git(&src, &["worktree", "list", "--porcelain"]);
        assert!(list.contains("branch refs/heads/c1"), "{list}");
        git(&src, &["worktree", "prune"]);
        assert_eq!(git(&src, &["worktree", "list", "--porcelain"]), list);
        if fsys != Fs::NoCow {
            // Shared with SRC, and a write to the worktree leaves SRC alone.
            let s = extent_summary(&ours.join("big.bin")).unwrap();
            assert!(s.fully_shared(), "{fsys:?}: {s:?}");
            fs::write(ours.join("big.bin"), b"mine").unwrap();
            assert_eq!(fs::read(src.join("big.bin")).unwrap(), vec![7u8; 1 << 20]);
        }
        // The refill after the claim: two spares again, one of them new.
        wait_for_fill(&src);
        let after = spares(&src);
        assert_eq!(after.len(), 2, "{fsys:?}: {after:?}");
        assert_eq!(after.iter().filter(|s| before.contains(s)).count(), 1);
        // The detached form, from the other spare.
        let theirs2 = root.join("theirs2");
        git_detached(&src, &theirs2);
        let ours2 = root.join("ours2");
        let r = add(root, &src, &["--detach", ours2.to_str().unwrap()]);
        assert_eq!(r["method"], "spare", "{fsys:?}: {r}");
        assert_git_made(&theirs2, &ours2);
        wait_for_fill(&src);
        // `set 0`: no pool, no spare.
        pool(root, &src, &["set", "0"]);
        assert_eq!(spares(&src), Vec::<String>::new());
        let r = add(
            root,
            &src,
            &["--detach", root.join("ours3").to_str().unwrap()],
        );
        assert_eq!(r["method"], "per-file", "{r}");
        assert_eq!(r["pool"], serde_json::Value::Null, "{r}");
    }
}

#[test]
fn a_spare_touched_in_any_way_since_it_was_made_is_removed_not_used() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    pool(root, &src, &["set", "1", "--no-fill"]);
    let theirs = root.join("theirs");
    git_detached(&src, &theirs);
    type Touch = fn(&Path);
    let touches: [(&str, Touch); 7] = [
        ("a file written", |t| {
            fs::write(t.join("d2/s2/f2.txt"), "file 2\n".repeat(3)).unwrap()
        }),
        ("a file's mode", |t| {
            fs::set_permissions(t.join("empty"), fs::Permissions::from_mode(0o755)).unwrap()
        }),
        ("a file added", |t| {
            fs::write(t.join("d3/s3/new"), "x").unwrap()
        }),
        ("a file removed", |t| {
            fs::remove_file(t.join("d4/s0/f4.txt")).unwrap()
        }),
        ("a directory added at the top", |t| {
            fs::create_dir(t.join("newdir")).unwrap()
        }),
        ("a file replaced by a rename", |t| {
            fs::write(t.join("tmp"), "file 5\n".repeat(6)).unwrap();
            fs::rename(t.join("tmp"), t.join("d5/s1/f5.txt")).unwrap();
        }),
        ("a symlink retargeted", |t| {
            fs::remove_file(t.join("link")).unwrap();
            std::os::unix::fs::symlink("d1/s1/f1.txt", t.join("link")).unwrap();
        }),
    ];
    for (i, (what, touch)) in touches.iter().enumerate() {
        pool(root, &src, &["fill"]);
        let s = spares(&src);
        assert_eq!(s.len(), 1, "{what}: {s:?}");
        touch(
            &src.join(".git/cowtree/pool/spares")
                .join(&s[0])
                .join("tree"),
        );
        let ours = root.join(format!("ours{i}"));
        let r = add(root, &src, &["--detach", ours.to_str().unwrap()]);
        assert_eq!(r["method"], "per-file", "{what}: {r}");
        let why = r["pool"].as_str().unwrap_or_default();
        assert!(why.contains("was changed since it was made"), "{what}: {r}");
        assert_git_made(&theirs, &ours);
        wait_for_fill(&src);
        // The touched spare is gone; the refill made a new one.
        let now = spares(&src);
        assert!(!now.contains(&s[0]), "{what}: {now:?}");
    }
    // The spare's record of its files' stat data, cut short or paired with another index
    // template: not used either.
    let spares_dir = src.join(".git/cowtree/pool/spares");
    for (i, what) in ["cut short", "another template", "a damaged template"]
        .iter()
        .enumerate()
    {
        pool(root, &src, &["fill"]);
        let s = spares(&src);
        let stat = spares_dir.join(&s[0]).join("stat");
        let bytes = fs::read(&stat).unwrap();
        if i == 2 {
            // One byte of the shared index template flipped: its trailer no longer matches,
            // and its stamp (mtime, ctime) is not the one the spare recorded.
            let t = fs::read_dir(src.join(".git/cowtree/pool/templates"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            let mut tb = fs::read(&t).unwrap();
            tb[100] ^= 1;
            fs::write(&t, tb).unwrap();
        } else if i == 0 {
            fs::write(&stat, &bytes[..bytes.len() - 36]).unwrap();
        } else {
            let header = bytes.iter().position(|b| *b == b' ').unwrap();
            let mut other = bytes.clone();
            // One digit of the template's checksum changed.
            let at = header + " 1 ".len();
            other[at] = if other[at] == b'0' { b'1' } else { b'0' };
            fs::write(&stat, other).unwrap();
        }
        let ours = root.join(format!("stat{i}"));
        let r = add(root, &src, &["--detach", ours.to_str().unwrap()]);
        assert_eq!(r["method"], "per-file", "{what}: {r}");
        assert!(
            r["pool"].as_str().unwrap().contains("could not be read"),
            "{what}: {r}"
        );
        assert_git_made(&theirs, &ours);
        wait_for_fill(&src);
        assert!(!spares(&src).contains(&s[0]));
    }
}

#[test]
fn a_spare_of_another_configuration_or_filesystem_is_not_used_and_the_report_says_why() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let Some(other_fs) = scratch(Fs::Xfs2) else {
        return;
    };
    let root = dir.path();
    let src = make_repo(root);
    pool(root, &src, &["set", "1", "--no-fill"]);
    pool(root, &src, &["fill"]);
    let at = spares(&src);
    // Another commit: the spare at HEAD is moved back to HEAD~1.
    let r = add(
        root,
        &src,
        &["--detach", root.join("a").to_str().unwrap(), "HEAD~1"],
    );
    assert_eq!(r["method"], "spare", "{r}");
    wait_for_fill(&src);
    // The refill followed the commit asked for: a spare at HEAD~1.
    let wanted = git(&src, &["rev-parse", "HEAD~1"]);
    let status: serde_json::Value =
        serde_json::from_str(&pool(root, &src, &["status", "--json"])).unwrap();
    assert_eq!(status["wanted"], wanted.trim(), "{status}");
    assert_eq!(status["spares"][0]["commit"], wanted.trim(), "{status}");
    assert_ne!(spares(&src), at);
    // Another configuration (a key that changes a checkout's bytes).
    git(&src, &["config", "core.autocrlf", "true"]);
    let r = add(
        root,
        &src,
        &["--detach", root.join("b").to_str().unwrap(), "HEAD~1"],
    );
    assert_eq!(r["method"], "per-file", "{r}");
    assert!(r["pool"].as_str().unwrap().contains("configuration"), "{r}");
    wait_for_fill(&src);
    git(&src, &["config", "--unset", "core.autocrlf"]);
    // Another filesystem than DST's.
    pool(root, &src, &["fill"]);
    let elsewhere = other_fs.path().join("c");
    let r = add(
        root,
        &src,
        &["--detach", elsewhere.to_str().unwrap(), "HEAD~1"],
    );
    assert_eq!(r["method"], "per-file", "{r}");
    assert!(
        r["pool"].as_str().unwrap().contains("another filesystem"),
        "{r}"
    );
    // Options a spare does not hold: not tried, and nothing to say.
    for args in [
        vec!["--no-checkout", "--detach"],
        vec!["--orphan"],
        vec!["--per-file", "--detach"],
    ] {
        let dst = root.join(format!("opt{}", args.len() + args[0].len()));
        let mut a: Vec<&str> = args.clone();
        a.push(dst.to_str().unwrap());
        let r = add(root, &src, &a);
        assert_ne!(r["method"], "spare", "{args:?}: {r}");
        assert_eq!(r["pool"], serde_json::Value::Null, "{args:?}: {r}");
    }
    wait_for_fill(&src);
}

#[test]
fn eight_claims_at_once_from_four_spares_get_four_spares_and_all_eight_are_gits_worktree() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    pool(root, &src, &["set", "4", "--no-fill"]);
    pool(root, &src, &["fill"]);
    assert_eq!(spares(&src).len(), 4);
    let theirs = root.join("theirs");
    git_detached(&src, &theirs);
    // The fill lock held here: no refill starts during the burst (each claim's would make new
    // spares for the later ones), so exactly the 4 spares there are can be claimed.
    let lock = fs::File::open(src.join(".git/cowtree/pool/fill.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let children: Vec<_> = (0..8)
        .map(|i| {
            cowtree(root)
                .current_dir(&src)
                .args(["--json", "git", "worktree", "add", "-b", &format!("b{i}")])
                .arg(root.join(format!("w{i}")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut by_spare = 0;
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let r: serde_json::Value = serde_json::from_str(&ok(out, &format!("add {i}"))).unwrap();
        if r["method"] == "spare" {
            by_spare += 1;
        } else {
            assert_eq!(r["method"], "per-file", "{r}");
        }
        assert_git_made(&theirs, &root.join(format!("w{i}")));
    }
    assert_eq!(by_spare, 4, "{by_spare} of 8 claims took a spare from 4");
    assert_eq!(spares(&src), Vec::<String>::new());
    drop(lock);
    // Nothing half-claimed left; the pool whole again after a fill.
    pool(root, &src, &["fill"]);
    assert_eq!(spares(&src).len(), 4, "{:?}", spares(&src));
    assert!(spares(&src).iter().all(|s| !s.starts_with('.')));
    eprintln!("pool: {by_spare} of 8 concurrent claims took one of 4 spares");
}

#[test]
fn a_fill_that_meets_a_full_disk_stops_and_leaves_the_pool_smaller() {
    let Some(dir) = scratch(Fs::Small) else {
        return;
    };
    let root = dir.path();
    let src = make_repo(root);
    // Files written, not cloned: each spare costs its bytes. Fill the disk but for about
    // one spare's worth.
    git(&src, &["config", "core.autocrlf", "true"]);
    fs::write(src.join("crlf.txt"), "a\n".repeat(1 << 19)).unwrap();
    git(&src, &["add", "crlf.txt"]);
    git(&src, &["commit", "-qm", "crlf"]);
    let st = rustix::fs::statvfs(root).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let keep = 3 << 20;
    let hog = fs::File::create(root.join("hog")).unwrap();
    rustix::fs::fallocate(&hog, rustix::fs::FallocateFlags::empty(), 0, free - keep).unwrap();
    pool(root, &src, &["set", "8", "--no-fill"]);
    let out = cowtree(root)
        .current_dir(&src)
        .args(["git", "worktree", "pool", "fill"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the fill stopped, the pool is smaller"),
        "{err}"
    );
    let made = spares(&src);
    assert!(made.len() < 8, "{made:?}");
    assert!(made.iter().all(|s| !s.starts_with('.')), "{made:?}");
    // What it made is whole: a claim of it is git's worktree.
    drop(hog);
    fs::remove_file(root.join("hog")).unwrap();
    if !made.is_empty() {
        let theirs = root.join("theirs");
        git_detached(&src, &theirs);
        let ours = root.join("ours");
        let r = add(root, &src, &["--detach", ours.to_str().unwrap()]);
        assert_eq!(r["method"], "spare", "{r}");
        assert_eq!(tracked(&theirs), tracked(&ours));
        wait_for_fill(&src);
    }
}

#[test]
fn pool_messages_print_commands_that_run_as_printed() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_repo(root);
    let run = |args: &[String]| {
        assert_eq!(args[0], "cowtree");
        cowtree(root)
            .current_dir(&src)
            .args(&args[1..])
            .output()
            .unwrap()
    };
    // A fill without a pool says how to set one; as printed, it sets one.
    let out = cowtree(root)
        .current_dir(&src)
        .args(["git", "worktree", "pool", "fill"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let cmds = crate::common::suggested::commands(&err);
    assert_eq!(cmds.len(), 1, "{err}");
    let set = run(&cmds[0]);
    let said = ok(set, &err);
    assert!(said.contains("pool of 4 spares"), "{said}");
    // `set` fills in the background and says what shows it; as printed, it does.
    let cmds = crate::common::suggested::commands(&said);
    assert_eq!(cmds.len(), 1, "{said}");
    wait_for_fill(&src);
    let status = ok(run(&cmds[0]), &said);
    assert!(
        status.contains("pool of 4 spares, max age 86400 s: 4 there"),
        "{status}"
    );
    // A damaged setting names the file and what writes it anew; as printed, it does.
    fs::write(src.join(".git/cowtree/pool/settings"), "size many\n").unwrap();
    let out = cowtree(root)
        .current_dir(&src)
        .args(["git", "worktree", "pool", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".git/cowtree/pool/settings: a bad size"),
        "{err}"
    );
    // It never fails an add: the add goes the normal way and says why.
    let r = add(root, &src, &["--detach", root.join("w").to_str().unwrap()]);
    assert_eq!(r["method"], "per-file", "{r}");
    assert!(r["pool"].as_str().unwrap().contains("a bad size"), "{r}");
    let cmds = crate::common::suggested::commands(&err);
    assert_eq!(cmds.len(), 1, "{err}");
    ok(run(&cmds[0]), &err);
    let status = pool(root, &src, &["status"]);
    assert!(status.contains("pool of 4 spares"), "{status}");
    wait_for_fill(&src);
}

/// A repository at `root/src` whose commits change everything `git checkout` moves: files
/// changed, added, removed, renamed, a file that becomes a directory and one that a
/// directory replaces, a mode, a symlink's target, a directory emptied away, CRLF rules
/// unchanged; `n` commits, each a second after the one before.
fn make_history(root: &Path, n: usize) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    for i in 0..80 {
        let p = src.join(format!("d{}/e{}/f{i}", i % 5, i % 3));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("line {i}\n").repeat(i + 1)).unwrap();
    }
    fs::write(src.join("flip"), "a file first\n").unwrap();
    fs::create_dir_all(src.join("flop")).unwrap();
    fs::write(src.join("flop/inside"), "a directory first\n").unwrap();
    std::os::unix::fs::symlink("d0", src.join("link")).unwrap();
    fs::write(src.join(".gitignore"), "target/\n").unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "c0"]);
    for c in 1..n {
        let f = |i: usize| src.join(format!("d{}/e{}/f{i}", i % 5, i % 3));
        fs::write(f(c), format!("changed in {c}\n")).unwrap();
        fs::write(src.join(format!("d{}/new{c}", c % 5)), format!("new {c}\n")).unwrap();
        if f(40 + c).exists() {
            git(&src, &["rm", "-q", f(40 + c).to_str().unwrap()]);
        }
        if c % 2 == 1 {
            let to = src.join(format!("moved/m{c}"));
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            git(
                &src,
                &["mv", f(60 + c).to_str().unwrap(), to.to_str().unwrap()],
            );
        }
        let mode = if c % 2 == 1 { 0o755 } else { 0o644 };
        fs::set_permissions(f(1), fs::Permissions::from_mode(mode)).unwrap();
        fs::remove_file(src.join("link")).unwrap();
        std::os::unix::fs::symlink(format!("d{}", c % 5), src.join("link")).unwrap();
        if c == n / 2 {
            git(&src, &["rm", "-q", "flip"]);
            fs::create_dir_all(src.join("flip")).unwrap();
            fs::write(src.join("flip/now"), "a directory now\n").unwrap();
            git(&src, &["rm", "-q", "-r", "flop"]);
            fs::write(src.join("flop"), "a file now\n").unwrap();
            git(&src, &["rm", "-q", "-r", "-f", "d4/e1"]);
        }
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", &format!("c{c}")]);
    }
    std::thread::sleep(Duration::from_millis(1100));
    git(&src, &["update-index", "-q", "--refresh"]);
    src
}

#[test]
fn a_spare_of_another_commit_is_moved_to_the_target_as_git_checkout_moves_it() {
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let root = dir.path();
        let src = make_history(root, 8);
        pool(root, &src, &["set", "1", "--no-fill"]);
        // Forward by 7 commits, back by 7, and from the middle to each end: each claimed,
        // moved, and the worktree git makes.
        let cases = [("HEAD~7", "HEAD"), ("HEAD", "HEAD~7"), ("HEAD~4", "HEAD~1")];
        for (k, (from, to)) in cases.iter().enumerate() {
            // A spare at FROM: the pool's next fill makes it at the commit last asked for.
            let warm = root.join(format!("warm{k}"));
            add(
                root,
                &src,
                &["--detach", "--no-ignored", warm.to_str().unwrap(), from],
            );
            wait_for_fill(&src);
            pool(root, &src, &["drain"]);
            pool(root, &src, &["fill"]);
            // Made ahead, as spares are: its files are not racy for the index written next.
            std::thread::sleep(Duration::from_millis(1100));
            let theirs = root.join(format!("theirs{k}"));
            git(
                &src,
                &[
                    "worktree",
                    "add",
                    "-q",
                    "--detach",
                    theirs.to_str().unwrap(),
                    to,
                ],
            );
            let ours = root.join(format!("ours{k}"));
            let r = add(root, &src, &["--detach", ours.to_str().unwrap(), to]);
            let what = format!("{fsys:?} {from} -> {to}: {r}");
            assert_eq!(r["method"], "spare", "{what}");
            assert!(r["counts"]["kept"].as_u64().unwrap() > 50, "{what}");
            assert!(r["counts"]["removed"].as_u64().unwrap() > 0, "{what}");
            assert_eq!(tracked(&theirs), tracked(&ours), "{what}");
            assert_eq!(names(&theirs), names(&ours), "{what}");
            assert_eq!(
                git(&ours, &["ls-files", "--stage"]),
                git(&theirs, &["ls-files", "--stage"]),
                "{what}"
            );
            assert_eq!(git(&ours, &["status", "--porcelain"]), "", "{what}");
            // git trusts every kept entry: its first status reads at most the files just
            // written (racy in the index's second, as after git's own checkout).
            let c = &r["counts"];
            let written = ["from_objects", "cloned", "copied"]
                .iter()
                .map(|k| c[k].as_u64().unwrap())
                .sum::<u64>();
            let opened = files_git_status_opens(&ours);
            assert!(opened.len() as u64 <= written, "{what}: {opened:?}");
            wait_for_fill(&src);
        }
    }
}

#[test]
fn a_spare_is_not_moved_where_the_attributes_differ() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = make_history(root, 2);
    pool(root, &src, &["set", "1", "--no-fill"]);
    pool(root, &src, &["fill"]);
    // A new commit changes .gitattributes: every file's conversion may change with it.
    fs::write(src.join(".gitattributes"), "d0/** text eol=crlf\n").unwrap();
    git(&src, &["add", ".gitattributes"]);
    git(&src, &["commit", "-qm", "attributes"]);
    let theirs = root.join("theirs");
    git_detached(&src, &theirs);
    let ours = root.join("ours");
    let r = add(root, &src, &["--detach", ours.to_str().unwrap()]);
    assert_eq!(r["method"], "per-file", "{r}");
    assert!(
        r["pool"]
            .as_str()
            .unwrap()
            .contains(".gitattributes differs"),
        "{r}"
    );
    assert_eq!(tracked(&theirs), tracked(&ours));
    assert!(tracked(&ours)["d0/e0/f0"].0.ends_with(b"\r\n"));
    wait_for_fill(&src);
}

/// `cowtree hook claude-code worktree-create` run as Claude Code runs it, in a repository
/// with a pool: it claims the spare, prints DST alone on stdout, makes git's worktree, and its
/// one stderr line says a spare was claimed (not "0 cloned"); a plain `add` of an older
/// commit moves the next spare and says what the move kept and wrote.
#[test]
fn the_claude_code_hook_claims_a_spare_and_its_line_says_so() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let root = dir.path();
    let src = make_repo(root);
    fs::write(src.join(".git/info/exclude"), ".claude/\n").unwrap();
    pool(root, &src, &["set", "1", "--no-fill"]);
    pool(root, &src, &["fill"]);
    let theirs = root.join("theirs");
    git_branch(&src, "g1", &theirs);
    let mut child = cowtree(root)
        .current_dir(&src)
        .args(["hook", "claude-code", "worktree-create"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        br#"{"hook_event_name":"WorktreeCreate","name":"agent-1"}"#,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = ok(out.clone(), "hook");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours = src.join(".claude/worktrees/agent-1");
    assert_eq!(stdout.trim_end(), ours.to_str().unwrap(), "{stderr}");
    assert_git_made(&theirs, &ours);
    assert!(
        stderr.contains("a spare of the pool, proven untouched"),
        "{stderr}"
    );
    assert!(!stderr.contains("cloned"), "{stderr}");

    // The refilled spare is at HEAD; HEAD~1 moves it back, and the line says how.
    wait_for_fill(&src);
    let older = root.join("older");
    let out = cowtree(root)
        .current_dir(&src)
        .args([
            "git",
            "worktree",
            "add",
            "--detach",
            older.to_str().unwrap(),
            "HEAD~1",
        ])
        .output()
        .unwrap();
    let said = ok(out, "add HEAD~1");
    assert!(
        said.contains("a spare of the pool, proven untouched and moved to the commit"),
        "{said}"
    );
    wait_for_fill(&src);
}
