//! `cowtree clone` of btrfs subvolumes: one writable snapshot where the rules allow it
//! (docs/subvolumes.md), the per-file clone where they do not, and which ran and why. Each
//! case runs as root and as an unprivileged user, on a btrfs mounted without
//! `user_subvol_rm_allowed` and on one with it. Run through scripts/test.sh.

use crate::common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cowtree_fs::dir::Dir;
use cowtree_fs::subvolume::{At, create, is_root, set_read_only, snapshot};
use cowtree_testutil::loop_mount::{Kind, LoopMount, mkfs};
use cowtree_testutil::tree::{assert_same_tree, fill_sample_tree, snapshot as walk};
use cowtree_testutil::user::{As, TestUser, identities};
use cowtree_testutil::{Fs, XorShift, mount, scratch, tool};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cowtree");

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `cowtree clone ARGS...` as `who`, with HOME and XDG directories in `home`.
fn clone_as(who: As<'_>, home: &Path, args: &[&OsStr]) -> Output {
    let mut c = who.command(BIN);
    c.env_remove("COWTREE_STORE")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .arg("clone")
        .args(args);
    c.output().expect("run cowtree")
}

fn json_ok(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A new subvolume `name` in `parent` holding the sample tree, every entry owned by `who`.
fn subvolume_tree(who: As<'_>, parent: &Path, name: &str) -> PathBuf {
    let d = Dir::open(parent).expect("open parent");
    create(At::new(&d, parent), o(name)).expect("create subvolume");
    let root = parent.join(name);
    fill_sample_tree(&root);
    chown_tree(&root, who.uid(), gid_of(who));
    root
}

fn gid_of(who: As<'_>) -> u32 {
    match who {
        As::Root => 0,
        As::User(u) => u.gid(),
    }
}

fn chown_tree(root: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .arg("-hR")
        .arg(format!("{uid}:{gid}"))
        .arg(root)
        .status()
        .expect("chown");
    assert!(st.success());
}

/// `chmod -R a+rX`: the tree readable by every user.
fn readable_by_all(root: &Path) {
    let st = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(root)
        .status()
        .expect("chmod");
    assert!(st.success());
}

/// Every entry's owner under `root`.
fn owners(root: &Path) -> Vec<(PathBuf, u32)> {
    walk(root)
        .keys()
        .map(|rel| {
            let m = fs::symlink_metadata(root.join(rel)).expect("lstat");
            (rel.clone(), m.uid())
        })
        .collect()
}

fn ino(p: &Path) -> u64 {
    fs::symlink_metadata(p).expect("lstat").ino()
}

/// The mounts each case runs on: without and with `user_subvol_rm_allowed`.
fn btrfs_mounts() -> Option<Vec<PathBuf>> {
    Some(vec![mount(Fs::Btrfs)?, mount(Fs::BtrfsUserRm)?])
}

#[test]
fn a_subvolume_root_is_cloned_in_one_snapshot_identical_to_the_per_file_clone() {
    let Some(mounts) = btrfs_mounts() else { return };
    let user = TestUser::create();
    for m in &mounts {
        for who in identities(user.as_ref()) {
            let what = format!("{} on {}", who.label(), m.display());
            let base = who.dir_in(m);
            let home = who.dir_in(m);
            let src = subvolume_tree(who, base.path(), "src");
            let before = walk(&src);
            let dst = base.path().join("dst");
            let v = json_ok(
                &clone_as(
                    who,
                    home.path(),
                    &[o("--json"), src.as_os_str(), dst.as_os_str()],
                ),
                &what,
            );
            assert_eq!(v["method"], "subvolume", "{what}: {v}");
            assert_eq!(v["reason"], Value::Null, "{what}: {v}");
            assert_eq!(v["files"], Value::Null, "{what}: nothing was counted: {v}");
            // A subvolume of its own, with the source's inodes.
            let dst_dir = Dir::open(&dst).expect("open dst");
            assert!(is_root(At::new(&dst_dir, &dst)).expect("is_root"), "{what}");
            assert_eq!(
                ino(&dst.join("a/big.bin")),
                ino(&src.join("a/big.bin")),
                "{what}"
            );
            assert_same_tree(&before, &walk(&dst), true);

            // The per-file clone of the same tree is the same tree.
            let per_file = base.path().join("per-file");
            let v = json_ok(
                &clone_as(
                    who,
                    home.path(),
                    &[
                        o("--json"),
                        o("--per-file"),
                        src.as_os_str(),
                        per_file.as_os_str(),
                    ],
                ),
                &what,
            );
            assert_eq!(v["method"], "per-file", "{what}: {v}");
            assert_eq!(v["reason"], "per-file-asked", "{what}: {v}");
            assert_eq!(v["cloned"], 8, "{what}: {v}");
            assert_same_tree(&walk(&dst), &walk(&per_file), true);
            let uid = who.uid();
            for (path, owner) in owners(&dst).into_iter().chain(owners(&per_file)) {
                assert_eq!(owner, uid, "{what}: owner of {}", path.display());
            }

            // A write in the copy never reaches the source, nor the other way round.
            fs::write(dst.join("top.txt"), b"written in the copy").expect("write dst");
            fs::remove_file(dst.join("a/small.txt")).expect("rm in dst");
            fs::write(src.join("a/b/exec.sh"), b"written in the source").expect("write src");
            let mut after = walk(&src);
            assert_eq!(
                after.remove(Path::new("a/b/exec.sh")).map(|e| e.kind),
                Some(cowtree_testutil::tree::Kind::File(
                    b"written in the source".to_vec()
                ))
            );
            let mut expect = before.clone();
            expect.remove(Path::new("a/b/exec.sh"));
            for (p, e) in &expect {
                if p.as_os_str().is_empty() || p == Path::new("a/b") {
                    continue; // directories whose entries changed
                }
                assert_eq!(
                    after.get(p),
                    Some(e),
                    "{what}: {} in the source",
                    p.display()
                );
            }
            assert_ne!(
                fs::read(dst.join("a/b/exec.sh")).expect("read"),
                b"written in the source",
                "{what}"
            );
        }
    }
}

#[test]
fn the_human_summary_says_a_snapshot_was_taken() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let src = subvolume_tree(As::Root, t.path(), "src");
    let dst = t.path().join("dst");
    let out = clone_as(As::Root, t.path(), &[src.as_os_str(), dst.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with(&format!(
            "{}: writable snapshot of the subvolume {} (the whole tree in one call) in ",
            dst.display(),
            src.display()
        )),
        "{line}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nested_subvolumes_are_cloned_per_file_and_never_left_empty() {
    let Some(mounts) = btrfs_mounts() else { return };
    let user = TestUser::create();
    for m in &mounts {
        for who in identities(user.as_ref()) {
            let what = format!("{} on {}", who.label(), m.display());
            let base = who.dir_in(m);
            let home = who.dir_in(m);
            let src = subvolume_tree(who, base.path(), "src");
            let inner_parent = src.join("a");
            let d = Dir::open(&inner_parent).expect("open");
            create(At::new(&d, &inner_parent), o("inner")).expect("nested");
            fs::create_dir(src.join("a/inner/deep")).expect("mkdir");
            fs::write(src.join("a/inner/deep/f"), b"in the nested subvolume").expect("write");
            chown_tree(&src.join("a/inner"), who.uid(), gid_of(who));
            let dst = base.path().join("dst");
            let out = clone_as(who, home.path(), &[src.as_os_str(), dst.as_os_str()]);
            assert!(
                out.status.success(),
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            assert!(
                line.contains("(per file: the source holds 1 nested subvolume (e.g. a/inner)"),
                "{what}: {line}"
            );
            assert_eq!(
                fs::read(dst.join("a/inner/deep/f")).expect("nested content in the copy"),
                b"in the nested subvolume"
            );
            assert_same_tree(&walk(&src), &walk(&dst), false);
            let dst2 = base.path().join("dst2");
            let v = json_ok(
                &clone_as(
                    who,
                    home.path(),
                    &[o("--json"), src.as_os_str(), dst2.as_os_str()],
                ),
                &what,
            );
            assert_eq!(v["method"], "per-file", "{what}: {v}");
            assert_eq!(v["reason"], "nested-subvolumes", "{what}: {v}");
        }
    }
}

/// Each option and case that needs per-file work, with the reason --json gives.
#[test]
fn per_file_where_the_rules_say_so_with_the_reason() {
    let (Some(t), Some(other), Some(xfs)) = (
        scratch(Fs::Btrfs),
        scratch(Fs::BtrfsUserRm),
        scratch(Fs::Xfs),
    ) else {
        return;
    };
    let src = subvolume_tree(As::Root, t.path(), "src");
    fs::create_dir(t.path().join("exists")).expect("mkdir");
    let record = t.path().join("record.jsonl");
    let n = |s: &str| t.path().join(s).into_os_string();
    let cases: Vec<(Vec<OsString>, &str, &str)> = vec![
        (
            vec![src.join("a").into(), n("d1")],
            "not-a-subvolume-root",
            "per-file",
        ),
        (
            vec!["--mode".into(), "copy".into(), src.clone().into(), n("d2")],
            "mode",
            "per-file",
        ),
        (
            vec![
                "--mode".into(),
                "hardlink".into(),
                src.clone().into(),
                n("d3"),
            ],
            "mode",
            "per-file",
        ),
        (
            vec![
                "--record".into(),
                record.clone().into(),
                src.clone().into(),
                n("d4"),
            ],
            "record",
            "per-file",
        ),
        (
            vec!["--no-preserve-times".into(), src.clone().into(), n("d5")],
            "no-preserve-times",
            "per-file",
        ),
        (
            vec!["--skip-special".into(), src.clone().into(), n("d6")],
            "skip-special",
            "per-file",
        ),
        (
            vec![
                "--on-existing".into(),
                "overwrite".into(),
                src.clone().into(),
                n("exists"),
            ],
            "merge",
            "per-file",
        ),
        (
            vec![src.clone().into(), other.path().join("d7").into()],
            "cross-filesystem",
            "per-file",
        ),
        (
            vec!["--per-file".into(), src.clone().into(), n("d8")],
            "per-file-asked",
            "per-file",
        ),
        (
            vec![
                "--strict".into(),
                "--sync".into(),
                src.clone().into(),
                n("d9"),
            ],
            "",
            "subvolume",
        ),
    ];
    for (args, reason, method) in cases {
        let mut all: Vec<&OsStr> = vec![o("--json")];
        all.extend(args.iter().map(OsString::as_os_str));
        let v = json_ok(&clone_as(As::Root, t.path(), &all), &format!("{args:?}"));
        assert_eq!(v["method"], method, "{args:?}: {v}");
        if reason.is_empty() {
            assert_eq!(v["reason"], Value::Null, "{args:?}: {v}");
        } else {
            assert_eq!(v["reason"], reason, "{args:?}: {v}");
            assert!(v["reason_description"].is_string(), "{v}");
            assert!(v["files"].is_u64(), "{args:?}: counted per file: {v}");
        }
    }
    // A tree on XFS: per file as always, and the summary has nothing to say about it.
    let plain = xfs.path().join("src");
    cowtree_testutil::tree::sample_tree(&plain);
    let out = clone_as(
        As::Root,
        xfs.path(),
        &[plain.as_os_str(), xfs.path().join("dst").as_os_str()],
    );
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(!line.contains("per file"), "{line}");
    let v = json_ok(
        &clone_as(
            As::Root,
            xfs.path(),
            &[
                o("--json"),
                plain.as_os_str(),
                xfs.path().join("dst2").as_os_str(),
            ],
        ),
        "xfs",
    );
    assert_eq!(v["method"], "per-file");
    assert_eq!(v["reason"], "filesystem");
    assert_eq!(
        v["reason_description"],
        "the source's filesystem (xfs) cannot copy a whole tree"
    );
}

#[test]
fn a_subvolume_of_another_user_is_cloned_per_file_and_a_read_only_source_gives_a_writable_copy() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let who = As::User(&user);
    let base = who.dir_in(t.path());
    let home = who.dir_in(t.path());
    // Root's subvolume, readable by all.
    let theirs = subvolume_tree(As::Root, base.path(), "theirs");
    readable_by_all(&theirs);
    let v = json_ok(
        &clone_as(
            who,
            home.path(),
            &[
                o("--json"),
                theirs.as_os_str(),
                base.path().join("mine").as_os_str(),
            ],
        ),
        "not the owner",
    );
    assert_eq!(v["method"], "per-file", "{v}");
    assert_eq!(v["reason"], "not-owner", "{v}");
    for (p, owner) in owners(&base.path().join("mine")) {
        assert_eq!(owner, user.uid(), "{}", p.display());
    }

    // A read-only snapshot of the user's own subvolume as the source.
    let src = subvolume_tree(who, base.path(), "src");
    let d = Dir::open(base.path()).expect("open");
    let s = Dir::open(&src).expect("open src");
    snapshot(At::new(&s, &src), At::new(&d, base.path()), o("ro"), true).expect("ro snapshot");
    let ro = base.path().join("ro");
    let dst = base.path().join("from-ro");
    let v = json_ok(
        &clone_as(
            who,
            home.path(),
            &[o("--json"), ro.as_os_str(), dst.as_os_str()],
        ),
        "read-only source",
    );
    assert_eq!(v["method"], "subvolume", "{v}");
    fs::write(dst.join("new"), b"the copy is writable").expect("write in the copy");
    assert!(
        fs::write(ro.join("new"), b"x").is_err(),
        "the source stays read-only"
    );
    assert_same_tree(&walk(&src), &walk(&ro), true);
    let ro_dir = Dir::open(&ro).expect("open ro");
    set_read_only(At::new(&ro_dir, &ro), false).expect("clear ro to clean up");
}

/// The ownership rule (docs/subvolumes.md): a snapshot taken by the subvolume's owner keeps
/// the files of others theirs, with their modes; the per-file clone cannot read them.
#[test]
fn a_snapshot_by_its_owner_keeps_files_of_others_theirs() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let who = As::User(&user);
    let base = who.dir_in(t.path());
    let home = who.dir_in(t.path());
    let src = subvolume_tree(who, base.path(), "src");
    // Root puts files of its own in the user's subvolume.
    fs::write(src.join("roots-secret"), b"root only").expect("write");
    fs::set_permissions(src.join("roots-secret"), fs::Permissions::from_mode(0o600))
        .expect("chmod");
    fs::write(src.join("roots-tool"), b"#!/bin/sh\n").expect("write");
    fs::set_permissions(src.join("roots-tool"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    let dst = base.path().join("dst");
    let v = json_ok(
        &clone_as(
            who,
            home.path(),
            &[o("--json"), src.as_os_str(), dst.as_os_str()],
        ),
        "snapshot",
    );
    assert_eq!(v["method"], "subvolume", "{v}");
    for name in ["roots-secret", "roots-tool"] {
        let (a, b) = (
            fs::symlink_metadata(src.join(name)).expect("lstat"),
            fs::symlink_metadata(dst.join(name)).expect("lstat"),
        );
        assert_eq!((b.uid(), b.mode()), (0, a.mode()), "{name}");
    }
    assert_eq!(fs::symlink_metadata(&dst).expect("lstat").uid(), user.uid());
    // The user can no more read root's file in the copy than in the source.
    let out = user
        .command("cat")
        .arg(dst.join("roots-secret"))
        .output()
        .expect("cat");
    assert!(!out.status.success(), "read root's 0600 file in the copy");
    // Per file, the user cannot read it at all: an error, and nothing made.
    let per_file = base.path().join("per-file");
    let out = clone_as(
        who,
        home.path(),
        &[o("--per-file"), src.as_os_str(), per_file.as_os_str()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("roots-secret") && err.contains("ermission denied"),
        "{err}"
    );
    assert!(!per_file.exists());
}

/// EPERM from the snapshot ioctl itself (here: a user namespace where the caller is "root"
/// but does not own the source): per file, and said once.
#[test]
fn eperm_from_the_snapshot_falls_back_per_file_and_says_why_once() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let who = As::User(&user);
    let base = who.dir_in(t.path());
    let home = who.dir_in(t.path());
    let src = subvolume_tree(As::Root, base.path(), "src");
    readable_by_all(&src);
    let dst = base.path().join("dst");
    let out = user
        .command("unshare")
        .args(["--user", "--map-root-user", "--"])
        .arg(BIN)
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", home.path().join("state"))
        .arg("clone")
        .arg(&src)
        .arg(&dst)
        .output()
        .expect("run unshare");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("unshare failed") {
        cowtree_testutil::skip(&format!("no unprivileged user namespaces: {err}"));
        return;
    }
    assert!(out.status.success(), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warnings,
        [format!(
            "cowtree: warning: the kernel refused the snapshot (not permitted for this user): copied {} per file instead",
            src.display()
        )
        .as_str()],
        "{err}"
    );
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.contains("cloned 8 files"), "{line}");
    assert!(!line.contains("per file:"), "said once, not twice: {line}");
    assert_same_tree(&walk(&src), &walk(&dst), true);
}

/// A qgroup limit (EDQUOT) is a clear error and leaves nothing: on a btrfs of its own with
/// quotas on (so as not to slow the shared mounts).
#[test]
fn a_quota_limit_is_a_clear_error_and_leaves_nothing() {
    let Some(host) = scratch(Fs::Xfs) else { return };
    let Some(user) = TestUser::create() else {
        return;
    };
    let img = host.path().join("quota.img");
    let mnt = host.path().join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    fs::set_permissions(host.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    mkfs(Kind::Btrfs, &img, 512 << 20);
    let loopmount = LoopMount::mount(Kind::Btrfs, &img, &mnt, "");
    for who in identities(Some(&user)) {
        let base = who.dir_in(&mnt);
        let home = who.dir_in(&mnt);
        let src = subvolume_tree(who, base.path(), "src");
        tool("btrfs", &[o("quota"), o("enable"), mnt.as_os_str()]);
        tool(
            "btrfs",
            &[o("qgroup"), o("limit"), o("16K"), o("0/5"), mnt.as_os_str()],
        );
        let dst = base.path().join("dst");
        let out = clone_as(who, home.path(), &[src.as_os_str(), dst.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", who.label());
        assert!(
            err.contains(&format!("snapshot {}", dst.display()))
                && err.contains("quota exceeded")
                && err.contains("nothing was created"),
            "{}: {err}",
            who.label()
        );
        assert!(!dst.exists(), "{}", who.label());
        let left: Vec<_> = fs::read_dir(base.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, [OsString::from("src")], "{}", who.label());
        // Lifting the limit needs space it does not leave; disabling quotas drops it.
        tool("btrfs", &[o("quota"), o("disable"), mnt.as_os_str()]);
    }
    drop(loopmount);
}

/// Killed at any point (SIGKILL, SIGINT): the whole copy or nothing, and nothing else.
#[test]
fn a_clone_killed_at_any_point_leaves_the_whole_copy_or_nothing() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let src = subvolume_tree(As::Root, t.path(), "src");
    let want = walk(&src);
    let mut rng = XorShift::from_clock("clone killed");
    let (mut whole, mut none) = (0, 0);
    // 16 rounds in the full tier, 6 in the README's run (`cowtree_testutil::rounds`).
    for round in 0..cowtree_testutil::rounds(16, 6) {
        let dst = t.path().join(format!("dst{round}"));
        let mut child = common::bin()
            .arg("clone")
            .arg(&src)
            .arg(&dst)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start");
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        let sig = if round % 2 == 0 { "-KILL" } else { "-INT" };
        let _ = Command::new("kill")
            .arg(sig)
            .arg(child.id().to_string())
            .status();
        let _ = child.wait();
        if dst.exists() {
            assert_same_tree(&want, &walk(&dst), true);
            whole += 1;
        } else {
            none += 1;
        }
        let names: Vec<String> = fs::read_dir(t.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("cowtree"))
            .collect();
        assert!(names.is_empty(), "round {round}: left {names:?}");
    }
    println!("killed clones: {whole} whole, {none} absent");
}

/// A `subvol=` mount of the same btrfs is the same filesystem: one snapshot across the two
/// mounts (the kernel snapshots within a superblock, whatever the mount).
#[test]
fn a_subvol_mount_of_the_same_filesystem_takes_the_snapshot_too() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let src = subvolume_tree(As::Root, t.path(), "src");
    let d = Dir::open(t.path()).expect("open");
    create(At::new(&d, t.path()), o("other")).expect("create");
    let source = tool(
        "findmnt",
        &[
            o("-n"),
            o("-o"),
            o("SOURCE"),
            o("--target"),
            t.path().as_os_str(),
        ],
    );
    let top = mount(Fs::Btrfs).expect("mounted");
    let rel = t.path().join("other");
    let rel = rel.strip_prefix(&top).expect("below the mount");
    let mnt = tempfile::tempdir().expect("mount point");
    tool(
        "mount",
        &[
            o("-o"),
            OsString::from(format!("subvol=/{}", rel.display())).as_os_str(),
            o(source.trim()),
            mnt.path().as_os_str(),
        ],
    );
    let dst = mnt.path().join("dst");
    let out = clone_as(
        As::Root,
        t.path(),
        &[o("--json"), src.as_os_str(), dst.as_os_str()],
    );
    let umount = || {
        let _ = Command::new("umount").arg(mnt.path()).status();
    };
    if !out.status.success() {
        umount();
    }
    let v = json_ok(&out, "across a subvol= mount");
    let seen = walk(&t.path().join("other/dst"));
    umount();
    assert_eq!(v["method"], "subvolume", "{v}");
    assert_same_tree(&walk(&src), &seen, true);
}
