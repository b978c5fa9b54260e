//! `cowtree git worktree add` from a SRC whose worktree is a btrfs subvolume: DST starts as one
//! snapshot of SRC, made into exactly what the per-file way makes. Each case compares the two
//! results for the same arguments (every entry's type, mode, size, symlink target, content,
//! and mtime where the per-file way keeps SRC's; git's index entry by entry, each one's stat
//! data against its file; `git status`), as root and as an unprivileged user, on a btrfs
//! mounted without `user_subvol_rm_allowed` and on one with it. Run through scripts/test.sh.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::BIN;
use crate::common::seccomp::{self, SNAP_CREATE_V2};
use crate::git_reads::{IndexEntry, files_git_status_opens, index_entries};
use cowtree_fs::dir::Dir;
use cowtree_fs::subvolume::{At, create, is_root};
use cowtree_testutil::git;
use cowtree_testutil::user::{TestUser, is_child};
use cowtree_testutil::{Fs, mount, pattern};
use serde_json::Value;

/// `cowtree git worktree add --json ARGS` run in `src`, HOME and XDG in `home`, with
/// `COWTREE_TIMING` (which says where each directory was looked at).
fn add(src: &Path, home: &Path, args: &[&str]) -> Output {
    add_command(src, home, args).output().expect("run cowtree")
}

/// The command [`add`] runs: SRC pinned with `--from` (the worktrees these tests make would
/// otherwise lend their files to the next ones).
fn add_command(src: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(src)
        .env("COWTREE_TIMING", "1")
        .env_remove("COWTREE_STORE")
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .args(["--json", "git", "worktree", "add", "--from"])
        .arg(src)
        .args(args);
    c
}

#[track_caller]
fn add_ok(src: &Path, home: &Path, args: &[&str]) -> Value {
    add_ok_timed(src, home, args).0
}

/// [`add_ok`], and how many target directories the snapshot way read in SRC and in the
/// snapshot (from the `COWTREE_TIMING` line).
#[track_caller]
fn add_ok_timed(src: &Path, home: &Path, args: &[&str]) -> (Value, Option<(u64, u64)>) {
    let out = add(src, home, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "add {args:?}: {err}");
    let dirs = err.lines().find_map(|l| {
        let rest = l.split("directories read in SRC ").nth(1)?;
        let mut n = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty());
        Some((n.next()?.parse().ok()?, n.next()?.parse().ok()?))
    });
    (
        serde_json::from_slice(&out.stdout).expect("one JSON object"),
        dirs,
    )
}

/// Sets the mtime of `p` (not following a symlink) 100 s back, so that an index written next
/// records it as not racy without waiting for the clock.
fn backdate(p: &Path) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 100;
    let st = Command::new("touch")
        .args(["-h", "-d", &format!("@{t}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Writes `p` (with its parents) with an mtime 100 s back.
fn write(p: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    let t = std::time::SystemTime::now() - Duration::from_secs(100);
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

/// A new subvolume `name` in `parent`.
fn subvolume(parent: &Path, name: &str) -> PathBuf {
    let d = Dir::open(parent).unwrap();
    create(At::new(&d, parent), OsStr::new(name)).expect("create subvolume");
    parent.join(name)
}

/// A repository in the new subvolume `base/src`, two commits deep, then changed in every way
/// the two ways must agree on: files modified (unstaged and staged), deleted, replaced by a
/// directory, made executable, racy; untracked files and directories, ignored ones (some named
/// by `.worktreeinclude`), a nested repository, a FIFO and a nested repository inside an
/// ignored directory, a file git's checkout filters change, a submodule-like gitlink.
fn make_src(base: &Path) -> PathBuf {
    let src = subvolume(base, "src");
    git(&src, &["init", "-q", "-b", "main"]);
    for d in 0..4 {
        for f in 0..6 {
            write(
                &src.join(format!("d{d}/s{}/f{f}.txt", f % 2)),
                format!("file {d} {f}\n").repeat(f + 1),
            );
        }
    }
    write(&src.join("big.bin"), pattern(256 << 10, 3));
    write(&src.join("empty"), b"");
    write(&src.join("run.sh"), b"#!/bin/sh\necho hi\n");
    fs::set_permissions(src.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("d0/s0/f0.txt", src.join("link")).unwrap();
    symlink("../nowhere", src.join("d1/dangling")).unwrap();
    backdate(&src.join("link"));
    backdate(&src.join("d1/dangling"));
    write(&src.join("crlf.txt"), b"one\ntwo\n");
    write(&src.join(".gitattributes"), b"crlf.txt text eol=crlf\n");
    write(
        &src.join(".gitignore"),
        b"node_modules/\n*.log\n/target/\n.env\n/cache/\n",
    );
    write(&src.join(".worktreeinclude"), b".env\n");
    write(
        &src.join("gone/later.txt"),
        b"removed by the second commit\n",
    );
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "one"]);
    // The second commit: changed, removed, added, a mode change.
    write(&src.join("d0/s0/f0.txt"), b"changed by commit two\n");
    fs::remove_dir_all(src.join("gone")).unwrap();
    write(&src.join("d3/new.txt"), b"added by commit two\n");
    fs::set_permissions(src.join("d1/s1/f1.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "two"]);

    // Untracked and ignored content.
    write(&src.join("untracked.txt"), b"u\n");
    write(&src.join("d2/untracked-in-tracked.txt"), b"u\n");
    write(&src.join("loose/u.txt"), b"u\n");
    write(
        &src.join("loose/deep/u.log"),
        b"ignored inside an untracked dir\n",
    );
    write(&src.join("x.log"), b"ignored\n");
    write(&src.join(".env"), b"SECRET=1\n");
    write(
        &src.join("node_modules/pkg/index.js"),
        b"module.exports = 1;\n",
    );
    write(&src.join("node_modules/pkg/lib/a.js"), b"a\n");
    symlink("pkg/index.js", src.join("node_modules/main.js")).unwrap();
    write(
        &src.join("node_modules/gitdep/.git/HEAD"),
        b"ref: refs/heads/main\n",
    );
    write(&src.join("node_modules/gitdep/x.js"), b"x\n");
    let fifo = src.join("node_modules/pkg/fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    write(&src.join("target/out.bin"), pattern(64 << 10, 9));
    fs::create_dir(src.join("nested")).unwrap();
    git(&src.join("nested"), &["init", "-q"]);
    write(&src.join("nested/n.txt"), b"nested repository\n");
    git(&src, &["update-index", "-q", "--refresh"]);

    // Uncommitted changes to tracked files, made after the index: SRC's index cannot prove
    // these files clean.
    write(&src.join("d0/s1/f1.txt"), b"modified, not staged\n");
    write(&src.join("d1/s0/f2.txt"), b"modified and staged\n");
    git(&src, &["add", "d1/s0/f2.txt"]);
    fs::remove_file(src.join("d2/s0/f0.txt")).unwrap();
    fs::remove_file(src.join("d2/s1/f1.txt")).unwrap();
    write(
        &src.join("d2/s1/f1.txt/inside"),
        b"a directory where a file was\n",
    );
    fs::set_permissions(src.join("d3/s0/f2.txt"), fs::Permissions::from_mode(0o700)).unwrap();
    // Racy and clean: written in the second of the index that records it.
    fs::write(src.join("d3/s1/f3.txt"), b"racy, clean\n").unwrap();
    git(&src, &["add", "d3/s1/f3.txt"]);
    src
}

/// What a tree holds at each path, for comparing two trees made from one SRC.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    size: u64,
    target: Option<PathBuf>,
    hash: Option<[u8; 32]>,
    owner: (u32, u32),
}

fn listing(root: &Path) -> BTreeMap<PathBuf, (Node, (i64, i64))> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let node = Node {
                kind: if ft.is_symlink() {
                    'l'
                } else if ft.is_dir() {
                    'd'
                } else if ft.is_file() {
                    'f'
                } else {
                    's'
                },
                mode: m.mode() & 0o7777,
                size: if ft.is_dir() { 0 } else { m.len() },
                target: ft.is_symlink().then(|| fs::read_link(&p).unwrap()),
                hash: (ft.is_file() && rel != Path::new(".git"))
                    .then(|| *blake3::hash(&fs::read(&p).unwrap()).as_bytes()),
                owner: (m.uid(), m.gid()),
            };
            if ft.is_dir() {
                stack.push(p.clone());
            }
            out.insert(rel, (node, (m.mtime(), m.mtime_nsec())));
        }
    }
    out
}

/// Asserts that the snapshot's result `snap` and the per-file result `per` hold the same
/// entries, and the same mtime wherever the per-file way kept SRC's.
#[track_caller]
fn assert_same_listing(src: &Path, snap: &Path, per: &Path, what: &str) {
    let (a, b, s) = (listing(snap), listing(per), listing(src));
    let paths = |m: &BTreeMap<PathBuf, _>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&a), paths(&b), "{what}: the same paths");
    let mut kept_times = 0;
    for (p, (node, mtime)) in &b {
        let (snode, smtime) = &a[p];
        if p == Path::new(".git") {
            assert_eq!(snode.kind, 'f', "{what}: .git is a file");
            continue;
        }
        assert_eq!(snode, node, "{what}: {}", p.display());
        if node.kind != 'd' && s.get(p).is_some_and(|(_, t)| t == mtime) {
            kept_times += 1;
            assert_eq!(smtime, mtime, "{what}: mtime of {}", p.display());
        }
    }
    assert!(kept_times > 0, "{what}: no mtime compared");
}

/// Asserts that both indexes hold the same entries (mode, blob, stage, path, flags), each
/// entry's stat data equal to its own file's `lstat` (for the snapshot's, its device too) or
/// empty in both. (Entries written in the index's own second are racy, as after git's own
/// checkout: git re-reads those few at the first status.)
#[track_caller]
fn assert_same_index(snap: &Path, per: &Path, what: &str) {
    let (a, b) = (index_entries(snap), index_entries(per));
    assert_eq!(a.len(), b.len(), "{what}: entries");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (&x.stage, &x.path, &x.flags),
            (&y.stage, &y.path, &y.flags),
            "{what}"
        );
        let empty = |e: &IndexEntry| e.ino == 0 && e.size == 0 && e.mtime == "0:0";
        assert_eq!(empty(x), empty(y), "{what}: {} stat data", x.path);
        if empty(x) {
            continue;
        }
        for (wt, e, dev_too) in [(snap, x, true), (per, y, false)] {
            let m = fs::symlink_metadata(wt.join(&e.path)).unwrap();
            assert_eq!(
                e.ctime,
                format!("{}:{}", m.ctime(), m.ctime_nsec()),
                "{what}: {}",
                e.path
            );
            assert_eq!(
                e.mtime,
                format!("{}:{}", m.mtime(), m.mtime_nsec()),
                "{what}: {}",
                e.path
            );
            assert_eq!(e.ino, m.ino() & 0xffff_ffff, "{what}: {}", e.path);
            assert_eq!((e.uid, e.gid), (m.uid(), m.gid()), "{what}: {}", e.path);
            assert_eq!(e.size, m.len() & 0xffff_ffff, "{what}: {}", e.path);
            if dev_too {
                assert_eq!(e.dev, m.dev() & 0xffff_ffff, "{what}: {} device", e.path);
            }
        }
    }
}

/// The entries of `wt`'s index whose file has an mtime in the index file's second or later
/// (racy: git re-reads them).
fn racy_entries(wt: &Path) -> Vec<String> {
    let p = git(wt, &["rev-parse", "--git-path", "index"]);
    let index_mtime = fs::metadata(wt.join(p.trim())).unwrap().mtime();
    index_entries(wt)
        .into_iter()
        .filter(|e| fs::symlink_metadata(wt.join(&e.path)).is_ok_and(|m| m.mtime() >= index_mtime))
        .map(|e| e.path)
        .collect()
}

/// Runs every argument set twice, by snapshot and per file, and compares.
fn equivalence(base: &Path, full: bool) {
    let home = base.join("home");
    fs::create_dir(&home).unwrap();
    let src = make_src(base);
    let head1 = git(&src, &["rev-parse", "HEAD~1"]);
    let mut sets: Vec<Vec<&str>> = vec![vec!["--detach"], vec!["--with-changes", "--detach"]];
    if full {
        sets.extend([
            vec!["--detach", "--ignored"],
            vec!["--detach", "--ignored=*.log", "--ignored=node_modules"],
            vec!["--detach", "--no-ignored"],
            vec!["--detach", "COMMIT", head1.trim()],
        ]);
    }
    for (n, set) in sets.iter().enumerate() {
        let what = format!("{set:?}");
        if n == 0 {
            // Every directory just changed (an entry made and removed): the first run must
            // look at them in the snapshot.
            for d in ["", "d0", "d0/s0", "d1", "d2/s1", "d3/s0"] {
                let p = src.join(d).join(".touched");
                fs::write(&p, b"").unwrap();
                fs::remove_file(&p).unwrap();
            }
        }
        if n == 1 {
            // SRC's directories changed less than a second ago in the first run, which looks
            // at them in the snapshot; from now on they are older, and looked at in SRC.
            std::thread::sleep(Duration::from_millis(1100));
        }
        let snap = base.join(format!("snap{n}"));
        let per = base.join(format!("per{n}"));
        // The snapshot whatever the cost rule says: this small SRC has more entries in its
        // `.git` than tracked ones (the rule has its own test).
        // Options, DST, then COMMIT-ISH.
        let (opts, commit) = match set.iter().position(|a| *a == "COMMIT") {
            Some(i) => (&set[..i], &set[i + 1..]),
            None => (&set[..], &[][..]),
        };
        let args = |dst: &Path, extra: &str| -> Vec<String> {
            opts.iter()
                .chain([&extra, &dst.to_str().unwrap()])
                .chain(commit)
                .map(|s| s.to_string())
                .collect()
        };
        let a = args(&snap, "--subvolume");
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (r, dirs) = add_ok_timed(&src, &home, &a);
        let (in_src, in_snapshot) = dirs.expect("the timing line");
        if n == 0 {
            assert!(in_snapshot >= 6, "{what}: {dirs:?}");
        } else {
            assert!(in_src > in_snapshot, "{what}: {dirs:?}");
        }
        assert_eq!(r["method"], "subvolume", "{what}: {r}");
        assert_eq!(r["reason"], Value::Null, "{what}: {r}");
        let d = Dir::open(&snap).unwrap();
        assert!(is_root(At::new(&d, &snap)).unwrap(), "{what}: a subvolume");
        let b = args(&per, "--per-file");
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        let p = add_ok(&src, &home, &b);
        assert_eq!(p["method"], "per-file", "{what}: {p}");
        assert_eq!(p["reason"], "per-file-asked", "{what}: {p}");
        for k in [
            "entries",
            "carried",
            "ignored_files",
            "ignored_symlinks",
            "ignored_dirs",
        ] {
            assert_eq!(r["counts"][k], p["counts"][k], "{what}: {k}: {r} {p}");
        }
        // What the per-file way clones, the snapshot keeps (and clean symlinks, which the
        // per-file way writes anew); what it writes from objects, so does the snapshot way.
        let n = |v: &Value, k: &str| v["counts"][k].as_u64().unwrap();
        assert_eq!(
            n(&r, "kept") + n(&r, "from_objects"),
            n(&p, "cloned") + n(&p, "copied") + n(&p, "from_objects"),
            "{what}: {r} {p}"
        );
        assert!(n(&r, "kept") >= n(&p, "cloned"), "{what}: {r} {p}");
        for k in ["reused_after_hash", "hash_mismatches"] {
            assert_eq!(r["counts"][k], p["counts"][k], "{what}: {k}: {r} {p}");
        }
        if !set.contains(&"--with-changes") {
            assert!(
                n(&r, "reused_on_stat") > 20
                    && n(&r, "from_objects") + n(&r, "reused_after_hash") >= 7,
                "{what}: {r}"
            );
        }
        assert_eq!(
            r["nested_repos_skipped"], p["nested_repos_skipped"],
            "{what}: {r} {p}"
        );
        assert_same_listing(&src, &snap, &per, &what);
        assert_same_index(&snap, &per, &what);
        let (ss, sp) = (
            git(&snap, &["status", "--porcelain"]),
            git(&per, &["status", "--porcelain"]),
        );
        assert_eq!(ss, sp, "{what}: git status");
        if set.contains(&"--with-changes") {
            assert_eq!(ss, git(&src, &["status", "--porcelain", "-uno"]), "{what}");
            assert_eq!(
                git(&snap, &["diff", "--cached"]),
                git(&src, &["diff", "--cached"]),
                "{what}"
            );
        } else {
            assert_eq!(ss, "", "{what}: git status in the snapshot's result");
            // git reads no file but those written in the index's own second.
            let racy = racy_entries(&snap);
            for p in files_git_status_opens(&snap) {
                let rel = p
                    .strip_prefix(&format!("{}/", snap.display()))
                    .unwrap_or(&p);
                assert!(racy.iter().any(|r| r == rel), "{what}: git status read {p}");
            }
        }
        // git removes it as one of its own, and SRC is as it was.
        git(
            &src,
            &["worktree", "remove", "--force", snap.to_str().unwrap()],
        );
        git(
            &src,
            &["worktree", "remove", "--force", per.to_str().unwrap()],
        );
    }
    git(&src, &["fsck", "--no-progress"]);
    assert_eq!(git(&src, &["worktree", "list"]).lines().count(), 1);
}

fn btrfs_mounts() -> Option<Vec<PathBuf>> {
    Some(vec![mount(Fs::Btrfs)?, mount(Fs::BtrfsUserRm)?])
}

#[test]
fn a_snapshot_of_src_is_made_into_exactly_the_per_file_worktree() {
    let Some(mounts) = btrfs_mounts() else { return };
    let user = TestUser::create();
    for (i, m) in mounts.iter().enumerate() {
        let dir = tempfile::tempdir_in(m).unwrap();
        equivalence(dir.path(), i == 0);
        if let Some(u) = &user {
            let d = u.dir_in(m);
            // The whole set of arguments as root on one mount; two of them elsewhere.
            let full = "0";
            u.run_test(
                "git_subvolume::child_equivalence",
                &[
                    ("COWTREE_T_DIR", d.path().as_os_str()),
                    ("COWTREE_T_FULL", OsStr::new(full)),
                ],
            );
        }
    }
}

#[test]
#[ignore = "run by a_snapshot_of_src_is_made_into_exactly_the_per_file_worktree as a test user"]
fn child_equivalence() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(std::env::var_os("COWTREE_T_DIR").unwrap());
    let full = std::env::var_os("COWTREE_T_FULL").is_some_and(|v| v == "1");
    equivalence(&dir, full);
}

/// A repository of `n` committed files in 20 directories, in the new subvolume `base/src`, its
/// objects packed (as after a clone), its index older than its files by more than a second.
fn small_src(base: &Path, n: usize) -> PathBuf {
    let src = subvolume(base, "src");
    git(&src, &["init", "-q", "-b", "main"]);
    for i in 0..n {
        write(
            &src.join(format!("d{}/f{i}.txt", i % 20)),
            format!("{i}\n").repeat(1 + i % 7),
        );
    }
    write(&src.join(".gitignore"), b"/cache/\n*.log\n");
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "base"]);
    git(&src, &["gc", "-q"]);
    src
}

fn human(src: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(src)
        .env_remove("COWTREE_STORE")
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .args(["git", "worktree", "add"])
        .args(args)
        .output()
        .expect("run cowtree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_cost_rule_takes_the_snapshot_unless_it_would_remove_more_than_per_file_creates() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let src = small_src(base, 300);
    let r = add_ok(&src, &home, &["--detach", base.join("a").to_str().unwrap()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    let line = human(&src, &home, &["--detach", base.join("h").to_str().unwrap()]);
    assert!(
        line.contains(&format!(
            ": a snapshot of {}: 301 entries, 301 kept",
            src.display()
        )),
        "{line}"
    );

    // 1,000 untracked files: more to remove than the 321 entries per file creates.
    for i in 0..1000 {
        write(&src.join(format!("junk/j{}/u{i}", i % 10)), b"u");
    }
    let r = add_ok(&src, &home, &["--detach", base.join("b").to_str().unwrap()]);
    assert_eq!(r["method"], "per-file", "{r}");
    assert_eq!(r["reason"], "cost", "{r}");
    let why = r["reason_description"].as_str().unwrap();
    assert!(
        why.starts_with("a snapshot would leave at least ")
            && why.ends_with("entries to remove, more than the 321 the per-file way creates"),
        "{why}"
    );
    let line = human(
        &src,
        &home,
        &["--detach", base.join("h2").to_str().unwrap()],
    );
    assert!(line.contains(&format!(" s (per file: {why})")), "{line}");
    // --subvolume takes it anyway, to the same result.
    let f = add_ok(
        &src,
        &home,
        &["--detach", "--subvolume", base.join("c").to_str().unwrap()],
    );
    assert_eq!(f["method"], "subvolume", "{f}");
    assert!(f["counts"]["removed"].as_u64().unwrap() > 1000, "{f}");
    assert_same_listing(&src, &base.join("c"), &base.join("b"), "--subvolume");
    assert_eq!(git(&base.join("c"), &["status", "--porcelain"]), "");
}

#[test]
fn nested_subvolumes_are_dropped_where_the_worktree_holds_nothing_else_made_per_file() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let src = small_src(base, 200);
    // A worktree inside SRC, where Claude Code makes them: itself a snapshot, so a nested
    // subvolume of SRC from now on.
    let inner = src.join(".claude/worktrees/inner");
    let r = add_ok(&src, &home, &["-b", "inner", inner.to_str().unwrap()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    let d = Dir::open(&inner).unwrap();
    assert!(is_root(At::new(&d, &inner)).unwrap());
    // An ignored cache that is a subvolume of its own.
    let cache = subvolume(&src, "cache");
    write(&cache.join("c.bin"), b"cached");

    let (a, b) = (base.join("a"), base.join("b"));
    let r = add_ok(&src, &home, &["--detach", a.to_str().unwrap()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    let p = add_ok(
        &src,
        &home,
        &["--detach", "--per-file", b.to_str().unwrap()],
    );
    assert_same_listing(&src, &a, &b, "holes dropped");
    assert!(!a.join(".claude").exists() && !a.join("cache").exists());
    assert_eq!(r["nested_repos_skipped"], p["nested_repos_skipped"]);
    assert_eq!(git(&a, &["status", "--porcelain"]), "");

    // With --ignored the cache belongs in DST: a snapshot would hold it empty.
    let r = add_ok(
        &src,
        &home,
        &["--detach", "--ignored", base.join("c").to_str().unwrap()],
    );
    assert_eq!(r["method"], "per-file", "{r}");
    assert_eq!(r["reason"], "nested-subvolumes", "{r}");
    assert!(
        r["reason_description"].as_str().unwrap().contains("cache"),
        "{r}"
    );
    assert_eq!(fs::read(base.join("c/cache/c.bin")).unwrap(), b"cached");

    // Tracked files inside a nested subvolume: per file.
    let vendor = subvolume(&src, "vendor");
    write(&vendor.join("v.txt"), b"vendored\n");
    git(&src, &["add", "vendor"]);
    git(&src, &["commit", "-qm", "vendor"]);
    let r = add_ok(&src, &home, &["--detach", base.join("e").to_str().unwrap()]);
    assert_eq!(r["reason"], "nested-subvolumes", "{r}");
    assert_eq!(
        fs::read(base.join("e/vendor/v.txt")).unwrap(),
        b"vendored\n"
    );
}

/// Run as root on a SRC holding entries of another owner: the per-file way makes every entry
/// root's, and so does the snapshot way: a tracked file of another owner is written anew (and
/// carried anew with `--with-changes`), a tracked directory of another owner sends the run per
/// file, as does a set-group-ID parent of DST.
#[test]
fn entries_of_another_owner_are_made_the_callers_as_per_file() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    if !rustix::process::geteuid().is_root() {
        cowtree_testutil::skip("needs root to give files away");
        return;
    }
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let src = small_src(base, 100);
    let nobody = |p: &Path| {
        let st = Command::new("chown")
            .args(["-h", "65534:65534"])
            .arg(p)
            .status()
            .unwrap();
        assert!(st.success());
    };
    nobody(&src.join("d1/f1.txt"));
    write(&src.join("d2/f2.txt"), b"changed, not staged\n");
    nobody(&src.join("d2/f2.txt"));
    std::thread::sleep(Duration::from_millis(1100));
    git(&src, &["update-index", "-q", "--refresh"]);
    for set in [&["--detach"][..], &["--detach", "--with-changes"][..]] {
        let what = format!("{set:?}");
        let (a, b) = (
            base.join(format!("a{}", set.len())),
            base.join(format!("b{}", set.len())),
        );
        let mut args = set.to_vec();
        args.push(a.to_str().unwrap());
        let r = add_ok(&src, &home, &args);
        assert_eq!(r["method"], "subvolume", "{what}: {r}");
        let mut args = set.to_vec();
        args.extend(["--per-file", b.to_str().unwrap()]);
        add_ok(&src, &home, &args);
        assert_same_listing(&src, &a, &b, &what);
        for f in ["d1/f1.txt", "d2/f2.txt"] {
            let st = fs::symlink_metadata(a.join(f)).unwrap();
            assert_eq!((st.uid(), st.gid()), (0, 0), "{what}: {f}");
        }
        assert_same_index(&a, &b, &what);
        assert_eq!(
            git(&a, &["status", "--porcelain"]),
            git(&b, &["status", "--porcelain"]),
            "{what}"
        );
    }
    assert_eq!(
        fs::read(base.join("a2/d2/f2.txt")).unwrap(),
        b"changed, not staged\n"
    );

    // A tracked directory of another owner: per file, said why.
    nobody(&src.join("d3"));
    let r = add_ok(&src, &home, &["--detach", base.join("c").to_str().unwrap()]);
    assert_eq!(r["method"], "per-file", "{r}");
    assert_eq!(r["reason"], "owner", "{r}");
    assert!(
        r["reason_description"]
            .as_str()
            .unwrap()
            .starts_with("d3 belongs to uid 65534"),
        "{r}"
    );
    let st = Command::new("chown")
        .args(["0:0"])
        .arg(src.join("d3"))
        .status()
        .unwrap();
    assert!(st.success());

    // DST's parent set-group-ID: per file (its group and bit go to what the per-file way makes).
    let parent = base.join("sgid");
    fs::create_dir(&parent).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o2777)).unwrap();
    let r = add_ok(
        &src,
        &home,
        &["--detach", parent.join("d").to_str().unwrap()],
    );
    assert_eq!(r["method"], "per-file", "{r}");
    assert_eq!(r["reason"], "owner", "{r}");
}

/// Where the kernel refuses the snapshot (a seccomp filter returns EPERM for it), the add is
/// made per file, and one warning says why.
#[test]
fn where_the_kernel_refuses_the_snapshot_the_worktree_is_made_per_file_and_a_warning_says_so_once()
{
    let Some(m) = mount(Fs::Btrfs) else { return };
    if !seccomp::available() {
        return;
    }
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let src = small_src(base, 200);
    let refused = base.join("refused");
    let mut c = add_command(&src, &home, &["--detach", refused.to_str().unwrap()]);
    seccomp::deny_ioctls(&mut c, vec![SNAP_CREATE_V2]);
    let out = c.output().expect("run cowtree");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        (&r["method"], &r["reason"]),
        (&"per-file".into(), &"not-permitted".into()),
        "{r}"
    );
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("cowtree: warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].ends_with("made the worktree per file instead"),
        "{err}"
    );
    // Permitted, the same arguments give a snapshot, and the two worktrees are the same.
    let snap = base.join("snap");
    let s = add_ok(&src, &home, &["--detach", snap.to_str().unwrap()]);
    assert_eq!(s["method"], "subvolume", "{s}");
    assert_same_listing(&src, &snap, &refused, "EPERM");
    assert_same_index(&snap, &refused, "EPERM");
    assert_eq!(git(&refused, &["status", "--porcelain"]), "");
}

#[test]
fn a_populated_submodule_is_left_an_empty_directory_by_the_snapshot_as_per_file() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let lib = base.join("lib");
    fs::create_dir(&lib).unwrap();
    git(&lib, &["init", "-q", "-b", "main"]);
    write(&lib.join("lib.rs"), b"pub fn f() {}\n");
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-qm", "lib"]);
    let src = small_src(base, 100);
    git(
        &src,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            lib.to_str().unwrap(),
            "sm",
        ],
    );
    git(&src, &["commit", "-qm", "submodule"]);
    git(&src, &["gc", "-q"]);
    assert!(
        src.join("sm/lib.rs").is_file(),
        "the submodule is populated in SRC"
    );
    std::thread::sleep(Duration::from_millis(1100));
    git(&src, &["update-index", "-q", "--refresh"]);
    let (snap, per) = (base.join("snap"), base.join("per"));
    let s = add(&src, &home, &["--detach", snap.to_str().unwrap()]);
    let p = add(
        &src,
        &home,
        &["--detach", "--per-file", per.to_str().unwrap()],
    );
    for (o, what) in [(&s, "snapshot"), (&p, "per file")] {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{what}: {err}");
        assert!(
            err.contains("submodule sm is not handled: left as an empty directory"),
            "{what}: {err}"
        );
    }
    let sj: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(sj["method"], "subvolume", "{sj}");
    assert_eq!(sj["submodules"], serde_json::json!(["sm"]), "{sj}");
    for wt in [&snap, &per] {
        assert_eq!(
            fs::read_dir(wt.join("sm")).unwrap().count(),
            0,
            "{}: sm is empty",
            wt.display()
        );
        assert_eq!(git(wt, &["status", "--porcelain"]), "", "{}", wt.display());
    }
    assert_same_listing(&src, &snap, &per, "submodule");
    assert_same_index(&snap, &per, "submodule");
}

/// A linked worktree made by snapshot is a subvolume root, so a source in turn: its `.git`
/// file, its untracked and ignored files and its changes do not reach the next one, which
/// equals the per-file result.
#[test]
fn a_worktree_made_by_snapshot_is_a_source_in_turn() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let src = small_src(base, 60);
    let w1 = base.join("w1");
    let r = add_ok(&src, &home, &["-b", "w1", w1.to_str().unwrap()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    write(&w1.join("d1/f1.txt"), b"changed in w1\n");
    write(&w1.join("untracked.txt"), b"u\n");
    write(&w1.join("x.log"), b"ignored\n");
    let (a, b) = (base.join("a"), base.join("b"));
    let r = add_ok(&w1, &home, &["-b", "a", a.to_str().unwrap()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    assert_eq!(r["counts"]["from_objects"], 1, "{r}");
    add_ok(&w1, &home, &["-b", "b", "--per-file", b.to_str().unwrap()]);
    assert_same_listing(&w1, &a, &b, "from w1");
    assert_same_index(&a, &b, "from w1");
    assert_eq!(git(&a, &["status", "--porcelain"]), "");
    let gitfile = fs::read_to_string(a.join(".git")).unwrap();
    assert!(
        gitfile.starts_with("gitdir: ") && gitfile.trim_end().ends_with("/worktrees/a"),
        "{gitfile}"
    );
    assert_eq!(
        fs::read(a.join("d1/f1.txt")).unwrap(),
        fs::read(src.join("d1/f1.txt")).unwrap()
    );
}

#[test]
fn elsewhere_the_per_file_way_runs_and_says_why_where_it_helps() {
    // btrfs, SRC a plain directory: said in the summary.
    if let Some(m) = mount(Fs::Btrfs) {
        let dir = tempfile::tempdir_in(&m).unwrap();
        let base = dir.path();
        let src = base.join("plain");
        fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q"]);
        write(&src.join("f"), b"f\n");
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "c"]);
        let home = base.join("home");
        let r = add_ok(&src, &home, &["--detach", base.join("a").to_str().unwrap()]);
        assert_eq!(r["method"], "per-file", "{r}");
        assert_eq!(r["reason"], "not-a-subvolume-root", "{r}");
        let line = human(&src, &home, &["--detach", base.join("b").to_str().unwrap()]);
        assert!(
            line.ends_with(" s (per file: the source is not the root of a btrfs subvolume)\n"),
            "{line}"
        );
    }
    // XFS and ext4: as before, and the summary does not say it.
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(m) = mount(fsys) else { continue };
        let dir = tempfile::tempdir_in(&m).unwrap();
        let base = dir.path();
        let src = base.join("src");
        fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q"]);
        write(&src.join("f"), b"f\n");
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "c"]);
        let home = base.join("home");
        let r = add_ok(&src, &home, &["--detach", base.join("a").to_str().unwrap()]);
        assert_eq!(r["method"], "per-file", "{fsys:?}: {r}");
        assert_eq!(r["reason"], "filesystem", "{fsys:?}: {r}");
        let line = human(&src, &home, &["--detach", base.join("b").to_str().unwrap()]);
        assert!(!line.contains("per file"), "{fsys:?}: {line}");
    }
}

/// `cowtree git worktree remove` of a worktree the snapshot way made: one ioctl (strace), and
/// git's registration gone.
#[test]
fn remove_of_a_snapshot_worktree_deletes_its_subvolume_in_one_call() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    let dir = tempfile::tempdir_in(&m).unwrap();
    let base = dir.path();
    let home = base.join("home");
    let src = small_src(base, 300);
    let wt = base.join("wt");
    let r = add_ok(&src, &home, &["--detach", wt.to_str().unwrap()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    let log = base.join("remove.strace");
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=ioctl,unlink,unlinkat,rmdir", "-o"])
        .arg(&log)
        .arg(BIN)
        .args(["git", "worktree", "remove"])
        .arg(&wt)
        .current_dir(&src)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!wt.exists());
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("BTRFS_IOC_SNAP_DESTROY"), "{text}");
    // The tree has 300 files: removed one by one, as many unlinks. Those of git's own
    // registration (a few; more with reftable, whose tables go by name) are not the tree's.
    let unlinks = text
        .lines()
        .filter(|l| l.contains("unlink") && !l.contains("/.git/"))
        .count();
    assert!(
        unlinks < 30,
        "the tree was removed file by file: {unlinks} unlinks"
    );
    assert_eq!(git(&src, &["worktree", "list"]).lines().count(), 1);
}

/// Stops `add --subvolume -b br<i> <base>/wt<i>` with `sig` after `delay` (unless it ended).
fn add_then_signal(
    src: &Path,
    home: &Path,
    dst: &Path,
    branch: &str,
    delay: Duration,
    sig: i32,
) -> std::process::ExitStatus {
    let mut child = Command::new(BIN)
        .current_dir(src)
        .env_remove("COWTREE_STORE")
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", cowtree_testutil::git_global_config())
        .args(["git", "worktree", "add", "-q", "--subvolume", "-b", branch])
        .arg(dst)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + delay;
    while std::time::Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
    child.wait().unwrap()
}

/// Everything below `base` named as cowtree's staging.
fn stagings(base: &Path) -> Vec<PathBuf> {
    fs::read_dir(base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".cowtree-staging."))
        .collect()
}

fn interrupts(base: &Path, rounds: u64) {
    let home = base.join("home");
    let src = small_src(base, 3000);
    let t = std::time::Instant::now();
    let probe = base.join("probe");
    let r = add_ok(
        &src,
        &home,
        &["--detach", "--subvolume", probe.to_str().unwrap()],
    );
    assert_eq!(r["method"], "subvolume", "{r}");
    let took = t.elapsed();
    git(&src, &["worktree", "remove", probe.to_str().unwrap()]);
    let mut rng = cowtree_testutil::XorShift::from_clock("interrupts");
    let signals = [
        libc::SIGINT,
        libc::SIGKILL,
        libc::SIGTERM,
        libc::SIGKILL,
        libc::SIGHUP,
    ];
    for i in 0..rounds {
        let sig = signals[i as usize % signals.len()];
        let delay = Duration::from_micros(rng.below(took.as_micros() as u64 + 1));
        let (dst, branch) = (base.join(format!("wt{i}")), format!("br{i}"));
        let what = format!("round {i}: signal {sig} after {delay:?}");
        let status = add_then_signal(&src, &home, &dst, &branch, delay, sig);
        let mut gc_said = String::new();
        if sig == libc::SIGKILL {
            let out = Command::new(BIN)
                .env_remove("COWTREE_STORE")
                .env("HOME", &home)
                .env("XDG_STATE_HOME", home.join("state"))
                .env("XDG_DATA_HOME", home.join("data"))
                .arg("gc")
                .output()
                .unwrap();
            assert!(out.status.success(), "{what}: gc: {out:?}");
            gc_said = format!(
                "gc said: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            stagings(base).is_empty(),
            "{what}: {:?}; {gc_said}; registrations: {:?}",
            stagings(base),
            fs::read_dir(src.join(".git/worktrees"))
                .map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
        let list = git(&src, &["worktree", "list", "--porcelain"]);
        let branches = git(&src, &["branch", "--list", &branch]);
        println!(
            "{what}: {status:?}, {}",
            if dst.exists() {
                "complete"
            } else {
                "nothing left"
            }
        );
        if dst.join(".git").is_file() {
            // It had finished (or gc finished what a killed run had published).
            assert!(
                list.contains(&format!("worktree {}\n", dst.display())),
                "{what}"
            );
            assert_eq!(git(&dst, &["status", "--porcelain"]), "", "{what}");
            assert!(!branches.is_empty(), "{what}");
        } else {
            assert!(!dst.exists(), "{what}: {status:?} left {}", dst.display());
            assert!(!list.contains(&format!("wt{i}\n")), "{what}: {list}");
            assert!(branches.is_empty(), "{what}: branch left: {branches}");
        }
    }
    git(&src, &["worktree", "prune"]);
    git(&src, &["fsck", "--no-progress"]);
    let d = Dir::open(base).unwrap();
    let subvolumes = cowtree_fs::subvolume::below(At::new(&d, base)).unwrap();
    for s in subvolumes {
        let p = base.join(&s.path);
        assert!(
            p == src || p.join(".git").is_file(),
            "a subvolume left: {}",
            p.display()
        );
    }
}

#[test]
fn interrupts_at_random_points_leave_nothing_and_gc_takes_back_what_kill_9_left() {
    let Some(m) = mount(Fs::Btrfs) else { return };
    let dir = tempfile::tempdir_in(&m).unwrap();
    // Twice through the signals in the full tier, once in the README's run.
    interrupts(dir.path(), cowtree_testutil::rounds(10, 5));
    // Unprivileged, without user_subvol_rm_allowed: a snapshot goes by removing its tree.
    if let Some(u) = TestUser::create() {
        let d = u.dir_in(&m);
        u.run_test(
            "git_subvolume::child_interrupts",
            &[("COWTREE_T_DIR", d.path().as_os_str())],
        );
    }
}

#[test]
#[ignore = "run by interrupts_at_random_points_leave_nothing_and_gc_takes_back_what_kill_9_left as a test user"]
fn child_interrupts() {
    if !is_child() {
        return;
    }
    interrupts(
        &PathBuf::from(std::env::var_os("COWTREE_T_DIR").unwrap()),
        6,
    );
}
