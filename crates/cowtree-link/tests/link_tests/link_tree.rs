//! `link_tree` on real mounts. Run through scripts/test.sh, which mounts them.

use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cowtree_fs::extents::extent_summary;
use cowtree_link::{
    LinkError, LinkMode, LinkOptions, LinkReport, Linker, OnExisting, Progress, ScanTotals,
    link_tree,
};
use cowtree_testutil::tree::{MIN_SAMPLE_FILE, assert_same_tree, sample_tree, snapshot};
use cowtree_testutil::{Fs, pattern, scratch, set_default_acl};

fn opts() -> LinkOptions {
    LinkOptions::default()
}

/// Every name in `dir` (not recursive) that looks like cowtree's staging or temporary names.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            let b = name.as_bytes();
            if b.windows(8).any(|w| w == b"cowtree-") && !b.starts_with(b"cowtree-test-") {
                out.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

fn regular_files(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_iter()
        .filter(|(_, e)| matches!(e.kind, cowtree_testutil::tree::Kind::File(_)))
        .map(|(p, _)| root.join(p))
        .collect()
}

#[test]
fn full_tree_clone_on_cow_fs_shares_every_extent_and_keeps_everything() {
    for fsys in Fs::COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let (files, dirs, links) = sample_tree(&src);
        let before = snapshot(&src);

        let r = link_tree(&src, &dst, &opts()).unwrap();
        assert_eq!(
            (r.files, r.dirs, r.symlinks),
            (files, dirs, links),
            "{fsys:?}"
        );
        assert_eq!((r.cloned, r.copied), (files, 0), "{fsys:?}: {r:?}");
        assert!(r.fallbacks.is_empty(), "{fsys:?}: {:?}", r.fallbacks);
        assert_eq!(r.bytes_cloned, r.bytes);
        assert_same_tree(&before, &snapshot(&dst), true);

        for f in regular_files(&dst) {
            let s = extent_summary(&f).unwrap();
            if fs::metadata(&f).unwrap().len() >= MIN_SAMPLE_FILE as u64 {
                assert!(
                    s.fully_shared(),
                    "{fsys:?}: {} not shared: {s:?}",
                    f.display()
                );
            }
            let srcf = src.join(f.strip_prefix(&dst).unwrap());
            assert_ne!(
                fs::metadata(&f).unwrap().ino(),
                fs::metadata(&srcf).unwrap().ino(),
                "{fsys:?}: a clone is its own inode"
            );
        }

        // Write into, truncate and chmod files of the clone: the source stays as it was.
        let small = dst.join("a/small.txt");
        let mut f = fs::OpenOptions::new().write(true).open(&small).unwrap();
        f.seek(SeekFrom::Start(100)).unwrap();
        f.write_all(b"written through the clone").unwrap();
        f.sync_all().unwrap();
        drop(f);
        let big = fs::OpenOptions::new()
            .write(true)
            .open(dst.join("a/big.bin"))
            .unwrap();
        big.set_len(10).unwrap();
        drop(big);
        fs::set_permissions(dst.join("top.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_same_tree(&before, &snapshot(&src), true);
    }
}

#[test]
fn host_fs_copies_every_file_and_the_report_says_why() {
    for fsys in Fs::NO_COW {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        let dst = dir.path().join("dst");
        let (files, _, _) = sample_tree(&src);
        let r = link_tree(&src, &dst, &opts()).unwrap();
        assert_eq!((r.cloned, r.copied), (0, files), "{fsys:?}");
        assert_eq!(r.bytes_copied, r.bytes);
        assert_eq!(r.fallbacks.len(), 1, "{fsys:?}: {:?}", r.fallbacks);
        let fb = &r.fallbacks[0];
        assert_eq!(fb.reason, "filesystem-cannot-reflink");
        assert_eq!((fb.count, fb.bytes, fb.per_file), (files, r.bytes, false));
        assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
    }
}

#[test]
fn strict_on_host_fs_fails_and_leaves_no_destination() {
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    sample_tree(&src);
    let o = LinkOptions {
        strict: true,
        ..opts()
    };
    let err = link_tree(&src, &dst, &o).unwrap_err();
    assert!(err.is_strict_refusal(), "{err}");
    assert!(
        err.to_string().contains("filesystem-cannot-reflink"),
        "{err}"
    );
    assert!(!dst.exists());
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn cross_device_copies_and_reports_the_cause_once() {
    let (Some(a), Some(b)) = (scratch(Fs::Xfs), scratch(Fs::Xfs2)) else {
        return;
    };
    let src = a.path().join("src");
    let dst = b.path().join("dst");
    let (files, _, _) = sample_tree(&src);
    let r = link_tree(&src, &dst, &opts()).unwrap();
    assert_eq!((r.cloned, r.copied), (0, files));
    assert_eq!(r.fallbacks.len(), 1, "{:?}", r.fallbacks);
    assert_eq!(r.fallbacks[0].reason, "cross-device");
    assert_eq!(r.fallbacks[0].count, files);
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
}

#[test]
fn overwrite_replaces_entries_and_never_touches_what_they_pointed_at() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let root = dir.path();
    let src = root.join("src");
    let dst = root.join("dst");
    sample_tree(&src);
    // Outside the destination: a file and a directory an attacker (or an old install)
    // points into the destination.
    let outside = root.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("file"), b"outside file").unwrap();
    fs::create_dir(outside.join("dir")).unwrap();
    fs::write(outside.join("dir/keep"), b"outside dir").unwrap();
    let outside_before = snapshot(&outside);

    fs::create_dir_all(dst.join("a")).unwrap();
    // A hardlink to the outside file where a file goes.
    fs::hard_link(outside.join("file"), dst.join("top.txt")).unwrap();
    // A symlink to the outside file where a file goes.
    std::os::unix::fs::symlink(outside.join("file"), dst.join("a/small.txt")).unwrap();
    // A symlink to the outside directory where a directory goes.
    std::os::unix::fs::symlink(outside.join("dir"), dst.join("a/b")).unwrap();
    // A file where a directory goes.
    fs::write(dst.join("empty"), b"not a dir").unwrap();
    // Not in the source: kept.
    fs::write(dst.join("extra"), b"mine").unwrap();

    let o = LinkOptions {
        on_existing: OnExisting::Overwrite,
        ..opts()
    };
    let r = link_tree(&src, &dst, &o).unwrap();
    assert_eq!(r.skipped, 0);
    assert_eq!(outside_before, snapshot(&outside), "outside changed");
    assert_eq!(fs::metadata(outside.join("file")).unwrap().nlink(), 1);

    let mut got = snapshot(&dst);
    let extra = got.remove(Path::new("extra")).expect("extra entry kept");
    assert_eq!(
        extra.kind,
        cowtree_testutil::tree::Kind::File(b"mine".to_vec())
    );
    // Pre-existing directories (the root and `a`) keep their own times; compare the rest.
    let mut want = snapshot(&src);
    for p in ["", "a"] {
        want.get_mut(Path::new(p)).unwrap().mtime = got[Path::new(p)].mtime;
        want.get_mut(Path::new(p)).unwrap().mode = got[Path::new(p)].mode;
    }
    assert_same_tree(&want, &got, true);
    assert_eq!(leftovers(&dst), Vec::<PathBuf>::new());
}

#[test]
fn skip_keeps_existing_entries_and_fills_in_the_rest() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let (files, _, _) = sample_tree(&src);
    fs::create_dir_all(dst.join("a")).unwrap();
    fs::write(dst.join("top.txt"), b"keep me").unwrap();
    fs::write(dst.join("deep"), b"a file where the source has a dir").unwrap();
    let o = LinkOptions {
        on_existing: OnExisting::Skip,
        ..opts()
    };
    let r = link_tree(&src, &dst, &o).unwrap();
    assert_eq!(fs::read(dst.join("top.txt")).unwrap(), b"keep me");
    assert_eq!(
        fs::read(dst.join("deep")).unwrap(),
        b"a file where the source has a dir"
    );
    // top.txt, and deep with its 3 entries below (er, er/est, er/up).
    assert_eq!(r.skipped, 1 + 1 + 3, "{r:?}");
    assert_eq!(r.files, files - 1);
    assert_eq!(
        fs::read(dst.join("a/big.bin")).unwrap(),
        fs::read(src.join("a/big.bin")).unwrap()
    );
}

#[test]
fn fail_refuses_an_existing_destination_and_changes_nothing() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    sample_tree(&src);
    fs::create_dir(&dst).unwrap();
    fs::write(dst.join("x"), b"x").unwrap();
    let before = snapshot(&dst);
    match link_tree(&src, &dst, &opts()) {
        Err(LinkError::DestinationExists(p)) => assert_eq!(p, dst),
        other => panic!("expected DestinationExists, got {other:?}"),
    }
    assert_eq!(before, snapshot(&dst));
}

#[test]
fn enospc_on_the_small_fs_is_an_error_and_leaves_no_destination() {
    let _small = cowtree_testutil::small_alone();
    let (Some(a), Some(small)) = (scratch(Fs::Xfs), scratch(Fs::Small)) else {
        return;
    };
    let src = a.path().join("src");
    fs::create_dir(&src).unwrap();
    let chunk = pattern(8 << 20, 3);
    for i in 0..12 {
        fs::write(src.join(format!("f{i}")), &chunk).unwrap();
    }
    let dst = small.path().join("dst");
    let err = link_tree(&src, &dst, &opts()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert!(err.to_string().contains(&*src.to_string_lossy()), "{err}");
    assert!(!dst.exists());
    assert_eq!(leftovers(small.path()), Vec::<PathBuf>::new());
}

#[test]
fn destination_inside_source_or_equal_to_it_is_refused_before_any_work() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    let before = snapshot(&src);
    for dst in [
        src.join("a/inside"),
        src.join("new"),
        src.join("a/../a/b/new"),
    ] {
        match link_tree(&src, &dst, &opts()) {
            Err(LinkError::DestinationInsideSource { .. }) => {}
            other => panic!(
                "{}: expected DestinationInsideSource, got {other:?}",
                dst.display()
            ),
        }
    }
    let o = LinkOptions {
        on_existing: OnExisting::Overwrite,
        ..opts()
    };
    match link_tree(&src, &src, &o) {
        Err(LinkError::SameSourceAndDestination(_)) => {}
        other => panic!("expected SameSourceAndDestination, got {other:?}"),
    }
    // Merging a tree into its own parent.
    match link_tree(&src.join("a"), &src, &o) {
        Err(LinkError::SourceInsideDestination { .. }) => {}
        other => panic!("expected SourceInsideDestination, got {other:?}"),
    }
    assert_eq!(before, snapshot(&src));
    match link_tree(&dir.path().join("missing"), &dir.path().join("d"), &opts()) {
        Err(LinkError::SourceMissing(_)) => {}
        other => panic!("expected SourceMissing, got {other:?}"),
    }
}

#[test]
fn non_utf8_names_and_symlink_targets_round_trip_byte_for_byte() {
    let Some(dir) = scratch(Fs::Tmpfs).or_else(|| scratch(Fs::NoCow)) else {
        return;
    };
    let src = dir.path().join(OsStr::from_bytes(b"s\xc3\x28rc"));
    fs::create_dir(&src).unwrap();
    let names: [&[u8]; 4] = [b"\xff", b"a\x01b", b"\xe9t\xe9", b"new\nline"];
    for n in names {
        fs::write(src.join(OsStr::from_bytes(n)), n).unwrap();
        let mut link = n.to_vec();
        link.extend_from_slice(b".lnk");
        std::os::unix::fs::symlink(OsStr::from_bytes(n), src.join(OsStr::from_bytes(&link)))
            .unwrap();
    }
    let dst = dir.path().join(OsStr::from_bytes(b"d\xfest"));
    link_tree(&src, &dst, &opts()).unwrap();
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
}

#[test]
fn special_files_are_refused_with_a_list_unless_skipped() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    let fifo = src.join("a/pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let dst = dir.path().join("dst");
    let err = link_tree(&src, &dst, &opts()).unwrap_err();
    assert!(matches!(err, LinkError::SpecialFiles { .. }), "{err}");
    assert!(err.to_string().contains(&*fifo.to_string_lossy()), "{err}");
    assert!(!dst.exists());
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());

    let o = LinkOptions {
        skip_special: true,
        ..opts()
    };
    let r = link_tree(&src, &dst, &o).unwrap();
    assert_eq!(r.special, 1);
    assert!(!dst.join("a/pipe").exists());
}

#[test]
fn stale_staging_of_a_dead_run_is_removed_and_a_live_one_is_left() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    // A run that died: nothing holds the lock.
    let dead = dir
        .path()
        .join(".dst.cowtree-staging.4000000.00000000deadbeef");
    fs::create_dir_all(dead.join("half/done")).unwrap();
    // A run that is alive: its lock is held (here, by this test).
    let live = dir
        .path()
        .join(".dst.cowtree-staging.4000001.00000000cafef00d");
    fs::create_dir(&live).unwrap();
    let live_dir = cowtree_fs::dir::Dir::open(&live).unwrap();
    assert!(live_dir.try_lock_exclusive().unwrap());
    // Somebody else's staging for another destination is not ours to remove.
    let other = dir
        .path()
        .join(".other.cowtree-staging.4000000.0000000000000000");
    fs::create_dir(&other).unwrap();

    link_tree(&src, &dir.path().join("dst"), &opts()).unwrap();
    assert!(!dead.exists(), "stale staging left behind");
    assert!(live.exists(), "a locked staging directory was removed");
    assert!(other.exists());
}

/// Removes one source file after the scan, before anything is linked.
struct RemoveAfterScan(PathBuf);

impl Progress for RemoveAfterScan {
    fn scanned(&self, _totals: &ScanTotals) {
        fs::remove_file(&self.0).unwrap();
    }
}

#[test]
fn a_source_file_removed_during_the_run_is_reported_and_does_not_stop_cloning() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let (files, _, _) = sample_tree(&src);
    let dst = dir.path().join("dst");
    let o = LinkOptions {
        progress: Some(Arc::new(RemoveAfterScan(src.join("a/b/exec.sh")))),
        ..opts()
    };
    let r: LinkReport = link_tree(&src, &dst, &o).unwrap();
    assert_eq!(r.vanished, 1);
    assert_eq!(r.cloned, files - 1, "the rest is still cloned: {r:?}");
    assert_eq!(r.copied, 0);
    assert_eq!(r.fallbacks.len(), 1);
    assert_eq!(r.fallbacks[0].reason, "source-vanished");
    assert_eq!(r.fallbacks[0].example, src.join("a/b/exec.sh"));
    assert!(!dst.join("a/b/exec.sh").exists());
    // The removal changed a/b's mtime after the scan read it; the copy has the scanned one.
    let mut want = snapshot(&src);
    let got = snapshot(&dst);
    want.get_mut(Path::new("a/b")).unwrap().mtime = got[Path::new("a/b")].mtime;
    assert_same_tree(&want, &got, true);
}

#[test]
fn a_single_file_source_works_like_cp() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("file");
    fs::write(&src, pattern(MIN_SAMPLE_FILE, 9)).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o751)).unwrap();
    // To a new path.
    let r = link_tree(&src, &dir.path().join("copy"), &opts()).unwrap();
    assert_eq!((r.files, r.cloned), (1, 1));
    assert_eq!(
        fs::read(dir.path().join("copy")).unwrap(),
        fs::read(&src).unwrap()
    );
    assert_eq!(
        fs::metadata(dir.path().join("copy")).unwrap().mode() & 0o7777,
        0o751
    );
    // Into an existing directory.
    fs::create_dir(dir.path().join("d")).unwrap();
    let r = link_tree(&src, &dir.path().join("d"), &opts()).unwrap();
    assert_eq!(r.destination, dir.path().join("d/file"));
    assert!(
        extent_summary(&dir.path().join("d/file"))
            .unwrap()
            .fully_shared()
    );
    // Onto an existing file: refused, then replaced with overwrite.
    assert!(matches!(
        link_tree(&src, &dir.path().join("d"), &opts()),
        Err(LinkError::DestinationExists(_))
    ));
    assert!(matches!(
        link_tree(&src, &src, &opts()),
        Err(LinkError::SameSourceAndDestination(_))
    ));
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn hardlink_mode_shares_inodes_and_symlink_mode_points_at_the_source() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let (files, _, _) = sample_tree(&src);
    let h = dir.path().join("hard");
    let r = link_tree(
        &src,
        &h,
        &LinkOptions {
            mode: LinkMode::Hardlink,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(r.hardlinked, files);
    assert_eq!(
        fs::metadata(h.join("a/big.bin")).unwrap().ino(),
        fs::metadata(src.join("a/big.bin")).unwrap().ino()
    );
    let s = dir.path().join("sym");
    let r = link_tree(
        &src,
        &s,
        &LinkOptions {
            mode: LinkMode::Symlink,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!((r.symlinked, r.symlinks), (files, 5));
    let target = fs::read_link(s.join("a/big.bin")).unwrap();
    assert!(target.is_absolute());
    assert_eq!(target, fs::canonicalize(&src).unwrap().join("a/big.bin"));
    // Source symlinks stay symlinks with their own targets.
    assert_eq!(
        fs::read_link(s.join("a/rel_link")).unwrap(),
        Path::new("small.txt")
    );
}

#[test]
fn no_preserve_times_leaves_fresh_times_but_keeps_modes() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    sample_tree(&src);
    let dst = dir.path().join("dst");
    let o = LinkOptions {
        preserve_times: false,
        ..opts()
    };
    link_tree(&src, &dst, &o).unwrap();
    assert_same_tree(&snapshot(&src), &snapshot(&dst), false);
    let old = fs::metadata(src.join("top.txt")).unwrap().mtime();
    let new = fs::metadata(dst.join("top.txt")).unwrap().mtime();
    assert!(new > old + 86_400 * 365, "{old} {new}");
}

#[test]
fn many_directories_with_one_worker_per_descriptor_budget_still_complete() {
    // Wide and deep: far more directories than workers, at several job counts.
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    for i in 0..60 {
        let d = src.join(format!("d{i}/e{}/f", i % 7));
        fs::create_dir_all(&d).unwrap();
        for j in 0..5 {
            fs::write(d.join(format!("x{j}")), pattern(100 + j, i as u64)).unwrap();
        }
    }
    // One directory big enough to be split between workers.
    let big = src.join("big");
    fs::create_dir(&big).unwrap();
    for j in 0..700 {
        fs::write(big.join(format!("f{j}")), [j as u8; 64]).unwrap();
    }
    for jobs in [1, 3, 32] {
        let dst = dir.path().join(format!("dst{jobs}"));
        let r = link_tree(&src, &dst, &LinkOptions { jobs, ..opts() }).unwrap();
        assert_eq!(r.files, 300 + 700, "jobs {jobs}");
        assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
    }
}

#[test]
fn big_directories_nested_in_big_directories_are_linked_whole_with_their_modes_and_times() {
    // A directory's entries after its first work item's are linked in a later pass, and
    // the directories among them start later passes of their own: each pass must make every
    // entry, and each directory get its mode and times after its last entry is made.
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let top = src.join("top");
    fs::create_dir_all(&top).unwrap();
    for j in 0..600 {
        fs::write(top.join(format!("f{j}")), pattern(10 + j % 50, j as u64)).unwrap();
    }
    // Directory order is the filesystem's: with 12 subdirectories among 612 entries, some
    // are almost surely after the first 256 (checked below).
    for i in 0..12 {
        let sub = top.join(format!("sub{i}"));
        let inner = sub.join("inner");
        fs::create_dir_all(&inner).unwrap();
        for j in 0..300 {
            fs::write(
                sub.join(format!("g{j}")),
                pattern(20, (i * 1000 + j) as u64),
            )
            .unwrap();
        }
        for j in 0..270 {
            fs::write(inner.join(format!("h{j}")), pattern(30, j as u64)).unwrap();
        }
        // Read-only directories get their bits after everything below them is made.
        fs::set_permissions(&inner, fs::Permissions::from_mode(0o555)).unwrap();
        set_mtime(&sub, 1_000_000 + i as i64);
    }
    set_mtime(&top, 2_000_000);
    // The linker takes a directory's entries in the order the filesystem lists them: some of
    // the subdirectories must be past the first chunk (256 entries), or no later pass would
    // start passes of its own.
    let late_subdirs = fs::read_dir(&top)
        .unwrap()
        .skip(256)
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("sub")
        })
        .count();
    assert!(late_subdirs > 0, "every subdirectory is in the first chunk");
    let want = snapshot(&src);
    for jobs in [1, 2, 5] {
        let dst = dir.path().join(format!("dst{jobs}"));
        let r = link_tree(&src, &dst, &LinkOptions { jobs, ..opts() }).unwrap();
        assert_eq!(r.files, 600 + 12 * 570, "jobs {jobs}");
        assert_same_tree(&want, &snapshot(&dst), true);
    }
    // The same as a merge into an existing destination that already has part of the tree:
    // its existing directories are merged into by items of every pass.
    let merged = dir.path().join("merged");
    fs::create_dir_all(merged.join("top/sub3")).unwrap();
    fs::write(merged.join("top/sub3/g7"), b"old").unwrap();
    fs::write(merged.join("kept"), b"kept").unwrap();
    Linker::new(LinkOptions {
        jobs: 2,
        on_existing: OnExisting::Overwrite,
        ..opts()
    })
    .link_trees(&[&src], &merged)
    .unwrap();
    assert_eq!(fs::read(merged.join("kept")).unwrap(), b"kept");
    fs::remove_file(merged.join("kept")).unwrap();
    // The existing directories keep their own times in a merge; compare without them.
    assert_same_tree(&want, &snapshot(&merged), false);
    assert_eq!(leftovers(&merged), Vec::<PathBuf>::new());
}

/// Sets the modification time of `path` to `secs` after the epoch.
fn set_mtime(path: &Path, secs: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    fs::File::open(path).unwrap().set_modified(t).unwrap();
}

#[test]
fn hardlink_mode_copies_a_file_at_the_link_limit_and_hardlinks_the_rest() {
    // ext4 allows 65,000 links per inode; reach it for one source file (links kept outside
    // the source tree), so linkat gives EMLINK for real.
    let Some(dir) = scratch(Fs::NoCow) else {
        return;
    };
    let fstype = cowtree_fs::fstype::fs_type(cowtree_fs::dir::Dir::open(dir.path()).unwrap())
        .unwrap()
        .name();
    if fstype != "ext4" {
        println!("skipped: the host filesystem is {fstype}, not ext4 with its 65,000-link limit");
        return;
    }
    let src = dir.path().join("src");
    let (files, _, _) = sample_tree(&src);
    let full = src.join("a/small.txt");
    let side = dir.path().join("links");
    fs::create_dir(&side).unwrap();
    let mut n = 0u32;
    loop {
        match fs::hard_link(&full, side.join(n.to_string())) {
            Ok(()) => n += 1,
            Err(e) if e.raw_os_error() == Some(31) => break,
            Err(e) => panic!("link {n}: {e}"),
        }
    }
    let dst = dir.path().join("dst");
    let r = link_tree(
        &src,
        &dst,
        &LinkOptions {
            mode: LinkMode::Hardlink,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!((r.hardlinked, r.copied), (files - 1, 1), "{r:?}");
    assert_eq!(r.fallbacks.len(), 1, "{:?}", r.fallbacks);
    let fb = &r.fallbacks[0];
    assert_eq!(
        (fb.reason, fb.count, fb.per_file),
        ("hardlink-too-many-links", 1, true)
    );
    assert_eq!(fb.example, full);
    assert_ne!(
        fs::metadata(dst.join("a/small.txt")).unwrap().ino(),
        fs::metadata(&full).unwrap().ino()
    );
    assert_same_tree(&snapshot(&src), &snapshot(&dst), true);
    fs::remove_dir_all(&side).unwrap();
}

#[test]
fn overwrite_refuses_to_replace_a_directory_by_a_file_and_keeps_its_contents() {
    let Some(dir) = scratch(Fs::Xfs) else { return };
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"source file").unwrap();
    fs::create_dir_all(dst.join("f/sub")).unwrap();
    fs::write(dst.join("f/sub/mine"), b"not in the source").unwrap();
    let o = LinkOptions {
        on_existing: OnExisting::Overwrite,
        ..opts()
    };
    let err = link_tree(&src, &dst, &o).unwrap_err().to_string();
    assert!(err.contains("does not replace a directory"), "{err}");
    assert!(err.contains("dst/f"), "error names the path: {err}");
    assert_eq!(
        fs::read(dst.join("f/sub/mine")).unwrap(),
        b"not in the source"
    );
    assert_eq!(leftovers(&dst), Vec::<PathBuf>::new());
}

/// Permission bits of files and of directories (each holding a file, a subdirectory with a
/// file, and an empty directory of the same mode beside it) for every case the linker treats
/// apart: bits the umask or a default ACL removes, sticky and set-group-ID bits, directories
/// without owner write or search (given their bits last), fixed times on everything.
const FILE_MODES: [u32; 12] = [
    0o400, 0o600, 0o640, 0o644, 0o660, 0o664, 0o666, 0o700, 0o755, 0o775, 0o777, 0o1644,
];
const DIR_MODES: [u32; 10] = [
    0o700, 0o750, 0o755, 0o775, 0o777, 0o1777, 0o2755, 0o3775, 0o555, 0o500,
];

fn mode_tree(root: &Path) {
    use cowtree_testutil::tree::set_mtime;
    fs::create_dir(root).unwrap();
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for (i, m) in FILE_MODES.iter().enumerate() {
        let p = root.join(format!("f{m:o}"));
        fs::write(&p, pattern(MIN_SAMPLE_FILE + i, i as u64)).unwrap();
        files.push((p, *m));
    }
    for m in DIR_MODES {
        let d = root.join(format!("d{m:o}"));
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("file"), pattern(MIN_SAMPLE_FILE, u64::from(m))).unwrap();
        fs::write(d.join("sub/file"), b"below").unwrap();
        files.push((d.join("file"), 0o644));
        files.push((d.join("sub/file"), 0o600));
        fs::create_dir(root.join(format!("e{m:o}"))).unwrap();
        dirs.push((d.join("sub"), 0o755));
        dirs.push((d, m));
        dirs.push((root.join(format!("e{m:o}")), m));
    }
    for (p, m) in &files {
        fs::set_permissions(p, fs::Permissions::from_mode(*m)).unwrap();
    }
    // Times before modes: a directory without owner write cannot have its times set by a
    // non-root owner afterwards. Deepest first: setting times creates nothing.
    let all: Vec<&Path> = files
        .iter()
        .chain(&dirs)
        .map(|(p, _)| p.as_path())
        .collect();
    for (i, p) in all.iter().chain([&root]).enumerate() {
        set_mtime(p, 1_200_000_000 + 3_600 * i as i64, 987_654_321 - i as i64);
    }
    for (p, m) in &dirs {
        fs::set_permissions(p, fs::Permissions::from_mode(*m)).unwrap();
    }
}

#[test]
fn modes_and_times_are_exact_under_a_plain_a_setgid_and_a_default_acl_parent() {
    for fsys in [Fs::Xfs, Fs::Btrfs, Fs::NoCow, Fs::Tmpfs] {
        let Some(dir) = scratch(fsys) else { continue };
        let src = dir.path().join("src");
        mode_tree(&src);
        let before = snapshot(&src);
        for parent in ["plain", "setgid", "acl"] {
            let p = dir.path().join(parent);
            fs::create_dir(&p).unwrap();
            match parent {
                "setgid" => fs::set_permissions(&p, fs::Permissions::from_mode(0o2775)).unwrap(),
                "acl" => {
                    if let Err(e) = set_default_acl(&p) {
                        // tmpfs without POSIX ACLs: there is no default ACL to follow.
                        eprintln!("{fsys:?}: no default ACL: {e}");
                        continue;
                    }
                    // The rule really applies here: a new file loses group write and all of
                    // other's bits, whatever the umask.
                    fs::write(p.join("probe"), b"x").unwrap();
                    let probe = fs::metadata(p.join("probe")).unwrap().mode() & 0o777;
                    assert_eq!(
                        probe & 0o027,
                        0,
                        "{fsys:?}: default ACL not applied: {probe:o}"
                    );
                    fs::remove_file(p.join("probe")).unwrap();
                }
                _ => {}
            }
            for preserve_times in [true, false] {
                let dst = p.join(format!("dst-{preserve_times}"));
                let o = LinkOptions {
                    preserve_times,
                    ..opts()
                };
                let r =
                    link_tree(&src, &dst, &o).unwrap_or_else(|e| panic!("{fsys:?} {parent}: {e}"));
                assert_eq!(r.files, (FILE_MODES.len() + 2 * DIR_MODES.len()) as u64);
                let after = snapshot(&dst);
                for (path, s) in &before {
                    assert_eq!(
                        s.mode,
                        after[path].mode,
                        "{fsys:?} {parent} preserve_times={preserve_times}: {}: mode {:o} vs {:o}",
                        path.display(),
                        s.mode,
                        after[path].mode
                    );
                }
                assert_same_tree(&before, &after, preserve_times);
            }
        }
    }
}
