//! The store on btrfs (docs/store.md, "Tree subvolumes"): a checkout is one writable snapshot
//! of the snapshot's read-only tree subvolume (built from the blobs the first time), a snapshot
//! of a subvolume is read from a read-only snapshot of it, and `worktree rm`, `rm` and gc delete
//! subvolumes. On real btrfs mounts, as root and as an unprivileged user, on the mount without
//! `user_subvol_rm_allowed` (`COWTREE_TEST_BTRFS`) and the one with it
//! (`COWTREE_TEST_BTRFS_USER_RM`).

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::common::seccomp::{self, SNAP_CREATE_V2, SNAP_DESTROY_V2, SUBVOL_CREATE_V2};
use crate::common::{BIN, Ran, run_limited};
use cowtree_fs::dir::Dir;
use cowtree_fs::subvolume::{At, create, is_root};
use cowtree_testutil::loop_mount::{Kind, LoopMount, mkfs};
use cowtree_testutil::tree::{assert_same_tree, snapshot as listing};
use cowtree_testutil::user::{As, TestUser, identities};
use cowtree_testutil::{Fs, mount, pattern, tool};
use serde_json::Value;

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// One identity's work area on a mount: a directory it owns, with its HOME and XDG
/// directories inside.
struct Area<'a> {
    who: As<'a>,
    dir: tempfile::TempDir,
}

impl<'a> Area<'a> {
    fn new(who: As<'a>, mnt: &Path) -> Area<'a> {
        let dir = who.dir_in(mnt);
        let a = Area { who, dir };
        for d in ["home", "home/data", "home/state", "home/config"] {
            a.mkdir(d);
        }
        a
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn store(&self) -> PathBuf {
        self.p("store")
    }

    /// `mkdir` as this identity.
    fn mkdir(&self, rel: &str) {
        let st = self.who.command("mkdir").arg(self.p(rel)).status().unwrap();
        assert!(st.success(), "mkdir {rel}");
    }

    /// Gives everything below `rel` to this identity (made by the test process, root).
    fn chown(&self, rel: &str) {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.who.uid(), self.gid()))
            .arg(self.p(rel))
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn gid(&self) -> u32 {
        match self.who {
            As::Root => 0,
            As::User(u) => u.gid(),
        }
    }

    /// `cowtree --store STORE ARGS` as this identity, with its own HOME and XDG directories;
    /// `deny` lists btrfs ioctls that fail with EPERM in it (a seccomp filter).
    fn run_denying(&self, deny: &[u64], args: &[&OsStr]) -> Ran {
        let mut c = self.who.command(BIN);
        c.env_remove("COWTREE_STORE")
            .env("HOME", self.p("home"))
            .env("XDG_DATA_HOME", self.p("home/data"))
            .env("XDG_STATE_HOME", self.p("home/state"))
            .env("XDG_CONFIG_HOME", self.p("home/config"))
            .arg("--store")
            .arg(self.store())
            .args(args);
        if !deny.is_empty() {
            seccomp::deny_ioctls(&mut c, deny.to_vec());
        }
        run_limited(c, Duration::from_secs(120))
    }

    #[track_caller]
    fn ok(&self, args: &[&OsStr]) -> Ran {
        let r = self.run_denying(&[], args);
        r.assert_ok(&format!("{} {args:?}", self.who.label()));
        r
    }

    #[track_caller]
    fn json(&self, args: &[&OsStr]) -> Value {
        let mut a = args.to_vec();
        a.push(o("--json"));
        self.ok(&a).json()
    }
}

/// A tree with what a checkout must reproduce: nested and empty directories, files of
/// several sizes (one empty, one of several extents), an executable, relative and dangling
/// symlinks, a non-UTF-8 name.
fn make_tree(root: &Path, files: usize) {
    fs::create_dir_all(root.join("empty/inner")).unwrap();
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 5)).join(format!("s{}", i % 3));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), pattern(i * 37 % 5000, i as u64)).unwrap();
    }
    fs::write(root.join("zero"), b"").unwrap();
    fs::write(root.join("big"), pattern(1 << 20, 7)).unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("d0/s0/f0", root.join("link")).unwrap();
    symlink("../nowhere", root.join("d1/dangling")).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"caf\xe9")), b"latin-1 name").unwrap();
}

/// The tree of snapshot `id` in `store`.
fn tree_path(store: &Path, id: &str) -> PathBuf {
    store.join("trees").join(id)
}

fn subvolume_root(p: &Path) -> bool {
    let d = Dir::open(p).unwrap();
    is_root(At::new(&d, p)).unwrap()
}

fn read_only(p: &Path) -> bool {
    let d = Dir::open(p).unwrap();
    cowtree_fs::subvolume::read_only(At::new(&d, p)).unwrap()
}

/// What `filefrag -v` says of `file`: whether any of its extents is shared.
fn shared_extents(file: &Path) -> bool {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(file)
        .output()
        .expect("run filefrag");
    assert!(out.status.success(), "filefrag {}", file.display());
    String::from_utf8_lossy(&out.stdout).contains("shared")
}

/// The names in `dir` (sorted), none if it does not exist.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// O(1) deletes are permitted to `who` on `fs`.
fn fast_delete(who: &As<'_>, fs: Fs) -> bool {
    matches!(who, As::Root) || fs == Fs::BtrfsUserRm
}

/// Checkout on btrfs, end to end, for one identity on one mount.
fn checkout_scenario(fs_kind: Fs, who: As<'_>, mnt: &Path) {
    let label = format!("{fs_kind:?} as {}", who.label());
    let a = Area::new(who, mnt);
    make_tree(&a.p("src"), 60);
    a.chown("src");
    let snap = a.json(&[o("snapshot"), a.p("src").as_os_str(), o("--name"), o("v")]);
    let id = snap["id"].as_str().unwrap().to_string();
    // A plain directory: read in place.
    assert_eq!(snap["frozen"], false, "{label}: {snap}");
    assert_eq!(snap["reason"], "not-a-subvolume-root", "{label}: {snap}");

    // The first checkout builds the tree from the blobs; the next one only snapshots it.
    let first = a.json(&[o("checkout"), o("v"), a.p("a").as_os_str()]);
    assert_eq!(first["method"], "subvolume", "{label}: {first}");
    assert_eq!(first["tree_built"], true, "{label}: {first}");
    assert_eq!(first["cloned"], first["files"], "{label}: {first}");
    let second = a.json(&[o("checkout"), o("v"), a.p("b").as_os_str()]);
    assert_eq!(second["method"], "subvolume", "{label}: {second}");
    assert_eq!(second["tree_built"], false, "{label}: {second}");
    assert_eq!(second["reason"], Value::Null, "{label}: {second}");
    assert_eq!(second["files"], first["files"], "{label}");
    assert_eq!(second["symlinks"], first["symlinks"], "{label}");
    assert_eq!(second["dirs"], first["dirs"], "{label}");
    // Asked per file: the same tree, made entry by entry (a subvolume all the same).
    let copy = a.json(&[
        o("checkout"),
        o("--mode"),
        o("copy"),
        o("v"),
        a.p("c").as_os_str(),
    ]);
    assert_eq!(copy["method"], "per-file", "{label}: {copy}");
    assert_eq!(copy["reason"], "mode", "{label}: {copy}");
    let human = a.ok(&[o("checkout"), o("v"), a.p("h").as_os_str()]);
    assert!(
        human
            .stdout
            .contains("a snapshot of the store's tree subvolume"),
        "{label}: {}",
        human.stdout
    );

    // Equivalent: type, mode, size, content (hence its hash), symlink target; every time is
    // the checkout's or the tree's (the manifest records none), never later than now.
    let now = SystemTime::now();
    let (la, lb, lc) = (listing(&a.p("a")), listing(&a.p("b")), listing(&a.p("c")));
    assert_same_tree(&lc, &la, false);
    assert_same_tree(&lc, &lb, false);
    for (path, e) in la.iter().chain(&lb) {
        let t = SystemTime::UNIX_EPOCH + Duration::new(e.mtime.0 as u64, e.mtime.1 as u32);
        assert!(
            t <= now,
            "{label}: {} has a time in the future",
            path.display()
        );
    }
    for wt in ["a", "b", "c", "h"] {
        let p = a.p(wt);
        assert!(subvolume_root(&p), "{label}: {wt} is a subvolume's root");
        assert_eq!(
            fs::metadata(p.join("big")).unwrap().uid(),
            a.who.uid(),
            "{label}"
        );
        // The stat cache is the tree's: nothing is read.
        let st = a.json(&[o("status"), p.as_os_str()]);
        assert_eq!(st["clean"], true, "{label}: {wt}: {st}");
        assert_eq!(st["hashed"], 0, "{label}: {wt}: {st}");
    }

    // The store's tree: read-only, shared with the worktrees, never written through them.
    let tree = tree_path(&a.store(), &id);
    assert!(subvolume_root(&tree) && read_only(&tree), "{label}");
    let err = fs::write(tree.join("zero"), b"x").expect_err("the tree is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{label}: {err}");
    assert!(
        shared_extents(&a.p("b/big")),
        "{label}: b/big shares its data"
    );
    assert!(
        shared_extents(&tree.join("big")),
        "{label}: the tree shares its data"
    );
    let before = fs::read(tree.join("big")).unwrap();
    let w = a
        .who
        .command("dd")
        .args(["if=/dev/zero", "bs=4096", "count=2", "conv=notrunc"])
        .arg(format!("of={}", a.p("b/big").display()))
        .output()
        .unwrap();
    assert!(w.status.success(), "{label}: write into b/big");
    assert_eq!(
        fs::read(tree.join("big")).unwrap(),
        before,
        "{label}: tree unchanged"
    );
    assert_eq!(
        fs::read(a.p("a/big")).unwrap(),
        before,
        "{label}: a unchanged"
    );
    assert_ne!(
        fs::read(a.p("b/big")).unwrap(),
        before,
        "{label}: b changed"
    );
    let st = a.json(&[o("status"), a.p("b").as_os_str()]);
    assert_eq!(st["modified"], serde_json::json!(["big"]), "{label}: {st}");

    let v = a.json(&[o("verify")]);
    assert_eq!(v["ok"], true, "{label}: {v}");
    assert_eq!(v["trees_checked"], 1, "{label}: {v}");

    // worktree rm: O(1) where permitted, the tree removed entry by entry otherwise.
    let rm = a.json(&[o("worktree"), o("rm"), o("--force"), a.p("b").as_os_str()]);
    let how = if fast_delete(&a.who, fs_kind) {
        "ioctl"
    } else {
        "removed-tree"
    };
    assert_eq!(rm["subvolume"], how, "{label}: {rm}");
    assert!(!a.p("b").exists(), "{label}");
    let rm = a.json(&[o("worktree"), o("rm"), a.p("c").as_os_str()]);
    assert_eq!(rm["subvolume"], how, "{label}: {rm}");

    // rm removes the tree with the snapshot; gc then finds no tree left.
    let rm = a.json(&[o("rm"), o("--force"), o("v")]);
    assert_eq!(rm["tree_removed"], how, "{label}: {rm}");
    assert!(!tree.exists(), "{label}");
    let gc = a.json(&[o("gc")]);
    assert_eq!(gc["trees_removed"], serde_json::json!([]), "{label}: {gc}");
    assert_eq!(
        names(&a.store().join("trees")),
        Vec::<String>::new(),
        "{label}"
    );
    for wt in ["a", "h"] {
        a.ok(&[o("worktree"), o("rm"), o("--force"), a.p(wt).as_os_str()]);
    }
}

#[test]
fn a_checkout_on_btrfs_is_a_snapshot_of_the_store_tree_equal_to_a_per_file_checkout() {
    let user = TestUser::create();
    for fs_kind in [Fs::Btrfs, Fs::BtrfsUserRm] {
        let Some(mnt) = mount(fs_kind) else {
            continue;
        };
        for who in identities(user.as_ref()) {
            checkout_scenario(fs_kind, who, &mnt);
        }
    }
}

/// Makes the subvolume `rel` in `a`'s area, owned by `a`'s identity.
fn make_subvolume(a: &Area<'_>, rel: &str) -> PathBuf {
    let path = a.p(rel);
    let parent = path.parent().unwrap();
    let d = Dir::open(parent).unwrap();
    create(At::new(&d, parent), path.file_name().expect("a name")).unwrap();
    path
}

fn snapshot_scenario(fs_kind: Fs, who: As<'_>, mnt: &Path) {
    let label = format!("{fs_kind:?} as {}", who.label());
    let a = Area::new(who, mnt);
    let src = make_subvolume(&a, "src");
    make_tree(&src, 40);
    a.chown("src");
    let snap = a.json(&[o("snapshot"), src.as_os_str(), o("--name"), o("v")]);
    let id = snap["id"].as_str().unwrap().to_string();
    assert_eq!(snap["frozen"], true, "{label}: {snap}");
    assert_eq!(snap["reason"], Value::Null, "{label}: {snap}");
    // The read-only snapshot it was read from is the snapshot's tree.
    let tree = tree_path(&a.store(), &id);
    assert!(subvolume_root(&tree) && read_only(&tree), "{label}");
    assert_same_tree(&listing(&src), &listing(&tree), true);
    // The tree, and what is kept beside it (its counts; a stat cache once a checkout made one).
    assert_eq!(
        names(&a.store().join("trees")),
        vec![id.clone(), format!("{id}.counts")],
        "{label}"
    );

    // Checkouts snapshot it at once; the first stats the tree for its stat cache (kept).
    let c = a.json(&[o("checkout"), o("v"), a.p("a").as_os_str()]);
    assert_eq!(
        (&c["method"], &c["tree_built"]),
        (&"subvolume".into(), &false.into())
    );
    assert!(
        tree.with_extension("stat").exists(),
        "{label}: the tree's stat cache is kept"
    );
    a.ok(&[o("checkout"), o("v"), a.p("b").as_os_str()]);
    for wt in ["a", "b"] {
        let st = a.json(&[o("status"), a.p(wt).as_os_str()]);
        assert_eq!(
            (&st["clean"], &st["hashed"]),
            (&true.into(), &0.into()),
            "{label}: {st}"
        );
    }

    // An incremental snapshot of a subvolume worktree: also from a read-only snapshot, and
    // only the changed file is read.
    fs::write(a.p("a/d0/s0/f0"), b"changed").unwrap();
    let inc = a.json(&[o("snapshot"), o("-C"), a.p("a").as_os_str()]);
    assert_eq!(inc["incremental"], true, "{label}: {inc}");
    assert_eq!(inc["frozen"], true, "{label}: {inc}");
    assert_eq!(inc["read"], 1, "{label}: {inc}");
    let inc_id = inc["id"].as_str().unwrap();
    let fresh = a.json(&[o("snapshot"), o("--full"), a.p("a").as_os_str()]);
    assert_eq!(fresh["id"], inc["id"], "{label}: same tree, same id");
    assert!(tree_path(&a.store(), inc_id).is_dir(), "{label}");
    let v = a.json(&[o("verify")]);
    assert_eq!(
        (&v["ok"], &v["trees_checked"]),
        (&true.into(), &2.into()),
        "{label}: {v}"
    );

    // A nested subvolume would be an empty directory in a snapshot: read in place instead,
    // and its files are recorded.
    let nested = make_subvolume(&a, "src/nested");
    fs::write(nested.join("inside"), b"in the nested subvolume").unwrap();
    a.chown("src/nested");
    let snap = a.json(&[o("snapshot"), src.as_os_str()]);
    assert_eq!(snap["frozen"], false, "{label}: {snap}");
    assert_eq!(snap["reason"], "nested-subvolumes", "{label}: {snap}");
    let shown = a.json(&[o("show"), o(snap["id"].as_str().unwrap())]);
    assert!(
        shown.to_string().contains("nested/inside"),
        "{label}: the nested subvolume's files are recorded"
    );
    for wt in ["a", "b"] {
        a.ok(&[o("worktree"), o("rm"), o("--force"), a.p(wt).as_os_str()]);
    }
    a.ok(&[o("rm"), o("--force"), o(inc_id)]);
    a.ok(&[o("rm"), o("--force"), o("v")]);
}

/// `switch` and `reset` work on a checkout that is a snapshot of the store's tree as on one
/// made per file (entry by entry, the tree untouched); `verify` finds a tree that is not its
/// manifest's (a changed, an added, a removed entry) and warns of one whose snapshot is gone,
/// which gc removes.
#[test]
fn switch_and_reset_work_on_a_snapshot_checkout_and_verify_finds_a_tree_that_differs() {
    let Some(mnt) = mount(Fs::Btrfs) else {
        return;
    };
    let a = Area::new(As::Root, &mnt);
    make_tree(&a.p("src"), 30);
    let v1 = a.json(&[o("snapshot"), a.p("src").as_os_str(), o("--name"), o("v1")]);
    let v1_tree = tree_path(&a.store(), v1["id"].as_str().unwrap());
    let want_v1 = listing(&a.p("src"));
    fs::write(a.p("src/d0/s0/f0"), b"second version").unwrap();
    fs::write(a.p("src/added"), b"added in v2").unwrap();
    fs::remove_file(a.p("src/zero")).unwrap();
    let v2 = a.json(&[o("snapshot"), a.p("src").as_os_str(), o("--name"), o("v2")]);
    let want_v2 = listing(&a.p("src"));

    let wt = a.p("wt");
    let c = a.json(&[o("checkout"), o("v1"), wt.as_os_str()]);
    assert_eq!(c["method"], "subvolume", "{c}");
    let sw = a.json(&[o("switch"), o("v2"), wt.as_os_str()]);
    assert_eq!(sw["to"], v2["id"], "{sw}");
    assert_same_tree(&want_v2, &listing(&wt), false);
    let st = a.json(&[o("status"), wt.as_os_str()]);
    assert_eq!(st["clean"], true, "{st}");
    // The switch went entry by entry in the worktree: v1's tree is still v1.
    assert_same_tree(&want_v1, &listing(&v1_tree), false);

    // reset --hard: local changes and an untracked file gone, the tree of v2 untouched.
    fs::write(wt.join("d0/s0/f0"), b"local change").unwrap();
    fs::remove_file(wt.join("big")).unwrap();
    fs::write(wt.join("untracked"), b"u").unwrap();
    a.ok(&[o("reset"), o("--hard"), o("-C"), wt.as_os_str()]);
    assert_same_tree(&want_v2, &listing(&wt), false);
    a.ok(&[o("switch"), o("v1"), wt.as_os_str()]);
    assert_same_tree(&want_v1, &listing(&wt), false);
    let v = a.json(&[o("verify")]);
    assert_eq!(
        (&v["ok"], &v["trees_checked"]),
        (&true.into(), &1.into()),
        "{v}"
    );

    // A tree changed behind the store's back (made writable, changed, read-only again):
    // verify names each difference, and exits 4.
    let set_ro = |ro: bool| {
        let d = Dir::open(&v1_tree).unwrap();
        cowtree_fs::subvolume::set_read_only(At::new(&d, &v1_tree), ro).unwrap();
    };
    set_ro(false);
    // Same size (37 bytes), other content: only hashing finds it.
    fs::write(v1_tree.join("d1/s1/f1"), [b'x'; 37]).unwrap();
    fs::write(v1_tree.join("stray"), b"not in the snapshot").unwrap();
    fs::remove_file(v1_tree.join("run.sh")).unwrap();
    // Strays beneath the root: a file in a nested directory, a directory (not listed
    // further), a name that sorts between a directory's and its entries' paths.
    fs::write(v1_tree.join("d1/s1/g"), b"stray").unwrap();
    fs::create_dir(v1_tree.join("d0/s0/extra")).unwrap();
    fs::write(v1_tree.join("d0/s0/extra/inner"), b"x").unwrap();
    fs::write(v1_tree.join("d0-"), b"stray").unwrap();
    set_ro(true);
    let r = a.run_denying(&[], &[o("verify"), o("--json")]);
    assert_eq!(r.code(), Some(4), "{}", r.stderr);
    let v = r.json();
    let bad: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "bad-tree")
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bad.len(), 6, "{v}");
    for (what, why) in [
        ("d1/s1/f1", "content hashes to"),
        ("stray", "not in the snapshot"),
        ("run.sh", "missing"),
        ("d1/s1/g", "not in the snapshot"),
        ("d0/s0/extra", "not in the snapshot"),
        ("d0-", "not in the snapshot"),
    ] {
        assert!(
            bad.iter()
                .any(|m| m.starts_with(&format!("{what:?}")) && m.contains(why)),
            "{what}: {bad:?}"
        );
    }
    // Writable: not trusted, and said so.
    set_ro(false);
    let v = a.run_denying(&[], &[o("verify"), o("--json")]).json();
    assert!(
        v["problems"]
            .to_string()
            .contains("not a read-only btrfs subvolume"),
        "{v}"
    );
    // A checkout does not use it: per file, saying why; gc removes it, and the next checkout
    // builds it anew.
    let c = a.json(&[o("checkout"), o("v1"), a.p("after").as_os_str()]);
    assert_eq!(
        (&c["method"], &c["reason"], &c["tree_built"]),
        (
            &"per-file".into(),
            &"tree-not-trusted".into(),
            &false.into()
        ),
        "{c}"
    );
    assert_same_tree(&want_v1, &listing(&a.p("after")), false);
    let gc = a.json(&[o("gc")]);
    assert_eq!(
        gc["trees_removed"],
        serde_json::json!([v1_tree.to_str().unwrap()]),
        "{gc}"
    );
    let c = a.json(&[o("checkout"), o("v1"), a.p("rebuilt").as_os_str()]);
    assert_eq!(
        (&c["method"], &c["tree_built"]),
        (&"subvolume".into(), &true.into()),
        "{c}"
    );
    assert_same_tree(&want_v1, &listing(&v1_tree), false);
    let v = a.json(&[o("verify")]);
    assert_eq!(
        (&v["ok"], &v["trees_checked"]),
        (&true.into(), &1.into()),
        "{v}"
    );

    // A tree whose snapshot is gone (its manifest removed behind the store's back): a
    // warning, and gc removes it.
    let v1_id = v1["id"].as_str().unwrap();
    fs::remove_file(a.store().join("snapshots").join(v1_id)).unwrap();
    let v = a.run_denying(&[], &[o("verify"), o("--json")]).json();
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "orphan-tree" && w["subject"] == v1_tree.to_str().unwrap()),
        "{v}"
    );
    let gc = a.json(&[o("gc")]);
    assert_eq!(
        gc["trees_removed"],
        serde_json::json!([v1_tree.to_str().unwrap()]),
        "{gc}"
    );
    assert!(!v1_tree.exists());
    for w in ["wt", "after", "rebuilt"] {
        a.ok(&[o("worktree"), o("rm"), o("--force"), a.p(w).as_os_str()]);
    }
}

/// Without --store, a snapshot of a subvolume root goes into the store of its btrfs (every
/// subvolume has its own device number, but the filesystem is one): never a new store made
/// inside the subvolume, and read from a read-only snapshot of it.
#[test]
fn a_subvolume_snapshotted_without_store_goes_into_the_store_of_its_btrfs() {
    let Some(mnt) = mount(Fs::Btrfs) else {
        return;
    };
    let a = Area::new(As::Root, &mnt);
    let sv = make_subvolume(&a, "sv");
    make_tree(&sv, 10);
    let r = run_limited(
        {
            let mut c = Command::new(BIN);
            c.env_remove("COWTREE_STORE")
                .env("HOME", a.p("home"))
                .env("XDG_DATA_HOME", a.p("home/data"))
                .env("XDG_STATE_HOME", a.p("home/state"))
                .env("XDG_CONFIG_HOME", a.p("home/config"))
                .args([o("snapshot"), o("--json"), sv.as_os_str()]);
            c
        },
        Duration::from_secs(120),
    );
    r.assert_ok("snapshot of a subvolume without --store");
    let snap = r.json();
    // The default store (XDG_DATA_HOME/cowtree) is on this btrfs: it is the one.
    assert_eq!(
        snap["store"],
        a.p("home/data/cowtree").to_str().unwrap(),
        "{snap}"
    );
    assert_eq!(snap["frozen"], true, "{snap}");
    assert!(!sv.join(".cowtree-store").exists());
    assert_eq!(names(&sv).iter().filter(|n| n.starts_with('.')).count(), 0);
}

#[test]
fn a_snapshot_of_a_subvolume_is_read_from_a_read_only_snapshot_kept_as_its_tree() {
    let user = TestUser::create();
    let Some(mnt) = mount(Fs::Btrfs) else {
        return;
    };
    for who in identities(user.as_ref()) {
        snapshot_scenario(Fs::Btrfs, who, &mnt);
    }
}

#[test]
fn where_the_kernel_refuses_a_subvolume_ioctl_the_checkout_is_per_file_and_says_why() {
    let Some(mnt) = mount(Fs::Btrfs) else {
        return;
    };
    if !seccomp::available() {
        return;
    }
    let a = Area::new(As::Root, &mnt);
    make_tree(&a.p("src"), 20);
    let id = a.json(&[o("snapshot"), a.p("src").as_os_str()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // No subvolume may be made: no tree is built, DST is a plain directory, made per file.
    let r = a.run_denying(
        &[SUBVOL_CREATE_V2, SNAP_CREATE_V2],
        &[o("checkout"), o(&id), a.p("none").as_os_str()],
    );
    r.assert_ok("checkout with no subvolume ioctl");
    assert!(
        r.stderr.contains("per file:") && r.stderr.contains("not permitted"),
        "said once why: {}",
        r.stderr
    );
    assert_eq!(r.stderr.matches("per file:").count(), 1, "{}", r.stderr);
    assert!(!subvolume_root(&a.p("none")));
    assert!(!tree_path(&a.store(), &id).exists(), "no tree was built");
    // The tree exists, but its snapshot is refused.
    a.ok(&[o("checkout"), o(&id), a.p("first").as_os_str()]);
    let r = a.run_denying(
        &[SNAP_CREATE_V2],
        &[
            o("checkout"),
            o("--json"),
            o(&id),
            a.p("refused").as_os_str(),
        ],
    );
    r.assert_ok("checkout with the snapshot refused");
    let j = r.json();
    assert_eq!(
        (&j["method"], &j["reason"]),
        (&"per-file".into(), &"not-permitted".into()),
        "{j}"
    );
    assert_same_tree(&listing(&a.p("first")), &listing(&a.p("refused")), false);
    assert!(
        subvolume_root(&a.p("refused")),
        "its root is a subvolume all the same"
    );
    let st = a.json(&[o("status"), a.p("refused").as_os_str()]);
    assert_eq!(
        (&st["clean"], &st["hashed"]),
        (&true.into(), &0.into()),
        "{st}"
    );
    // O(1) delete refused: the tree is removed entry by entry.
    let r = a.run_denying(
        &[SNAP_DESTROY_V2],
        &[
            o("worktree"),
            o("rm"),
            o("--json"),
            a.p("refused").as_os_str(),
        ],
    );
    r.assert_ok("worktree rm with the delete ioctl refused");
    assert_eq!(r.json()["subvolume"], "removed-tree", "{}", r.stdout);
    assert!(!a.p("refused").exists());
    for wt in ["none", "first"] {
        a.ok(&[o("worktree"), o("rm"), a.p(wt).as_os_str()]);
    }
}

#[test]
fn where_the_kernel_refuses_the_read_only_snapshot_a_snapshot_reads_in_place_and_says_why() {
    let Some(mnt) = mount(Fs::Btrfs) else {
        return;
    };
    if !seccomp::available() {
        return;
    }
    let a = Area::new(As::Root, &mnt);
    let src = make_subvolume(&a, "src");
    make_tree(&src, 20);
    let r = a.run_denying(
        &[SNAP_CREATE_V2],
        &[o("snapshot"), o("--json"), src.as_os_str()],
    );
    r.assert_ok("snapshot with the snapshot ioctl refused");
    let j = r.json();
    assert_eq!(
        (&j["frozen"], &j["reason"]),
        (&false.into(), &"not-permitted".into()),
        "{j}"
    );
    let id = j["id"].as_str().unwrap().to_string();
    assert!(!tree_path(&a.store(), &id).exists(), "no tree was kept");
    assert_eq!(
        names(&a.store().join("trees"))
            .iter()
            .filter(|n| n.starts_with(".tmp"))
            .count(),
        0,
        "nothing left of the refused snapshot"
    );
    // Permitted: read from a read-only snapshot instead; the same tree, the same id.
    let ok = a.json(&[o("snapshot"), src.as_os_str()]);
    assert_eq!(ok["frozen"], true, "{ok}");
    assert_eq!(
        ok["id"], j["id"],
        "the same tree gives the same id either way"
    );
    let v = a.json(&[o("verify")]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_checkout_into_another_btrfs_is_per_file_and_into_a_subvol_mount_of_the_same_one_is_a_snapshot()
{
    let (Some(mnt), Some(other)) = (mount(Fs::Btrfs), mount(Fs::BtrfsUserRm)) else {
        return;
    };
    let a = Area::new(As::Root, &mnt);
    make_tree(&a.p("src"), 20);
    a.ok(&[o("snapshot"), a.p("src").as_os_str(), o("--name"), o("v")]);
    let elsewhere = tempfile::tempdir_in(&other).unwrap();
    let dst = elsewhere.path().join("wt");
    let r = a.json(&[o("checkout"), o("v"), dst.as_os_str()]);
    assert_eq!(
        (&r["method"], &r["reason"]),
        (&"per-file".into(), &"cross-filesystem".into()),
        "{r}"
    );
    assert_same_tree(&listing(&a.p("src")), &listing(&dst), false);

    // The same filesystem mounted again with subvol=: one filesystem, one snapshot.
    let sub = make_subvolume(&a, "sub");
    let dev = mount_source(&mnt);
    let point = tempfile::tempdir().unwrap();
    let rel = sub.strip_prefix(&mnt).unwrap();
    let st = Command::new("mount")
        .arg("-o")
        .arg(format!("subvol={}", rel.display()))
        .arg(&dev)
        .arg(point.path())
        .status()
        .unwrap();
    assert!(st.success(), "mount -o subvol={} {dev}", rel.display());
    let unmount = Unmount(point.path().to_path_buf());
    let dst = point.path().join("wt");
    let r = a.json(&[o("checkout"), o("v"), dst.as_os_str()]);
    assert_eq!(r["method"], "subvolume", "{r}");
    let st = a.json(&[o("status"), dst.as_os_str()]);
    assert_eq!(
        (&st["clean"], &st["hashed"]),
        (&true.into(), &0.into()),
        "{st}"
    );
    a.ok(&[o("worktree"), o("rm"), dst.as_os_str()]);
    drop(unmount);
}

#[test]
fn a_checkout_on_xfs_ext4_or_tmpfs_is_per_file_as_before_and_says_why_as_clone_does() {
    for fs_kind in [Fs::Xfs, Fs::NoCow, Fs::Tmpfs] {
        let Some(mnt) = mount(fs_kind) else { continue };
        let a = Area::new(As::Root, &mnt);
        make_tree(&a.p("src"), 20);
        a.ok(&[o("snapshot"), a.p("src").as_os_str(), o("--name"), o("v")]);
        let r = a.json(&[o("checkout"), o("v"), a.p("wt").as_os_str()]);
        assert_eq!(
            (&r["method"], &r["reason"], &r["tree_built"]),
            (&"per-file".into(), &"filesystem".into(), &false.into()),
            "{fs_kind:?}: {r}"
        );
        // The same field as `clone --json` and `git worktree add --json` give it.
        assert!(
            r["reason_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{fs_kind:?}: {r}"
        );
        assert!(
            !a.store().join("trees").exists(),
            "{fs_kind:?}: no tree here"
        );
        assert_same_tree(&listing(&a.p("src")), &listing(&a.p("wt")), false);
        let c = Command::new(BIN)
            .env("HOME", a.p("home"))
            .args([
                o("clone"),
                o("--json"),
                a.p("src").as_os_str(),
                a.p("cl").as_os_str(),
            ])
            .output()
            .unwrap();
        assert!(c.status.success(), "{fs_kind:?}: {c:?}");
        let c: Value = serde_json::from_slice(&c.stdout).unwrap();
        assert_eq!(c["reason"], r["reason"], "{fs_kind:?}: {c}");
    }
}

/// Unmounts its path when dropped.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The device mounted at `mnt` (from /proc/self/mountinfo).
fn mount_source(mnt: &Path) -> String {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = fs::canonicalize(mnt).unwrap();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-").unwrap();
        if Path::new(f[4]) == want && f[3] == "/" {
            return f[dash + 2].to_string();
        }
    }
    panic!("{} is not a mount point", mnt.display());
}

/// A btrfs image of its own with quotas on, loop-mounted in a directory of the XFS test
/// mount; unmounted and detached when dropped.
struct QuotaLab {
    mount: LoopMount,
    _host: tempfile::TempDir,
}

impl QuotaLab {
    fn new() -> Option<QuotaLab> {
        let host = cowtree_testutil::scratch(Fs::Xfs)?;
        let img = host.path().join("q.img");
        mkfs(Kind::Btrfs, &img, 256 << 20);
        let mnt = host.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let mount = LoopMount::mount(Kind::Btrfs, &img, &mnt, "");
        tool("btrfs", &[o("quota"), o("enable"), mnt.as_os_str()]);
        Some(QuotaLab { mount, _host: host })
    }
}

/// A new subvolume `rel` in `a`'s area with a qgroup limit (2 MiB referenced) that its
/// content already reaches: any write into it fails with EDQUOT.
fn full_subvolume(a: &Area<'_>, rel: &str) -> PathBuf {
    full_subvolume_after(a, rel, |_| {})
}

/// [`full_subvolume`], with `prepare` run in it before it is filled.
fn full_subvolume_after(a: &Area<'_>, rel: &str, prepare: impl FnOnce(&Path)) -> PathBuf {
    let full = make_subvolume(a, rel);
    tool(
        "btrfs",
        &[o("qgroup"), o("limit"), o("2M"), full.as_os_str()],
    );
    prepare(&full);
    let mut filled = 0;
    for i in 0.. {
        let f = full.join(format!("fill{i}"));
        let w = Command::new("dd")
            .args(["if=/dev/urandom", "bs=64k", "count=8", "conv=fsync"])
            .arg(format!("of={}", f.display()))
            .output()
            .unwrap();
        if !w.status.success() {
            break;
        }
        filled += 1;
        assert!(filled < 1000, "the qgroup limit is never reached");
    }
    tool("sync", &[]);
    full
}

/// A qgroup limit reached (EDQUOT) by a snapshot of a subvolume into a store that is full,
/// and by a `git worktree add` into a full directory: a clear error naming the path, and
/// nothing left (no tree, no blob, no name; no worktree, branch or registration in git).
#[test]
fn a_qgroup_limit_fails_a_snapshot_and_a_git_worktree_add_clearly_and_leaves_nothing() {
    let Some(lab) = QuotaLab::new() else {
        return;
    };
    let a = Area::new(As::Root, lab.mount.path());
    let src = make_subvolume(&a, "src");
    make_tree(&src, 20);
    // The store exists (made before the limit was reached): the snapshot is what fails.
    let tiny = a.p("tiny");
    fs::create_dir(&tiny).unwrap();
    fs::write(tiny.join("f"), b"f\n").unwrap();
    let full = full_subvolume_after(&a, "full", |full| {
        let out = common::bin()
            .arg("--store")
            .arg(full.join("store"))
            .args([o("snapshot"), o("--name"), o("seed"), tiny.as_os_str()])
            .output()
            .unwrap();
        assert!(out.status.success(), "the seed snapshot: {out:?}");
    });
    let store = full.join("store");
    let subs = ["snapshots", "refs", "trees", "tmp"];
    let before: Vec<Vec<String>> = subs.iter().map(|sub| names(&store.join(sub))).collect();
    assert!(!before[0].is_empty() && !before[1].is_empty(), "{before:?}");
    let out = common::bin()
        .arg("--store")
        .arg(&store)
        .args([o("snapshot"), o("--name"), o("v"), src.as_os_str()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "snapshot into a full qgroup: {err}"
    );
    assert!(err.contains("quota"), "{err}");
    assert!(
        err.contains(&full.display().to_string()),
        "names the path: {err}"
    );
    // No snapshot, no name, no tree (not even a read-only snapshot being made), no staging;
    // blobs already placed, if any, are garbage that gc takes.
    for (sub, before) in subs.iter().zip(&before) {
        assert_eq!(
            &names(&store.join(sub)),
            before,
            "{sub} after a failed snapshot"
        );
    }
    assert!(subvolumes_below(&full).is_empty(), "no subvolume left");

    // git worktree add from a repository in a subvolume (the snapshot way) into the full
    // subvolume.
    let git = |dir: &Path, args: &[&str]| {
        let out = cowtree_testutil::git_cmd(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&src, &["init", "-q", "-b", "main"]);
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-qm", "base"]);
    let before = names(&full);
    let dst = full.join("wt");
    let out = common::bin()
        .current_dir(&src)
        .args(["git", "worktree", "add", "-b", "topic"])
        .arg(&dst)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("quota"), "{err}");
    assert!(err.contains(&full.display().to_string()), "{err}");
    assert_eq!(names(&full), before, "nothing left beside DST");
    assert!(
        !git(&src, &["worktree", "list", "--porcelain"]).contains("full/wt"),
        "no registration"
    );
    assert_eq!(git(&src, &["branch", "--list", "topic"]), "", "no branch");
    assert!(subvolumes_below(&full).is_empty(), "no subvolume left");
}

/// A qgroup limit reached (EDQUOT) while the tree is built or snapshotted: a clear error
/// naming the path, and nothing left (no DST, no staging, no tree, no record).
#[test]
fn a_qgroup_limit_fails_the_checkout_clearly_and_leaves_nothing() {
    let Some(lab) = QuotaLab::new() else {
        return;
    };
    let a = Area::new(As::Root, lab.mount.path());
    make_tree(&a.p("src"), 20);
    a.ok(&[o("snapshot"), a.p("src").as_os_str(), o("--name"), o("v")]);
    // DST's parent: a subvolume with a limit that its content already reaches.
    let full = full_subvolume(&a, "full");
    let before = names(&full);
    let dst = full.join("wt");
    let r = a.run_denying(&[], &[o("checkout"), o("v"), dst.as_os_str()]);
    r.assert_error("checkout into a full qgroup");
    assert!(
        r.stderr.contains("quota") && r.stderr.contains(&full.display().to_string()),
        "{}",
        r.stderr
    );
    assert_eq!(names(&full), before, "nothing left beside DST");
    let list = a.json(&[o("worktree"), o("list")]);
    assert!(!list.to_string().contains("full/wt"), "no record: {list}");
    let gc = a.json(&[o("gc")]);
    assert_eq!(gc["staging_beside"], serde_json::json!([]), "{gc}");
    let v = a.json(&[o("verify")]);
    assert_eq!(v["ok"], true, "{v}");
}

/// Every subvolume below `dir`, relative to it.
fn subvolumes_below(dir: &Path) -> Vec<PathBuf> {
    let d = Dir::open(dir).unwrap();
    cowtree_fs::subvolume::below(At::new(&d, dir))
        .unwrap()
        .into_iter()
        .map(|n| n.path)
        .collect()
}

/// Starts `cowtree --store STORE ARGS` and stops it `delay` later with `signal` unless it
/// ended first; returns its pid.
fn stopped_after(store: &Path, args: &[&OsStr], delay: Duration, signal: i32) -> u32 {
    let mut child = common::bin()
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if signal != libc::SIGKILL {
        // Before the handler is in place a signal would act as a kill: that case is the
        // SIGKILL rounds'.
        common::handler_installed(child.id());
    }
    let until = std::time::Instant::now() + delay;
    while std::time::Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success()
            || std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(libc::SIGKILL)
            || out.status.code() == Some(128 + signal),
        "{args:?}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    pid
}

/// Checkouts (building the tree, or snapshotting it) and snapshots of a subvolume, killed
/// (SIGKILL) or interrupted (SIGINT) at random points: DST is absent or whole and registered;
/// an interrupted command removes what it was making itself; after a kill, gc removes every
/// subvolume left (staging beside DST, trees being made) and nothing else.
#[test]
fn killed_or_interrupted_at_any_point_a_checkout_or_snapshot_leaves_nothing_gc_keeps() {
    let Some(mnt) = mount(Fs::Btrfs) else {
        return;
    };
    let a = Area::new(As::Root, &mnt);
    make_tree(&a.p("src"), 1500);
    let sv = make_subvolume(&a, "sv");
    make_tree(&sv, 1500);
    let id = a.json(&[o("snapshot"), a.p("src").as_os_str()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let want = listing(&a.p("src"));
    // How long each takes, to place the signals while it runs.
    let t = std::time::Instant::now();
    a.ok(&[o("checkout"), o(&id), a.p("first").as_os_str()]);
    let build = t.elapsed();
    let t = std::time::Instant::now();
    a.ok(&[o("snapshot"), sv.as_os_str()]);
    let record = t.elapsed();
    let store = cowtree_store::Store::open(&a.store()).unwrap();
    let hash = cowtree_store::Hash::from_hex(&id).unwrap();
    let mut rng = cowtree_testutil::XorShift::from_clock("killed subvolume checkouts");
    let mut kept = vec![PathBuf::from("first"), PathBuf::from("sv")];
    for round in 0..12 {
        let signal = if round % 3 == 2 {
            libc::SIGINT
        } else {
            libc::SIGKILL
        };
        let pid;
        if round % 4 < 2 {
            // Half the checkouts find no tree: they build it.
            if round % 2 == 0 {
                cowtree_store::trees::remove(&store, &hash).unwrap();
            }
            let dst = a.p(&format!("wt{round}"));
            let delay = Duration::from_micros(rng.below(build.as_micros() as u64 + 1));
            pid = stopped_after(
                &a.store(),
                &[o("checkout"), o(&id), dst.as_os_str()],
                delay,
                signal,
            );
            if dst.exists() {
                // Whole, and registered with its stat cache.
                assert_same_tree(&want, &listing(&dst), false);
                let st = a.json(&[o("status"), dst.as_os_str()]);
                assert_eq!(st["clean"], true, "round {round}: {st}");
                kept.push(PathBuf::from(format!("wt{round}")));
            }
        } else {
            let delay = Duration::from_micros(rng.below(record.as_micros() as u64 + 1));
            pid = stopped_after(&a.store(), &[o("snapshot"), sv.as_os_str()], delay, signal);
        }
        if signal == libc::SIGINT {
            // The handler removed what the command was making.
            let mine = |n: &String| n.contains(&format!("-{pid}-"));
            let making: Vec<String> = names(&a.store().join("trees"))
                .into_iter()
                .filter(mine)
                .collect();
            assert!(making.is_empty(), "round {round}: left {making:?}");
            let beside: Vec<String> = common::leftovers(a.dir.path())
                .into_iter()
                .filter(mine)
                .collect();
            assert!(beside.is_empty(), "round {round}: left {beside:?}");
        }
    }
    a.json(&[o("gc")]);
    let v = a.json(&[o("verify")]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(common::leftovers(a.dir.path()).is_empty());
    let mut expect: Vec<PathBuf> = kept;
    for name in names(&a.store().join("trees")) {
        assert!(!name.starts_with('.'), "gc left {name}");
        if !name.ends_with(".stat") && !name.ends_with(".counts") {
            expect.push(Path::new("store/trees").join(name));
        }
    }
    expect.sort();
    assert_eq!(
        subvolumes_below(a.dir.path()),
        expect,
        "the subvolumes left"
    );
}
