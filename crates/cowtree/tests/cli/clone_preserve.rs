//! `--preserve` without a list, as GNU cp's: mode, ownership and timestamps, nothing else;
//! and it never takes the next argument as its list.

use crate::clone_archive::{OTHER, ino, make_tree, os, tool};
use crate::common;

use std::error::Error;
use std::fs;
use std::os::unix::fs::MetadataExt;

use cowtree_testutil::{Fs, scratch, skip};
use serde_json::Value;

type Res<T = ()> = Result<T, Box<dyn Error>>;

#[test]
fn preserve_alone_keeps_owners_as_gnu_cp_does_and_nothing_more() -> Res {
    if !rustix::process::geteuid().is_root() {
        skip("not root: cannot make a tree of other owners");
        return Ok(());
    }
    if !crate::clone_archive::acl_tools() {
        return Ok(());
    }
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let what = format!("{fsys:?}");
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        make_tree(&src)?;
        // `--preserve` then SRC: SRC is not read as the list.
        let out = common::bin()
            .args([
                os("clone"),
                os("--json"),
                os("--skip-special"),
                os("--preserve"),
            ])
            .args([&src, &dst])
            .output()?;
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        // Owners and set-ID bits, as ownership keeps them.
        let d = fs::metadata(dst.join("d"))?;
        assert_eq!(
            (d.uid(), d.gid(), d.mode() & 0o7777),
            (OTHER.0, OTHER.1, 0o4755),
            "{what}"
        );
        let a = fs::metadata(dst.join("a"))?;
        assert_eq!((a.uid(), a.gid()), OTHER, "{what}");
        assert_eq!(a.mtime(), fs::metadata(src.join("a"))?.mtime(), "{what}");
        // Not links, attributes, ACLs or special files.
        assert_ne!(
            ino(&dst.join("a"))?,
            ino(&dst.join("d/a-link"))?,
            "{what}: {v}"
        );
        assert_eq!(v["hardlinks"], 0, "{what}: {v}");
        let attrs = tool(
            "getfattr",
            &[
                os("--absolute-names"),
                os("-d"),
                os("-m"),
                os("-"),
                dst.join("x").as_os_str(),
            ],
        )?;
        assert!(
            !attrs.contains("user.test") && !attrs.contains("posix_acl"),
            "{what}: {attrs}"
        );
        assert!(!dst.join("fifo").exists(), "{what}");
        for k in ["ownership", "xattr", "acl", "links", "special"] {
            assert_eq!(v["not_kept"][k], 0, "{what}: {k}: {v}");
        }
        // snapshot takes it the same way: ownership recorded, nothing else.
        let snapshot = || {
            common::bin()
                .args([os("snapshot"), os("--json"), os("--store")])
                .arg(dir.path().join("store"))
                .args([os("--preserve")])
                .arg(&src)
                .output()
        };
        let out = snapshot()?;
        // The FIFO is refused by a snapshot that does not record special files.
        assert!(
            !out.status.success(),
            "{what}: a FIFO recorded without special"
        );
        fs::remove_file(src.join("fifo"))?;
        let out = snapshot()?;
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let id = v["id"].as_str().ok_or("no id")?;
        let out = common::bin()
            .args([os("show"), os("--json"), os("--store")])
            .arg(dir.path().join("store"))
            .arg(id)
            .output()?;
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(v["archive"], serde_json::json!(["ownership"]), "{what}");
    }
    Ok(())
}
