//! The clone primitive on real filesystems. Run through scripts/test.sh, which mounts them.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use cowtree_fs::extents::extent_summary;
use cowtree_fs::probe::ProbeCache;
use cowtree_fs::{
    CopyMethod, HardlinkOutcome, HardlinkRefusal, Method, ReflinkOutcome, UnsupportedCause,
    clone_or_copy, hardlink, raw_errno, try_reflink,
};
use cowtree_testutil::{Fs, pattern, scratch};

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn clone_on_cow_fs_is_a_new_inode_sharing_extents_and_writes_stay_private() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let data = pattern(1 << 20, 7);
        write(&src, &data, 0o640);

        assert_eq!(
            try_reflink(&src, &dst).unwrap(),
            ReflinkOutcome::Cloned,
            "{fsys:?}"
        );
        let (sm, dm) = (fs::metadata(&src).unwrap(), fs::metadata(&dst).unwrap());
        assert_ne!(sm.ino(), dm.ino(), "{fsys:?}: clone must be its own inode");
        assert_eq!(dm.mode() & 0o7777, 0o640, "{fsys:?}: mode copied");
        assert_eq!(fs::read(&dst).unwrap(), data);

        let s = extent_summary(&dst).unwrap();
        assert!(
            s.fully_shared(),
            "{fsys:?}: clone extents not shared: {s:?}"
        );
        assert!(
            extent_summary(&src).unwrap().fully_shared(),
            "{fsys:?}: source extents"
        );

        // Write into the middle of the clone, then truncate it, then chmod it.
        {
            let mut f = fs::OpenOptions::new().write(true).open(&dst).unwrap();
            use std::io::Seek;
            f.seek(io::SeekFrom::Start(4096)).unwrap();
            f.write_all(b"written through the clone").unwrap();
            f.sync_all().unwrap();
        }
        assert_eq!(
            fs::read(&src).unwrap(),
            data,
            "{fsys:?}: write reached the source"
        );
        fs::OpenOptions::new()
            .write(true)
            .open(&dst)
            .unwrap()
            .set_len(10)
            .unwrap();
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            fs::read(&src).unwrap(),
            data,
            "{fsys:?}: truncate reached the source"
        );
        assert_eq!(
            fs::metadata(&src).unwrap().mode() & 0o7777,
            0o640,
            "{fsys:?}: chmod"
        );
    }
}

#[test]
fn clone_on_filesystem_without_reflink_is_unsupported_and_leaves_no_dst() {
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        write(&src, b"data", 0o644);
        assert_eq!(
            try_reflink(&src, &dst).unwrap(),
            ReflinkOutcome::Unsupported(UnsupportedCause::Filesystem),
            "{fsys:?}"
        );
        assert!(!dst.exists(), "{fsys:?}: dst left behind");
    }
}

#[test]
fn clone_between_two_xfs_filesystems_is_unsupported_cross_device() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let src = a.path().join("src");
    let dst = b.path().join("dst");
    write(&src, &pattern(8192, 1), 0o644);
    assert_eq!(
        try_reflink(&src, &dst).unwrap(),
        ReflinkOutcome::Unsupported(UnsupportedCause::CrossDevice)
    );
    assert!(!dst.exists());
}

#[test]
fn try_reflink_missing_source_reports_vanished_not_unsupported() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let dst = dir.path().join("dst");
        assert_eq!(
            try_reflink(&dir.path().join("missing"), &dst).unwrap(),
            ReflinkOutcome::SourceVanished,
            "{fsys:?}"
        );
        assert!(!dst.exists(), "{fsys:?}: dst created for a missing source");
    }
}

#[test]
fn existing_destination_is_already_exists_and_left_byte_identical() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        write(&src, &pattern(65536, 2), 0o644);
        let old = pattern(1000, 3);
        write(&dst, &old, 0o600);
        let ino = fs::metadata(&dst).unwrap().ino();
        let err = try_reflink(&src, &dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{fsys:?}: {err}");
        assert!(
            err.to_string().contains("dst"),
            "error names the path: {err}"
        );
        assert_eq!(fs::read(&dst).unwrap(), old);
        assert_eq!(fs::metadata(&dst).unwrap().ino(), ino);
        let err = clone_or_copy(&src, &dst).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&dst).unwrap(), old);
    }
}

#[test]
fn existing_symlink_at_destination_is_not_followed() {
    for fsys in [Fs::Xfs, Fs::NoCow] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let victim = dir.path().join("victim");
        let dst = dir.path().join("dst");
        write(&src, b"new", 0o644);
        write(&victim, b"old", 0o644);
        std::os::unix::fs::symlink(&victim, &dst).unwrap();
        assert!(try_reflink(&src, &dst).is_err());
        assert!(clone_or_copy(&src, &dst).is_err());
        assert_eq!(fs::read(&victim).unwrap(), b"old");
    }
}

#[test]
fn executable_bit_survives_clone_and_copy() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow, Fs::Tmpfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("tool");
        let dst = dir.path().join("tool-copy");
        write(&src, b"#!/bin/sh\necho hi\n", 0o755);
        clone_or_copy(&src, &dst).unwrap();
        assert_eq!(
            fs::metadata(&dst).unwrap().mode() & 0o777,
            0o755,
            "{fsys:?}"
        );
    }
}

#[test]
fn clone_or_copy_says_which_method_ran() {
    if let Some(dir) = scratch(Fs::Xfs) {
        let src = dir.path().join("a");
        write(&src, &pattern(100_000, 4), 0o644);
        assert_eq!(
            clone_or_copy(&src, &dir.path().join("b")).unwrap(),
            CopyMethod::Cloned { bytes: 100_000 }
        );
    }
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("a");
        let data = pattern(100_000, 5);
        write(&src, &data, 0o644);
        let dst = dir.path().join("b");
        assert_eq!(
            clone_or_copy(&src, &dst).unwrap(),
            CopyMethod::Copied {
                bytes: 100_000,
                because: UnsupportedCause::Filesystem
            },
            "{fsys:?}"
        );
        assert_eq!(fs::read(&dst).unwrap(), data);
    }
}

#[test]
fn enospc_during_copy_is_an_error_and_leaves_no_partial_dst() {
    let _small = cowtree_testutil::small_alone();
    let (Some(host), Some(small)) = (scratch(Fs::NoCow), scratch(Fs::Small)) else {
        return;
    };
    let src = host.path().join("big");
    // Larger than the whole small filesystem.
    write(&src, &pattern(96 << 20, 6), 0o644);
    let dst = small.path().join("big");
    let err = clone_or_copy(&src, &dst).unwrap_err();
    assert_eq!(raw_errno(&err), Some(28), "want ENOSPC, got {err}");
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    let msg = err.to_string();
    assert!(msg.contains("big"), "error names the file: {msg}");
    assert!(!dst.exists(), "partial destination left behind");
}

#[test]
fn probe_makes_one_clone_syscall_per_device_pair() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let cache = ProbeCache::new();
    let a1 = a.path().join("one");
    let a2 = a.path().join("two");
    fs::create_dir(&a1).unwrap();
    fs::create_dir(&a2).unwrap();
    assert_eq!(cache.reflink(&a1, &a2).unwrap(), Ok(()));
    assert_eq!(cache.reflink(&a2, &a1).unwrap(), Ok(()));
    assert_eq!(cache.reflink(a.path(), a.path()).unwrap(), Ok(()));
    assert_eq!(
        cache.syscalls(),
        1,
        "same device pair probed more than once"
    );
    assert_eq!(
        cache.reflink(&a1, b.path()).unwrap(),
        Err(UnsupportedCause::CrossDevice)
    );
    assert_eq!(
        cache.reflink(&a2, b.path()).unwrap(),
        Err(UnsupportedCause::CrossDevice)
    );
    assert_eq!(cache.syscalls(), 2);
    // The probe cleans up after itself.
    assert_eq!(fs::read_dir(&a1).unwrap().count(), 0);
    assert_eq!(fs::read_dir(b.path()).unwrap().count(), 0);
}

#[test]
fn probe_reports_unsupported_on_filesystems_without_reflink() {
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let cache = ProbeCache::new();
        assert_eq!(
            cache.reflink(dir.path(), dir.path()).unwrap(),
            Err(UnsupportedCause::Filesystem),
            "{fsys:?}"
        );
    }
}

#[test]
fn hardlink_across_filesystems_is_refused_cross_device() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let src = a.path().join("f");
    write(&src, b"x", 0o644);
    assert_eq!(
        hardlink(&src, &b.path().join("f")).unwrap(),
        HardlinkOutcome::Refused(HardlinkRefusal::CrossDevice)
    );
    assert_eq!(
        hardlink(&src, &a.path().join("g")).unwrap(),
        HardlinkOutcome::Linked
    );
    assert_eq!(fs::metadata(&src).unwrap().nlink(), 2);
    assert_eq!(
        hardlink(&a.path().join("missing"), &a.path().join("h")).unwrap(),
        HardlinkOutcome::SourceVanished
    );
}

#[test]
fn fiemap_on_tmpfs_is_reported_unsupported() {
    let Some(dir) = scratch(Fs::Tmpfs) else {
        return;
    };
    let f = dir.path().join("f");
    write(&f, b"data", 0o644);
    let err = extent_summary(&f).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
}

#[test]
fn plain_copy_on_xfs_has_unshared_extents() {
    // The control for the shared-extent assertions above: they must be able to fail.
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("a");
    write(&src, &pattern(1 << 20, 9), 0o644);
    let dst = dir.path().join("b");
    let data = fs::read(&src).unwrap();
    fs::write(&dst, &data).unwrap();
    let s = extent_summary(&dst).unwrap();
    assert!(s.extents > 0 && s.shared_extents == 0, "{s:?}");
}

#[test]
fn transfer_at_from_a_fifo_fails_at_once_instead_of_blocking() {
    // A source file swapped for a FIFO after the scan must not hang a clone or snapshot.
    let Some(t) = scratch(Fs::Xfs) else { return };
    let fifo = t.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let dir_path = t.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let d = cowtree_fs::dir::Dir::open(&dir_path).unwrap();
        for method in [Method::Clone, Method::Copy] {
            let r = cowtree_fs::transfer_at(
                &d,
                std::ffi::OsStr::new("fifo"),
                &d,
                std::ffi::OsStr::new("out"),
                &cowtree_fs::TransferOptions::new(method),
            );
            tx.send(r.map(|_| ()).map_err(|e| e.to_string())).unwrap();
        }
    });
    for _ in 0..2 {
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(r) => {
                let err = r.expect_err("a FIFO is not a file to transfer");
                assert!(err.contains("fifo"), "{err}");
            }
            Err(_) => {
                // Unblock the stuck open so the thread can end, then fail.
                let _ = fs::OpenOptions::new().write(true).open(&fifo);
                panic!("transfer_at blocked opening a FIFO source");
            }
        }
    }
    assert!(fs::symlink_metadata(t.path().join("out")).is_err());
}
