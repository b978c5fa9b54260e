//! btrfs subvolumes on real mounts, as root and as an unprivileged user, on a btrfs mounted
//! without `user_subvol_rm_allowed` (`COWTREE_TEST_BTRFS`) and on one with it
//! (`COWTREE_TEST_BTRFS_USER_RM`). btrfs-progs is the reference where root can ask it.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use cowtree_fs::dir::Dir;
use cowtree_fs::probe::ProbeCache;
use cowtree_fs::subvolume::{
    At, Cause, Deleted, below, create, delete, filesystem_id, id, is_root, read_only,
    set_read_only, snapshot,
};
use cowtree_fs::whole_tree::{Method, NotUsed, Request, WholeTree, try_whole_tree};
use cowtree_testutil::tool;
use cowtree_testutil::user::{TestUser, is_child};
use cowtree_testutil::{Fs, mount, scratch};

fn o(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn names(v: &[cowtree_fs::subvolume::Nested]) -> Vec<PathBuf> {
    v.iter().map(|n| n.path.clone()).collect()
}

/// The whole library scenario in the directory `base` (owned by whoever runs it):
/// `fast_delete` says whether the O(1) delete should be permitted here.
fn scenario(base: &Path, fast_delete: bool, foreign: Option<&OsStr>) {
    let d = Dir::open(base).expect("open base");
    let at = At::new(&d, base);
    assert!(!is_root(at).expect("is_root"), "a plain directory");

    // Create, fill, and see it is a subvolume's root.
    create(at, o("sv")).expect("create");
    let sv_path = base.join("sv");
    std::fs::write(sv_path.join("f"), b"source").expect("write");
    std::fs::create_dir(sv_path.join("d")).expect("mkdir");
    symlink("f", sv_path.join("d/link")).expect("symlink");
    let sv = Dir::open(&sv_path).expect("open sv");
    let sv_at = At::new(&sv, &sv_path);
    assert!(is_root(sv_at).expect("is_root"));
    assert_eq!(std::fs::metadata(&sv_path).expect("stat").ino(), 256);
    assert!(!read_only(sv_at).expect("flags"));

    // A writable snapshot: same inodes and contents, its own device; a write in it stays there.
    snapshot(sv_at, at, o("snap"), false).expect("snapshot");
    let (a, b) = (
        std::fs::metadata(sv_path.join("f")).expect("stat"),
        std::fs::metadata(base.join("snap/f")).expect("stat"),
    );
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mtime_nsec(), b.mtime_nsec());
    assert_ne!(a.dev(), b.dev());
    assert_eq!(
        std::fs::read_link(base.join("snap/d/link")).expect("readlink"),
        Path::new("f")
    );
    std::fs::write(base.join("snap/f"), b"changed in the snapshot").expect("write snap");
    assert_eq!(std::fs::read(sv_path.join("f")).expect("read"), b"source");
    let snap = Dir::open(&base.join("snap")).expect("open snap");
    let snap_path = base.join("snap");
    assert_ne!(
        id(sv_at).expect("id"),
        id(At::new(&snap, &snap_path)).expect("id")
    );
    assert_eq!(
        filesystem_id(sv_at).expect("fsid"),
        filesystem_id(At::new(&snap, &snap_path)).expect("fsid")
    );

    // Read-only: writes fail; the owner clears and sets the flag.
    snapshot(sv_at, at, o("ro"), true).expect("read-only snapshot");
    let ro_path = base.join("ro");
    let ro = Dir::open(&ro_path).expect("open ro");
    let ro_at = At::new(&ro, &ro_path);
    assert!(read_only(ro_at).expect("flags"));
    let err = std::fs::write(ro_path.join("f"), b"x").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc_erofs()), "{err}");
    set_read_only(ro_at, false).expect("clear ro");
    std::fs::write(ro_path.join("new"), b"x").expect("writable now");
    set_read_only(ro_at, true).expect("set ro");
    drop(ro);

    // Refusals: not a root, a taken name, a non-subvolume delete.
    let sub = Dir::open(&sv_path.join("d")).expect("open d");
    let e = snapshot(At::new(&sub, &sv_path.join("d")), at, o("x"), false).expect_err("not a root");
    assert_eq!(e.cause, Cause::NotSubvolumeRoot, "{e}");
    assert!(e.to_string().contains("sv/d"), "{e}");
    let e = snapshot(sv_at, at, o("snap"), false).expect_err("taken");
    assert_eq!(e.cause, Cause::Exists, "{e}");
    assert!(e.to_string().contains("snap"), "{e}");
    std::fs::create_dir(base.join("plain")).expect("mkdir");
    let e = delete(at, o("plain")).expect_err("not a subvolume");
    assert_eq!(e.cause, Cause::NotSubvolumeRoot, "{e}");
    assert!(base.join("plain").is_dir());
    if let Some(name) = foreign {
        // Root made this one inside our directory: we may not snapshot it.
        let p = base.join(name);
        let f = Dir::open(&p).expect("open foreign");
        let e = snapshot(At::new(&f, &p), at, o("stolen"), false).expect_err("not ours");
        assert_eq!(e.cause, Cause::NotPermitted, "{e}");
        assert!(!base.join("stolen").exists());
    }

    // Nested subvolumes, found at any depth; none below a plain subdirectory.
    create(sv_at, o("inner")).expect("create inner");
    let inner_path = sv_path.join("inner");
    let inner = Dir::open(&inner_path).expect("open inner");
    create(At::new(&inner, &inner_path), o("deeper")).expect("create deeper");
    std::fs::write(inner_path.join("deeper/g"), b"deep").expect("write");
    assert_eq!(
        names(&below(sv_at).expect("below sv")),
        [PathBuf::from("inner"), PathBuf::from("inner/deeper")]
    );
    assert_eq!(
        names(&below(At::new(&sub, &sv_path.join("d"))).expect("below d")),
        Vec::<PathBuf>::new()
    );
    let mut want: Vec<PathBuf> = ["ro", "snap", "sv", "sv/inner", "sv/inner/deeper"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Some(name) = foreign {
        want.push(PathBuf::from(name));
        want.sort();
    }
    assert_eq!(names(&below(at).expect("below base")), want);
    drop((inner, sub));

    // The probe finds what is permitted here, once per filesystem.
    let cache = ProbeCache::new();
    let found = cache.subvolumes(base).expect("probe").expect("btrfs");
    assert_eq!(found.snapshot, Ok(()));
    assert_eq!(
        found.fast_delete,
        if fast_delete {
            Ok(())
        } else {
            Err(Cause::NotPermitted)
        }
    );
    assert_eq!(
        cache.subvolumes(&sv_path).expect("probe").expect("btrfs"),
        found
    );
    assert_eq!(cache.syscalls(), 1, "one probe per filesystem");
    let leftovers: Vec<OsString> = std::fs::read_dir(base)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n.to_string_lossy().contains("probe"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Delete: a read-only snapshot, then a subvolume holding nested ones.
    let expect = |d: Deleted| {
        if fast_delete {
            assert_eq!(d, Deleted::Ioctl);
        } else {
            assert_eq!(
                d,
                Deleted::RemovedTree {
                    because: Cause::NotPermitted
                }
            );
        }
    };
    expect(delete(at, o("ro")).expect("delete ro"));
    assert!(!ro_path.exists());
    drop((sv, snap));
    expect(delete(at, o("sv")).expect("delete sv with nested"));
    assert!(!sv_path.exists());
    let e = delete(at, o("sv")).expect_err("gone");
    assert_eq!(e.cause, Cause::NotFound, "{e}");
    expect(delete(at, o("snap")).expect("delete snap"));
    let left = names(&below(at).expect("below base"));
    assert_eq!(
        left,
        foreign.map(PathBuf::from).into_iter().collect::<Vec<_>>()
    );
}

fn libc_erofs() -> i32 {
    rustix::io::Errno::ROFS.raw_os_error()
}

#[test]
fn subvolume_operations_as_root_on_both_btrfs_mounts() {
    for fs in [Fs::Btrfs, Fs::BtrfsUserRm] {
        let Some(t) = scratch(fs) else { return };
        scenario(t.path(), true, None);
    }
}

#[test]
#[ignore = "started by subvolume_operations_as_an_unprivileged_user, as that user"]
fn child_subvolume_scenario() {
    if !is_child() {
        return;
    }
    let base = PathBuf::from(std::env::var_os("CHILD_BASE").expect("CHILD_BASE"));
    let fast = std::env::var("CHILD_FAST_DELETE").expect("CHILD_FAST_DELETE") == "1";
    let foreign = std::env::var_os("CHILD_FOREIGN");
    scenario(&base, fast, foreign.as_deref());
}

#[test]
fn subvolume_operations_as_an_unprivileged_user_with_and_without_user_subvol_rm_allowed() {
    let Some(user) = TestUser::create() else {
        return;
    };
    for (fs, fast) in [(Fs::Btrfs, false), (Fs::BtrfsUserRm, true)] {
        let Some(m) = mount(fs) else { return };
        let base = user.dir_in(&m);
        // A subvolume of root's inside the user's directory.
        let d = Dir::open(base.path()).expect("open");
        create(At::new(&d, base.path()), o("roots")).expect("create as root");
        user.run_test(
            "subvolume::child_subvolume_scenario",
            &[
                ("CHILD_BASE", base.path().as_os_str()),
                ("CHILD_FAST_DELETE", o(if fast { "1" } else { "0" })),
                ("CHILD_FOREIGN", o("roots")),
            ],
        );
        // What the child left, as root sees it.
        assert_eq!(
            names(&below(At::new(&d, base.path())).expect("below")),
            [PathBuf::from("roots")]
        );
        delete(At::new(&d, base.path()), o("roots")).expect("delete as root");
    }
}

/// btrfs-progs agrees on what is a subvolume, its id and its read-only flag.
#[test]
fn btrfs_progs_agrees_on_ids_flags_and_nesting() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let base = t.path();
    let d = Dir::open(base).expect("open");
    let at = At::new(&d, base);
    create(at, o("a")).expect("create");
    let a_path = base.join("a");
    let a = Dir::open(&a_path).expect("open a");
    create(At::new(&a, &a_path), o("b")).expect("create b");
    snapshot(At::new(&a, &a_path), at, o("r"), true).expect("snapshot");
    let show = |p: &Path| tool("btrfs", &[o("subvolume"), o("show"), p.as_os_str()]);
    let id_of = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Subvolume ID:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no id in {text}"))
    };
    assert_eq!(id(At::new(&a, &a_path)).expect("id"), id_of(&show(&a_path)));
    let b_path = a_path.join("b");
    let nested = below(At::new(&a, &a_path)).expect("below");
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0].id, id_of(&show(&b_path)));
    let prop = |p: &Path| {
        tool(
            "btrfs",
            &[o("property"), o("get"), o("-ts"), p.as_os_str(), o("ro")],
        )
    };
    assert_eq!(prop(&base.join("r")).trim(), "ro=true");
    assert_eq!(prop(&a_path).trim(), "ro=false");
    // The snapshot left b's place as an empty directory: no subvolume below r.
    assert!(base.join("r/b").is_dir());
    let r = Dir::open(&base.join("r")).expect("open r");
    assert!(
        below(At::new(&r, &base.join("r")))
            .expect("below r")
            .is_empty()
    );
    let listed = tool(
        "btrfs",
        &[o("subvolume"), o("list"), o("-o"), a_path.as_os_str()],
    );
    assert!(
        listed.contains(&format!("ID {} ", nested[0].id)),
        "{listed}"
    );
}

#[test]
fn a_snapshot_to_another_btrfs_is_cross_filesystem_and_xfs_is_not_btrfs() {
    let Some(one) = scratch(Fs::Btrfs) else {
        return;
    };
    let Some(two) = scratch(Fs::BtrfsUserRm) else {
        return;
    };
    let Some(xfs) = scratch(Fs::Xfs) else { return };
    let d1 = Dir::open(one.path()).expect("open");
    create(At::new(&d1, one.path()), o("sv")).expect("create");
    let sv_path = one.path().join("sv");
    let sv = Dir::open(&sv_path).expect("open sv");
    let d2 = Dir::open(two.path()).expect("open");
    assert_ne!(
        filesystem_id(At::new(&d1, one.path())).expect("fsid"),
        filesystem_id(At::new(&d2, two.path())).expect("fsid")
    );
    let e = snapshot(
        At::new(&sv, &sv_path),
        At::new(&d2, two.path()),
        o("x"),
        false,
    )
    .expect_err("another filesystem");
    assert_eq!(e.cause, Cause::CrossFilesystem, "{e}");
    let dx = Dir::open(xfs.path()).expect("open");
    let e = create(At::new(&dx, xfs.path()), o("sv")).expect_err("xfs");
    assert_eq!(e.cause, Cause::NotBtrfs, "{e}");
    assert!(
        ProbeCache::new()
            .subvolumes(xfs.path())
            .expect("probe")
            .is_none()
    );
    assert!(below(At::new(&dx, xfs.path())).expect("below").is_empty());
}

/// The seam's decision, case by case (as whoever runs it; `owner_ok` false where the
/// caller does not own `foreign`).
fn seam_cases(base: &Path, other_btrfs: &Path, xfs: &Path, foreign: Option<&OsStr>) {
    let d = Dir::open(base).expect("open");
    let at = At::new(&d, base);
    create(at, o("src")).expect("create");
    let src_path = base.join("src");
    std::fs::create_dir_all(src_path.join("a/b")).expect("mkdir");
    std::fs::write(src_path.join("a/b/f"), b"data").expect("write");
    let src = Dir::open(&src_path).expect("open src");
    let req = |src: At<'_>, parent: At<'_>, name: &'static str| -> WholeTree {
        try_whole_tree(
            &Request {
                src,
                parent,
                name: o(name),
                read_only: false,
            },
            None,
        )
        .expect("decide")
    };
    let src_at = At::new(&src, &src_path);
    assert_eq!(req(src_at, at, "copy"), WholeTree::Done(Method::Subvolume));
    assert_eq!(
        std::fs::read(base.join("copy/a/b/f")).expect("read"),
        b"data"
    );
    let asked = NotUsed::Requested {
        code: "merge",
        why: "a merge",
    };
    assert_eq!(
        try_whole_tree(
            &Request {
                src: src_at,
                parent: at,
                name: o("never"),
                read_only: false
            },
            Some(asked.clone())
        )
        .expect("decide"),
        WholeTree::NotUsed(asked)
    );
    assert!(!base.join("never").exists());
    let a_path = src_path.join("a");
    let a = Dir::open(&a_path).expect("open a");
    assert_eq!(
        req(At::new(&a, &a_path), at, "x"),
        WholeTree::NotUsed(NotUsed::NotSubvolumeRoot)
    );
    let od = Dir::open(other_btrfs).expect("open");
    assert_eq!(
        req(src_at, At::new(&od, other_btrfs), "x"),
        WholeTree::NotUsed(NotUsed::CrossFilesystem)
    );
    let xd = Dir::open(xfs).expect("open");
    assert_eq!(
        req(src_at, At::new(&xd, xfs), "x"),
        WholeTree::NotUsed(NotUsed::CrossFilesystem)
    );
    assert_eq!(
        req(At::new(&xd, xfs), at, "x"),
        WholeTree::NotUsed(NotUsed::Filesystem { fs: "xfs" })
    );
    create(At::new(&a, &a_path), o("nested")).expect("nested");
    assert_eq!(
        req(src_at, at, "x"),
        WholeTree::NotUsed(NotUsed::NestedSubvolumes {
            path: PathBuf::from("a/nested"),
            count: 1
        })
    );
    assert!(!base.join("x").exists());
    if let Some(name) = foreign {
        let p = base.join(name);
        let f = Dir::open(&p).expect("open");
        assert!(matches!(
            req(At::new(&f, &p), at, "x"),
            WholeTree::NotUsed(NotUsed::NotOwner { owner: 0 })
        ));
    }
}

#[test]
fn the_whole_tree_seam_decides_case_by_case_as_root() {
    let Some(t) = scratch(Fs::Btrfs) else { return };
    let Some(other) = scratch(Fs::BtrfsUserRm) else {
        return;
    };
    let Some(xfs) = scratch(Fs::Xfs) else { return };
    seam_cases(t.path(), other.path(), xfs.path(), None);
    // A filesystem mounted below the source.
    let d = Dir::open(t.path()).expect("open");
    create(At::new(&d, t.path()), o("m")).expect("create");
    let m_path = t.path().join("m");
    std::fs::create_dir(m_path.join("mnt")).expect("mkdir");
    tool(
        "mount",
        &[
            o("-t"),
            o("tmpfs"),
            o("tmpfs"),
            m_path.join("mnt").as_os_str(),
        ],
    );
    let m = Dir::open(&m_path).expect("open m");
    let r = try_whole_tree(
        &Request {
            src: At::new(&m, &m_path),
            parent: At::new(&d, t.path()),
            name: o("x"),
            read_only: false,
        },
        None,
    );
    tool("umount", &[m_path.join("mnt").as_os_str()]);
    assert_eq!(
        r.expect("decide"),
        WholeTree::NotUsed(NotUsed::MountPoints {
            path: PathBuf::from("mnt")
        })
    );
}

#[test]
#[ignore = "started by the_whole_tree_seam_decides_case_by_case_as_a_user, as that user"]
fn child_seam_cases() {
    if !is_child() {
        return;
    }
    let var = |k: &str| PathBuf::from(std::env::var_os(k).expect(k));
    let foreign = std::env::var_os("CHILD_FOREIGN");
    seam_cases(
        &var("CHILD_BASE"),
        &var("CHILD_OTHER"),
        &var("CHILD_XFS"),
        foreign.as_deref(),
    );
}

#[test]
fn the_whole_tree_seam_decides_case_by_case_as_a_user() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let (Some(b), Some(o2), Some(x)) = (mount(Fs::Btrfs), mount(Fs::BtrfsUserRm), mount(Fs::Xfs))
    else {
        return;
    };
    let base = user.dir_in(&b);
    let other = user.dir_in(&o2);
    let xfs = user.dir_in(&x);
    let d = Dir::open(base.path()).expect("open");
    create(At::new(&d, base.path()), o("roots")).expect("create as root");
    user.run_test(
        "subvolume::child_seam_cases",
        &[
            ("CHILD_BASE", base.path().as_os_str()),
            ("CHILD_OTHER", other.path().as_os_str()),
            ("CHILD_XFS", xfs.path().as_os_str()),
            ("CHILD_FOREIGN", o("roots")),
        ],
    );
}
