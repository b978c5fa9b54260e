//! `cowtree clone --archive`: what `cp -a` keeps (owners, set-ID bits, extended attributes,
//! ACLs, hardlinks, special files), compared field by field with `cp -a --reflink=auto` of the
//! same tree on XFS, btrfs (per file) and ext4 as root; and as an unprivileged user on the
//! same three, what could not be kept said in one line, exit 0.

use crate::common;

use std::error::Error;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use cowtree_fs::extents::extent_summary;
use cowtree_testutil::user::TestUser;
use cowtree_testutil::{Fs, pattern, scratch, skip};
use serde_json::Value;

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// Owner and group of the entries that belong to someone else.
pub(crate) const OTHER: (u32, u32) = (1234, 5678);
/// The sparse file's size.
const BIG: u64 = 100 << 20;

/// Every entry of the tree [`make_tree`] makes, relative to its root ("" is the root).
pub(crate) const ENTRIES: [&str; 11] = [
    "", "a", "d", "d/a-link", "d/suid", "x", "sparse", "fifo", "l", "e", "e/f",
];

/// Runs `prog` with `args`; its stdout, or an error with its stderr when it fails.
pub(crate) fn tool(prog: &str, args: &[&OsStr]) -> Res<String> {
    let out = Command::new(prog).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "{prog} {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

pub(crate) fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// True when setfattr, getfattr, setfacl and getfacl are there (installed with apt-get when
/// missing); false after a skip line when they cannot be.
pub(crate) fn acl_tools() -> bool {
    let have = || {
        ["setfattr", "getfattr", "setfacl", "getfacl"]
            .iter()
            .all(|t| Command::new(t).arg("--version").output().is_ok())
    };
    if !have() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "acl", "attr"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
    }
    if have() {
        return true;
    }
    skip("setfattr/getfattr/setfacl/getfacl are missing and `apt-get install acl attr` failed");
    false
}

/// The tree every test here clones, made as root: a file `a` (1234:5678) with a second name
/// `d/a-link`; a set-user-ID directory `d` (4755, 1234:5678) holding a set-user-ID file
/// `suid` (1234:5678); `x` with a `user.test` attribute and an ACL `user:nobody:r--`; a 100 MiB
/// sparse file; a FIFO (0640, 1234:5678); a symlink `l` (1234:5678) to `a` with an attribute
/// of its own `trusted.test`; a directory `e` with a
/// default ACL and a file `e/f` that inherited it. Times are set to fixed values.
pub(crate) fn make_tree(src: &Path) -> Res {
    let p = |rel: &str| src.join(rel);
    let o = |rel: &str| p(rel).into_os_string();
    fs::create_dir(src)?;
    fs::write(p("a"), pattern(256 << 10, 68))?;
    fs::create_dir(p("d"))?;
    fs::hard_link(p("a"), p("d/a-link"))?;
    fs::write(p("d/suid"), b"#!/bin/sh\necho suid\n")?;
    fs::write(p("x"), b"attributes and an ACL")?;
    tool(
        "setfattr",
        &[os("-n"), os("user.test"), os("-v"), os("v1"), &o("x")],
    )?;
    tool("setfacl", &[os("-m"), os("u:nobody:r--"), &o("x")])?;
    let sparse = fs::File::create(p("sparse"))?;
    sparse.set_len(BIG)?;
    sparse.write_all_at(b"head", 0)?;
    sparse.write_all_at(b"tail", BIG - 4)?;
    drop(sparse);
    tool("mkfifo", &[os("-m"), os("0640"), &o("fifo")])?;
    std::os::unix::fs::symlink("a", p("l"))?;
    // The link's own attribute (Linux allows trusted.* and security.* on a symlink, as root).
    tool(
        "setfattr",
        &[
            os("-h"),
            os("-n"),
            os("trusted.test"),
            os("-v"),
            os("1"),
            &o("l"),
        ],
    )?;
    fs::create_dir(p("e"))?;
    tool("setfacl", &[os("-d"), os("-m"), os("u:nobody:rx"), &o("e")])?;
    fs::write(p("e/f"), b"made under a default ACL")?;
    let (uid, gid) = OTHER;
    for rel in ["a", "d", "d/suid", "fifo"] {
        std::os::unix::fs::chown(p(rel), Some(uid), Some(gid))?;
    }
    std::os::unix::fs::lchown(p("l"), Some(uid), Some(gid))?;
    // After the chown, which clears set-ID bits.
    fs::set_permissions(p("d"), fs::Permissions::from_mode(0o4755))?;
    fs::set_permissions(p("d/suid"), fs::Permissions::from_mode(0o4755))?;
    // Deepest first, so that setting a directory's times is the last change in it.
    for (i, rel) in ENTRIES.iter().rev().enumerate() {
        let at = format!("@{}", 1_500_000_000 + 1000 * i);
        tool("touch", &[os("-h"), os("-d"), os(&at), &o(rel)])?;
    }
    Ok(())
}

/// What is compared of one entry: `stat`'s mode, owner, group, link count, size, type and
/// mtime, its extended attributes (ACLs among them) and, but for a symlink, its ACL.
fn fields(path: &Path) -> Res<String> {
    fields_with(path, "%a %u %g %h %s %F %Y")
}

/// [`fields`] with `stat`'s `format` (times left out where a snapshot does not record them).
pub(crate) fn fields_with(path: &Path, format: &str) -> Res<String> {
    let p = path.as_os_str();
    let mut s = tool("stat", &[os("-c"), os(format), p])?;
    let attrs = tool(
        "getfattr",
        &[
            os("--absolute-names"),
            os("-h"),
            os("-d"),
            os("-m"),
            os("-"),
            os("-e"),
            os("hex"),
            p,
        ],
    )?;
    s.extend(
        attrs
            .lines()
            .filter(|l| !l.starts_with("# file:"))
            .map(|l| format!("{l}\n")),
    );
    if !fs::symlink_metadata(path)?.file_type().is_symlink() {
        s.push_str(&tool(
            "getfacl",
            &[
                os("--absolute-names"),
                os("--omit-header"),
                os("--physical"),
                p,
            ],
        )?);
    }
    Ok(s)
}

fn clone_archive(src: &Path, dst: &Path) -> Res<(Value, Output)> {
    let out = common::bin()
        .args([os("clone"), os("--archive"), os("--json")])
        .args([src, dst])
        .output()?;
    if !out.status.success() {
        return Err(format!("clone --archive: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok((serde_json::from_slice(&out.stdout)?, out))
}

pub(crate) fn ino(path: &Path) -> Res<u64> {
    Ok(fs::symlink_metadata(path)?.ino())
}

#[test]
fn archive_keeps_what_cp_a_keeps_on_xfs_btrfs_and_ext4() -> Res {
    if !rustix::process::geteuid().is_root() {
        skip("not root: cannot make a tree of other owners");
        return Ok(());
    }
    if !acl_tools() {
        return Ok(());
    }
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let what = format!("{fsys:?}");
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let reference = dir.path().join("cp-a");
        make_tree(&src)?;
        tool(
            "cp",
            &[
                os("-a"),
                os("--reflink=auto"),
                src.as_os_str(),
                reference.as_os_str(),
            ],
        )?;
        let (v, out) = clone_archive(&src, &dst)?;
        // A plain directory: per file on btrfs too.
        assert_eq!(v["method"], "per-file", "{what}: {v}");
        assert_eq!(v["hardlinks"], 1, "{what}: {v}");
        assert_eq!(v["special_made"], 1, "{what}: {v}");
        for k in ["ownership", "xattr", "acl", "links", "special"] {
            assert_eq!(v["not_kept"][k], 0, "{what}: {k}: {v}");
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("not kept"), "{what}: {stderr}");
        for rel in ENTRIES {
            assert_eq!(
                fields(&dst.join(rel))?,
                fields(&reference.join(rel))?,
                "{what}: {rel:?} differs from cp -a's"
            );
        }
        // The fields say what they should, not only what cp -a did.
        let d = fs::metadata(dst.join("d"))?;
        assert_eq!(
            (d.uid(), d.gid(), d.mode() & 0o7777),
            (1234, 5678, 0o4755),
            "{what}"
        );
        let suid = fs::metadata(dst.join("d/suid"))?;
        assert_eq!(suid.mode() & 0o7777, 0o4755, "{what}");
        assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        assert_ne!(ino(&dst.join("a"))?, ino(&src.join("a"))?, "{what}");
        assert!(
            fs::symlink_metadata(dst.join("fifo"))?
                .file_type()
                .is_fifo(),
            "{what}"
        );
        assert!(
            fields(&dst.join("x"))?.contains("user.test=0x7631"),
            "{what}"
        );
        // The symlink's own attribute, and its target's are the target's (not followed).
        assert!(
            fields(&dst.join("l"))?.contains("trusted.test=0x31"),
            "{what}"
        );
        assert!(!fields(&dst.join("a"))?.contains("trusted.test"), "{what}");
        assert!(
            fields(&dst.join("x"))?.contains("user:nobody:r--"),
            "{what}"
        );
        assert!(
            fields(&dst.join("e"))?.contains("default:user:nobody:r-x"),
            "{what}"
        );
        assert_eq!(
            fs::read(dst.join("sparse"))?,
            fs::read(src.join("sparse"))?,
            "{what}"
        );
        if Fs::COW.contains(&fsys) {
            for rel in ["a", "d/a-link", "sparse"] {
                assert!(
                    extent_summary(&dst.join(rel))?.fully_shared(),
                    "{what}: {rel} shares its data with the source"
                );
            }
        }
        // No file takes more blocks than cp -a's copy of it, and the sparse file keeps its
        // holes: by the clone on XFS and btrfs, by the copy (SEEK_DATA/SEEK_HOLE) on ext4.
        for rel in ["a", "d/suid", "x", "sparse", "e/f"] {
            let ours = fs::metadata(dst.join(rel))?.blocks();
            let cps = fs::metadata(reference.join(rel))?.blocks();
            assert!(
                ours <= cps,
                "{what}: {rel}: {ours} blocks where cp -a gives {cps}"
            );
        }
        let allocated = fs::metadata(dst.join("sparse"))?.blocks() * 512;
        assert!(
            allocated < 1 << 20,
            "{what}: the copy keeps the holes: {allocated} bytes allocated"
        );
        // A write to the copy leaves the source alone (and reaches the copy's other name,
        // as in cp -a's copy).
        let before = fs::read(src.join("a"))?;
        fs::OpenOptions::new()
            .write(true)
            .open(dst.join("a"))?
            .write_all_at(b"changed in the copy", 0)?;
        assert_eq!(fs::read(src.join("a"))?, before, "{what}");
        assert_eq!(fs::read(src.join("d/a-link"))?, before, "{what}");
        assert_ne!(fs::read(dst.join("d/a-link"))?, before, "{what}");
    }
    Ok(())
}

#[test]
fn archive_as_an_unprivileged_user_keeps_what_it_may_and_says_what_it_could_not() -> Res {
    if !acl_tools() {
        return Ok(());
    }
    let Some(user) = TestUser::create() else {
        return Ok(());
    };
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let what = format!("{fsys:?}");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let src = dir.path().join("src");
        make_tree(&src)?;
        let base = user.dir_in(dir.path());
        let home = user.dir_in(dir.path());
        let dst = base.path().join("dst");
        let out = user
            .command(common::BIN)
            .env_remove("COWTREE_STORE")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_STATE_HOME", home.path().join("state"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .args([os("clone"), os("--archive"), os("--json")])
            .args([&src, &dst])
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: exit 0: {stderr}");
        let v: Value = serde_json::from_slice(&out.stdout)?;
        // Every entry made belongs to others in SRC: the root and 2 directories, 5 files (not
        // the second name of `a`, which is the first's inode), the FIFO and the symlink.
        assert_eq!(v["not_kept"]["ownership"], 10, "{what}: {v}");
        for k in ["xattr", "acl", "links", "special"] {
            assert_eq!(v["not_kept"][k], 0, "{what}: {k}: {v}");
        }
        let said: Vec<&str> = stderr.lines().filter(|l| l.contains("not kept")).collect();
        assert_eq!(said.len(), 1, "{what}: one line: {stderr}");
        assert!(
            said[0].contains("ownership not kept for 10 entries (not permitted: run as root"),
            "{what}: {stderr}"
        );
        // The copy is the user's, without set-ID bits on files; the rest is kept.
        let a = fs::metadata(dst.join("a"))?;
        assert_eq!((a.uid(), a.gid()), (user.uid(), user.gid()), "{what}");
        assert_eq!(
            fs::metadata(dst.join("d/suid"))?.mode() & 0o7777,
            0o755,
            "{what}"
        );
        assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        assert!(
            fields(&dst.join("x"))?.contains("user.test=0x7631"),
            "{what}"
        );
        // The symlink's trusted.* attribute is not one the user may even see: nothing of it
        // is lost, nothing said.
        assert!(!fields(&dst.join("l"))?.contains("trusted."), "{what}");
        assert!(
            fields(&dst.join("x"))?.contains("user:nobody:r--"),
            "{what}"
        );
        assert!(
            fs::symlink_metadata(dst.join("fifo"))?
                .file_type()
                .is_fifo(),
            "{what}"
        );
        // Without --archive: nothing of that is asked, so nothing is said.
        let plain = user
            .command(common::BIN)
            .env("HOME", home.path())
            .args([os("clone"), os("--skip-special")])
            .args([&src, &base.path().join("plain")])
            .output()?;
        let plain_err = String::from_utf8_lossy(&plain.stderr);
        assert!(plain.status.success(), "{what}: {plain_err}");
        assert!(!plain_err.contains("not kept"), "{what}: {plain_err}");
        assert_ne!(
            ino(&base.path().join("plain/a"))?,
            ino(&base.path().join("plain/d/a-link"))?,
            "{what}: without links, each name is a file of its own"
        );
    }
    Ok(())
}

#[test]
fn preserve_items_keep_only_what_they_name() -> Res {
    if !rustix::process::geteuid().is_root() {
        skip("not root: cannot make a tree of other owners");
        return Ok(());
    }
    if !acl_tools() {
        return Ok(());
    }
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let src = dir.path().join("src");
    make_tree(&src)?;
    // xattr without acl: user.test, and no ACL; acl without xattr: the ACL only.
    let xattr_only = dir.path().join("xattr");
    let acl_only = dir.path().join("acl");
    for (list, dst) in [("xattr", &xattr_only), ("acl,links", &acl_only)] {
        let out = common::bin()
            .args([
                os("clone"),
                os("--skip-special"),
                os(&format!("--preserve={list}")),
            ])
            .args([&src, dst])
            .output()?;
        assert!(
            out.status.success(),
            "{list}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let x = fields(&xattr_only.join("x"))?;
    assert!(x.contains("user.test=0x7631"), "{x}");
    assert!(
        !x.contains("posix_acl") && !x.contains("user:nobody"),
        "{x}"
    );
    let a = fields(&acl_only.join("x"))?;
    assert!(!a.contains("user.test"), "{a}");
    assert!(a.contains("user:nobody:r--"), "{a}");
    // Owners are the caller's without `ownership`, and set-ID bits of files dropped.
    let suid = fs::metadata(acl_only.join("d/suid"))?;
    assert_eq!((suid.uid(), suid.mode() & 0o7777), (0, 0o755));
    assert_eq!(ino(&acl_only.join("a"))?, ino(&acl_only.join("d/a-link"))?);
    assert_ne!(
        ino(&xattr_only.join("a"))?,
        ino(&xattr_only.join("d/a-link"))?
    );
    // An unknown item is bad usage, before anything is written.
    let bad = dir.path().join("bad");
    let out = common::bin()
        .args([os("clone"), os("--preserve=owner")])
        .args([&src, &bad])
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bad.exists());
    Ok(())
}
