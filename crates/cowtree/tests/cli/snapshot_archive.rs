//! `cowtree snapshot --archive` and the checkout of such a snapshot: the tree of
//! `clone_archive` (owners, set-ID bits, attributes, ACLs, a hardlink pair, a FIFO) and a
//! character device, recorded in a store and checked out again, compared field by field with
//! `cp -a` of the same tree on XFS and btrfs as root; as an unprivileged user, what could not
//! be kept said in one line per kind, exit 0. Also: a version 1 manifest written byte by byte
//! (what older stores hold) still checks out, a snapshot without --archive is still version 1,
//! and a corrupted version 2 manifest is refused, never a panic.

use crate::clone_archive::{ENTRIES, OTHER, acl_tools, fields_with, ino, make_tree, os, tool};
use crate::common;
use crate::snapshot_archive_json::from_json;

use std::error::Error;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use cowtree_store::Hash;
use cowtree_testutil::user::TestUser;
use cowtree_testutil::{Fs, scratch, skip};
use serde_json::Value;

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// What is compared of one entry: as `clone_archive` compares it, with the device number and
/// without times (a manifest records none) or sizes (a directory's depends on the names it
/// held; the files' contents are compared on their own).
fn fields(path: &Path) -> Res<String> {
    let s = fields_with(path, "%a %u %g %h %F %t:%T")?;
    // The checkout's own marker on a worktree's root (naming its store).
    Ok(s.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("user.cowtree.store="))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// Runs the binary with `args`; the output, or an error with its stderr when it fails.
pub(crate) fn run(args: &[&std::ffi::OsStr]) -> Res<Output> {
    let out = common::bin().args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "cowtree {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

pub(crate) fn json(out: &Output) -> Res<Value> {
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Whether the tests of owners, device nodes and ACLs can run: as root (else skipped with
/// `why`), with the ACL tools.
pub(crate) fn root_with_acl_tools(why: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        skip(why);
        return false;
    }
    acl_tools()
}

/// Makes the character device 4,64 (a tty) at `path` with permission bits `mode` (octal).
pub(crate) fn tty(path: &Path, mode: &str) -> Res {
    tool(
        "mknod",
        &[
            os("-m"),
            os(mode),
            path.as_os_str(),
            os("c"),
            os("4"),
            os("64"),
        ],
    )?;
    Ok(())
}

/// The arguments of `cowtree CMD --store STORE ARGS...`.
pub(crate) fn in_store<'a>(
    cmd: &'a str,
    store: &'a Path,
    args: &[&'a std::ffi::OsStr],
) -> Vec<&'a std::ffi::OsStr> {
    let mut v = vec![os(cmd), os("--store"), store.as_os_str()];
    v.extend_from_slice(args);
    v
}

/// The permission bits (with set-ID and sticky) of what `path` names, through symlinks.
fn bits(path: &Path) -> Res<u32> {
    Ok(fs::metadata(path)?.mode() & 0o7777)
}

/// `cowtree checkout --store STORE ASKED... --json ID DST`, which must succeed: its JSON.
fn checkout_json(store: &Path, asked: &[&str], id: &str, dst: &Path) -> Res<Value> {
    let mut args: Vec<&std::ffi::OsStr> = asked.iter().map(|a| os(a)).collect();
    args.extend([os("--json"), os(id), dst.as_os_str()]);
    json(&run(&in_store("checkout", store, &args))?)
}

/// The first bytes of snapshot `id`'s manifest file in `store`: its version.
pub(crate) fn version(store: &Path, id: &str) -> Res<u32> {
    let bytes = fs::read(store.join("snapshots").join(id))?;
    let v = bytes
        .get(8..12)
        .ok_or("a manifest shorter than its header")?;
    Ok(u32::from_le_bytes(v.try_into()?))
}

#[test]
fn snapshot_archive_and_checkout_keep_what_cp_a_keeps_on_xfs_and_btrfs() -> Res {
    if !root_with_acl_tools("not root: cannot make a tree of other owners") {
        return Ok(());
    }
    for fsys in [Fs::Xfs, Fs::Btrfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let what = format!("{fsys:?}");
        let src = dir.path().join("src");
        let store = dir.path().join("store");
        let dst = dir.path().join("dst");
        let reference = dir.path().join("cp-a");
        make_tree(&src)?;
        tty(&src.join("tty"), "0620")?;
        let (uid, gid) = OTHER;
        std::os::unix::fs::chown(src.join("tty"), Some(uid), Some(gid))?;
        tool("cp", &[os("-a"), src.as_os_str(), reference.as_os_str()])?;

        let snap = run(&in_store(
            "snapshot",
            &store,
            &[os("--archive"), os("--json"), src.as_os_str()],
        ))?;
        let v = json(&snap)?;
        assert_eq!(v["archive"], true, "{what}: {v}");
        let id = v["id"].as_str().ok_or("no id")?.to_string();
        assert_eq!(version(&store, &id)?, 2, "{what}");

        let out = run(&in_store(
            "checkout",
            &store,
            &[os("--archive"), os("--json"), os(&id), dst.as_os_str()],
        ))?;
        let v = json(&out)?;
        assert_eq!(v["archive"], true, "{what}: {v}");
        let all = serde_json::json!(["ownership", "xattr", "acl", "links", "special"]);
        assert_eq!(v["recorded"], all, "{what}: {v}");
        assert_eq!(v["preserve"], all, "{what}: {v}");
        assert_eq!(v["not_recorded"], serde_json::json!([]), "{what}: {v}");
        assert_eq!(v["special_not_made"], 0, "{what}: {v}");
        for k in ["ownership", "xattr", "acl", "links", "special"] {
            assert_eq!(v["not_kept"][k], 0, "{what}: {k}: {v}");
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("not kept"), "{what}: {stderr}");
        assert!(!stderr.contains("not made"), "{what}: {stderr}");
        if fsys == Fs::Btrfs {
            // The tree subvolume's snapshot, given the metadata afterwards.
            assert_eq!(v["method"], "subvolume", "{what}: {v}");
        }
        for rel in ENTRIES.iter().chain(&["tty"]) {
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
        assert_eq!((suid.uid(), suid.mode() & 0o7777), (1234, 0o4755), "{what}");
        assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        assert_eq!(fs::metadata(dst.join("a"))?.nlink(), 2, "{what}");
        let fifo = fs::symlink_metadata(dst.join("fifo"))?;
        assert!(fifo.file_type().is_fifo(), "{what}");
        assert_eq!((fifo.uid(), fifo.mode() & 0o7777), (1234, 0o640), "{what}");
        let tty = fs::symlink_metadata(dst.join("tty"))?;
        assert!(tty.file_type().is_char_device(), "{what}");
        assert_eq!(tty.rdev(), rustix::fs::makedev(4, 64), "{what}");
        assert_eq!((tty.uid(), tty.mode() & 0o7777), (1234, 0o620), "{what}");
        let l = fs::symlink_metadata(dst.join("l"))?;
        assert_eq!((l.uid(), l.gid()), OTHER, "{what}");
        let x = fields(&dst.join("x"))?;
        assert!(x.contains("user.test=0x7631"), "{what}: {x}");
        assert!(x.contains("user:nobody:r--"), "{what}: {x}");
        assert!(
            fields(&dst.join("e"))?.contains("default:user:nobody:r-x"),
            "{what}"
        );
        assert_eq!(fs::read(dst.join("a"))?, fs::read(src.join("a"))?, "{what}");

        // status sees the tree it checked out (the special files recorded are no change);
        // verify finds nothing wrong with a version 2 manifest.
        // The first status right after the checkout reads no file: its stat cache is of the
        // tree as the restore left it (owners, modes and attributes changed every ctime).
        let status = common::bin()
            .current_dir(&dst)
            .args(["status", "--json"])
            .output()?;
        let v = json(&status)?;
        assert_eq!(
            (&v["clean"], &v["hashed"]),
            (&Value::from(true), &Value::from(0)),
            "{what}: {v}"
        );
        let status = common::bin().current_dir(&dst).args(["status"]).output()?;
        let (listed, said) = (
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr),
        );
        assert!(status.status.success(), "{what}: {status:?}");
        assert!(listed.is_empty(), "{what}: no change: {listed}");
        assert!(said.starts_with("clean: "), "{what}: {said}");
        run(&[os("verify"), os("--store"), store.as_os_str()])?;
        // switch to another version 2 snapshot: its entries, as for any snapshot.
        fs::write(src.join("added"), b"after the first snapshot")?;
        let next = json(&run(&in_store(
            "snapshot",
            &store,
            &[os("-a"), os("--json"), src.as_os_str()],
        ))?)?;
        let next_id = next["id"].as_str().ok_or("no id")?;
        let switched = common::bin()
            .current_dir(&dst)
            .args(["switch", next_id])
            .output()?;
        assert!(switched.status.success(), "{what}: {switched:?}");
        assert_eq!(fs::read(dst.join("added"))?, b"after the first snapshot");
        assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        // ... written as a plain checkout writes it, which switch says (reset likewise), with
        // the command that makes a worktree with what the snapshot records: run as printed.
        let said = String::from_utf8_lossy(&switched.stderr);
        assert!(
            said.contains("warning: switch wrote 1 entry as a plain checkout writes them"),
            "{what}: {said}"
        );
        let printed = common::suggested::commands(&said);
        assert_eq!(printed.len(), 1, "{what}: {said}");
        assert_eq!(printed[0][..2], ["cowtree", "--store"], "{what}: {said}");
        let ran = common::bin().args(&printed[0][1..]).output()?;
        assert!(ran.status.success(), "{what}: {said}: {ran:?}");
        let beside = dir.path().join("dst.archive");
        assert_eq!(fs::read(beside.join("added"))?, b"after the first snapshot");
        for rel in ENTRIES {
            assert_eq!(
                fields(&beside.join(rel))?,
                fields(&reference.join(rel))?,
                "{what}: {rel:?} of the printed checkout differs from cp -a's"
            );
        }
        fs::write(dst.join("x"), b"changed")?;
        let reset = common::bin()
            .current_dir(&dst)
            .args(["reset", "--json", "x"])
            .output()?;
        assert!(reset.status.success(), "{what}: {reset:?}");
        assert_eq!(json(&reset)?["archive_not_given"], 1, "{what}: {reset:?}");
        assert!(
            String::from_utf8_lossy(&reset.stderr).contains("warning: reset wrote 1 entry"),
            "{what}: {reset:?}"
        );

        // The same tree without --archive: version 1, another id.
        let plain_src = dir.path().join("plain");
        fs::create_dir(&plain_src)?;
        fs::write(plain_src.join("f"), b"plain")?;
        let plain = json(&run(&in_store(
            "snapshot",
            &store,
            &[os("--json"), plain_src.as_os_str()],
        ))?)?;
        let plain_id = plain["id"].as_str().ok_or("no id")?;
        assert_eq!(version(&store, plain_id)?, 1, "{what}");
        assert_eq!(plain["archive"], false, "{what}");
    }
    Ok(())
}

#[test]
fn checkout_of_an_archive_as_an_unprivileged_user_keeps_what_it_may_and_says_what_it_could_not()
-> Res {
    if !acl_tools() {
        return Ok(());
    }
    let Some(user) = TestUser::create() else {
        return Ok(());
    };
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
    let src = dir.path().join("src");
    make_tree(&src)?;
    tty(&src.join("tty"), "0620")?;
    // A file no one but root may read: the user's checkout of it is theirs, and as unreadable.
    fs::write(src.join("sealed"), b"sealed")?;
    fs::set_permissions(src.join("sealed"), fs::Permissions::from_mode(0o000))?;
    // Recorded as root, into a store the user may use.
    let home = user.dir_in(dir.path());
    let store = home.path().join("store");
    let v = json(&run(&in_store(
        "snapshot",
        &store,
        &[os("-a"), os("--json"), src.as_os_str()],
    ))?)?;
    let id = v["id"].as_str().ok_or("no id")?;
    tool(
        "chown",
        &[
            os("-R"),
            os(&format!("{}:{}", user.uid(), user.gid())),
            store.as_os_str(),
        ],
    )?;
    let dst = home.path().join("dst");
    let as_user = || {
        let mut cmd = user.command(common::BIN);
        cmd.env_remove("COWTREE_STORE")
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_STATE_HOME", home.path().join("state"))
            .env("XDG_CONFIG_HOME", home.path().join("config"));
        cmd
    };
    let out = as_user()
        .args([
            os("checkout"),
            os("--store"),
            store.as_os_str(),
            os("-a"),
            os("--json"),
            os(id),
        ])
        .arg(&dst)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit 0: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)?;
    // Everything but the second name of `a` and the device (not made) has an owner of
    // others: the root and 2 directories, 6 files, the FIFO and the symlink.
    assert_eq!(v["not_kept"]["ownership"], 11, "{v}");
    assert_eq!(v["not_kept"]["special"], 1, "{v}");
    // The symlink's trusted.* attribute, recorded by root, is one the user may not write.
    assert_eq!(v["not_kept"]["xattr"], 1, "{v}");
    for k in ["acl", "links"] {
        assert_eq!(v["not_kept"][k], 0, "{k}: {v}");
    }
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("not kept")).collect();
    assert_eq!(said.len(), 3, "one line per kind: {stderr}");
    assert!(
        said[0].contains("ownership not kept for 11 entries (not permitted: run as root"),
        "{stderr}"
    );
    assert!(
        said[1].contains("extended attributes not kept for 1 entry (a namespace you may not write"),
        "{stderr}"
    );
    assert!(said[2].contains("1 device node not kept"), "{stderr}");
    // The tree is the user's, set-ID bits dropped; hardlinks, attributes, ACLs and the FIFO
    // are kept, and the mode bits recorded.
    let a = fs::metadata(dst.join("a"))?;
    assert_eq!((a.uid(), a.gid()), (user.uid(), user.gid()));
    assert_eq!(bits(&dst.join("d/suid"))?, 0o755);
    assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?);
    let x = fields(&dst.join("x"))?;
    assert!(x.contains("user.test=0x7631"), "{x}");
    assert!(x.contains("user:nobody:r--"), "{x}");
    let fifo = fs::symlink_metadata(dst.join("fifo"))?;
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o640);
    assert!(!dst.join("tty").exists());
    assert_eq!(bits(&dst.join("sealed"))?, 0);
    // The stat cache is of the tree as the restore left it: status reads no file (none of
    // the sealed one, which the user may not read), and sees it clean, every time.
    for _ in 0..2 {
        let status = as_user()
            .current_dir(&dst)
            .args(["status", "--json"])
            .output()?;
        assert!(status.status.success(), "{status:?}");
        let v: Value = serde_json::from_slice(&status.stdout)?;
        assert_eq!(
            (&v["clean"], &v["hashed"]),
            (&Value::from(true), &Value::from(0)),
            "{v}"
        );
    }
    Ok(())
}

/// Every entry beneath `root` (and `root`), by path, with its `lstat`.
fn walk(root: &Path) -> Res<Vec<(std::path::PathBuf, fs::Metadata)>> {
    let mut out = vec![(root.to_path_buf(), fs::symlink_metadata(root)?)];
    let mut i = 0;
    while i < out.len() {
        if out[i].1.is_dir() {
            let dir = out[i].0.clone();
            for e in fs::read_dir(&dir)? {
                let p = e?.path();
                let m = fs::symlink_metadata(&p)?;
                out.push((p, m));
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Runs the binary with `args` and returns its output, exit 0 or not.
fn output(args: &[&std::ffi::OsStr]) -> Res<Output> {
    Ok(common::bin().args(args).output()?)
}

#[test]
fn checkout_gives_back_only_what_is_asked_of_a_snapshot_archive_and_nothing_without_it() -> Res {
    if !root_with_acl_tools("not root: cannot make a tree of other owners and a device node") {
        return Ok(());
    }
    for fsys in [Fs::Xfs, Fs::Btrfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let what = format!("{fsys:?}");
        let src = dir.path().join("src");
        let store = dir.path().join("store");
        // Owners 1234:5678 (a, d, d/suid set-user-ID, the FIFO, the symlink), a hardlinked
        // pair, an attribute and ACLs (make_tree); a character device; a set-user-ID file of
        // root's.
        make_tree(&src)?;
        tty(&src.join("tty"), "0666")?;
        fs::write(src.join("rootsuid"), b"#!/bin/sh\nid\n")?;
        std::os::unix::fs::chown(src.join("rootsuid"), Some(0), Some(0))?;
        fs::set_permissions(src.join("rootsuid"), fs::Permissions::from_mode(0o4755))?;
        let v = json(&run(&in_store(
            "snapshot",
            &store,
            &[os("--archive"), os("--json"), src.as_os_str()],
        ))?)?;
        let id = v["id"].as_str().ok_or("no id")?.to_string();
        let all = serde_json::json!(["ownership", "xattr", "acl", "links", "special"]);

        // Without --archive or --preserve: the tree as for a version 1 snapshot.
        let dst = dir.path().join("plain");
        let out = run(&in_store(
            "checkout",
            &store,
            &[os("--json"), os(&id), dst.as_os_str()],
        ))?;
        let v = json(&out)?;
        assert_eq!(v["archive"], false, "{what}: {v}");
        assert_eq!(v["recorded"], all, "{what}: {v}");
        assert_eq!(v["preserve"], serde_json::json!([]), "{what}: {v}");
        assert_eq!(v["not_recorded"], serde_json::json!([]), "{what}: {v}");
        assert_eq!(v["special_not_made"], 2, "{what}: {v}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = stderr.lines().collect();
        assert_eq!(said.len(), 1, "{what}: one line: {stderr}");
        assert!(
            said[0].starts_with("cowtree: 2 special files ")
                && said[0].contains("were not made: --archive or --preserve=special makes them"),
            "{what}: {stderr}"
        );
        // No device node, no FIFO; every entry the caller's (root's), no set-ID bit, only
        // directories, files and symlinks.
        assert!(fs::symlink_metadata(dst.join("tty")).is_err(), "{what}");
        assert!(fs::symlink_metadata(dst.join("fifo")).is_err(), "{what}");
        let entries = walk(&dst)?;
        assert!(entries.len() > 10, "{what}: {entries:?}");
        for (path, m) in &entries {
            let ft = m.file_type();
            assert!(
                ft.is_dir() || ft.is_file() || ft.is_symlink(),
                "{what}: {path:?} is {ft:?}"
            );
            assert_eq!((m.uid(), m.gid()), (0, 0), "{what}: {path:?}");
            if !ft.is_symlink() {
                assert_eq!(m.mode() & 0o6000, 0, "{what}: {path:?}: {:o}", m.mode());
            }
        }
        for rel in ["d/suid", "rootsuid"] {
            assert_eq!(bits(&dst.join(rel))?, 0o755, "{what}: {rel}");
        }
        assert_eq!(bits(&dst.join("a"))?, 0o644, "{what}");
        // Hardlinked names are files of their own; no attribute, no ACL.
        assert_ne!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        assert_eq!(fs::metadata(dst.join("a"))?.nlink(), 1, "{what}");
        let x = fields(&dst.join("x"))?;
        assert!(!x.contains("user.test"), "{what}: {x}");
        assert!(!x.contains("user:nobody"), "{what}: {x}");
        assert!(
            !fields(&dst.join("e"))?.contains("default:user:nobody"),
            "{what}"
        );
        assert_eq!(fs::read(dst.join("a"))?, fs::read(src.join("a"))?, "{what}");
        // status: nothing changed (the special files not made are not entries).
        let status = common::bin().current_dir(&dst).args(["status"]).output()?;
        assert!(status.status.success(), "{what}: {status:?}");
        assert!(status.stdout.is_empty(), "{what}: {status:?}");

        // --preserve=links alone: the pair linked, the recorded modes without set-ID bits,
        // still no owner, attribute or special file.
        let dst = dir.path().join("links");
        let v = checkout_json(&store, &["--preserve=links"], &id, &dst)?;
        assert_eq!(v["archive"], true, "{what}: {v}");
        assert_eq!(v["preserve"], serde_json::json!(["links"]), "{what}: {v}");
        assert_eq!(v["special_not_made"], 2, "{what}: {v}");
        assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        assert_eq!(fs::metadata(dst.join("a"))?.nlink(), 2, "{what}");
        for (path, m) in &walk(&dst)? {
            assert_eq!((m.uid(), m.gid()), (0, 0), "{what}: {path:?}");
            if !m.file_type().is_symlink() {
                assert_eq!(m.mode() & 0o6000, 0, "{what}: {path:?}: {:o}", m.mode());
            }
        }
        assert_eq!(bits(&dst.join("d"))?, 0o755, "{what}");
        assert_eq!(bits(&dst.join("rootsuid"))?, 0o755, "{what}");
        assert!(fs::symlink_metadata(dst.join("tty")).is_err(), "{what}");
        assert!(!fields(&dst.join("x"))?.contains("user.test"), "{what}");

        // --preserve=ownership alone: owners and set-ID bits, the second name of the pair a
        // file of its own given the pair's owner; no link, attribute or special file.
        let dst = dir.path().join("owners");
        let v = checkout_json(&store, &["--preserve=ownership"], &id, &dst)?;
        assert_eq!(
            v["preserve"],
            serde_json::json!(["ownership"]),
            "{what}: {v}"
        );
        assert_ne!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        for rel in ["a", "d/a-link", "d", "d/suid"] {
            let m = fs::metadata(dst.join(rel))?;
            assert_eq!((m.uid(), m.gid()), OTHER, "{what}: {rel}");
        }
        assert_eq!(bits(&dst.join("d/suid"))?, 0o4755, "{what}");
        assert_eq!(bits(&dst.join("rootsuid"))?, 0o4755, "{what}");
        assert!(fs::symlink_metadata(dst.join("tty")).is_err(), "{what}");
        assert!(!fields(&dst.join("x"))?.contains("user.test"), "{what}");

        // Asked for more than a snapshot records: one line naming what it does not, exit 0.
        let v = json(&run(&in_store(
            "snapshot",
            &store,
            &[
                os("--preserve=links,special"),
                os("--json"),
                src.as_os_str(),
            ],
        ))?)?;
        let links_only = v["id"].as_str().ok_or("no id")?.to_string();
        let dst = dir.path().join("more");
        let out = output(&in_store(
            "checkout",
            &store,
            &[os("-a"), os("--json"), os(&links_only), dst.as_os_str()],
        ))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {stderr}");
        let v = json(&out)?;
        let kept = serde_json::json!(["links", "special"]);
        assert_eq!(v["recorded"], kept, "{what}: {v}");
        assert_eq!(v["preserve"], kept, "{what}: {v}");
        assert_eq!(
            v["not_recorded"],
            serde_json::json!(["ownership", "xattr", "acl"]),
            "{what}: {v}"
        );
        let said: Vec<&str> = stderr.lines().collect();
        assert_eq!(said.len(), 1, "{what}: one line: {stderr}");
        assert!(
            said[0].contains("does not record ownership, xattr, acl ("),
            "{what}: {stderr}"
        );
        assert_eq!(ino(&dst.join("a"))?, ino(&dst.join("d/a-link"))?, "{what}");
        assert_eq!(fs::metadata(dst.join("a"))?.uid(), 0, "{what}");
        assert!(
            fs::symlink_metadata(dst.join("tty"))?
                .file_type()
                .is_char_device()
        );
        assert_eq!(bits(&dst.join("d/suid"))?, 0o755, "{what}");
    }
    Ok(())
}

/// A version 1 manifest written byte by byte from its format (docs/manifest.md), as stores
/// made before version 2 hold them: a file, an executable, a symlink, an empty directory.
fn v1_fixture(blob: &Hash, size: u64) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"CTMANIF\n");
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&4u64.to_le_bytes());
    let mut entry = |path: &[u8], kind: u8, data: &[u8]| {
        m.extend_from_slice(&(path.len() as u32).to_le_bytes());
        m.extend_from_slice(path);
        m.push(kind);
        m.extend_from_slice(data);
    };
    let blob_data = [&size.to_le_bytes()[..], blob.as_bytes()].concat();
    entry(b"bin/run", 2, &blob_data);
    entry(b"empty", 4, &[]);
    entry(b"file", 1, &blob_data);
    entry(b"link", 3, &[&3u32.to_le_bytes()[..], b"bin"].concat());
    m
}

#[test]
fn a_version_1_manifest_of_an_older_store_still_checks_out() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let store = dir.path().join("store");
    // A store with the blob in it (recorded by a snapshot), then the fixture beside it.
    let seed = dir.path().join("seed");
    fs::create_dir(&seed)?;
    let content = b"#!/bin/sh\necho run\n";
    fs::write(seed.join("f"), content)?;
    run(&in_store("snapshot", &store, &[os("-q"), seed.as_os_str()]))?;
    let blob = Hash::of(content);
    let bytes = v1_fixture(&blob, content.len() as u64);
    let id = Hash::of(&bytes).to_hex();
    // Its id, fixed: the version 1 encoding never changes.
    assert_eq!(
        id,
        "9168fe43a5a553c37ed5e3f69d6bf822bcda8d18215b82243eb0e379b69da1f8"
    );
    fs::write(store.join("snapshots").join(&id), &bytes)?;
    let dst = dir.path().join("dst");
    let out = run(&in_store(
        "checkout",
        &store,
        &[os("--json"), os(&id), dst.as_os_str()],
    ))?;
    let v = json(&out)?;
    assert_eq!(v["archive"], false, "{v}");
    assert_eq!(v["files"], 2, "{v}");
    assert_eq!(fs::read(dst.join("file"))?, content);
    assert_eq!(bits(&dst.join("file"))?, 0o644);
    assert_eq!(bits(&dst.join("bin/run"))?, 0o755);
    assert_eq!(fs::read_link(dst.join("link"))?, Path::new("bin"));
    assert!(fs::read_dir(dst.join("empty"))?.next().is_none());
    run(&[os("verify"), os("--store"), store.as_os_str()])?;
    // --archive of it: one warning that it records none of that, exit 0, the same tree.
    let asked = dir.path().join("asked");
    let out = run(&in_store(
        "checkout",
        &store,
        &[os("--archive"), os("--json"), os(&id), asked.as_os_str()],
    ))?;
    let v = json(&out)?;
    assert_eq!(v["archive"], false, "{v}");
    assert_eq!(v["recorded"], serde_json::json!([]), "{v}");
    assert_eq!(
        v["not_recorded"],
        serde_json::json!(["ownership", "xattr", "acl", "links", "special"]),
        "{v}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr.lines().collect();
    assert_eq!(said.len(), 1, "one line: {stderr}");
    assert!(
        said[0].starts_with("cowtree: warning: snapshot ")
            && said[0].contains("records none of what --archive and --preserve give back"),
        "{stderr}"
    );
    assert_eq!(bits(&asked.join("bin/run"))?, 0o755);
    assert_eq!(fs::read(asked.join("file"))?, content);
    // Shown as it is, and what a snapshot of the checkout records is the same bytes.
    let again = json(&run(&in_store(
        "snapshot",
        &store,
        &[os("--full"), os("--json"), dst.as_os_str()],
    ))?)?;
    assert_eq!(again["id"], id.as_str());
    Ok(())
}

#[test]
fn a_corrupted_version_2_manifest_is_refused_never_a_panic() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let store = dir.path().join("store");
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("d"))?;
    fs::write(src.join("d/a"), b"hardlinked")?;
    fs::hard_link(src.join("d/a"), src.join("b"))?;
    fs::write(src.join("x"), b"attributes")?;
    tool(
        "setfattr",
        &[
            os("-n"),
            os("user.k"),
            os("-v"),
            os("v"),
            src.join("x").as_os_str(),
        ],
    )
    .or_else(|_| Ok::<_, Box<dyn Error>>(String::new()))?;
    tool("mkfifo", &[src.join("d/p").as_os_str()])?;
    let v = json(&run(&in_store(
        "snapshot",
        &store,
        &[os("-a"), os("--json"), src.as_os_str()],
    ))?)?;
    let id = v["id"].as_str().ok_or("no id")?;
    let shown = run(&in_store("show", &store, &[os(id)]))?;
    let first = String::from_utf8(shown.stdout)?;
    assert!(
        first.lines().next().is_some_and(|l| l.ends_with(
            "(and modes, ownership, xattr, acl, links, special: snapshot --archive, version 2)"
        )),
        "{first}"
    );
    // Its JSON form holds what it records, and is recorded back as the same snapshot.
    let shown = run(&in_store("show", &store, &[os("--json"), os(id)]))?;
    let v = json(&shown)?;
    assert_eq!(
        (&v["version"], &v["archive"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(["ownership", "xattr", "acl", "links", "special"])
        )
    );
    assert_eq!(from_json(&store, &shown.stdout)?, id);
    let good = fs::read(store.join("snapshots").join(id))?;
    assert_eq!(u32::from_le_bytes(good[8..12].try_into()?), 2);
    let snapshots = store.join("snapshots");
    let mut refused = 0;
    let mut tried = 0;
    // Every truncation, and a changed byte at every position: each recorded under its own
    // hash, so that the store's check of the bytes against the id passes and the decoder
    // alone decides. `show` reads it entry by entry; every 8th is also checked out.
    for n in 0..good.len() * 2 {
        let bad = if n < good.len() {
            good[..n].to_vec()
        } else {
            let mut b = good.clone();
            b[n - good.len()] ^= 0x41;
            b
        };
        let bad_id = Hash::of(&bad).to_hex();
        fs::write(snapshots.join(&bad_id), &bad)?;
        let mut cmds = vec![vec![os("show").to_owned(), os(&bad_id).to_owned()]];
        if n % 8 == 0 {
            let dst = dir.path().join(format!("dst-{n}"));
            cmds.push(vec![
                os("checkout").to_owned(),
                os(&bad_id).to_owned(),
                dst.into_os_string(),
            ]);
        }
        for args in cmds {
            let out = common::bin()
                .arg("--store")
                .arg(&store)
                .args(&args)
                .output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("panicked") && out.status.code() != Some(101),
                "{args:?} at {n}: {stderr}"
            );
            tried += 1;
            if !out.status.success() {
                refused += 1;
                // (A changed blob hash is a manifest that decodes, naming a missing blob.)
                assert!(
                    stderr.starts_with("cowtree: ") && stderr.len() > 20,
                    "{args:?} at {n}: the refusal says why: {stderr}"
                );
                if n < good.len() {
                    continue;
                }
            } else {
                assert!(
                    n >= good.len(),
                    "a truncation at {n} was accepted by {args:?}"
                );
            }
        }
        fs::remove_file(snapshots.join(&bad_id))?;
    }
    // Most changed bytes break something the decoder checks.
    assert!(refused * 2 > tried, "{refused} of {tried} refused");
    Ok(())
}

/// A directory that holds only the store (as `/root/.local/share/cowtree` may, in a
/// `snapshot --archive /`): nothing is recorded of it, as a snapshot without `--archive`
/// records nothing of it, and the snapshot is taken (it was refused, "a directory record with
/// no entry beneath it", every time).
#[test]
fn snapshot_archive_of_a_tree_holding_its_store_records_nothing_of_the_stores_directory() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("var/lib"))?;
    fs::create_dir_all(src.join("etc"))?;
    fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    let store = src.join("var/lib/store");
    let snap = run(&in_store(
        "snapshot",
        &store,
        &[os("--archive"), os("--json"), src.as_os_str()],
    ))?;
    let id = json(&snap)?["id"].as_str().ok_or("no id")?.to_string();
    assert_eq!(version(&store, &id)?, 2);
    let dst = dir.path().join("dst");
    run(&in_store("checkout", &store, &[os(&id), dst.as_os_str()]))?;
    assert_eq!(
        fs::read_to_string(dst.join("etc/hosts"))?,
        "127.0.0.1 localhost\n"
    );
    assert!(
        !dst.join("var").exists(),
        "the store's directories were made"
    );
    Ok(())
}

/// Two names of one file, each as long as a name can be (255 bytes): the checkout with
/// `--preserve=links` links them (its temporary name was the entry's own name and more, too
/// long to make: the checkout failed).
#[test]
fn checkout_links_a_hardlinked_pair_whose_names_are_as_long_as_names_can_be() -> Res {
    let Some(dir) = scratch(Fs::Xfs) else {
        return Ok(());
    };
    let src = dir.path().join("src");
    fs::create_dir_all(&src)?;
    let (a, b) = ("a".repeat(255), "b".repeat(255));
    fs::write(src.join(&a), "one file, two names\n")?;
    fs::hard_link(src.join(&a), src.join(&b))?;
    let store = dir.path().join("store");
    let snap = run(&in_store(
        "snapshot",
        &store,
        &[os("--preserve=links"), os("--json"), src.as_os_str()],
    ))?;
    let id = json(&snap)?["id"].as_str().ok_or("no id")?.to_string();
    let dst = dir.path().join("dst");
    run(&in_store(
        "checkout",
        &store,
        &[os("--preserve=links"), os(&id), dst.as_os_str()],
    ))?;
    let (ma, mb) = (fs::metadata(dst.join(&a))?, fs::metadata(dst.join(&b))?);
    assert_eq!((ma.ino(), ma.nlink()), (mb.ino(), 2));
    assert_eq!(fs::read_to_string(dst.join(&b))?, "one file, two names\n");
    Ok(())
}
